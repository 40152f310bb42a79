#!/usr/bin/env python3
"""Reference fixtures for `fp8q export --layout compressed-tensors`, made by
compressed-tensors' own code (not by fp8q).

For every weight-only scheme this builds a tiny torch model with three Linear
layers (`layers.0.proj` [8, 64] f32, `layers.1.proj` [5, 96] f32 with an
all-zero row and outliers, `layers.2.proj` [4, 64] bf16), and runs the same
path llm-compressor runs when it saves a quantized model:

  1. `apply_quantization_config` (compressed-tensors) attaches the scheme and
     creates `weight_scale` / `weight_zero_point` / `weight_global_scale`
     parameters with compressed-tensors' shapes and dtypes;
  2. calibration = llm-compressor's MinMaxObserver for weights (averaging
     constant irrelevant for a single observation): min/max of the weight
     reduced over the tensor / each row / each group, then compressed-tensors'
     `calculate_qparams` (and `generate_gparam` for NVFP4's global scale).
     The min/max reduction is the only part written here; llm-compressor is
     not installed and its observer is a thin wrapper around those calls;
  3. `ModelCompressor.from_pretrained_model(model)` + `compress_model(model)`
     (compressed-tensors' compressors), `ModelCompressor.update_config(dir)`
     writes config.json exactly as llm-compressor's save_pretrained does;
  4. each module's compressed state dict is decompressed with the same
     compressor's `decompress` classmethod -> `deq.<module>.weight` (f32).

Usage (with torch, compressed-tensors and torchao installed):
  tools/make_export_fixtures.py            # (re)generate fixtures + verify
  tools/make_export_fixtures.py --verify   # only verify existing fixtures
  tools/make_export_fixtures.py --compare  # measure differences vs torchao /
                                           # plain torch references (prints JSON)
"""

import argparse
import copy
import json
import os
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TQDM_DISABLE", "1")

import logging  # noqa: E402

logging.disable(logging.WARNING)

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import compressed_tensors  # noqa: E402
from compressed_tensors.compressors import BaseCompressor  # noqa: E402
from compressed_tensors.compressors.model_compressors.model_compressor import (  # noqa: E402
    ModelCompressor,
)
from compressed_tensors.quantization import (  # noqa: E402
    QuantizationArgs,
    QuantizationConfig,
    QuantizationScheme,
    QuantizationStatus,
    QuantizationStrategy,
    apply_quantization_config,
)
from compressed_tensors.quantization.quant_scheme import PRESET_SCHEMES  # noqa: E402
from compressed_tensors.quantization.utils import (  # noqa: E402
    calculate_qparams,
    generate_gparam,
)

try:
    from loguru import logger as _loguru

    _loguru.remove()
except Exception:  # pragma: no cover
    pass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(
    REPO, "crates", "fp8q-export", "tests", "data", "compressed_tensors"
)

MODULES = [
    # name, shape, dtype
    ("layers.0.proj", (8, 64), torch.float32),
    ("layers.1.proj", (5, 96), torch.float32),
    ("layers.2.proj", (4, 64), torch.bfloat16),
]


def fp_args(**kw):
    return QuantizationArgs(type="float", symmetric=True, dynamic=False, **kw)


def preset_weights(name):
    return copy.deepcopy(PRESET_SCHEMES[name]["weights"])


# scheme id -> (QuantizationArgs for weights, note)
SCHEMES = {
    "fp8_e4m3_tensor": lambda: fp_args(num_bits=8, strategy="tensor"),
    "fp8_e4m3_channel": lambda: fp_args(num_bits=8, strategy="channel"),
    "mxfp8_e4m3": lambda: preset_weights("MXFP8A16"),
    "mxfp6_e2m3": lambda: preset_weights("MXFP6A16"),
    "mxfp4": lambda: preset_weights("MXFP4A16"),
    "nvfp4": lambda: preset_weights("NVFP4A16"),
    "int8_channel": lambda: QuantizationArgs(
        num_bits=8, type="int", symmetric=True, dynamic=False, strategy="channel"
    ),
}

# Human-readable facts recorded in the manifest (checked against the code by
# running it; see docs/export-layouts.md for the long form).
SCALE_RULES = {
    "fp8_e4m3_tensor": (
        "amax = max(|min(W,0)|, max(W,0)) over the whole tensor, in the weight "
        "dtype; scale = amax / (bit_range/2) with bit_range = 448-(-448) -> "
        "amax/448.0 computed in the weight dtype (f32 for f32 weights, bf16 for "
        "bf16 weights), stored in the weight dtype; scale==0 -> finfo(scale "
        "dtype).eps (f32: 2^-23, bf16: 2^-7). q = fp8_e4m3fn(clamp(W/scale, "
        "-448, 448)) (torch cast: RNE, saturation by the clamp). deq = "
        "f32(q)*scale in the scale dtype."
    ),
    "fp8_e4m3_channel": (
        "as fp8_e4m3_tensor but amax per output row (reduce dim 1); "
        "weight_scale shape (out, 1). An all-zero row gets scale = eps of the "
        "scale dtype (f32 2^-23) and q = 0."
    ),
    "mxfp8_e4m3": (
        "per group of 32 along the input dim: amax (weight dtype); "
        "p = round_to_power_2(amax, elem_mantissa=1): add 1<<(M-2) to the bit "
        "pattern (M = 23 for f32, 7 for bf16) and mask off the mantissa, i.e. "
        "amax rounds UP to the next power of two when its significand >= 1.75; "
        "e = 127 + floor(log2(p)) - 8, clamped to [0,255] and rounded to uint8; "
        "scale = 2^(e-127). q = fp8_e4m3fn(clamp(W/scale, -448, 448)). stored "
        "weight_scale = uint8 e (= 127 + floor(log2(scale))). Zero group: e=0 "
        "(scale 2^-127), q = 0. deq = bf16(q) * bf16(2^(e-127)) in bf16."
    ),
    "mxfp6_e2m3": (
        "as mxfp8 but offset 2 (floor(log2 7.5)) and round_to_power_2 with "
        "elem_mantissa=3 (amax rounds up to the next power of two only when "
        "its significand >= 1.9375); q = E2M3 RNE of clamp(W/scale, -7.5, "
        "7.5); 4 codes (sign bit 5, magnitude index 0..31) packed little-endian "
        "into 3 bytes. deq in bf16."
    ),
    "mxfp4": (
        "as mxfp8 but offset 2 (floor(log2 6)), elem_mantissa=1; q = E2M1 "
        "rounding of clamp(W/scale, -6, 6) with ties to even (0.25->0, "
        "0.75->1, 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4); nibble = "
        "sign<<3 | index, low nibble = even column. Small negatives keep the "
        "sign: -0 encodes as nibble 0x8. deq in bf16."
    ),
    "nvfp4": (
        "global: gs = f32(448*6 / max(amax_tensor, f32 tiny)); inf/nan -> 1.0; "
        "stored as weight_global_scale f32 [1]. local per group of 16: "
        "s = amax_g/6.0 in the weight dtype, then s = gs*s (f32), rounded with "
        "clamp(+-448).to(float8_e4m3fn) and cast back; s==0 -> 0.125. "
        "quantize: q = E2M1_RNE(clamp(W / (s/gs), -6, 6)) (f32 divisions: "
        "s/gs first, then W/that). deq = bf16( f32(q) * (bf16(s)/gs) ) - the "
        "decompressor works in bf16 and rounds the product to bf16."
    ),
    "int8_channel": (
        "amax per output row; scale = amax / (bit_range/2) with bit_range = "
        "127-(-128) = 255 -> amax/127.5 (NOT amax/127) in the weight dtype; "
        "scale==0 -> eps of the scale dtype. q = round_half_even(clamp(W/scale,"
        " -128, 127)) -> int8, so +amax -> 127 (127.5 clamped) but -amax -> -128 "
        "(-127.5 rounds half-to-even to -128). Stored "
        "pack-quantized: weight_packed int32 [out, ceil(in/4)], element i at "
        "bits 8*(i%4) of word i/4 as (q+128) (offset binary); weight_shape "
        "int64 [2]. deq = f32(q) * scale."
    ),
}


def make_weights(seed=1234):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i, (name, shape, dtype) in enumerate(MODULES):
        w = torch.randn(shape, generator=g, dtype=torch.float32) * (0.02 * (i + 1))
        # a few outliers
        flat = w.view(-1)
        idx = torch.randperm(flat.numel(), generator=g)[:3]
        flat[idx] = torch.tensor([0.75, -1.3, 0.4]) * (i + 1)
        if name == "layers.1.proj":
            w[2].zero_()  # an all-zero row (and so all-zero groups)
            w[4, :16] = 0.0  # one zero NVFP4 group inside a non-zero row
            w[4, 40] = -3.0e-9  # tiny value: -0 after rounding
        out[name] = w.to(dtype).contiguous()
    return out


class Proj(torch.nn.Module):
    def __init__(self, shape, dtype):
        super().__init__()
        self.proj = torch.nn.Linear(shape[1], shape[0], bias=False, dtype=dtype)


class Tiny(torch.nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.layers = torch.nn.ModuleList()
        for name, shape, dtype in MODULES:
            m = Proj(shape, dtype)
            with torch.no_grad():
                m.proj.weight.copy_(weights[name])
            self.layers.append(m)


def observe_weight(module):
    """llm-compressor MinMaxObserver for a weight (single observation):
    min/max reductions + compressed-tensors calculate_qparams/generate_gparam."""
    args = module.quantization_scheme.weights
    w = module.weight.data
    gscale = None
    if args.strategy == QuantizationStrategy.TENSOR_GROUP:
        mn, mx = torch.aminmax(w)
        gscale = generate_gparam(mn, mx)
        module.weight_global_scale.data.copy_(gscale)
        gscale = module.weight_global_scale.data
    if args.strategy == QuantizationStrategy.TENSOR:
        mn, mx = torch.aminmax(w)
    elif args.strategy == QuantizationStrategy.CHANNEL:
        mn = torch.amin(w, dim=1, keepdim=True)
        mx = torch.amax(w, dim=1, keepdim=True)
    elif args.strategy in (QuantizationStrategy.GROUP, QuantizationStrategy.TENSOR_GROUP):
        g = w.unflatten(-1, (w.shape[-1] // args.group_size, args.group_size))
        mn = torch.amin(g, dim=-1)
        mx = torch.amax(g, dim=-1)
    else:
        raise ValueError(args.strategy)
    scale, zp = calculate_qparams(mn, mx, args, global_scale=gscale)
    module.weight_scale.data.copy_(scale.reshape(module.weight_scale.shape))
    if hasattr(module, "weight_zero_point"):
        module.weight_zero_point.data.copy_(zp.reshape(module.weight_zero_point.shape))


def build(scheme_id):
    weights = make_weights()
    model = Tiny(weights)
    wargs = SCHEMES[scheme_id]()
    targets = [name for name, _, _ in MODULES]
    qconfig = QuantizationConfig(
        config_groups={"group_0": QuantizationScheme(targets=targets, weights=wargs)},
        quantization_status=QuantizationStatus.INITIALIZED,
    )
    apply_quantization_config(model, qconfig, show_progress=False)
    mods = dict(model.named_modules())
    for name in targets:
        observe_weight(mods[name])
        mods[name].quantization_status = QuantizationStatus.FROZEN

    mc = ModelCompressor.from_pretrained_model(model)
    mc.compress_model(model)
    with tempfile.TemporaryDirectory() as d:
        mc.update_config(d)
        with open(os.path.join(d, "config.json")) as f:
            qc = json.load(f)["quantization_config"]

    compressed = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    fmt = qc["format"]
    compressor = BaseCompressor.get_value_from_registry(fmt)
    scheme = QuantizationConfig.model_validate(qc).config_groups["group_0"]
    deq = {}
    for name in targets:
        sd = {k.split(name + ".", 1)[1]: v for k, v in compressed.items() if k.startswith(name + ".")}
        out = compressor.decompress(sd, scheme)
        deq[name] = out["weight"]
    return weights, compressed, qc, deq


def dtype_name(t):
    return {
        torch.float32: "F32",
        torch.bfloat16: "BF16",
        torch.float16: "F16",
        torch.float8_e4m3fn: "F8_E4M3",
        torch.float8_e5m2: "F8_E5M2",
        torch.uint8: "U8",
        torch.int8: "I8",
        torch.int32: "I32",
        torch.int64: "I64",
    }[t.dtype]


def generate(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    manifest = {
        "generator": "tools/make_export_fixtures.py",
        "versions": {
            "torch": torch.__version__,
            "compressed_tensors": compressed_tensors.__version__,
            "torchao": _torchao_version(),
        },
        "modules": {
            name: {"shape": list(shape), "dtype": dtype_name(torch.empty(0, dtype=dtype))}
            for name, shape, dtype in MODULES
        },
        "tensor_prefixes": {
            "in.": "input weight (f32 or bf16) exactly as quantized",
            "": "compressed tensors exactly as compressed-tensors' compressor writes them",
            "deq.": "compressed-tensors decompress() output, cast to f32",
        },
        "unsupported": _unsupported(),
        "schemes": {},
    }
    for sid in SCHEMES:
        weights, compressed, qc, deq = build(sid)
        tensors = {}
        for name, w in weights.items():
            tensors[f"in.{name}.weight"] = w
        tensors.update(compressed)
        for name, d in deq.items():
            tensors[f"deq.{name}.weight"] = d.to(torch.float32).contiguous()
        save_file(tensors, os.path.join(out_dir, f"{sid}.safetensors"))
        with open(os.path.join(out_dir, f"{sid}.config.json"), "w") as f:
            json.dump(qc, f, indent=2, sort_keys=True)
            f.write("\n")
        manifest["schemes"][sid] = {
            "format": qc["format"],
            "weights_args": qc["config_groups"]["group_0"]["weights"],
            "decompress_dtype": {n: dtype_name(d) for n, d in deq.items()},
            "tensors": {
                k: {"dtype": dtype_name(v), "shape": list(v.shape)}
                for k, v in sorted(compressed.items())
            },
            "scale_rule": SCALE_RULES[sid],
        }
        print(f"{sid}: format={qc['format']} tensors={len(tensors)}")
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def _torchao_version():
    try:
        import torchao

        return torchao.__version__
    except Exception:
        return None


def _unsupported():
    """Probe what compressed-tensors cannot express (recorded in the manifest)."""
    notes = {}
    a = QuantizationArgs(num_bits=8, type="float", strategy="channel")
    notes["float8_e5m2"] = (
        "QuantizationArgs has no exponent/mantissa field: num_bits=8,type=float "
        f"always means {a.pytorch_dtype()} (quant_args.pytorch_dtype); "
        "no E5M2 weight format exists in compressed-tensors "
        f"{compressed_tensors.__version__}"
    )
    notes["mxfp6_e3m2"] = (
        "num_bits=6,type=float always means E2M3 (FP6_E2M3_DATA, cast_to_fp6, "
        "pack_fp6_to_uint8); no E3M2 variant"
    )
    w = torch.randn(4, 40)
    try:
        args = preset_weights("MXFP4A16")
        scale = torch.ones(4, 2)
        from compressed_tensors.quantization.lifecycle.forward import quantize

        quantize(w, scale, None, args)
        notes["group_not_dividing_in"] = "no error"
    except Exception as e:  # noqa: BLE001
        notes["group_not_dividing_in"] = (
            "in=40, group 32: quantize raises "
            f"{type(e).__name__}: {e}; initialize_qparams only warns and sizes the "
            "scale ceil(in/group); no padding for group/tensor_group strategies"
        )
    return notes


def verify(out_dir):
    from compressed_tensors.entrypoints.convert.converters.ct_dequantizer import (
        CompressedTensorsDequantizer,
    )

    ok = True
    for sid in SCHEMES:
        path = os.path.join(out_dir, f"{sid}.safetensors")
        tensors = load_file(path)
        with open(os.path.join(out_dir, f"{sid}.config.json")) as f:
            qc = json.load(f)
        ckpt = {k: v for k, v in tensors.items() if not k.startswith(("in.", "deq."))}
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump({"quantization_config": qc}, f)
            save_file(ckpt, os.path.join(d, "model.safetensors"))
            deqr = CompressedTensorsDequantizer(d, dtype=torch.float32)
            out = deqr.process(load_file(os.path.join(d, "model.safetensors")))
        for name, _, _ in MODULES:
            got = out[f"{name}.weight"]
            want = tensors[f"deq.{name}.weight"]
            same = got.dtype == want.dtype and got.shape == want.shape and torch.equal(
                got.view(torch.int32), want.view(torch.int32)
            )
            if not same:
                ok = False
            print(f"verify {sid} {name}: {'OK' if same else 'MISMATCH'}")
        left = sorted(k for k in out if not k.endswith(".weight"))
        if left:
            ok = False
            print(f"verify {sid}: leftover tensors {left}")
    return ok


# --------------------------------------------------------------------------
# --compare: where compressed-tensors differs from the independent references
# --------------------------------------------------------------------------


def _ct_qdq(w, wargs):
    """compressed-tensors quantize->compress->decompress of one weight."""
    class One(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=w.dtype)
            with torch.no_grad():
                self.proj.weight.copy_(w)

    model = One()
    qconfig = QuantizationConfig(
        config_groups={"group_0": QuantizationScheme(targets=["proj"], weights=wargs)}
    )
    apply_quantization_config(model, qconfig, show_progress=False)
    observe_weight(model.proj)
    mc = ModelCompressor.from_pretrained_model(model)
    mc.compress_model(model)
    sd = {k.split("proj.", 1)[1]: v.detach() for k, v in model.state_dict().items()}
    fmt = mc.quantization_config.format
    scheme = model.proj.quantization_scheme
    comp = BaseCompressor.get_value_from_registry(fmt)
    return sd, comp.decompress(dict(sd), scheme)["weight"].float()


def _bits_diff(a, b):
    a = a.float().contiguous()
    b = b.float().contiguous()
    return int((a.view(torch.int32) != b.view(torch.int32)).sum())


def compare(seed=7, shape=(256, 1024)):
    from torchao.prototype.mx_formats.config import ScaleCalculationMode
    from torchao.prototype.mx_formats.constants import DTYPE_FP6_E2M3
    from torchao.prototype.mx_formats.kernels import f4_unpacked_to_f32, unpack_uint4
    from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx
    from torchao.prototype.mx_formats.nvfp4_tensor import (
        nvfp4_quantize,
        per_tensor_amax_to_scale,
    )

    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g) * 0.02
    idx = torch.randperm(w.numel(), generator=g)[:64]
    w.view(-1)[idx] = torch.randn(64, generator=g) * 0.5
    res = {"shape": list(shape), "seed": seed, "elements": w.numel()}

    # FP8 per tensor / per channel vs plain torch reference
    for sid, dim in (("fp8_e4m3_tensor", None), ("fp8_e4m3_channel", 1)):
        sd, deq = _ct_qdq(w, SCHEMES[sid]())
        amax = w.abs().amax() if dim is None else w.abs().amax(dim=1, keepdim=True)
        s = amax / 448.0
        ref = (w / s).clamp(-448, 448).to(torch.float8_e4m3fn).float() * s
        res[sid] = {
            "scale_mismatches": _bits_diff(sd["weight_scale"].reshape(s.shape), s),
            "deq_mismatches_vs_torch_cast_ref": _bits_diff(deq, ref),
        }

    # INT8 per channel vs amax/127 reference
    sd, deq = _ct_qdq(w, SCHEMES["int8_channel"]())
    amax = w.abs().amax(dim=1, keepdim=True)
    s127 = amax / 127.0
    ref127 = torch.round((w / s127).clamp(-127, 127)) * s127
    s1275 = amax / 127.5
    ref1275 = torch.round((w / s1275).clamp(-128, 127)) * s1275
    res["int8_channel"] = {
        "scale_equals_amax_over_127.5": _bits_diff(sd["weight_scale"], s1275) == 0,
        "deq_mismatches_vs_amax_over_127_ref": _bits_diff(deq, ref127),
        "deq_mismatches_vs_amax_over_127.5_ref": _bits_diff(deq, ref1275),
        "of_which_only_sign_of_zero(ref -0.0, ct +0.0)": _bits_diff(deq, ref1275)
        - int((deq != ref1275).sum()),
        "mse_ct": float(((deq - w) ** 2).mean()),
        "mse_amax_over_127": float(((ref127 - w) ** 2).mean()),
    }

    # MX formats vs torchao to_mx
    for sid, elem in (
        ("mxfp8_e4m3", torch.float8_e4m3fn),
        ("mxfp6_e2m3", DTYPE_FP6_E2M3),
        ("mxfp4", torch.float4_e2m1fn_x2),
    ):
        sd, deq = _ct_qdq(w, SCHEMES[sid]())
        ct_e = sd["weight_scale"].to(torch.int32)
        r = {"groups": int(ct_e.numel())}
        for mode in ("FLOOR", "EVEN", "RCEIL", "CEIL"):
            try:
                se, data = to_mx(w, elem, 32, getattr(ScaleCalculationMode, mode))
                ref = to_dtype(data, se, elem, 32, torch.float32)
                te = se.view(torch.uint8).to(torch.int32).reshape(ct_e.shape)
                r[mode] = {
                    "scale_mismatches": int((te != ct_e).sum()),
                    "ct_scale_minus_torchao(+1 count)": int(((ct_e - te) == 1).sum()),
                    "deq_mismatches": _bits_diff(deq, ref),
                    "mse_torchao": float(((ref - w) ** 2).mean()),
                }
            except Exception as e:  # noqa: BLE001
                r[mode] = f"{type(e).__name__}: {e}"
        r["mse_ct"] = float(((deq - w) ** 2).mean())
        res[sid] = r

    # NVFP4 vs torchao nvfp4_quantize (two-level, per_tensor_scale = amax/(448*6))
    sd, deq = _ct_qdq(w, SCHEMES["nvfp4"]())
    amax = w.abs().amax().float()
    pts = per_tensor_amax_to_scale(amax)
    s8, data = nvfp4_quantize(w, 16, pts)
    vals = f4_unpacked_to_f32(unpack_uint4(data)).reshape(shape)
    ref_f32 = (vals.reshape(shape[0], -1, 16) * (s8.float() * pts).unsqueeze(-1)).reshape(shape)
    gs = sd["weight_global_scale"]
    # what CT's arithmetic would give without the final bf16 rounding
    ct_q = deq  # bf16-rounded values
    ct_s = sd["weight_scale"]
    r = {
        "global_scale_equals_1_over_pts": _bits_diff(gs, 1.0 / pts) == 0,
        "block_scale_mismatches": int((ct_s.view(torch.uint8) != s8.view(torch.uint8)).sum()),
        "blocks": int(ct_s.numel()),
        "packed_byte_mismatches": int((sd["weight_packed"] != data).sum()),
        "packed_bytes": int(data.numel()),
        "deq_mismatches_vs_torchao_f32": _bits_diff(ct_q, ref_f32),
        "deq_mismatches_vs_torchao_rounded_to_bf16": _bits_diff(ct_q, ref_f32.bfloat16()),
        "mse_ct": float(((ct_q - w) ** 2).mean()),
        "mse_torchao": float(((ref_f32 - w) ** 2).mean()),
        "max_abs_err_ct": float((ct_q - w).abs().max()),
        "max_abs_err_torchao": float((ref_f32 - w).abs().max()),
    }
    # same CT codes and scales, dequantized the torchao way (s * pts, f32)
    from compressed_tensors.compressors.nvfp4.helpers import unpack_fp4_from_uint8

    ct_vals = unpack_fp4_from_uint8(sd["weight_packed"], shape[0], shape[1], torch.float32)
    alt = (ct_vals.reshape(shape[0], -1, 16) * (ct_s.float() * pts).unsqueeze(-1)).reshape(shape)
    div = (ct_vals.reshape(shape[0], -1, 16) * (ct_s.float() / gs).unsqueeze(-1)).reshape(shape)
    r["ct_codes_deq_f32_div_gs_vs_mul_pts_mismatches"] = _bits_diff(div, alt)
    r["ct_deq_vs_f32_div_gs_mismatches(bf16 rounding)"] = _bits_diff(ct_q, div)
    res["nvfp4"] = r

    # NVFP4 over more data (f32 and bf16 inputs): do codes/scales ever differ?
    tots = {}
    for dt in (torch.float32, torch.bfloat16):
        tot = tots.setdefault(str(dt), {
            "tensors": 0, "elements": 0, "blocks": 0, "block_scale_mismatches": 0,
            "packed_byte_mismatches": 0, "deq_mismatches_vs_torchao_rounded_to_bf16": 0,
            "sq_err_ct": 0.0, "sq_err_torchao": 0.0})
        for s in range(8):
            g = torch.Generator().manual_seed(100 + s)
            x = (torch.randn(shape, generator=g) * 0.02 * (s + 1)).to(dt)
            sd, deq = _ct_qdq(x, SCHEMES["nvfp4"]())
            pts = per_tensor_amax_to_scale(x.float().abs().amax())
            s8, data = nvfp4_quantize(x, 16, pts)
            v = f4_unpacked_to_f32(unpack_uint4(data)).reshape(shape)
            ref = (v.reshape(shape[0], -1, 16) * (s8.float() * pts).unsqueeze(-1)).reshape(shape)
            tot["tensors"] += 1
            tot["elements"] += x.numel()
            tot["blocks"] += s8.numel()
            tot["sq_err_ct"] += float(((deq - x.float()) ** 2).sum())
            tot["sq_err_torchao"] += float(((ref - x.float()) ** 2).sum())
            tot["block_scale_mismatches"] += int((sd["weight_scale"].view(torch.uint8) != s8.view(torch.uint8)).sum())
            tot["packed_byte_mismatches"] += int((sd["weight_packed"] != data).sum())
            tot["deq_mismatches_vs_torchao_rounded_to_bf16"] += _bits_diff(deq, ref.bfloat16())
    res["nvfp4_8_seeds_f32_and_bf16"] = tots

    # MX edge: group amax with significand exactly 1.75 (amax = 448 * 2^-10 = 0.4375)
    edge = {}
    x = torch.zeros(1, 32)
    x[0, 0] = 0.4375
    x[0, 1] = 0.1
    for sid, elem in (("mxfp8_e4m3", torch.float8_e4m3fn), ("mxfp4", torch.float4_e2m1fn_x2)):
        sd, deq = _ct_qdq(x, SCHEMES[sid]())
        e = {"ct_scale_e8m0": int(sd["weight_scale"].flatten()[0])}
        for mode in ("FLOOR", "EVEN", "RCEIL"):
            se, _ = to_mx(x, elem, 32, getattr(ScaleCalculationMode, mode))
            e[mode] = int(se.view(torch.uint8).flatten()[0])
        edge[sid] = e
    res["mx_edge_amax_0.4375"] = edge
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--verify", action="store_true", help="only verify existing fixtures")
    ap.add_argument("--compare", action="store_true", help="measure vs torchao/torch refs")
    a = ap.parse_args()
    if a.compare:
        print(json.dumps(compare(), indent=2))
        return 0
    if not a.verify:
        generate(a.out)
    return 0 if verify(a.out) else 1


if __name__ == "__main__":
    sys.exit(main())
