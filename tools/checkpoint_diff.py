#!/usr/bin/env python3
"""Differential audit of fp8q's checkpoint readers against PyTorch (a dev-time tool, not a test).

Writes many checkpoint variants with torch into a scratch directory, reads each one with
`torch.load` (the expectation) and with fp8q (`examples/dump_checkpoint.rs`: key, shape, stored
dtype and a SHA-256 of every tensor's f32 values), and compares them bit for bit. Files that must
be refused are checked for a clear error (and for no panic). With --cli, torchvision-layout
ResNet-18/50 and MobileNetV2 state dicts are also run through `fp8q validate-quantized` (the real
model path): good files must exit 0, files with a wrong key or shape must exit 2 naming the key.

    export CARGO_TARGET_DIR=/work/target-ckpt
    cargo build --release -p fp8q-tensors --example dump_checkpoint
    cargo build --release -p fp8q-cli                      # only for --cli
    PYTHONPATH=/path/to/safetensors python3 tools/checkpoint_diff.py \\
        --dump $CARGO_TARGET_DIR/release/examples/dump_checkpoint \\
        [--cli $CARGO_TARGET_DIR/release/fp8q --images /work/shared/golden/ptq/images] \\
        [--out /tmp/ckpt-audit] [-k substring] [--big] [--keep]

The `safetensors` Python package is optional (safetensors files are also written by hand).
--big adds ResNet-50 variants (~100 MB each, deleted afterwards unless --keep).
Expectations come from torch only: the state dict a variant wraps is named by the variant
(`['state_dict']`, with `module.` dropped, …), its tensors are converted by torch's `.float()`.
Exit status 1 when any variant disagrees.
"""

import argparse
import collections
import hashlib
import io
import json
import math
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zipfile

import torch
import torchvision

SUPPORTED = {
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32,
    torch.int16, torch.int8, torch.uint8, torch.bool,
}


# ------------------------------------------------------------------------------------------------
# tensors

def gen(seed):
    return torch.Generator().manual_seed(seed)


def dtype_tensors():
    g = gen(1)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 5, generator=g)
    sd["f16"] = torch.tensor([1.0, -2.5, 6.1e-5, 5.96e-8, -5.96e-8, 65504.0, float("inf"), -float("inf"), 0.0, -0.0],
                             dtype=torch.float16)
    # NaNs with sign and payload (torch's .float() keeps them)
    # (32 of them: torch converts runs of 8/16 with F16C, which keeps sign and payload and quiets
    # signalling NaNs, as IEEE 754 asks; its scalar loop for the tail gives 0x7fffffff instead)
    sd["f16_nan"] = torch.tensor([0x7E00, 0xFE00, 0x7C01, 0xFD55, 0x7FFF, 0xFC01, 0x3C00, 0x8000] * 4,
                                 dtype=torch.int32).to(torch.int16).view(torch.float16)
    sd["bf16"] = (torch.randn(4, 3, generator=g) * 1000).to(torch.bfloat16)
    sd["bf16_special"] = torch.tensor([0x7FC0, 0xFF81, 0x0001, 0x8001, 0x7F80, 0xFF80], dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    sd["f64"] = torch.tensor([1.0 / 3.0, -1e-300, 1e300, -1e300, 2.5, 1e-40, -1e-45, 1.0 + 2.0**-24,
                              1.0 + 3 * 2.0**-24, 3.4028235677973366e38, float("nan"), -float("inf")], dtype=torch.float64)
    sd["f64_rand"] = torch.randn(7, 3, generator=g, dtype=torch.float64) * 1e3
    sd["i64"] = torch.tensor([-(2**63), 2**63 - 1, -(2**40) - 1, 2**24 + 1, 2**24 + 3, 2**53 + 1, 7, 0], dtype=torch.int64)
    sd["i32"] = torch.tensor([[-5, 0], [2**31 - 1, -(2**31)], [2**24 + 1, 16777219]], dtype=torch.int32)
    sd["i16"] = torch.tensor([-32768, 32767, 3], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 127, -1], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    sd["flags"] = torch.tensor([True, False, True])
    sd["bn.num_batches_tracked"] = torch.tensor(123456, dtype=torch.int64)
    sd["scalar_f32"] = torch.tensor(-0.75)
    sd["scalar_f16"] = torch.tensor(0.1, dtype=torch.float16)
    sd["scalar_bf16"] = torch.tensor(-3.0e38, dtype=torch.bfloat16)
    sd["scalar_f64"] = torch.tensor(math.pi, dtype=torch.float64)
    return sd


def view_tensors():
    g = gen(2)
    base = torch.randn(6, 5, generator=g)
    big = torch.randn(100, generator=g)
    sd = collections.OrderedDict()
    sd["base"] = base
    sd["base_t"] = base.t()  # transposed, same storage
    sd["base_slice"] = base[1:5:2, 1:4]  # offset 6, strides (10, 1)
    sd["base_col"] = base[:, 3]  # stride 5
    sd["base_elem"] = base[2, 3]  # 0-dim with offset 13
    sd["base_empty_off"] = base[3:3]  # empty, offset 15
    sd["big_window"] = big[10:20]  # a window of a larger storage
    sd["big_step"] = big[5::7]  # offset and stride
    sd["big_2d"] = big[4:94].view(9, 10)[::2, ::3]
    sd["tied_a"] = sd["tied_b"] = torch.randn(4, 4, generator=g)  # one tensor twice
    sd["expanded"] = torch.arange(3.0).view(3, 1).expand(3, 4)  # stride 0
    sd["expanded_scalar"] = torch.tensor(2.5).expand(2, 3)
    sd["empty"] = torch.zeros(0, 3)
    sd["empty_1d"] = torch.empty(0)
    sd["empty_4d"] = torch.zeros(2, 0, 3, 3)
    sd["channels_last"] = torch.randn(4, 3, 2, 2, generator=g).contiguous(memory_format=torch.channels_last)
    sd["permuted"] = torch.randn(2, 3, 4, generator=g).permute(2, 0, 1)
    sd["f16_view"] = torch.randn(8, 6, generator=g).half()[2:, ::2].t()
    sd["bf16_view"] = torch.randn(8, 6, generator=g).bfloat16()[1::3]
    sd["f64_view"] = torch.randn(5, 5, generator=g, dtype=torch.float64).t()[1:]
    sd["i64_view"] = torch.arange(20)[3::4]
    sd["unsqueezed"] = torch.randn(3, generator=g)[None, :, None]
    return sd


def odd_key_tensors():
    g = gen(3)
    sd = collections.OrderedDict()
    sd["k" * 300] = torch.randn(2, generator=g)  # BINUNICODE rather than SHORT_BINUNICODE
    sd["conv.wëight.ß"] = torch.randn(2, generator=g)  # non-ASCII
    sd[""] = torch.randn(1, generator=g)
    for i in range(300):  # memo indices past 255 (LONG_BINPUT/LONG_BINGET)
        sd[f"many.{i}.weight"] = torch.full((2,), float(i))
    return sd


def param_tensors():
    """Parameters and tensors with Python attributes (other rebuild records)."""
    g = gen(4)
    sd = collections.OrderedDict()
    sd["param"] = torch.nn.Parameter(torch.randn(3, 2, generator=g))
    sd["param_nograd"] = torch.nn.Parameter(torch.randn(2, generator=g), requires_grad=False)
    t = torch.randn(4, generator=g)
    t.custom_attr = "hello"  # saved with _rebuild_from_type_v2
    sd["with_attr"] = t
    p = torch.nn.Parameter(torch.randn(2, 2, generator=g))
    p.extra = 3  # _rebuild_parameter_with_state
    sd["param_with_state"] = p
    sd["requires_grad"] = torch.randn(3, generator=g).requires_grad_()
    return sd


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, bias=False),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 5),
    )


def trained_tiny():
    m = tiny_model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    adam = torch.optim.Adam(m.parameters(), lr=1e-3)
    for o in (opt, adam):
        loss = m(torch.randn(2, 3, 6, 6)).square().mean()
        loss.backward()
        o.step()
    sched = torch.optim.lr_scheduler.StepLR(opt, 3)
    return m, opt, adam, sched


# ------------------------------------------------------------------------------------------------
# writers

def torch_save(obj, **kw):
    def write(path):
        torch.save(obj, path, **kw)
    return write


def st_write_by_hand(sd, metadata=None, pad=True):
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
             torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
             torch.bool: "BOOL"}

    def write(path):
        header = {}
        if metadata is not None:
            header["__metadata__"] = metadata
        blobs, off = [], 0
        for k, t in sd.items():
            t = t.detach().contiguous()
            raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
            header[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
            blobs.append(raw)
            off += len(raw)
        text = json.dumps(header).encode()
        if pad:
            text += b" " * ((8 - len(text) % 8) % 8)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return write


def st_write_lib(sd, metadata=None):
    def write(path):
        from safetensors.torch import save_file
        save_file({k: v.detach().contiguous() for k, v in sd.items()}, path, metadata=metadata)
    return write


def rezip(src_writer, rename=None, drop=(), extra=None):
    """Write with torch, then rewrite the archive (renamed entries, dropped ones, extra ones)."""
    def write(path):
        buf = path + ".tmp"
        src_writer(buf)
        with zipfile.ZipFile(buf) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
            for info in zin.infolist():
                name = info.filename
                if any(name.endswith(d) for d in drop):
                    continue
                data = zin.read(name)
                if rename:
                    name = rename(name)
                zout.writestr(name, data)
            for n, d in (extra or {}).items():
                zout.writestr(n, d)
        os.remove(buf)
    return write


def patch_pickle(src_writer, old, new):
    """Replace bytes inside the zip's data.pkl (e.g. the storage location string)."""
    def write(path):
        buf = path + ".tmp"
        src_writer(buf)
        with zipfile.ZipFile(buf) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
            for info in zin.infolist():
                data = zin.read(info.filename)
                if info.filename.endswith("data.pkl"):
                    assert old in data, (old, data[:200])
                    data = data.replace(old, new)
                zout.writestr(info, data)
        os.remove(buf)
    return write


# ------------------------------------------------------------------------------------------------
# expectations

def strip_prefixes(sd):
    changed = True
    while changed and sd:
        changed = False
        for p in ("module.", "_orig_mod."):
            if all(k.startswith(p) for k in sd):
                sd = collections.OrderedDict((k[len(p):], v) for k, v in sd.items())
                changed = True
    return sd


def tensors_only(d):
    return collections.OrderedDict((k, v) for k, v in d.items() if isinstance(k, str) and isinstance(v, torch.Tensor))


def summary(t):
    f = t.detach().to(torch.float32).contiguous()
    raw = f.reshape(-1).numpy().tobytes()
    return {
        "shape": list(f.shape),
        "dtype": str(t.dtype).replace("torch.", ""),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "head": [x & 0xFFFFFFFF for x in f.reshape(-1)[:8].view(torch.int32).tolist()],
    }


class Variant:
    def __init__(self, name, write, expect=None, error=None, ext=".pth", cli=None):
        """expect: loaded object -> the state dict fp8q must read (before prefix removal);
        error: substrings the error must contain (the file must be refused)."""
        self.name, self.write, self.expect, self.error, self.ext, self.cli = name, write, expect, error, ext, cli


def root(o):
    return o


def key(*ks):
    def f(o):
        for k in ks:
            o = o[k]
        return o
    return f


def load_torch(path):
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=False)


def load_safetensors_by_hand(path):
    """Read a safetensors file with torch only (no safetensors package needed)."""
    dt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = collections.OrderedDict()
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        raw = bytearray(data[8 + n + a:8 + n + b])
        t = torch.frombuffer(raw, dtype=dt[v["dtype"]]) if raw else torch.empty(0, dtype=dt[v["dtype"]])
        out[k] = t.reshape(v["shape"]).clone()
    return out


# ------------------------------------------------------------------------------------------------
# the variants

def variants(args):
    v = []
    D, V, K, P = dtype_tensors(), view_tensors(), odd_key_tensors(), param_tensors()
    legacy = dict(_use_new_zipfile_serialization=False)

    # containers x pickle protocols
    for fmt, kw in (("zip", {}), ("legacy", legacy)):
        for proto in (1, 2, 3, 4, 5):
            for nm, sd in (("dtypes", D), ("views", V)):
                v.append(Variant(f"{nm}_{fmt}_p{proto}", torch_save(sd, pickle_protocol=proto, **kw), root))
        v.append(Variant(f"oddkeys_{fmt}", torch_save(K, **kw), root))
        v.append(Variant(f"params_{fmt}", torch_save(P, **kw), root))
        v.append(Variant(f"plain_dict_{fmt}", torch_save(dict(D), **kw), root))
    v.append(Variant("dtypes_zip_p0", torch_save(D, pickle_protocol=0), root))
    # zip archive details
    zipped = torch_save(V)
    v.append(Variant("zip_no_byteorder", torch_save(V, _disable_byteorder_record=True), root))
    v.append(Variant("zip_archive_renamed", rezip(zipped, rename=lambda n: "my model ü/" + n.split("/", 1)[1]), root))
    v.append(Variant("zip_no_top_dir", rezip(zipped, rename=lambda n: n.split("/", 1)[1]), root))
    v.append(Variant("zip_extra_entries", rezip(zipped, extra={"archive/extra/data.pkl": b"junk", "README": b"x"}), root))
    v.append(Variant("zip_cuda_location", patch_pickle(torch_save(V, pickle_protocol=2),
                                                       b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"), root))
    v.append(Variant("zip_bytesio", lambda p: open(p, "wb").write(_bytesio_save(V)), root))
    v.append(Variant("legacy_cuda_location", _legacy_relocated(V), root))
    v.append(Variant("zip_nonseekable", lambda p: open(p, "wb").write(_unseekable_save(V)), root))  # data descriptors
    v.append(Variant("tar_archive", _tarred(torch_save(V)), error=["tar archive"]))
    v.append(Variant("gzipped", _gzipped(torch_save(V)), error=["gzip"]))
    v.append(Variant("plain_pickle", lambda p: pickle.dump(dict(V), open(p, "wb")), error=["not one written by torch.save"]))
    v.append(Variant("numpy_npz", lambda p: __import__("numpy").savez(open(p, "wb"), a=V["base"].numpy()),
                     error=["not a PyTorch zip checkpoint", "without a <name>/data.pkl"]))

    # training checkpoints
    m, opt, adam, sched = trained_tiny()
    sd = m.state_dict()
    dp = collections.OrderedDict(("module." + k, t) for k, t in sd.items())
    compiled = collections.OrderedDict(("_orig_mod." + k, t) for k, t in sd.items())
    dp_compiled = collections.OrderedDict(("module._orig_mod." + k, t) for k, t in sd.items())
    compiled_dp = collections.OrderedDict(("_orig_mod.module." + k, t) for k, t in sd.items())
    ns = argparse.Namespace(arch="tiny", lr=0.1, data="/imagenet")
    extras = {
        "epoch": 90, "arch": "resnet18", "best_acc1": torch.tensor(71.25), "optimizer": opt.state_dict(),
        "adam": adam.state_dict(), "lr_scheduler": sched.state_dict(), "args": ns, "nothing": None,
        "flags": (True, False), "big": 2**100, "neg": -(2**70), "nested": {"a": [1, (2.5, "x"), {"b": None}], "c": {3, 4}},
        "bytes": b"\x00\xff", "frozen": frozenset({1}), "complex": 1 + 2j, "ratio": float("nan"),
        "tensor_list": [torch.ones(2), torch.zeros(3)], "path": __import__("pathlib").PurePosixPath("/x/y"),
    }
    for fmt, kw in (("zip", {}), ("legacy", legacy)):
        for wrap in ("state_dict", "model", "model_state_dict", "net", "module", "model_state", "network",
                     "weights", "params"):
            v.append(Variant(f"wrap_{wrap}_{fmt}", torch_save({**extras, wrap: dp}, **kw), key(wrap)))
        v.append(Variant(f"imagenet_example_{fmt}", torch_save(
            {"epoch": 4, "arch": "tiny", "state_dict": dp, "best_acc1": torch.tensor(71.25),
             "optimizer": opt.state_dict()}, **kw), key("state_dict")))
        v.append(Variant(f"torchvision_reference_{fmt}", torch_save(
            {"model": sd, "optimizer": opt.state_dict(), "lr_scheduler": sched.state_dict(), "epoch": 3,
             "args": ns, "model_ema": {"n_averaged": torch.tensor(5), **dp}}, **kw), key("model")))
        v.append(Variant(f"tutorial_{fmt}", torch_save(
            {"epoch": 5, "model_state_dict": sd, "optimizer_state_dict": opt.state_dict(), "loss": torch.tensor(0.25)},
            **kw), key("model_state_dict")))
        v.append(Variant(f"compiled_{fmt}", torch_save({"model": compiled, "epoch": 1}, **kw), key("model")))
        v.append(Variant(f"dp_compiled_{fmt}", torch_save(dp_compiled, **kw), root))
        v.append(Variant(f"compiled_dp_{fmt}", torch_save(compiled_dp, **kw), root))
        v.append(Variant(f"nested_wrap_{fmt}", torch_save({"checkpoint": 1, "model": {"state_dict": dp, "ema": 0}}, **kw),
                         key("model", "state_dict")))
        v.append(Variant(f"plain_dict_sd_{fmt}", torch_save(dict(sd), **kw), root))
        v.append(Variant(f"metadata_sd_{fmt}", torch_save(sd, **kw), root))
        # a state dict with non-tensor entries mixed in (e.g. _extra_state, hyper-parameters)
        mixed = collections.OrderedDict(sd)
        mixed["_extra_state"] = {"x": 1}
        mixed["hparam"] = 0.5
        mixed[7] = torch.ones(1)  # a non-string key: ignored
        v.append(Variant(f"mixed_sd_{fmt}", torch_save(mixed, **kw), root))
        # whole modules: refused with a hint
        v.append(Variant(f"whole_module_{fmt}", torch_save(m, **kw), error=["state_dict()"]))
        v.append(Variant(f"whole_module_in_wrapper_{fmt}", torch_save({"model": m, "epoch": 3}, **kw),
                         error=["state_dict()"]))
        v.append(Variant(f"only_scalars_{fmt}", torch_save({"epoch": 3, "arch": "x"}, **kw), error=["no state dict"]))
        v.append(Variant(f"list_of_tensors_{fmt}", torch_save([torch.ones(2)], **kw), error=["no state dict"]))
    # dtypes fp8q does not read: ignored where they are not in the state dict, named when they are
    exotic = {"f8": torch.zeros(3, dtype=torch.float8_e4m3fn), "f8b": torch.ones(2, dtype=torch.float8_e5m2),
              "u16": torch.tensor([0, 7, 65535], dtype=torch.int32).to(torch.uint16), "u32": torch.ones(2).to(torch.uint32),
              "c64": torch.zeros(2, dtype=torch.complex64), "c128": torch.ones(1, dtype=torch.complex128),
              "q": torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.qint8)}
    for fmt, kw in (("zip", {}), ("legacy", legacy)):
        v.append(Variant(f"exotic_outside_sd_{fmt}", torch_save({"state_dict": sd, "optimizer": exotic, **exotic}, **kw),
                         key("state_dict")))
        for name in ("f8", "u16", "c64"):
            bad = collections.OrderedDict(sd)
            bad["odd." + name] = exotic[name]
            v.append(Variant(f"exotic_{name}_in_sd_{fmt}", torch_save(bad, **kw), error=["odd." + name]))
        qsd = collections.OrderedDict(sd)
        qsd["quantized"] = exotic["q"]
        v.append(Variant(f"quantized_in_sd_{fmt}", torch_save(qsd, **kw), error=["quantized"]))
    v.append(Variant("torchscript", lambda p: torch.jit.save(torch.jit.script(tiny_model()), p),
                     error=["TorchScript"]))

    # safetensors
    st_sd = collections.OrderedDict((k, t) for k, t in D.items())
    st_views = collections.OrderedDict((k, t) for k, t in V.items() if k not in ("tied_b",))
    v.append(Variant("st_hand_dtypes", st_write_by_hand(st_sd, {"format": "pt"}), root, ext=".safetensors"))
    v.append(Variant("st_hand_views", st_write_by_hand(st_views), root, ext=".safetensors"))
    v.append(Variant("st_hand_unpadded", st_write_by_hand(st_sd, None, pad=False), root, ext=".safetensors"))
    try:
        import safetensors  # noqa: F401
        v.append(Variant("st_lib_dtypes", st_write_lib(st_sd, {"format": "pt", "note": "x"}), root, ext=".safetensors"))
        v.append(Variant("st_lib_views", st_write_lib(st_views), root, ext=".safetensors"))
        v.append(Variant("st_lib_oddkeys", st_write_lib(K), root, ext=".safetensors"))
        v.append(Variant("st_lib_model", st_write_lib(sd), root, ext=".safetensors"))
    except ImportError:
        print("(safetensors package not found: library-written safetensors skipped)")

    # real networks (torchvision layout), values and the model path
    torch.manual_seed(0)
    nets = [("resnet18", torchvision.models.resnet18(num_classes=10)),
            ("mobilenet_v2", torchvision.models.mobilenet_v2(num_classes=10))]
    if args.big:
        nets.append(("resnet50", torchvision.models.resnet50(num_classes=10)))
    for arch, net in nets:
        nsd = net.state_dict()
        v.append(Variant(f"{arch}_zip", torch_save(nsd), root, cli=(arch, None)))
        v.append(Variant(f"{arch}_legacy_wrapped", torch_save(
            {"epoch": 1, "arch": arch, "state_dict": collections.OrderedDict(("module." + k, t) for k, t in nsd.items()),
             "best_acc1": torch.tensor(1.0)}, _use_new_zipfile_serialization=False), key("state_dict"),
            cli=(arch, None)))
        if arch != "resnet50":
            v.append(Variant(f"{arch}_legacy_p2_half", torch_save(
                collections.OrderedDict((k, t.half() if t.is_floating_point() else t) for k, t in nsd.items()),
                _use_new_zipfile_serialization=False, pickle_protocol=2), root, cli=(arch, None)))
            v.append(Variant(f"{arch}_st", st_write_by_hand(nsd, {"format": "pt"}), root, ext=".safetensors",
                             cli=(arch, None)))
            v.append(Variant(f"{arch}_compiled", torch_save(
                {"model": collections.OrderedDict(("_orig_mod." + k, t) for k, t in nsd.items())}), key("model"),
                cli=(arch, None)))
            # PyTorch Lightning: the LightningModule's attribute name before every key
            v.append(Variant(f"{arch}_lightning", torch_save(
                {"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0",
                 "state_dict": collections.OrderedDict(("model." + k, t) for k, t in nsd.items()),
                 "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}],
                 "lr_schedulers": [], "hyper_parameters": {"lr": 0.1, "arch": arch}}), key("state_dict"),
                cli=(arch, None)))
            deep = "features.5.conv.1.0.weight" if arch == "mobilenet_v2" else "layer2.1.conv2.weight"
            bad_deep = collections.OrderedDict((k + "_x" if k == deep else k, t) for k, t in nsd.items())
            v.append(Variant(f"{arch}_bad_deep_key", torch_save(bad_deep), root, cli=(arch, [deep, deep + "_x"])))
            first = next(k for k in nsd if k.endswith("weight") and nsd[k].dim() == 4)
            # a stride-0 first conv declaring 100 000 channels: the next layers must not be allocated
            wide = collections.OrderedDict(nsd)
            wide[first] = torch.zeros(1).expand(100000, *nsd[first].shape[1:])
            v.append(Variant(f"{arch}_absurd_width", torch_save(wide), root, cli=(arch, ["does not fit", "100000"])))
            bad_shape = collections.OrderedDict(nsd)
            bad_shape[first] = nsd[first][:, :, :1, :1].clone()
            v.append(Variant(f"{arch}_bad_shape", torch_save(bad_shape), root, cli=(arch, [first, "expected"])))
            renamed = collections.OrderedDict((k + "_x" if k == first else k, t) for k, t in nsd.items())
            v.append(Variant(f"{arch}_bad_key", torch_save(renamed), root, cli=(arch, [first, first + "_x"])))
    return v


def _bytesio_save(obj):
    b = io.BytesIO()
    torch.save(obj, b)
    return b.getvalue()


def _unseekable_save(obj):
    class Sink:
        def __init__(self):
            self.b = bytearray()

        def write(self, d):
            self.b += d
            return len(d)

        def flush(self):
            pass
    s = Sink()
    torch.save(obj, s)
    return bytes(s.b)


def _tarred(writer):
    def write(path):
        import tarfile
        writer(path + ".inner")
        with tarfile.open(path, "w") as t:
            t.add(path + ".inner", arcname="model.pth")
        os.remove(path + ".inner")
    return write


def _gzipped(writer):
    def write(path):
        import gzip
        writer(path + ".inner")
        with open(path + ".inner", "rb") as f, gzip.open(path, "wb") as g:
            g.write(f.read())
        os.remove(path + ".inner")
    return write


def _legacy_relocated(sd):
    """A legacy stream whose storages claim to live on 'cuda:0' (as GPU-saved files do)."""
    def write(path):
        b = io.BytesIO()
        torch.save(sd, b, _use_new_zipfile_serialization=False, pickle_protocol=2)
        data = b.getvalue().replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
        open(path, "wb").write(data)
    return write


# ------------------------------------------------------------------------------------------------

def run_dump(dump, paths):
    out = {}
    for i in range(0, len(paths), 50):
        r = subprocess.run([dump] + paths[i:i + 50], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"dump_checkpoint exited {r.returncode}: {r.stderr[-2000:]}")
        for line in r.stdout.splitlines():
            d = json.loads(line)
            out[d["file"]] = d
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/ckpt-audit/variants")
    ap.add_argument("--dump", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"),
                                                   "release/examples/dump_checkpoint"))
    ap.add_argument("--cli", help="the fp8q binary: run the network variants through validate-quantized")
    ap.add_argument("--images", default="/work/shared/golden/ptq/images")
    ap.add_argument("-k", default="", help="only variants whose name contains this")
    ap.add_argument("--big", action="store_true", help="add ResNet-50 variants (~100 MB each)")
    ap.add_argument("--keep", action="store_true", help="keep the written files")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    results = []  # (name, status, detail)
    unreadable_by_torch = set()
    todo = []
    for var in variants(args):
        if args.k not in var.name:
            continue
        path = os.path.join(args.out, var.name + var.ext)
        try:
            var.write(path)
        except Exception as e:  # torch refuses to write it: nothing to compare
            results.append((var.name, "n/a", f"torch cannot write it: {type(e).__name__}: {str(e)[:100]}"))
            continue
        todo.append((var, path))
    got = run_dump(args.dump, [p for _, p in todo])

    for var, path in todo:
        d = got.get(path)
        if d is None:
            results.append((var.name, "BUG", "no output from dump_checkpoint (crash?)"))
            continue
        if d.get("panic"):
            results.append((var.name, "BUG", f"panic: {d['error'][:200]}"))
            continue
        if var.error is not None:
            if d["ok"]:
                results.append((var.name, "BUG", f"read {len(d['tensors'])} tensors, expected an error"))
            elif all(s in d["error"] for s in var.error):
                results.append((var.name, "ok", "refused: " + d["error"].split(": ", 1)[-1][:150]))
            else:
                results.append((var.name, "BUG", f"error lacks {var.error}: {d['error'][:300]}"))
            continue
        if var.ext == ".safetensors":
            try:
                loaded = load_torch(path)
            except ImportError:
                loaded = load_safetensors_by_hand(path)
        else:
            try:
                loaded = load_torch(path)
            except Exception as e:
                how = f"fp8q reads {len(d['tensors'])} tensors" if d["ok"] else "fp8q refuses it too"
                results.append((var.name, "n/a", f"torch cannot read it ({str(e)[:60]}); {how}"))
                unreadable_by_torch.add(var.name)
                continue
        want = strip_prefixes(tensors_only(var.expect(loaded)))
        want = {k: summary(t) for k, t in want.items() if t.dtype in SUPPORTED}
        if not d["ok"]:
            results.append((var.name, "BUG", f"refused: {d['error'][:300]}"))
            continue
        have = d["tensors"]
        problems = []
        if sorted(have) != sorted(want):
            problems.append(f"keys: missing {sorted(set(want) - set(have))[:5]}, extra {sorted(set(have) - set(want))[:5]}")
        for k in sorted(set(have) & set(want)):
            for f in ("shape", "dtype", "sha256"):
                if have[k][f] != want[k][f]:
                    extra = f" head fp8q {have[k]['head']} torch {want[k]['head']}" if f == "sha256" else ""
                    problems.append(f"{k[:40]}: {f} fp8q {have[k][f]} torch {want[k][f]}{extra}")
        if problems:
            results.append((var.name, "BUG", "; ".join(problems[:4])))
        else:
            n = sum(math.prod(w["shape"]) for w in want.values())
            results.append((var.name, "ok", f"{len(want)} tensors, {n} values identical"))

    if args.cli:
        # every file through `fp8q analyze` (weights mode): exit 0 or 2, never a crash
        for var, path in todo:
            r = subprocess.run([args.cli, "analyze", path, "--json"], capture_output=True, text=True)
            crashed = r.returncode not in (0, 2) or "panicked" in r.stderr
            refused = r.returncode == 2
            expected_refusal = var.error is not None
            ok = not crashed and (refused == expected_refusal or (refused and "no float tensor" in r.stderr))
            detail = f"exit {r.returncode}" + (f": {r.stderr.strip()[-200:]}" if r.returncode else "")
            if var.name in unreadable_by_torch:
                ok = not crashed
            results.append((var.name + " [analyze]", "ok" if ok else "BUG", detail))
        for var, path in todo:
            if var.cli is None:
                continue
            arch, needles = var.cli
            cmd = [args.cli, "validate-quantized", "--architecture", arch, "--model-dir", path, "--images-dir",
                   args.images, "--no-weight-quant", "--no-act-quant", "--no-reestimate-bn-stats",
                   "--max-val-images", "2", "--batch-size", "2"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            name = var.name + " [validate-quantized]"
            msg = (r.stderr.strip().splitlines() or [""])
            if needles is None:
                ok = r.returncode == 0
                results.append((name, "ok" if ok else "BUG", "exit 0" if ok else f"exit {r.returncode}: {r.stderr[-300:]}"))
            else:
                ok = r.returncode == 2 and all(s in r.stderr for s in needles)
                results.append((name, "ok" if ok else "BUG",
                                f"exit {r.returncode}: " + " ".join(m.strip() for m in msg)[:250]))

    width = max((len(n) for n, _, _ in results), default=1)
    for n, s, d in results:
        print(f"{n:<{width}}  {s:<4}  {d}")
    bugs = [n for n, s, _ in results if s == "BUG"]
    print(f"\n{len(results)} checks, {len(bugs)} disagree" + (f": {', '.join(bugs)}" if bugs else ""))
    if not args.keep:
        shutil.rmtree(args.out, ignore_errors=True)
    sys.exit(1 if bugs else 0)


if __name__ == "__main__":
    main()
