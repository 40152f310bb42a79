"""fp8q.quantize and fp8q.estimate_range: golden parity with the paper's reference, in-place
operation without copies, per-channel ranges, dtypes and layouts."""

import math

import numpy as np
import pytest

import fp8q


def fmt_of(case):
    e = case["n_bits"] - case["sign_bits"] - case["mantissa_bits"]
    return f"{'' if case['sign_bits'] else 'u'}e{e}m{case['mantissa_bits']}"


def integer_bias(case):
    """maxval = default maximum * 2^k: the reference's float32 arithmetic is exact there."""
    m, s, n = case["mantissa_bits"], case["sign_bits"], case["n_bits"]
    e = n - s - m
    default_max = (2 - 2.0**-m) * 2.0 ** (2**e - 1 - 2 ** (e - 1))
    return all(math.log2(a / default_max).is_integer() for a in case["maxval"])


def test_golden_fp_quantizer(golden):
    cases = golden("fp_quantizer.json")["cases"]
    total = flips = exact_cases = 0
    for case in cases:
        x = np.array(case["x"], dtype=np.float32).reshape(case["shape"])
        want = np.array(case["y"], dtype=np.float32).reshape(case["shape"])
        mv = case["maxval"]
        got = fp8q.quantize(x, fmt_of(case), maxval=mv if len(mv) > 1 else mv[0])
        assert got.dtype == np.float32 and got.shape == x.shape
        if integer_bias(case):
            # bit-exact wherever the reference's own value lies on the exact grid (its float32
            # log2 can be inexact even at an integer bias, e.g. log2(1.9375) for E3M4)
            exact_cases += 1
            on_grid = np.zeros(x.shape, dtype=bool)
            for c, a in enumerate(mv if len(mv) > 1 else [mv[0]]):
                sl = (slice(c, c + 1),) if len(mv) > 1 else (slice(None),)
                on_grid[sl] = np.isin(want[sl].astype(np.float64), fp8q.Format(fmt_of(case), maxval=a).values())
            on_grid |= want == 0
            assert np.array_equal(got[on_grid].view(np.uint32), want[on_grid].view(np.uint32)), fmt_of(case)
        close = np.abs(got - want) <= np.maximum(1e-5 * np.abs(want), 1e-30)
        # the rest may only be ties resolved the other way: one grid step apart (a step is at
        # most 2^-m of the value's binade) with the input half-way
        step = np.abs(want - got)
        bad = ~close
        assert np.all(step[bad] <= 2.0 ** -case["mantissa_bits"] * np.maximum(np.abs(want[bad]), np.abs(got[bad])) * 1.0001)
        assert np.allclose(np.abs(x[bad] - got[bad]), np.abs(x[bad] - want[bad]), rtol=1e-5)
        flips += int(bad.sum())
        total += x.size
    assert exact_cases > 0
    assert flips <= total / 10_000, f"{flips} tie flips in {total} elements"


def test_golden_int_quantizer_symmetric(golden):
    """Symmetric INT with a symmetric range is quantize(x, 'intN', maxval=x_max)."""
    used = 0
    for case in golden("int_quantizer.json")["cases"]:
        if case["kind"] != "symmetric" or case["x_min"] != [-v for v in case["x_max"]]:
            continue
        x = np.array(case["x"], dtype=np.float32).reshape(case["shape"])
        want = np.array(case["y"], dtype=np.float32).reshape(case["shape"])
        mv = case["x_max"]
        got = fp8q.quantize(x, f"int{case['n_bits']}", maxval=mv if len(mv) > 1 else mv[0])
        assert np.allclose(got, want, rtol=1e-6, atol=0), case["n_bits"]
        used += 1
    if used == 0:
        pytest.skip("no symmetric-range INT case in the golden file")


def test_out_is_x_works_in_place():
    x = np.random.default_rng(0).standard_normal((64, 1000)).astype(np.float32)
    want = fp8q.quantize(x, "e4m3", maxval=3.0)
    addr = x.__array_interface__["data"][0]
    got = fp8q.quantize(x, "e4m3", maxval=3.0, out=x)
    assert got is x
    assert x.__array_interface__["data"][0] == addr
    assert np.array_equal(x, want)
    # estimated ranges too, per channel
    y = np.random.default_rng(1).standard_normal((8, 300)).astype(np.float32)
    want = fp8q.quantize(y, "e3m4", per_channel=True, range="mse")
    assert fp8q.quantize(y, "e3m4", per_channel=True, range="mse", out=y) is y
    assert np.array_equal(y, want)


def test_out_other_array():
    x = np.random.default_rng(2).standard_normal(5000).astype(np.float32)
    out = np.empty_like(x)
    addr = out.__array_interface__["data"][0]
    assert fp8q.quantize(x, "e5m2", out=out) is out
    assert out.__array_interface__["data"][0] == addr
    assert np.array_equal(out, fp8q.quantize(x, "e5m2"))


def test_per_channel_maxval_array():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 5)).astype(np.float32) * 3
    mv = np.array([0.5, 1.0, 2.0, 4.0], dtype=np.float32)
    got = fp8q.quantize(x, "e4m3", maxval=mv)
    for c in range(4):
        assert np.array_equal(got[c], fp8q.quantize(x[c], "e4m3", maxval=float(mv[c])))
        assert np.abs(got[c]).max() <= mv[c]
    # a list and the reference's [C, 1, 1] shape work the same
    assert np.array_equal(fp8q.quantize(x, "e4m3", maxval=mv.tolist()), got)
    assert np.array_equal(fp8q.quantize(x, "e4m3", maxval=mv.reshape(4, 1, 1)), got)


def test_per_channel_estimate():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 50)).astype(np.float32) * np.arange(1, 7, dtype=np.float32)[:, None]
    r = fp8q.estimate_range(x, "e4m3", per_channel=True)
    assert np.array_equal(r["min"], x.min(axis=1)) and np.array_equal(r["max"], x.max(axis=1))
    assert np.array_equal(r["maxval"], np.abs(x).max(axis=1))
    got = fp8q.quantize(x, "e4m3", per_channel=True)
    assert np.array_equal(got, fp8q.quantize(x, "e4m3", maxval=r["maxval"]))
    t = fp8q.estimate_range(x, "e4m3")
    assert t["min"] == x.min() and t["max"] == x.max() and t["mantissa_bits"] == 3 and t["format"] == "e4m3"


def test_mantissa_search_reports_the_split():
    x = np.random.default_rng(5).standard_normal(20000).astype(np.float32)
    r = fp8q.estimate_range(x, "e4m3", "mse", mantissa_search=True)
    assert 1 <= r["mantissa_bits"] <= 6
    assert r["format"] == f"e{7 - r['mantissa_bits']}m{r['mantissa_bits']}"
    got = fp8q.quantize(x, "e4m3", range="mse", mantissa_search=True)
    assert np.array_equal(got, fp8q.quantize(x, r["format"], maxval=r["maxval"]))


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_other_dtypes(dtype):
    x32 = (np.random.default_rng(6).standard_normal((10, 100)) * 4).astype(np.float32)
    x = x32.astype(dtype)
    got = fp8q.quantize(x, "e4m3", maxval=2.0)
    assert got.dtype == dtype and got.shape == x.shape
    want = fp8q.quantize(x.astype(np.float32), "e4m3", maxval=2.0).astype(dtype)
    assert np.array_equal(got, want)
    out = x.copy()
    assert fp8q.quantize(out, "e4m3", maxval=2.0, out=out) is out
    assert np.array_equal(out, want)


def test_non_contiguous_input_is_copied():
    x = (np.random.default_rng(7).standard_normal((30, 40)) * 3).astype(np.float32)
    got = fp8q.quantize(x.T, "e3m4", per_channel=True)
    assert np.array_equal(got, fp8q.quantize(np.ascontiguousarray(x.T), "e3m4", per_channel=True))
    assert np.array_equal(fp8q.quantize(x[:, ::2], "e3m4", maxval=1.0),
                          fp8q.quantize(np.ascontiguousarray(x[:, ::2]), "e3m4", maxval=1.0))


def test_special_values_and_formats():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, 1e30], dtype=np.float32)
    y = fp8q.quantize(x, "e4m3", maxval=240.0)
    assert math.isnan(y[0]) and y[1] == 240.0 and y[2] == -240.0 and y[3] == 0 and y[6] == 240.0
    assert fp8q.quantize(np.array([464.0, 1e9], np.float32), "float8_e4m3fn", maxval=448.0).tolist() == [448.0, 448.0]
    assert fp8q.quantize(np.array([-1.0, 0.3], np.float32), "ue4m4", maxval=1.0).tolist()[0] == 0.0
    assert fp8q.quantize(np.array([0.26], np.float32), "int8", maxval=127.0).tolist() == [0.0]
    assert fp8q.quantize(np.zeros((0, 3), np.float32), "e4m3", maxval=1.0).shape == (0, 3)
    assert fp8q.quantize([1.1, -0.2], "e2m5", maxval=2.0).dtype == np.float64
