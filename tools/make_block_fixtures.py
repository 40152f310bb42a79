#!/usr/bin/env python3
"""Fixtures for fp8q-core's block-scaled formats, made by torchao's CPU reference.

Writes crates/fp8q-core/tests/data/block_torchao/: a manifest (manifest.json) and four raw
little-endian files that the cases index into:

* input.f32   fp8q's input of each case (unpadded, row-major, shape `shape`)
* dequant.f32 the reference's dequantized output (row-major, shape `ref_shape`)
* codes.u8    the reference's element codes as it lays them out (torchao's qdata bytes: one
              float8 byte per element, one FP6 code per byte in its low 6 bits, FP4 packed two
              per byte low nibble first; MXINT8: the two's-complement byte of k)
* scales.u8   the reference's block scale bytes (E8M0, or NVFP4's float8_e4m3fn), row-major,
              shape `ref_shape` with the last dimension divided by the block size

torchao needs the last dimension to be a multiple of the block, so a ragged case (fp8q's last
block shorter) is given to torchao padded with zeros to `ref_shape` (a zero pad changes
neither a block's nor the tensor's largest magnitude); the test compares fp8q's elements with
the padded tensor's leading ones.

The MX formats run through `torchao.prototype.mx_formats.mx_tensor.to_mx` and `to_dtype`
(scaling modes FLOOR, CEIL, EVEN, RCEIL); NVFP4 through `NVFP4Tensor.to_nvfp4(x,
per_tensor_scale=per_tensor_amax_to_scale(amax))` and `.dequantize(torch.float32)` (the
codes and scales are those of `nvfp4_quantize`, checked equal). torchao has no MXINT8: those
cases use an independent numpy implementation written here from the OCP MX v1.0 spec
(`X = 2^(floor(log2 amax) - 0)`, elements `k / 64` with `k = clamp(round_half_even(x / X * 64),
-127, 127)`), marked `"reference": "numpy-ocp"`.

Every input is made from fixed seeds: running the script twice writes the same bytes.

    /work/venv-ref/bin/python tools/make_block_fixtures.py [--out DIR]
"""

import argparse
import json
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import ml_dtypes  # noqa: E402
import torch  # noqa: E402
import torchao  # noqa: E402
from torchao.prototype.mx_formats.config import ScaleCalculationMode  # noqa: E402
from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx  # noqa: E402
from torchao.prototype.mx_formats.nvfp4_tensor import (  # noqa: E402
    NVFP4Tensor,
    nvfp4_quantize,
    per_tensor_amax_to_scale,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "crates", "fp8q-core", "tests", "data", "block_torchao")

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY_SUB = float(np.float32(2.0**-149))

# name -> (torchao element dtype, fp8q element spelling, positive grid, emax)
def fp_grid(ebits, mbits):
    """Positive values of an OCP FP element with every code finite (FP6/FP4)."""
    bias = (1 << (ebits - 1)) - 1
    vals = []
    for e in range(1 << ebits):
        for m in range(1 << mbits):
            if e == 0:
                v = m * 2.0 ** (1 - bias - mbits)
            else:
                v = (1 + m / (1 << mbits)) * 2.0 ** (e - bias)
            vals.append(v)
    return sorted(set(vals))


def ml_grid(dt):
    b = np.arange(256, dtype=np.uint8).view(dt).astype(np.float64)
    b = b[np.isfinite(b) & (b >= 0)]
    return sorted(set(b.tolist()))


ELEMENTS = {
    "mxfp8_e4m3": (torch.float8_e4m3fn, "float8_e4m3fn", ml_grid(ml_dtypes.float8_e4m3fn), 8),
    "mxfp8_e5m2": (torch.float8_e5m2, "float8_e5m2", ml_grid(ml_dtypes.float8_e5m2), 15),
    "mxfp6_e3m2": ("fp6_e3m2", "e3m2", fp_grid(3, 2), 4),
    "mxfp6_e2m3": ("fp6_e2m3", "e2m3", fp_grid(2, 3), 2),
    "mxfp4": (torch.float4_e2m1fn_x2, "e2m1", fp_grid(2, 1), 2),
    "mxint8": (None, "int8", [k / 64 for k in range(128)], 0),
}

RULES = {
    "floor": ScaleCalculationMode.FLOOR,
    "ceil": ScaleCalculationMode.CEIL,
    "even": ScaleCalculationMode.EVEN,
    "rceil": ScaleCalculationMode.RCEIL,
}


def f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


# ---------------------------------------------------------------- inputs


def mx_inputs(name, seed):
    """The MX cases of one element format: (case name, fp8q input [rows, cols])."""
    _, _, grid, emax = ELEMENTS[name]
    elem_max = grid[-1]
    rng = np.random.default_rng(seed)
    cases = []

    # Gaussian blocks of very different magnitudes
    x = rng.standard_normal((4, 128))
    x *= np.repeat(2.0 ** rng.integers(-40, 40, size=(4, 4)), 32, axis=1)
    cases.append(("random", f32(x)))

    # all-zero blocks (one of them -0.0 throughout, one mixed signs of zero) among others
    x = rng.standard_normal((2, 96))
    x[0, 0:32] = 0.0
    x[0, 64:96] = -0.0
    x[1, 32:64] = np.where(np.arange(32) % 2 == 0, 0.0, -0.0)
    cases.append(("zero_blocks", f32(x)))

    # a lone outlier per block: the rest of the block flushes or loses precision
    x = rng.standard_normal((4, 64)) * 0.01
    for r in range(4):
        for b in range(2):
            x[r, b * 32 + rng.integers(0, 32)] = (1 if (r + b) % 2 else -1) * 10.0 ** rng.uniform(2, 9)
    cases.append(("outlier", f32(x)))

    # tiny magnitudes, down to f32 subnormals: scales at and below the bottom of E8M0
    rows = []
    for exp in [-100, -112, -118, -119, -120, -124, -126, -127, -130, -135, -140, -145]:
        rows.append(rng.standard_normal(32) * 2.0**exp)
    rows.append(rng.integers(-8, 9, size=32) * 2.0**-149)  # a few subnormal units
    r = np.zeros(32)
    r[5] = 2.0**-149
    rows.append(r)  # the smallest subnormal alone
    r = rng.standard_normal(32) * 2.0**-60
    r[0] = 2.0**-149
    rows.append(r)
    cases.append(("tiny", f32(np.array(rows).reshape(3, -1))))

    # huge magnitudes, up to f32's largest
    rows = []
    rows.append(np.clip(rng.standard_normal(32) * 1e38, -F32_MAX, F32_MAX))
    r = rng.standard_normal(32) * 1e37
    r[3] = F32_MAX
    rows.append(r)
    r = rng.standard_normal(32) * 1e30
    r[7] = -F32_MAX
    rows.append(r)
    rows.append(rng.uniform(-1, 1, 32) * 2.0**127 * 1.999)
    rows.append(np.full(32, F32_MAX) * np.where(np.arange(32) % 3 == 0, -1, 1))
    rows.append(rng.standard_normal(32) * 2.0**120)
    cases.append(("huge", f32(np.array(rows).reshape(2, -1))))

    # exact ties of the element grid: block amax 2^emax (so X = 1 under every rule), the
    # other elements at the midpoints of grid neighbours, scaled per block by a power of two
    g = [v for v in grid if v <= 2.0**emax]
    mids = [(a + b) / 2 for a, b in zip(g, g[1:])]
    vals = mids + [-m for m in mids]
    per = 31
    nblk = (len(vals) + per - 1) // per
    blocks = []
    shifts = [0, -3, 7, -20, 30, -60, 100, -100]
    for i in range(nblk):
        chunk = vals[i * per : (i + 1) * per]
        chunk = chunk + [mids[(i * 7 + j) % len(mids)] for j in range(per - len(chunk))]
        blk = np.array([2.0**emax] + chunk)
        rng.shuffle(blk)
        blocks.append(blk * 2.0 ** shifts[i % len(shifts)])
    if len(blocks) % 2:
        blocks.append(np.array([2.0**emax] + [mids[j % len(mids)] for j in range(per)]) * 2.0**-5)
    cases.append(("ties", f32(np.array(blocks).reshape(len(blocks) // 2, 64))))

    # amax whose significand exceeds the element's largest: FLOOR saturates the block maximum
    rows = []
    top = 2.0 ** (emax + 1)
    for i, shift in enumerate([0, -10, 10, 40, -40, -118, 100, 3]):
        r = rng.standard_normal(32) * elem_max / 4
        u = rng.uniform(elem_max, top, size=3)
        u[0] = np.nextafter(np.float32(top), np.float32(0)) if i % 2 else (elem_max + top) / 2
        r[:3] = u * np.array([1, -1, 1])
        rows.append(r * 2.0**shift)
    cases.append(("saturate", f32(np.array(rows).reshape(4, 64))))

    # RCEIL edges: amax / elem_max just above, at and just below a power of two
    rows = []
    for k in [0, -5, 9, 60, -100, -120, -126, -127, -128, 120, 125]:
        for j, mult in enumerate([1 + 2.0**-23, 1 + 3 * 2.0**-23, 1.0, 1 - 2.0**-24]):
            amax = np.float32(np.float32(elem_max) * np.float32(2.0**k) * np.float32(mult))
            if not np.isfinite(amax) or amax == 0:
                continue
            r = rng.standard_normal(32) * float(amax) / 3
            r = np.clip(r, -float(amax), float(amax))
            r[j] = amax if j % 2 == 0 else -amax
            rows.append(r)
    if len(rows) % 2:
        rows.append(np.zeros(32))
    cases.append(("rceil_edge", f32(np.array(rows).reshape(len(rows) // 2, 64))))

    # ragged last blocks (padded for torchao)
    cases.append(("ragged45", f32(rng.standard_normal((3, 45)) * 2.0 ** rng.integers(-8, 8, size=(3, 1)))))
    r = rng.standard_normal((2, 7))
    r[1, 6] = 50.0
    cases.append(("ragged7", f32(r)))

    # NaN and infinities in a block
    x = rng.standard_normal((3, 64))
    x[0, 5] = np.nan
    x[1, 40] = np.inf
    x[2, 1] = -np.inf
    cases.append(("nan_inf", f32(x)))

    # blocks along axis 0 of the fp8q tensor (the transpose is given to torchao)
    cases.append(("axis0", f32(rng.standard_normal((64, 3)) * 2.0 ** rng.integers(-5, 5, size=(1, 3)))))
    return cases


def nvfp4_inputs(seed):
    rng = np.random.default_rng(seed)
    cases = []
    x = rng.standard_normal((4, 64))
    x *= np.repeat(2.0 ** rng.integers(-10, 10, size=(4, 4)), 16, axis=1)
    cases.append(("random", f32(x)))
    x = rng.standard_normal((4, 64))
    x *= np.repeat(2.0 ** rng.integers(-24, 2, size=(4, 4)), 16, axis=1)  # block scales clamp at 2^-6
    cases.append(("small_blocks", f32(x)))
    x = rng.standard_normal((2, 64))
    x[0, 0:16] = 0.0
    x[1, 16:32] = -0.0
    cases.append(("zero_blocks", f32(x)))
    x = rng.standard_normal((4, 32)) * 0.01
    x[1, 5] = 3000.0
    x[3, 20] = -0.5
    cases.append(("outlier", f32(x)))
    cases.append(("tiny", f32(rng.standard_normal((2, 32)) * 2.0**-130)))
    cases.append(("tiny_sub", f32(rng.integers(-40, 41, size=(2, 32)) * 2.0**-149)))
    x = np.clip(rng.standard_normal((2, 32)) * 1e38, -F32_MAX, F32_MAX)
    x[0, 0] = F32_MAX
    cases.append(("huge", f32(x)))
    # ties of the E2M1 grid: each block holds 6·2^s (its block scale exact) and midpoints
    g = fp_grid(2, 1)
    mids = [(a + b) / 2 for a, b in zip(g, g[1:])]
    rows = []
    for s in [0, -2, 3, -6, 1, -1, 2, -3]:
        blk = np.array([6.0] + mids + [-m for m in mids] + [0.25, -0.25, 5.0])[:16]
        rng.shuffle(blk)
        rows.append(blk * 2.0**s)
    cases.append(("ties", f32(np.array(rows).reshape(2, 64))))
    cases.append(("ragged40", f32(rng.standard_normal((3, 40)))))
    x = np.zeros((2, 32))
    x[1, 30] = -7.0
    cases.append(("single_value", f32(x)))
    x = rng.standard_normal((2, 32))
    x[1, 3] = np.nan
    cases.append(("nan", f32(x)))
    return cases


# ---------------------------------------------------------------- references


def pad_cols(x, k):
    rows, cols = x.shape
    padded = -(-cols // k) * k
    out = np.zeros((rows, padded), dtype=np.float32)
    out[:, :cols] = x
    return out


def torchao_mx(x, elem_dtype, rule):
    t = torch.from_numpy(x.copy())
    scale, data = to_mx(t, elem_dtype, 32, RULES[rule])
    deq = to_dtype(data, scale, elem_dtype, 32, torch.float32)
    return (
        deq.numpy().astype(np.float32),
        data.contiguous().view(torch.uint8).numpy().reshape(-1).copy(),
        scale.contiguous().view(torch.uint8).numpy().reshape(-1).copy(),
    )


def numpy_mxint8(x):
    """OCP MX v1.0 MXINT8, written from the spec: X = 2^(floor(log2 amax) - emax), emax = 0."""
    rows, cols = x.shape
    blocks = x.reshape(rows, cols // 32, 32).astype(np.float32)
    deq = np.zeros_like(blocks)
    codes = np.zeros(blocks.shape, dtype=np.uint8)
    scales = np.zeros(blocks.shape[:2], dtype=np.uint8)
    for i in range(blocks.shape[0]):
        for j in range(blocks.shape[1]):
            b = blocks[i, j]
            with np.errstate(invalid="ignore"):
                amax = np.float32(np.max(np.abs(b)))
            if np.isnan(amax) or np.isinf(amax):
                scales[i, j] = 255
                deq[i, j] = np.nan
                continue
            if amax == 0:
                e = -127
            else:
                m, ex = np.frexp(np.float64(amax))  # amax = m * 2^ex, m in [0.5, 1)
                e = max(int(ex) - 1, -127)
            scales[i, j] = e + 127
            # x / X, exact (a power of two), in float64 then to f32 as the element sees it
            y = (b.astype(np.float64) * 2.0 ** (-e) * 64).astype(np.float32)
            k = np.clip(np.rint(y), -127, 127).astype(np.int8)
            codes[i, j] = k.view(np.uint8)
            # decoded from the integer code: an INT element has no -0
            deq[i, j] = (k.astype(np.float64) / 64 * 2.0**e).astype(np.float32)
    return deq.reshape(rows, cols), codes.reshape(-1), scales.reshape(-1)


def torchao_nvfp4(x):
    t = torch.from_numpy(x.copy())
    amax = torch.max(torch.abs(t))
    s_t = per_tensor_amax_to_scale(amax)
    nv = NVFP4Tensor.to_nvfp4(t, per_tensor_scale=s_t)
    deq = nv.dequantize(torch.float32).numpy().astype(np.float32)
    scales, data = nvfp4_quantize(t, 16, s_t)
    codes = data.contiguous().view(torch.uint8).numpy().reshape(-1).copy()
    sc = scales.contiguous().view(torch.uint8).numpy().reshape(-1).copy()
    assert np.array_equal(codes, nv.qdata.contiguous().view(torch.uint8).numpy().reshape(-1))
    assert np.array_equal(sc, nv.scale.contiguous().view(torch.uint8).numpy().reshape(-1))
    return deq, codes, sc, np.float32(s_t.item())


# ---------------------------------------------------------------- output


class Writer:
    def __init__(self):
        self.blobs = {"input.f32": bytearray(), "dequant.f32": bytearray(), "codes.u8": bytearray(), "scales.u8": bytearray()}
        self.cases = []
        self.seen = {}

    def put(self, kind, arr):
        """Offset (in elements) of `arr` in the blob `kind`; an input already written is shared."""
        blob = self.blobs[kind]
        b = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        if kind == "input.f32" and b in self.seen:
            return self.seen[b]
        off = len(blob) // arr.dtype.itemsize
        blob.extend(b)
        if kind == "input.f32":
            self.seen[b] = off
        return off

    def add(self, case, x, ref_x, deq, codes, scales):
        case["input"] = [self.put("input.f32", x.reshape(-1)), int(x.size)]
        case["dequant"] = [self.put("dequant.f32", deq.reshape(-1)), int(deq.size)]
        case["codes"] = [self.put("codes.u8", codes), int(codes.size)]
        case["scales"] = [self.put("scales.u8", scales), int(scales.size)]
        case["ref_shape"] = list(ref_x.shape)
        self.cases.append(case)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.manual_seed(0)
    w = Writer()

    for fi, name in enumerate(ELEMENTS):
        elem_dtype, spelling, _, _ = ELEMENTS[name]
        rules = ["floor"] if name == "mxint8" else list(RULES)
        for cname, x in mx_inputs(name, 1000 + fi):
            transposed = cname == "axis0"
            ref_in = np.ascontiguousarray(x.T) if transposed else x
            ref_x = pad_cols(ref_in, 32)
            for rule in rules:
                if name == "mxint8":
                    deq, codes, scales = numpy_mxint8(ref_x)
                    reference = "numpy-ocp"
                else:
                    deq, codes, scales = torchao_mx(ref_x, elem_dtype, rule)
                    reference = "torchao"
                case = {
                    "name": f"{name}/{rule}/{cname}",
                    "format": f"{spelling}@32:{rule}",
                    "family": name,
                    "rule": rule,
                    "reference": reference,
                    "shape": list(x.shape),
                    "axis": 0 if transposed else -1,
                    "ref_transposed": transposed,
                }
                w.add(case, x, ref_x, deq, codes, scales)

    for cname, x in nvfp4_inputs(2000):
        ref_x = pad_cols(x, 16)
        deq, codes, scales, s_t = torchao_nvfp4(ref_x)
        case = {
            "name": f"nvfp4/{cname}",
            "format": "nvfp4",
            "family": "nvfp4",
            "rule": None,
            "reference": "torchao",
            "shape": list(x.shape),
            "axis": -1,
            "ref_transposed": False,
            "tensor_scale_bits": int(np.float32(s_t).view(np.uint32)),
        }
        w.add(case, x, ref_x, deq, codes, scales)

    os.makedirs(args.out, exist_ok=True)
    total = 0
    for kind, blob in w.blobs.items():
        path = os.path.join(args.out, kind)
        with open(path, "wb") as f:
            f.write(bytes(blob))
        total += len(blob)
        print(f"wrote {os.path.relpath(path, ROOT)} ({len(blob)} bytes)")
    manifest = {
        "generator": "tools/make_block_fixtures.py",
        "torch": torch.__version__,
        "torchao": torchao.__version__,
        "numpy": np.__version__,
        "ml_dtypes": ml_dtypes.__version__,
        "files": {k: k for k in w.blobs},
        "cases": w.cases,
    }
    mpath = os.path.join(args.out, "manifest.json")
    with open(mpath, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    total += os.path.getsize(mpath)
    fams = {}
    for c in w.cases:
        fams[c["family"]] = fams.get(c["family"], 0) + 1
    print(f"wrote {os.path.relpath(mpath, ROOT)}: {len(w.cases)} cases " + ", ".join(f"{k} {v}" for k, v in fams.items()))
    print(f"torch {torch.__version__}, torchao {torchao.__version__}; {total} bytes in all")


if __name__ == "__main__":
    sys.exit(main())
