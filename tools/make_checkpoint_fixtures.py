#!/usr/bin/env python3
"""Write the small checkpoint fixtures of crates/fp8q-tensors/tests/data/checkpoints/.

Every file is written by PyTorch (or, for the hand-built ones, read back by PyTorch), and the
expected tensors in `expected.json` come from `torch.load` of each file, so the expectations are
never produced by fp8q's own readers.

    python3 tools/make_checkpoint_fixtures.py

Files:
  tensors_zip.pth          bare OrderedDict state dict, zip format (torch.save default), pickle protocol 2
  tensors_zip_p5.pth       the same, pickle protocol 5
  tensors_legacy.pth       the same, legacy (pre-1.6) stream: _use_new_zipfile_serialization=False
  tensors_legacy_p4.pth    legacy stream with pickle protocol 4 (FRAME, MEMOIZE, SHORT_BINUNICODE, ...)
  tensors.safetensors      the contiguous tensors as safetensors (written by hand: the format is a
                           length, a JSON header and the raw bytes)
  views_legacy_crafted.pth a legacy stream built with Python's pickle: storage *views*
                           (view_metadata in the persistent id, as torch < 1.0 wrote them), the
                           pre-0.4 `_rebuild_tensor`, and a Python-2 style OrderedDict reduce
                           (a list of [key, value] pairs); read back with torch.load
  train_imagenet_zip.pth.tar / train_imagenet_legacy.pth.tar
                           the PyTorch ImageNet example's checkpoint: {'epoch', 'arch',
                           'state_dict' (DataParallel: 'module.' prefixes), 'best_acc1' (a tensor),
                           'optimizer' (SGD state with momentum buffers)}
  model_key_legacy.pth     {'model': state_dict, 'epoch': 7, 'note': 'text'} in the legacy format
  tensors_legacy_p1.pth    legacy stream with pickle protocol 1 (the magic number is a text LONG)
  compiled_zip.pth         {'model': state dict of torch.compile(DataParallel(model)), 'epoch': 2}:
                           keys start with '_orig_mod.module.'
Files that must be refused (not in expected.json; the tests check their messages):
  whole_module_legacy.pth  torch.save(model) of a whole nn.Linear, legacy format (the class is a
                           persistent 'module' record with its source code)
  whole_module_wrapped_zip.pth  {'model': nn.Linear, 'epoch': 3}
  quantized_zip.pth        a state dict holding a quantized tensor 'q'
  torchscript.pt           torch.jit.save of a scripted nn.Linear

The tensors cover f32, f16 (with subnormals and infinities), bf16, f64, int64 (a 0-d
`num_batches_tracked` and a value that rounds when cast to f32), int32, int16, int8, uint8, bool,
and views sharing one storage: a transpose, an offset slice with strides, a row, a stride-0
expansion, an empty tensor; and f16 NaNs with signs and payloads (32 of them: torch's `.float()`
converts runs of 8 or 16 with F16C, which keeps sign and payload and quiets signalling NaNs as
IEEE 754 asks, while its scalar loop for a tail would give 0x7fffffff).

tools/checkpoint_diff.py compares many more variants against torch (a dev-time audit).
"""

import collections
import io
import json
import os
import pickle
import struct

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "fp8q-tensors", "tests", "data", "checkpoints")


def tensors():
    g = torch.Generator().manual_seed(8)
    base = torch.randn(3, 4, generator=g)
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.randn(4, 2, 3, 3, generator=g)
    sd["bn.running_mean"] = torch.randn(4, generator=g)
    sd["bn.num_batches_tracked"] = torch.tensor(123456, dtype=torch.int64)
    sd["half"] = torch.tensor([1.0, -2.5, 6.1e-5, 5.96e-8, 65504.0, float("inf"), -float("inf"), 0.0], dtype=torch.float16)
    sd["bf16"] = (torch.randn(2, 3, generator=g) * 1000).to(torch.bfloat16)
    sd["f64"] = torch.tensor([1.0 / 3.0, -1e-300, 1e300, 2.5], dtype=torch.float64)
    sd["i64"] = torch.tensor([-(2**40) - 1, 2**24 + 1, 7], dtype=torch.int64)
    sd["i32"] = torch.tensor([[-5, 0], [2**31 - 1, -(2**31)]], dtype=torch.int32)
    sd["i16"] = torch.tensor([-32768, 32767, 3], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 127, -1], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    sd["flags"] = torch.tensor([True, False, True])
    # Views sharing the storage of `base`.
    sd["base"] = base
    sd["base_t"] = base.t()
    sd["base_slice"] = base[1:, 1:3]
    sd["base_row"] = base[2]
    sd["expanded"] = torch.arange(3.0).view(3, 1).expand(3, 4)
    sd["empty"] = torch.zeros(0, 3)
    sd["scalar"] = torch.tensor(-0.75)
    nans = [0x7E00, 0xFE00, 0x7C01, 0xFD55, 0x7FFF, 0xFC01, 0x3C00, 0x8000]
    sd["half_nan"] = torch.tensor(nans * 4, dtype=torch.int32).to(torch.int16).view(torch.float16)
    return sd


def expected_of(obj):
    """key -> {shape, bits (f32 bit patterns, torch's own conversion)} for every tensor in obj."""
    out = {}
    for k, t in obj.items():
        if not isinstance(t, torch.Tensor):
            continue
        f = t.to(torch.float32).contiguous()
        out[k] = {
            "shape": list(f.shape),
            "bits": [int(b) & 0xFFFFFFFF for b in f.view(torch.int32).reshape(-1).tolist()],
        }
    return out


ST_DTYPE = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def write_safetensors(path, sd):
    header = {"__metadata__": {"format": "pt", "made_by": "tools/make_checkpoint_fixtures.py"}}
    blobs = []
    offset = 0
    for k, t in sd.items():
        t = t.contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[k] = {"dtype": ST_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


# ---- a legacy stream built by hand with Python's pickle (storage views, old rebuild function) ----

class FakeStorage:
    """Pickled through persistent_id as the given tuple."""

    def __init__(self, pid):
        self.pid = pid


class FakeTensor:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


class Py2OrderedDict:
    """Reduces like Python 2.7's OrderedDict: OrderedDict([[k, v], ...])."""

    def __init__(self, items):
        self.items = items

    def __reduce__(self):
        return (collections.OrderedDict, ([[k, v] for k, v in self.items],))


class StoragePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return obj.pid
        return None


def write_crafted_legacy(path):
    root = torch.arange(10, dtype=torch.float32) * 1.5 - 4.0
    halfs = torch.tensor([0.5, -1.0, 3.0, 1024.0, -0.25, 7.0], dtype=torch.float16)
    hooks = collections.OrderedDict()
    # Storage 'r' (10 floats); view 'v1' = elements 2..8 of it; view 'v2' = elements 5..10.
    s_v1 = FakeStorage(("storage", torch.FloatStorage, "r", "cpu", 10, ("v1", 2, 6)))
    s_v2 = FakeStorage(("storage", torch.FloatStorage, "r", "cpu", 10, ("v2", 5, 5)))
    s_root = FakeStorage(("storage", torch.FloatStorage, "r", "cpu", 10, None))
    s_half = FakeStorage(("storage", torch.HalfStorage, "h", "cuda:0", 6, None))
    items = [
        ("view_strided", FakeTensor(torch._utils._rebuild_tensor_v2, (s_v1, 1, (2, 2), (1, 2), False, hooks))),
        ("view_tail", FakeTensor(torch._utils._rebuild_tensor_v2, (s_v2, 0, (5,), (1,), False, hooks))),
        ("whole", FakeTensor(torch._utils._rebuild_tensor_v2, (s_root, 0, (2, 5), (5, 1), False, hooks))),
        ("old_rebuild", FakeTensor(torch._utils._rebuild_tensor, (s_root, 3, (3,), (2,)))),
        ("half_cuda", FakeTensor(torch._utils._rebuild_tensor_v2, (s_half, 0, (2, 3), (3, 1), False, hooks))),
    ]
    f = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
    pickle.dump(1001, f, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 8}}, f, protocol=2)
    StoragePickler(f, protocol=2).dump(Py2OrderedDict(items))
    pickle.dump(["h", "r"], f, protocol=2)
    for t in (halfs, root):
        f.write(struct.pack("<q", t.numel()))
        f.write(t.view(torch.uint8).numpy().tobytes())
    with open(path, "wb") as out:
        out.write(f.getvalue())


def training_checkpoint():
    torch.manual_seed(3)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, bias=False),
        torch.nn.BatchNorm2d(3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(12, 4),
    )
    dp = torch.nn.DataParallel(model)  # no GPU: a plain wrapper, but the keys get 'module.'
    opt = torch.optim.SGD(dp.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss = dp(torch.randn(5, 2, 4, 4)).square().mean()
    loss.backward()
    opt.step()
    sd = dp.state_dict()
    assert all(k.startswith("module.") for k in sd)
    ckpt = {
        "epoch": 4,
        "arch": "tiny",
        "state_dict": sd,
        "best_acc1": torch.tensor(71.25),
        "optimizer": opt.state_dict(),
    }
    expected = expected_of(collections.OrderedDict((k[len("module."):], v) for k, v in sd.items()))
    return ckpt, expected


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {}
    sd = tensors()

    def save(name, obj, **kw):
        torch.save(obj, os.path.join(OUT, name), **kw)

    save("tensors_zip.pth", sd)
    save("tensors_zip_p5.pth", sd, pickle_protocol=5)
    save("tensors_legacy.pth", sd, _use_new_zipfile_serialization=False)
    save("tensors_legacy_p4.pth", sd, _use_new_zipfile_serialization=False, pickle_protocol=4)
    write_safetensors(os.path.join(OUT, "tensors.safetensors"), sd)
    write_crafted_legacy(os.path.join(OUT, "views_legacy_crafted.pth"))
    ckpt, train_expected = training_checkpoint()
    save("train_imagenet_zip.pth.tar", ckpt)
    save("train_imagenet_legacy.pth.tar", ckpt, _use_new_zipfile_serialization=False)
    save("model_key_legacy.pth", {"model": ckpt["state_dict"], "epoch": 7, "note": "text"}, _use_new_zipfile_serialization=False)
    save("tensors_legacy_p1.pth", sd, _use_new_zipfile_serialization=False, pickle_protocol=1)
    compiled = collections.OrderedDict(("_orig_mod." + k, v) for k, v in ckpt["state_dict"].items())
    save("compiled_zip.pth", {"model": compiled, "epoch": 2})

    torch.manual_seed(5)
    linear = torch.nn.Linear(2, 2)
    save("whole_module_legacy.pth", linear, _use_new_zipfile_serialization=False)
    save("whole_module_wrapped_zip.pth", {"model": linear, "epoch": 3})
    save("quantized_zip.pth", {"w": torch.ones(2), "q": torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.qint8)})
    torch.jit.save(torch.jit.script(linear), os.path.join(OUT, "torchscript.pt"))
    refused = {"whole_module_legacy.pth", "whole_module_wrapped_zip.pth", "quantized_zip.pth", "torchscript.pt"}

    # Expectations: what torch.load gives back for each file.
    for name in sorted(os.listdir(OUT)):
        path = os.path.join(OUT, name)
        if name.endswith(".json") or name in refused:
            continue
        if name.endswith(".safetensors"):
            exp = expected_of(sd)
        elif name.startswith(("train_imagenet", "model_key", "compiled")):
            loaded = torch.load(path, weights_only=False, map_location="cpu")
            inner = loaded["state_dict"] if "state_dict" in loaded else loaded["model"]
            prefix = "_orig_mod.module." if name.startswith("compiled") else "module."
            assert all(k.startswith(prefix) for k in inner)
            exp = expected_of(collections.OrderedDict((k[len(prefix):], v) for k, v in inner.items()))
            assert exp == train_expected, name
        else:
            exp = expected_of(torch.load(path, weights_only=False, map_location="cpu"))
        expected[name] = exp
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=0, sort_keys=True)
        f.write("\n")
    for name in sorted(os.listdir(OUT)):
        print(f"{os.path.getsize(os.path.join(OUT, name)):8d}  {name}")


if __name__ == "__main__":
    main()
