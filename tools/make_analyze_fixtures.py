#!/usr/bin/env python3
"""Write the small fixtures of `fp8q analyze`'s tests (crates/fp8q-cli/tests/data/analyze/).

    python3 tools/make_analyze_fixtures.py

Files:
  transformer.safetensors  a transformer-like checkpoint: bf16 embedding / attention / MLP
                           weights (the MLP weight with Student's-t outliers), an f16 and an f32
                           2-D weight, a bf16 1-D norm weight (not a weight matrix: not analysed),
                           and an int64 `position_ids` tensor (non-float: skipped and listed).
                           Written with torch + the safetensors layout by hand (a u64 header
                           length, a JSON header, the raw little-endian bytes).
  cnn.pth                  a tiny CNN state dict saved by torch.save (zip format): conv and fc
                           weights (f32), a bias, and an int64 `num_batches_tracked` (skipped).
  expected.json            for every analysed tensor of both files, computed here with numpy from
                           the stored values (bf16/f16 widened to f32 by torch):
                           * statistics: numel, mean, absmax, std (ddof 0), excess kurtosis,
                             max/sigma;
                           * the SQNR (dB) of e5m2, e4m3, e3m4, e2m5 and int8 with min-max ranges,
                             per tensor and per channel (dim 0), by an independent numpy
                             implementation of the flexible-bias FP grid (top binade scale
                             t = alpha / (2 - 2^-m), exponents 1 - (2^e - 1) .. 0, subnormals at
                             the lowest step, round half to even) and of the reference's
                             symmetric INT8 (f32 arithmetic, delta = absmax / 127).
"""

import json
import os
import struct

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "fp8q-cli", "tests", "data", "analyze")
FORMATS = ["e5m2", "e4m3", "e3m4", "e2m5", "int8"]


def fp_quantize(x, e, m, alpha):
    """Flexible-bias signed FP with e exponent and m mantissa bits, largest value alpha."""
    x = x.astype(np.float64)
    kmax = 2**e - 1
    t = alpha / (2.0 - 2.0**-m)
    xc = np.clip(x, -alpha, alpha)
    a = np.abs(xc)
    with np.errstate(divide="ignore"):
        j = np.floor(np.log2(np.where(a > 0, a / t, 1.0)))
    j = np.clip(j, 1 - kmax, 0)
    step = t * 2.0 ** (j - m)
    q = np.sign(xc) * np.round(a / step) * step  # np.round: half to even
    return q.astype(np.float32)


def int8_quantize(x, lo, hi):
    x = x.astype(np.float32)
    lo = np.float32(min(lo, 0.0))
    hi = np.float32(max(hi, 1e-8))
    if lo < 0:
        qmin, qmax = -128, 127
    else:
        qmin, qmax = 0, 255
    absmax = np.float32(max(-lo, hi))
    delta = np.float32(max(absmax / np.float32(qmax), np.float32(1e-8)))
    v = np.clip(x / delta, np.float32(qmin), np.float32(qmax))
    return (np.round(v).astype(np.float32) * delta).astype(np.float32)


def quantize(x, fmt):
    lo, hi = float(x.min()), float(x.max())
    if fmt == "int8":
        return int8_quantize(x, lo, hi)
    e, m = int(fmt[1]), int(fmt[3])
    return fp_quantize(x, e, m, max(abs(lo), abs(hi)))


def sqnr(x, per_channel):
    x = x.astype(np.float32)
    rows = x.reshape(x.shape[0], -1) if per_channel else x.reshape(1, -1)
    out = {}
    for fmt in FORMATS:
        noise = 0.0
        for r in rows:
            q = quantize(r, fmt)
            noise += float(np.sum((q.astype(np.float64) - r.astype(np.float64)) ** 2))
        signal = float(np.sum(x.astype(np.float64) ** 2))
        out[fmt] = 10 * np.log10(signal / noise)
    return out


def stats(x):
    v = x.astype(np.float64).ravel()
    mean = v.mean()
    c = v - mean
    m2, m4 = np.mean(c**2), np.mean(c**4)
    std = np.sqrt(m2)
    absmax = np.abs(v).max()
    return {
        "numel": int(v.size),
        "mean": mean,
        "absmax": absmax,
        "std": std,
        "kurtosis": m4 / m2**2 - 3.0,
        "max_over_sigma": absmax / std,
    }


def write_safetensors(path, tensors):
    dtypes = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32", torch.int64: "I64"}
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = t.contiguous().view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(20221)
    t4 = torch.distributions.StudentT(torch.tensor(4.0))
    torch.manual_seed(7)
    transformer = {
        "model.embed_tokens.weight": (torch.randn(64, 32, generator=g) * 0.02).to(torch.bfloat16),
        "model.layers.0.input_layernorm.weight": (1 + 0.1 * torch.randn(32, generator=g)).to(torch.bfloat16),
        "model.layers.0.self_attn.q_proj.weight": (torch.randn(32, 32, generator=g) * 0.05).to(torch.bfloat16),
        "model.layers.0.mlp.up_proj.weight": (t4.sample((64, 32)) * 0.03).to(torch.bfloat16),
        "model.layers.0.mlp.down_proj.weight": (torch.randn(32, 64, generator=g) * 0.04).to(torch.float16),
        "lm_head.weight": (torch.rand(64, 32, generator=g) - 0.5).to(torch.float32),
        "position_ids": torch.arange(16, dtype=torch.int64).reshape(1, 16),
    }
    write_safetensors(os.path.join(OUT, "transformer.safetensors"), transformer)
    cnn = {
        "conv1.weight": torch.randn(8, 3, 3, 3, generator=g) * 0.2,
        "conv1.bias": torch.randn(8, generator=g) * 0.1,
        "bn1.num_batches_tracked": torch.tensor(17, dtype=torch.int64),
        "fc.weight": t4.sample((10, 16)) * 0.1,
    }
    torch.save(cnn, os.path.join(OUT, "cnn.pth"))

    expected = {}
    for fname, tensors in [("transformer.safetensors", transformer), ("cnn.pth", cnn)]:
        per = {}
        for name, t in tensors.items():
            if not t.is_floating_point() or t.dim() < 2:
                continue
            x = t.float().numpy()
            per[name] = {
                "shape": list(t.shape),
                "stats": stats(x),
                "sqnr_db_per_tensor": sqnr(x, False),
                "sqnr_db_per_channel": sqnr(x, True),
            }
        expected[fname] = per
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
