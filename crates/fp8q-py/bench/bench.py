"""Throughput of fp8q's Python binding beside the alternatives, in one process, on the data of
`fp8q bench` (16M float32 elements; E4M3). Each figure is the best of --repeats runs. With torch:
the reference's quantize_to_fp8_ste_MM (re-typed in torch) beside fp8q.torch's reference
arithmetic (bit-identical), forward and forward+backward, and fake_quant's two arithmetics.

    python crates/fp8q-py/bench/bench.py [--elements N] [--repeats R] [--cli path/to/fp8q]

With --cli (or FP8Q_CLI) it also runs `fp8q bench` with the same size and prints the ratio of the
binding's figure to the CLI's for the same kernel (the binding's cost).
"""

import argparse
import os
import pathlib
import re
import subprocess
import sys
import time

import numpy as np

import fp8q


def data(n):
    """The input of `fp8q bench`: u = hash(i)/2^24 - 1/2, x = 40 u^3."""
    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)  # wrapping multiply, as in Rust
    u = h.astype(np.float32) / np.float32(1 << 24) - np.float32(0.5)
    return u * u * u * np.float32(40.0)


def best_of(repeats, f):
    f()  # warm up: page faults, caches, thread pool
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def cli_figures(cli, n, channels, repeats):
    out = subprocess.run([cli, "bench", "--elements", str(n), "--channels", str(channels), "--repeats", str(repeats)],
                         check=True, capture_output=True, text=True).stdout
    figs = {}
    for line in out.splitlines():
        m = re.match(r"(.+?)\s{2,}([\d.]+)\s+([\d.]+)\s+(\d+)%", line)
        if m:
            figs[m.group(1).strip()] = float(m.group(2)) * 1e9
    return out, figs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--elements", type=int, default=16 << 20)
    ap.add_argument("--channels", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--cli", default=os.environ.get("FP8Q_CLI"))
    args = ap.parse_args()
    n, r = args.elements, args.repeats
    x = data(n)
    out = np.empty_like(x)
    rows = []

    def report(name, secs, cli_name=None):
        rows.append((name, n / secs, cli_name))
        print(f"{name:<58} {n / secs / 1e6:>10.0f} M elem/s", flush=True)

    print(f"{n} float32 elements, best of {r}; fp8q {fp8q.__version__}")
    report("fp8q.quantize E4M3 per-tensor, out= (α = 3.7)",
           best_of(r, lambda: fp8q.quantize(x, "e4m3", 3.7, out=out)), "E4M3 per-tensor, flexible bias (α = 3.7)")
    inplace = x.copy()
    report("fp8q.quantize E4M3 per-tensor, out=x in place (α = 3.7)",
           best_of(r, lambda: fp8q.quantize(inplace, "e4m3", 3.7, out=inplace)), "E4M3 per-tensor in place (α = 3.7)")
    report("fp8q.quantize E4M3 per-tensor, new array (α = 3.7)", best_of(r, lambda: fp8q.quantize(x, "e4m3", 3.7)))
    report("fp8q.quantize E4M3 per-tensor, range = min/max of x", best_of(r, lambda: fp8q.quantize(x, "e4m3", out=out)))
    mv = 1.0 + np.arange(args.channels) * 0.01
    xc = x.reshape(args.channels, -1)
    outc = out.reshape(args.channels, -1)
    report(f"fp8q.quantize E4M3 per-channel ({args.channels} channels), out=",
           best_of(r, lambda: fp8q.quantize(xc, "e4m3", mv, out=outc)), f"E4M3 per-channel ({args.channels} channels)")

    try:
        import torch
    except ImportError:
        torch = None
        print("(torch not importable: its rows are skipped)")
    if torch is not None:
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
        from reference_formula import reference_fp_quant

        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}")
        import fp8q.torch as ft
        from fp8q.torch import fake_quant, quantize_to_fp8_ste_MM

        t = torch.from_numpy(x)
        maxval, mb = torch.tensor([3.7]), torch.tensor([3.0])
        mvc = torch.from_numpy(mv.astype(np.float32))
        tc = t.reshape(args.channels, -1)
        g = torch.from_numpy(data(n)[::-1].copy())  # an incoming gradient
        slow = max(2, r // 3)

        def fwd_bwd(f, xt, m):
            """forward + backward with x and maxval learned (the reference's QAT setting)"""
            def step():
                xx = xt.detach().requires_grad_()
                mm = m.detach().requires_grad_()
                f(xx, 8, mm, mb, 1).backward(g.reshape(xt.shape))
            return step

        with torch.no_grad():
            report("reference formula re-typed in torch, forward (E4M3, α = 3.7)",
                   best_of(slow, lambda: reference_fp_quant(t, 8, maxval, mb, 1)))
            report("fp8q.torch.quantize_to_fp8_ste_MM (reference arithmetic), forward",
                   best_of(r, lambda: quantize_to_fp8_ste_MM(t, 8, maxval, mb, 1)))
            report("fp8q.torch.fake_quant E4M3 (default: reference), forward",
                   best_of(r, lambda: fake_quant(t, "e4m3", 3.7)))
            report("fp8q.torch.fake_quant E4M3, arithmetic='exact', forward",
                   best_of(r, lambda: fake_quant(t, "e4m3", 3.7, arithmetic="exact")))
            report(f"reference formula in torch, forward, per-channel ({args.channels})",
                   best_of(slow, lambda: reference_fp_quant(tc, 8, mvc, mb, 1)))
            report(f"fp8q.torch.quantize_to_fp8_ste_MM, forward, per-channel ({args.channels})",
                   best_of(r, lambda: quantize_to_fp8_ste_MM(tc, 8, mvc, mb, 1)))
        report("reference formula in torch, forward+backward (x, maxval)",
               best_of(slow, fwd_bwd(reference_fp_quant, t, maxval)))
        report("fp8q.torch.quantize_to_fp8_ste_MM (reference arithmetic), forward+backward",
               best_of(r, fwd_bwd(quantize_to_fp8_ste_MM, t, maxval)))
        report(f"reference formula in torch, forward+backward, per-channel ({args.channels})",
               best_of(slow, fwd_bwd(reference_fp_quant, tc, mvc)))
        report(f"fp8q.torch.quantize_to_fp8_ste_MM, forward+backward, per-channel ({args.channels})",
               best_of(r, fwd_bwd(quantize_to_fp8_ste_MM, tc, mvc)))

        def uncached(m):
            def build():
                ft._TABLES.clear()
                with torch.no_grad():
                    quantize_to_fp8_ste_MM(t[:64], 8, m, mb, 1) if m.numel() == 1 else \
                        quantize_to_fp8_ste_MM(tc[:, :1].contiguous(), 8, m, mb, 1)
            return build
        for label, m in (("per-tensor", maxval), (f"{args.channels} channels", mvc)):
            secs = best_of(r, uncached(m))
            print(f"  (a maxval not seen before, {label}: +{secs * 1e3:.2f} ms for its thresholds and scales)")
        with torch.no_grad():
            if hasattr(torch, "float8_e4m3fn"):
                report("torch float8_e4m3fn cast round trip",
                       best_of(r, lambda: t.to(torch.float8_e4m3fn).to(torch.float32)))
    try:
        import ml_dtypes
    except ImportError:
        print("(ml_dtypes not importable: its row is skipped)")
    else:
        report("ml_dtypes float8_e4m3fn cast round trip",
               best_of(max(2, r // 3), lambda: x.astype(ml_dtypes.float8_e4m3fn).astype(np.float32)))
        report("fp8q encode + decode float8_e4m3fn",
               best_of(r, lambda: fp8q.decode(fp8q.encode(x, "float8_e4m3fn", saturate=False))))

    if args.cli:
        text, figs = cli_figures(args.cli, n, args.channels, r)
        print(f"\n`fp8q bench` (same data, separate process):\n{text}")
        print("binding / CLI, same kernel:")
        for name, rate, cli_name in rows:
            if cli_name and cli_name in figs:
                print(f"  {name:<58} {100 * rate / figs[cli_name]:>5.0f}% of {figs[cli_name] / 1e6:.0f} M elem/s")


if __name__ == "__main__":
    main()
