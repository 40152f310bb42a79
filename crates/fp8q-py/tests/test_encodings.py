"""encode/decode against ml_dtypes (every code, and many float32/float64/float16 inputs) and the
golden encoding tables."""

import math

import ml_dtypes
import numpy as np
import pytest

import fp8q

FORMATS = ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"]


def bits(a):
    return np.asarray(a).view(np.uint8)


@pytest.mark.parametrize("fmt", FORMATS)
def test_decode_every_code(fmt):
    dt = getattr(ml_dtypes, fmt)
    codes = np.arange(256, dtype=np.uint8)
    ours = fp8q.decode(codes, fmt)
    theirs = codes.view(dt).astype(np.float32)
    assert ours.dtype == np.float32
    assert np.array_equal(ours.view(np.uint32)[~np.isnan(theirs)], theirs.view(np.uint32)[~np.isnan(theirs)])
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    # an ml_dtypes array decodes without naming the format
    assert np.array_equal(fp8q.decode(codes.view(dt)), ours, equal_nan=True)


def f32_inputs():
    rng = np.random.default_rng(0)
    # every code's value and the midpoints between neighbours (ties), random bit patterns,
    # and the special values
    pats = rng.integers(0, 2**32, size=1_000_000, dtype=np.uint64).astype(np.uint32)
    x = [pats.view(np.float32)]
    for fmt in FORMATS:
        v = np.arange(256, dtype=np.uint8).view(getattr(ml_dtypes, fmt)).astype(np.float32)
        v = np.sort(v[np.isfinite(v)])
        mids = (v[1:].astype(np.float64) + v[:-1]) / 2
        x += [v, mids.astype(np.float32), np.nextafter(mids.astype(np.float32), np.float32(np.inf)),
              np.nextafter(mids.astype(np.float32), np.float32(-np.inf))]
    x.append(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e30, -1e30, 1e-30, 464, 465, 57344, 61440,
                       61441, 240, 248, 1e-45], dtype=np.float32))
    return np.concatenate(x)


X32 = f32_inputs()


@pytest.mark.parametrize("fmt", FORMATS)
def test_encode_cast_matches_ml_dtypes(fmt):
    dt = getattr(ml_dtypes, fmt)
    codes = fp8q.encode(X32, fmt, saturate=False)
    assert codes.dtype == dt and codes.shape == X32.shape
    assert np.array_equal(bits(codes), bits(X32.astype(dt)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_encode_float64_and_float16(fmt):
    dt = getattr(ml_dtypes, fmt)
    rng = np.random.default_rng(1)
    # float64 values just beside the format's ties: rounded once, directly (ml_dtypes >= 0.7;
    # rounding to float32 first, as ml_dtypes < 0.7 did, sends half of them the wrong way)
    v = np.arange(256, dtype=np.uint8).view(dt).astype(np.float64)
    v = np.sort(v[np.isfinite(v)])
    mids = (v[1:] + v[:-1]) / 2
    x64 = np.concatenate([mids, mids * (1 + 2.0**-40), mids * (1 - 2.0**-40), rng.standard_normal(100_000) * 100,
                          [1e300, -1e300, 1e-300, np.inf, -np.inf, np.nan]])
    if tuple(int(p) for p in ml_dtypes.__version__.split(".")[:2]) >= (0, 7):
        assert np.array_equal(bits(fp8q.encode(x64, fmt, saturate=False)), bits(x64.astype(dt)))
    # independently of ml_dtypes' version: just beside each tie, the nearer neighbour (exactly
    # representable, so its cast is exact in every version)
    lo, hi = v[:-1], v[1:]
    apart = hi > lo  # not the pair -0, +0
    for side in (1 + 2.0**-40, 1 - 2.0**-40):
        x = mids[apart] * side
        nearer = np.where(np.abs(x - lo[apart]) < np.abs(x - hi[apart]), lo[apart], hi[apart])
        nearer = np.copysign(nearer, x)  # a zero keeps the sign of x (the sort mixes -0 and +0)
        assert np.array_equal(bits(fp8q.encode(x, fmt, saturate=False)), bits(nearer.astype(dt)))
    x16 = rng.standard_normal(100_000).astype(np.float16) * np.float16(100)
    assert np.array_equal(bits(fp8q.encode(x16, fmt, saturate=False)), bits(x16.astype(np.float32).astype(dt)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_encode_saturates(fmt):
    dt = getattr(ml_dtypes, fmt)
    top = float(ml_dtypes.finfo(dt).max)
    x = np.array([1e9, -1e9, np.inf, -np.inf, top, 3.0], dtype=np.float32)
    back = fp8q.decode(fp8q.encode(x, fmt))
    assert back.tolist() == [top, -top, top, -top, top, 3.0]
    assert math.isnan(fp8q.decode(fp8q.encode(np.array([np.nan], np.float32), fmt))[0])


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden_tables(golden, fmt):
    g = golden("standard_encodings.json")["formats"][fmt]
    dec = fp8q.decode(np.arange(256, dtype=np.uint8), fmt)
    for code, want in enumerate(g["decode"]):
        if want is None:
            assert math.isnan(dec[code])
        elif isinstance(want, str):
            assert dec[code] == float(want)
        else:
            assert dec[code] == want and math.copysign(1, dec[code]) == math.copysign(1, want), code
    x = np.array(g["encode_inputs_f32_bits"], dtype=np.uint32).view(np.float32)
    assert np.array_equal(bits(fp8q.encode(x, fmt, saturate=False)), np.array(g["encode_codes"], np.uint8))


def test_any_shape_and_layout():
    x = np.random.default_rng(2).standard_normal((3, 4, 5)).astype(np.float32)
    codes = fp8q.encode(x.T, "float8_e5m2")  # a non-contiguous view
    assert codes.shape == (5, 4, 3)
    assert np.array_equal(bits(codes), bits(np.ascontiguousarray(x.T).astype(ml_dtypes.float8_e5m2)))
    assert fp8q.decode(codes).shape == (5, 4, 3)
    assert fp8q.encode(np.float32(1.0), "float8_e4m3fn").shape == ()
