"""Every bad input raises ValueError/TypeError with the CLI's message; nothing crashes."""

import subprocess

import numpy as np
import pytest

import fp8q

X = np.ones((4, 5), dtype=np.float32)


@pytest.mark.parametrize("call, exc, msg", [
    (lambda: fp8q.quantize(X, "fp8"), ValueError, "unknown format 'fp8': expected eXmY"),
    (lambda: fp8q.quantize(X, "e0m7"), ValueError, "unknown format|exponent"),
    (lambda: fp8q.quantize(X, "e4m0"), ValueError, "mantissa bit"),
    (lambda: fp8q.quantize(X, "int99"), ValueError, "bits"),
    (lambda: fp8q.quantize(X.astype(np.int32), "e4m3"), TypeError, "unsupported dtype 'int32': expected float32, float64 or float16"),
    (lambda: fp8q.quantize(X.astype(np.complex64), "e4m3"), TypeError, "unsupported dtype 'complex64'"),
    (lambda: fp8q.quantize("abc", "e4m3"), TypeError, "NumPy array"),
    (lambda: fp8q.quantize(X, "e4m3", maxval=[1.0, 2.0]), ValueError, "maxval has 2 values but x has 4 channel"),
    (lambda: fp8q.quantize(np.float32(1.0), "e4m3", maxval=[1.0, 2.0]), ValueError, "at least one dimension"),
    (lambda: fp8q.quantize(np.float32(1.0), "e4m3", per_channel=True), ValueError, "at least one dimension"),
    (lambda: fp8q.quantize(X, "e4m3", maxval=0.0), ValueError, "maxval must be positive and finite"),
    (lambda: fp8q.quantize(X, "e4m3", maxval=np.inf), ValueError, "maxval must be positive and finite"),
    (lambda: fp8q.quantize(X, "e4m3", maxval=[]), ValueError, "maxval is empty"),
    (lambda: fp8q.quantize(X, "e4m3", maxval="1"), TypeError, "maxval must be a number"),
    (lambda: fp8q.quantize(X, "e4m3", range="nope"), ValueError, "invalid range method: 'nope'"),
    (lambda: fp8q.quantize(X, "e4m3", maxval=1.0, range="mse"), ValueError, "maxval fixes the range"),
    (lambda: fp8q.quantize(X, "e4m3", mantissa_search=True), ValueError, "mantissa_search works with range='mse' only"),
    (lambda: fp8q.quantize(X, "int8", range="mse", mantissa_search=True), ValueError, "needs a flexible-bias FP format"),
    (lambda: fp8q.quantize(X, "e4m3", out=np.ones((4, 5), np.float64)), TypeError, "out has dtype 'float64'"),
    (lambda: fp8q.quantize(X, "e4m3", out=np.ones((5, 4), np.float32)), ValueError, "out has shape"),
    (lambda: fp8q.quantize(X, "e4m3", out=np.ones((5, 4), np.float32).T), ValueError, "C-contiguous"),
    (lambda: fp8q.quantize(np.zeros(0, np.float32), "e4m3"), ValueError, "cannot estimate a range of 0 elements"),
    (lambda: fp8q.quantize(np.full(3, np.nan, np.float32), "e4m3"), ValueError, "no finite values"),
    (lambda: fp8q.encode(X, "e4m3"), ValueError, "has no fixed 8-bit encoding"),
    (lambda: fp8q.encode(X, "float8_e4m3"), ValueError, "unknown format"),
    (lambda: fp8q.decode(np.zeros(3, np.int8), "float8_e5m2"), TypeError, "unsupported dtype 'int8' for codes"),
    (lambda: fp8q.decode(np.zeros(3, np.uint8)), ValueError, "decode needs fmt"),
    (lambda: fp8q.Format("e4m3", maxval=-1.0), ValueError, "maxval must be positive and finite"),
    (lambda: fp8q.Format("x"), ValueError, "unknown format 'x'"),
    (lambda: fp8q.estimate_range(X, "e4m3", "bogus"), ValueError, "invalid range method"),
    (lambda: fp8q.sqnr(dists="cauchy"), ValueError, "invalid distribution 'cauchy': unknown family"),
    (lambda: fp8q.sqnr(formats="e9"), ValueError, "unknown format 'e9'"),
    (lambda: fp8q.sqnr(maxval=-2.0), ValueError, "not a positive finite number"),
    (lambda: fp8q.sqnr(range_search="grid"), ValueError, "invalid range_search"),
    (lambda: fp8q.sqnr(range_search="samples", samples=1), ValueError, "at least 2"),
    (lambda: fp8q.sqnr(points_per_octave=2), ValueError, "points_per_octave"),
    (lambda: fp8q.sqnr(dists=3), TypeError, "dists must be a string"),
])
def test_error(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_read_only_out_and_partial_overlap():
    ro = np.ones(20, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        fp8q.quantize(np.ones(20, np.float32), "e4m3", out=ro)
    buf = np.ones(30, np.float32)
    with pytest.raises(ValueError, match="pass out=x itself"):
        fp8q.quantize(buf[:20], "e4m3", out=buf[5:25])
    # the input stays untouched after an error
    x = np.linspace(-3, 3, 20, dtype=np.float32)
    keep = x.copy()
    with pytest.raises(ValueError):
        fp8q.quantize(x, "e4m3", maxval=[1.0] * 3, out=x)
    assert np.array_equal(x, keep)


def test_messages_are_the_clis(cli, tmp_path):
    """The same wrong input gives the same message in Python and on the command line."""
    path = tmp_path / "x.npy"
    np.save(path, X)
    for py_call, args in [
        (lambda: fp8q.quantize(X, "fp8"), ["quantize", str(path), "--format", "fp8"]),
        (lambda: fp8q.quantize(X, "e4m3", range="nope"), ["quantize", str(path), "--range", "nope"]),
    ]:
        with pytest.raises(ValueError) as e:
            py_call()
        res = subprocess.run([cli, *args], capture_output=True, text=True)
        assert res.returncode == 2
        assert str(e.value) in res.stderr
