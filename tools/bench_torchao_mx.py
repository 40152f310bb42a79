#!/usr/bin/env python3
"""Block-format quantize-dequantize throughput: fp8q against torchao's CPU reference, one run.

Runs `fp8q bench` (its rows `mxfp8_e4m3`, `mxfp6_e2m3`, `mxfp4`, `nvfp4`: rows of 4096 f32 values,
blocks along them, quantize then dequantize into a second buffer), then times torchao on the same
shape and data size with the same thread count: `to_mx` + `to_dtype` for the MX formats,
`nvfp4_quantize` (two-level, per-tensor scale from the tensor's amax) + dequantization for NVFP4.
Prints both in Gelem/s and their ratio.

    python3 tools/bench_torchao_mx.py --fp8q target/release/fp8q [--elements 16777216] [--repeats 5]

Needs torch and torchao (PyPI); fp8q itself does not depend on them.
"""

import argparse
import os
import re
import subprocess
import sys
import time


def fp8q_rows(fp8q, elements, repeats):
    out = subprocess.run(
        [fp8q, "bench", "--elements", str(elements), "--repeats", str(repeats)],
        check=True, capture_output=True, text=True,
    ).stdout
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(mxfp8_e4m3|mxfp6_e2m3|mxfp4|nvfp4|plain copy \(parallel\))\s+([\d.]+)\s+([\d.]+)\s+(\d+)%", line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), int(m.group(4)))
    return out, rows


def best_of(repeats, f):
    f()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def torchao_rates(elements, repeats, threads):
    import torch
    from torchao.prototype.mx_formats.config import ScaleCalculationMode
    from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx
    from torchao.prototype.mx_formats.nvfp4_tensor import nvfp4_quantize, per_tensor_amax_to_scale
    from torchao.prototype.mx_formats.kernels import f4_unpacked_to_f32, unpack_uint4

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(elements // 4096, 4096, generator=g) - 0.5) ** 3 * 40.0
    elems = {
        "mxfp8_e4m3": torch.float8_e4m3fn,
        "mxfp6_e2m3": "fp6_e2m3",
        "mxfp4": torch.float4_e2m1fn_x2,
    }
    rates = {}
    for name, dt in elems.items():
        def run():
            scale, data = to_mx(x, dt, 32, ScaleCalculationMode.FLOOR)
            to_dtype(data, scale, dt, 32, torch.float32)
        rates[name] = elements / best_of(repeats, run) / 1e9

    def nvfp4():
        pts = per_tensor_amax_to_scale(x.abs().max())
        scales, packed = nvfp4_quantize(x, 16, pts)
        q = f4_unpacked_to_f32(unpack_uint4(packed)).view(x.shape[0], -1, 16)
        (q * (pts * scales.to(torch.float32)).unsqueeze(-1)).view(x.shape)
    rates["nvfp4"] = elements / best_of(repeats, nvfp4) / 1e9
    return torch.__version__, rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fp8q", default="target/release/fp8q")
    ap.add_argument("--elements", type=int, default=16 << 20)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    text, rows = fp8q_rows(args.fp8q, args.elements, args.repeats)
    threads = int(re.search(r"(\d+) threads", text).group(1))
    import torchao
    version, rates = torchao_rates(args.elements, args.repeats, threads)
    print(f"{args.elements} elements, {threads} threads; torch {version}, torchao {torchao.__version__}")
    copy = rows.get("plain copy (parallel)", (float("nan"), 0))[0]
    print(f"plain copy: {copy:.3f} Gelem/s")
    print(f"{'format':<12} {'fp8q Gelem/s':>13} {'vs copy':>8} {'torchao Gelem/s':>16} {'fp8q / torchao':>15}")
    for name in ["mxfp8_e4m3", "mxfp6_e2m3", "mxfp4", "nvfp4"]:
        ours, pct = rows[name]
        theirs = rates[name]
        print(f"{name:<12} {ours:>13.3f} {pct:>7d}% {theirs:>16.3f} {ours / theirs:>14.1f}x")


if __name__ == "__main__":
    sys.exit(main())
