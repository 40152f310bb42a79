"""Block-scaled formats (MX, NVFP4, generic ELEMENT@K[/SCALE][:RULE]) from Python: quantize,
encode/decode and fp8q.torch.fake_quant.

* Without torch or torchao: a hand-computed MXFP4 example, decode(encode(x)) == quantize(x) for
  every kind of element and scale along every axis, the shapes and dtypes of codes and scales,
  the keywords (block_size, block_axis, scale_rule) against the formats they spell, and the errors.
* With torchao (skipped when it is not importable; CI installs torch but not torchao): quantize
  equals torchao 0.18's `to_mx` + `to_dtype` (FLOOR, CEIL, EVEN, RCEIL) and NVFP4's
  `NVFP4Tensor.to_nvfp4(...).dequantize(torch.float32)` bit for bit, and encode's codes and scales
  equal torchao's `qdata` and `scale` bytes, on random data of moderate magnitude (no block at
  E8M0's bottom scale 2^-127, no RCEIL descale one ulp above a power of two: torchao 0.18's known
  artifacts, documented in crates/fp8q-core/tests/block_torchao_parity.rs).
* With torch: fake_quant's forward equals quantize, its backward is the identity.
"""

import numpy as np
import pytest

import fp8q

# every element kind (FP4, FP6 x2, FP8 x2, INT8, INT4), every scale (E8M0, E4M3 + tensor, F32)
FORMATS = ["mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2", "mxint8", "nvfp4",
           "int4@8/f32", "e2m1@5:rceil", "e3m4@7:even"]
FOUR_BIT = {"mxfp4", "nvfp4", "int4@8/f32", "e2m1@5:rceil"}


def bits(a):
    """The float32 bit patterns of ``a`` (tells -0 from +0)."""
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def assert_bits_equal(got, want, what=""):
    """Equal bit patterns, NaN equal to NaN whatever its sign and payload."""
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    diff = (bits(got) != bits(want)) & ~(np.isnan(got) & np.isnan(want))
    if diff.any():
        i = np.argwhere(diff)[0]
        pytest.fail(f"{what}: {int(diff.sum())} of {diff.size} values differ, first at {tuple(i)}: "
                    f"got {got[tuple(i)]!r}, want {want[tuple(i)]!r}")


def data(shape, seed=0, spread=6):
    """Gaussian values whose magnitude varies by up to 2^±spread from one stretch of 8 values to
    the next (blocks of different scales), with a few zeros."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    flat = x.reshape(-1)
    flat *= np.repeat(2.0 ** rng.integers(-spread, spread + 1, size=-(-flat.size // 8)), 8)[: flat.size]
    flat[:: 37] = 0.0
    return x.astype(np.float32)


# ------------------------------------------------------------------ hand-computed


def test_mxfp4_by_hand():
    x = np.zeros((2, 32), np.float32)
    # block 0: amax 3, X = 2^(floor(log2 3) - 2) = 2^-1; x / X = 0.2, -6, 1.48, 5.8
    #   -> E2M1 0, -6, 1.5, 6 (codes 0x0, 0xf, 0x3, 0x7) -> values 0, -3, 0.75, 3
    x[0, :4] = [0.1, -3.0, 0.74, 2.9]
    # block 1: amax 10, X = 2^(3 - 2) = 2; x / X = 5 (a tie of 4 and 6: to even, 4), 0.15, -0.55
    #   -> 4, 0, -0.5 (codes 0x6, 0x0, 0x9) -> 8, 0, -1; the zeros after them: code 0
    x[1, :3] = [10.0, 0.3, -1.1]
    want = np.zeros_like(x)
    want[0, :4] = [0.0, -3.0, 0.75, 3.0]
    want[1, :3] = [8.0, 0.0, -1.0]
    np.testing.assert_array_equal(fp8q.quantize(x, "mxfp4"), want)

    enc = fp8q.encode(x, "mxfp4")
    assert isinstance(enc, fp8q.BlockEncoding)
    assert enc.codes.dtype == np.uint8 and enc.codes.shape == (2, 16)
    codes = np.zeros((2, 16), np.uint8)
    codes[0, :2] = [0xF0, 0x73]  # two codes per byte, low nibble first
    codes[1, :2] = [0x06, 0x09]
    np.testing.assert_array_equal(enc.codes, codes)
    assert enc.scales.dtype == np.uint8 and enc.scales.shape == (2, 1)
    np.testing.assert_array_equal(enc.scales, [[126], [128]])  # 2^(b - 127)
    assert enc.tensor_scale is None
    assert (enc.format, enc.shape, enc.block_axis) == ("mxfp4", (2, 32), 1)
    np.testing.assert_array_equal(fp8q.decode(enc), want)
    np.testing.assert_array_equal(fp8q.decode(codes, "mxfp4", scales=np.array([[126], [128]], np.uint8)), want)


def test_nvfp4_by_hand():
    # amax 2688 = 448 * 6: tensor scale 1; block 0's amax 6 -> E4M3 block scale 1 (byte 0x38),
    # block 1's amax 2688 -> 448 (byte 0x7e)
    x = np.zeros(32, np.float32)
    x[:3] = [6.0, -1.0, 0.2]
    x[16:18] = [2688.0, -672.0]
    enc = fp8q.encode(x, "nvfp4")
    assert enc.tensor_scale == 1.0
    np.testing.assert_array_equal(enc.scales, np.array([0x38, 0x7E], np.uint8))
    assert enc.codes.shape == (16,)
    np.testing.assert_array_equal(enc.codes[:2], [0xA7, 0x00])  # 6, -1 (0x7, 0xa); 0.2 -> 0
    np.testing.assert_array_equal(enc.codes[8], 0xB7)  # 6, -1.5 (672 / 448): 0x7, 0xb
    want = np.zeros(32, np.float32)
    want[:2] = [6.0, -1.0]
    want[16:18] = [2688.0, -672.0]
    np.testing.assert_array_equal(fp8q.quantize(x, "nvfp4"), want)
    np.testing.assert_array_equal(fp8q.decode(enc), want)


# ------------------------------------------------------------------ encode/decode vs quantize


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_decode_of_encode_is_quantize(fmt, axis):
    x = data((3, 40, 6), seed=1)
    q = fp8q.quantize(x, fmt, block_axis=axis)
    enc = fp8q.encode(x, fmt, block_axis=axis)
    assert_bits_equal(fp8q.decode(enc), q, f"{fmt} axis {axis}")
    # the same from the arrays alone
    raw = fp8q.decode(enc.codes, enc.format, scales=enc.scales, tensor_scale=enc.tensor_scale, shape=enc.shape,
                      block_axis=axis)
    assert_bits_equal(raw, q, f"{fmt} axis {axis} (arrays)")
    # layout: codes, scales, tensor scale
    f = fp8q.Format(fmt)
    k = int(fmt.split("@")[1].split("/")[0].split(":")[0]) if "@" in fmt else (16 if fmt == "nvfp4" else 32)
    a = axis % 3
    scale_shape = list(x.shape)
    scale_shape[a] = -(-x.shape[a] // k)
    assert enc.scales.shape == tuple(scale_shape)
    assert enc.scales.dtype == (np.float32 if fmt.endswith("/f32") else np.uint8)
    assert enc.codes.dtype == np.uint8
    assert enc.codes.shape == ((3, 40, 3) if fmt in FOUR_BIT else x.shape)
    assert (enc.tensor_scale is not None) == (fmt == "nvfp4")
    assert enc.block_axis == a and enc.shape == x.shape
    assert f.n_bits == (4 if fmt in FOUR_BIT else 6 if "mxfp6" in fmt else 8)


def test_four_bit_codes_of_an_odd_last_dimension_are_flat():
    x = data((4, 7), seed=2)
    enc = fp8q.encode(x, "mxfp4", block_size=4)
    assert enc.codes.shape == (14,)  # 28 codes, two per byte, in the tensor's order
    q = fp8q.quantize(x, "mxfp4", block_size=4)
    assert_bits_equal(fp8q.decode(enc), q)
    assert_bits_equal(fp8q.decode(enc.codes, "mxfp4", scales=enc.scales, shape=(4, 7), block_size=4), q)
    with pytest.raises(ValueError, match="shape mismatch"):
        fp8q.decode(enc.codes, "mxfp4", scales=enc.scales, block_size=4)  # (28,) is not (4, 7)


def test_ml_dtypes_scales_and_codes_are_read_as_bytes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = data((4, 64), seed=3)
    enc = fp8q.encode(x, "nvfp4")
    got = fp8q.decode(enc.codes, "nvfp4", scales=enc.scales.view(ml_dtypes.float8_e4m3fn),
                      tensor_scale=np.float32(enc.tensor_scale))
    assert_bits_equal(got, fp8q.decode(enc))
    enc = fp8q.encode(x, "mxfp8_e4m3")
    if hasattr(ml_dtypes, "float8_e8m0fnu"):
        scales = enc.scales.view(ml_dtypes.float8_e8m0fnu)
    else:
        scales = enc.scales
    got = fp8q.decode(enc.codes.view(ml_dtypes.float8_e4m3fn), "mxfp8_e4m3", scales=scales)
    assert_bits_equal(got, fp8q.decode(enc))


# ------------------------------------------------------------------ keywords


def test_keywords_equal_the_formats_they_spell():
    x = data((6, 96), seed=4)
    same = [
        (dict(fmt="mxfp4", block_size=16), "e2m1@16"),
        (dict(fmt="mxfp4", scale_rule="rceil"), "e2m1@32:rceil"),
        (dict(fmt="mxfp8_e4m3", block_size=8, scale_rule="ceil"), "float8_e4m3fn@8:ceil"),
        (dict(fmt="nvfp4", block_size=32), "e2m1@32/e4m3"),
        (dict(fmt="int4@128/f32", block_size=24), "int4@24/f32"),
    ]
    for kw, spelled in same:
        kw = dict(kw)
        fmt = kw.pop("fmt")
        assert_bits_equal(fp8q.quantize(x, fmt, **kw), fp8q.quantize(x, spelled), f"{fmt} {kw}")
        assert fp8q.encode(x, fmt, **kw).format == fp8q.encode(x, spelled).format
    # blocks along axis 0 are blocks along the last axis of the transpose
    for fmt in ("mxfp4", "nvfp4", "mxfp6_e3m2"):
        assert_bits_equal(fp8q.quantize(x, fmt, block_axis=0), fp8q.quantize(np.ascontiguousarray(x.T), fmt).T)
        assert_bits_equal(fp8q.quantize(x, fmt, block_axis=-2), fp8q.quantize(x, fmt, block_axis=0))


def test_an_outlier_changes_only_its_block():
    x = data((4, 128), seed=5, spread=0)
    y = x.copy()
    y[2, 70] = 1e4
    qx, qy = fp8q.quantize(x, "mxfp4"), fp8q.quantize(y, "mxfp4")
    changed = np.argwhere(qx != qy)
    assert len(changed) and all(r == 2 and 64 <= c < 96 for r, c in changed)


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_dtypes_layouts_and_out(fmt):
    x = data((8, 64), seed=6)
    q = fp8q.quantize(x, fmt)
    # float64 rounds to float32 first, float16 widens; the result has x's dtype
    assert_bits_equal(fp8q.quantize(x.astype(np.float64), fmt).astype(np.float32), q)
    h = x.astype(np.float16)
    qh = fp8q.quantize(h, fmt)
    assert qh.dtype == np.float16
    np.testing.assert_array_equal(qh, fp8q.quantize(h.astype(np.float32), fmt).astype(np.float16))
    # a non-contiguous view
    wide = np.zeros((8, 128), np.float32)
    wide[:, ::2] = x
    assert_bits_equal(fp8q.quantize(wide[:, ::2], fmt), q)
    # out=, and out=x in place
    out = np.empty_like(x)
    assert fp8q.quantize(x, fmt, out=out) is out
    assert_bits_equal(out, q)
    y = x.copy()
    fp8q.quantize(y, fmt, out=y)
    assert_bits_equal(y, q)
    # lists work as they do for the other formats
    assert_bits_equal(fp8q.quantize(x.tolist(), fmt).astype(np.float32), q)


def test_non_finite_blocks_and_empty_tensors():
    x = data((2, 64), seed=7)
    x[0, 3] = np.nan
    x[1, 40] = np.inf
    q = fp8q.quantize(x, "mxfp4")
    assert np.isnan(q[0, :32]).all() and np.isnan(q[1, 32:]).all()
    assert np.isfinite(q[0, 32:]).all() and np.isfinite(q[1, :32]).all()
    assert_bits_equal(fp8q.decode(fp8q.encode(x, "mxfp4")), q)
    assert fp8q.quantize(np.zeros((0, 32), np.float32), "mxfp4").shape == (0, 32)
    assert_bits_equal(fp8q.quantize(np.zeros((3, 32), np.float32), "nvfp4"), np.zeros((3, 32)))


# ------------------------------------------------------------------ errors

X = np.ones((4, 64), np.float32)
ENC = fp8q.encode(X, "mxfp4")


@pytest.mark.parametrize("call, exc, msg", [
    (lambda: fp8q.quantize(X, "mxfp5"), ValueError, "unknown format 'mxfp5'"),
    (lambda: fp8q.quantize(X, "e2m1@"), ValueError, "block size"),
    (lambda: fp8q.quantize(X, "mxfp4", block_size=0), ValueError, "block_size: must be at least 1"),
    (lambda: fp8q.quantize(X, "mxfp4", block_size=-3), ValueError, "block_size: must be at least 1"),
    (lambda: fp8q.quantize(X, "mxfp4", block_size=1 << 30), ValueError, "block size"),
    (lambda: fp8q.quantize(X, "mxfp4", block_axis=2), ValueError, "block axis: axis 2 is out of range"),
    (lambda: fp8q.quantize(X, "mxfp4", block_axis=-3), ValueError, "block axis"),
    (lambda: fp8q.quantize(np.float32(1.0), "mxfp4"), ValueError, "block axis"),
    (lambda: fp8q.quantize(X, "mxfp4", maxval=1.0), ValueError, "maxval does not apply to block-scaled formats"),
    (lambda: fp8q.quantize(X, "nvfp4", per_channel=True), ValueError, "per_channel does not apply"),
    (lambda: fp8q.quantize(X, "mxfp4", range="mse"), ValueError, "range='mse' does not apply"),
    (lambda: fp8q.quantize(X, "mxfp4", mantissa_search=True), ValueError, "mantissa_search does not apply"),
    (lambda: fp8q.quantize(X, "mxfp4", scale_rule="up"), ValueError, "scale rule"),
    (lambda: fp8q.quantize(X, "nvfp4", scale_rule="rceil"), ValueError, "scale_rule applies to E8M0"),
    (lambda: fp8q.quantize(X, "e4m3", block_size=32), ValueError, "block_size applies to block-scaled formats only"),
    (lambda: fp8q.quantize(X, "int8", block_axis=0), ValueError, "block_axis applies to block-scaled formats only"),
    (lambda: fp8q.quantize(X, "mxfp4", out=np.ones((4, 32), np.float32)), ValueError, "out has shape"),
    (lambda: fp8q.estimate_range(X, "mxfp4"), ValueError, "block-scaled format: it has no range"),
    (lambda: fp8q.encode(X, "mxfp4", saturate=False), ValueError, "saturate=False does not apply"),
    (lambda: fp8q.encode(X, "int16@32"), ValueError, "at most 8 bits"),
    (lambda: fp8q.encode(X, "mxfp4", block_axis=5), ValueError, "block axis"),
    (lambda: fp8q.encode(X, "float8_e4m3fn", block_size=32), ValueError, "block_size applies"),
    (lambda: fp8q.decode(ENC.codes, "mxfp4"), ValueError, "needs scales="),
    (lambda: fp8q.decode(ENC.codes, "mxfp4", scales=ENC.scales[:2]), ValueError, "shape mismatch"),
    (lambda: fp8q.decode(ENC.codes, "mxfp4", scales=ENC.scales, block_size=16), ValueError, "shape mismatch"),
    (lambda: fp8q.decode(ENC.codes, "nvfp4", scales=np.ones((4, 4), np.uint8)), ValueError, "needs a tensor scale"),
    (lambda: fp8q.decode(ENC.codes, "mxfp4", scales=ENC.scales, tensor_scale=1.0), ValueError,
     "tensor_scale applies to two-level formats"),
    (lambda: fp8q.decode(ENC.codes, "int4@32/f32", scales=ENC.scales), TypeError,
     "unsupported dtype 'uint8' for scales: expected float32"),
    (lambda: fp8q.decode(ENC.codes.astype(np.int16), "mxfp4", scales=ENC.scales), TypeError, "for codes"),
    (lambda: fp8q.decode(ENC, "mxfp4"), ValueError, "fmt cannot be given"),
    (lambda: fp8q.decode(np.zeros(3, np.uint8), "float8_e4m3fn", scales=ENC.scales), ValueError,
     "scales applies to block-scaled formats only"),
])
def test_error(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


# ------------------------------------------------------------------ torchao


@pytest.fixture(scope="module")
def ao():
    pytest.importorskip("torch")
    pytest.importorskip("torchao")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchao.prototype.mx_formats.config import ScaleCalculationMode
        from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx
        from torchao.prototype.mx_formats.nvfp4_tensor import NVFP4Tensor, per_tensor_amax_to_scale
    import torch

    return {"torch": torch, "to_mx": to_mx, "to_dtype": to_dtype, "mode": ScaleCalculationMode,
            "NVFP4Tensor": NVFP4Tensor, "amax_to_scale": per_tensor_amax_to_scale}


def ao_elements(torch):
    return {
        "mxfp8_e4m3": (torch.float8_e4m3fn, 448.0),
        "mxfp8_e5m2": (torch.float8_e5m2, 57344.0),
        "mxfp6_e3m2": ("fp6_e3m2", 28.0),
        "mxfp6_e2m3": ("fp6_e2m3", 7.5),
        "mxfp4": (torch.float4_e2m1fn_x2, 6.0),
    }


def moderate(shape, seed, elem_max, rule):
    """Random values of moderate magnitude (tiles of 32 x 32 scaled by 2^-20 .. 2^20) away from
    torchao 0.18's artifacts in blocks of 32 along either axis: no block at E8M0's bottom scale,
    no RCEIL descale within an ulp above a power of two (checked, so that the comparison is known
    to be free of them)."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    x = rng.standard_normal(shape)
    x *= np.kron(2.0 ** rng.integers(-20, 21, size=(rows // 32, cols // 32)), np.ones((32, 32)))
    x = x.astype(np.float32)
    for blocks in (x.reshape(-1, 32), np.ascontiguousarray(x.T).reshape(-1, 32)):
        amax = np.abs(blocks).max(axis=1)
        assert (amax > 2.0**-100).all()
        if rule == "rceil":
            descale = (amax / np.float32(elem_max)).astype(np.float32)
            assert ((descale.view(np.uint32) & 0x7FFFFF) != 1).all()
    return x


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4"])
@pytest.mark.parametrize("rule", ["floor", "ceil", "even", "rceil"])
def test_mx_equals_torchao(ao, fmt, rule):
    torch = ao["torch"]
    elem, elem_max = ao_elements(torch)[fmt]
    mode = getattr(ao["mode"], rule.upper())
    x = moderate((64, 128), seed=10 * len(fmt) + len(rule), elem_max=elem_max, rule=rule)
    scale, qdata = ao["to_mx"](torch.from_numpy(x.copy()), elem, 32, mode)
    want = ao["to_dtype"](qdata, scale, elem, 32, torch.float32).numpy()
    assert_bits_equal(fp8q.quantize(x, fmt, scale_rule=rule), want, f"{fmt} {rule} quantize")
    # codes and scales are torchao's bytes
    enc = fp8q.encode(x, fmt, scale_rule=rule)
    ao_codes = qdata.contiguous().view(torch.uint8).numpy()
    ao_scales = scale.contiguous().view(torch.uint8).numpy()
    assert enc.codes.shape == ao_codes.shape, (enc.codes.shape, ao_codes.shape)
    np.testing.assert_array_equal(enc.codes, ao_codes)
    np.testing.assert_array_equal(enc.scales, ao_scales.reshape(enc.scales.shape))
    assert enc.scales.size == ao_scales.size
    # and decode reads torchao's arrays
    assert_bits_equal(fp8q.decode(ao_codes, fmt, scales=ao_scales, scale_rule=rule), want, f"{fmt} {rule} decode")
    # blocks along axis 0: torchao on the transpose
    xt = np.ascontiguousarray(x.T)
    scale_t, qdata_t = ao["to_mx"](torch.from_numpy(xt.copy()), elem, 32, mode)
    want_t = ao["to_dtype"](qdata_t, scale_t, elem, 32, torch.float32).numpy().T
    assert_bits_equal(fp8q.quantize(x, fmt, block_axis=0, scale_rule=rule), want_t, f"{fmt} {rule} axis 0")
    enc0 = fp8q.encode(x, fmt, block_axis=0, scale_rule=rule)
    np.testing.assert_array_equal(enc0.scales, scale_t.contiguous().view(torch.uint8).numpy().T)


def test_nvfp4_equals_torchao(ao):
    torch = ao["torch"]
    rng = np.random.default_rng(11)
    x = rng.standard_normal((16, 256))
    x *= np.repeat(2.0 ** rng.integers(-6, 7, size=(16, 16)), 16, axis=1)
    x = x.astype(np.float32)
    t = torch.from_numpy(x.copy())
    s_t = ao["amax_to_scale"](torch.max(torch.abs(t)))
    nv = ao["NVFP4Tensor"].to_nvfp4(t, per_tensor_scale=s_t)
    want = nv.dequantize(torch.float32).numpy()
    assert_bits_equal(fp8q.quantize(x, "nvfp4"), want, "nvfp4 quantize")
    enc = fp8q.encode(x, "nvfp4")
    assert enc.tensor_scale == float(s_t.item())
    ao_codes = nv.qdata.contiguous().view(torch.uint8).numpy()
    ao_scales = nv.scale.contiguous().view(torch.uint8).numpy()
    assert enc.codes.shape == ao_codes.shape == (16, 128)
    np.testing.assert_array_equal(enc.codes, ao_codes)
    assert enc.scales.shape == (16, 16)
    np.testing.assert_array_equal(enc.scales, ao_scales.reshape(16, 16))
    got = fp8q.decode(ao_codes, "nvfp4", scales=ao_scales, tensor_scale=float(s_t.item()))
    assert_bits_equal(got, want, "nvfp4 decode")


# ------------------------------------------------------------------ torch


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("fmt, kw", [
    ("mxfp4", {}),
    ("nvfp4", {}),
    ("mxfp8_e4m3", {"block_axis": 0}),
    ("mxfp6_e2m3", {"block_size": 16, "scale_rule": "rceil"}),
    ("int4@32/f32", {"block_axis": 1}),
])
def test_fake_quant_forward_is_quantize_and_backward_identity(torch, fmt, kw):
    from fp8q.torch import fake_quant

    x = data((6, 64, 3) if kw.get("block_axis") == 1 else (6, 64), seed=12)
    t = torch.from_numpy(x.copy()).requires_grad_()
    y = fake_quant(t, fmt, **kw)
    assert_bits_equal(y.detach().numpy(), fp8q.quantize(x, fmt, **kw), f"{fmt} {kw}")
    g = torch.randn(t.shape, generator=torch.Generator().manual_seed(1))
    y.backward(g)
    assert torch.equal(t.grad, g)
    # without grad: the same values, no graph
    with torch.no_grad():
        assert torch.equal(fake_quant(t, fmt, **kw), y.detach())
    assert not fake_quant(t.detach(), fmt, **kw).requires_grad


def test_fake_quant_dtypes_and_layouts(torch):
    from fp8q.torch import fake_quant

    x = data((8, 64), seed=13)
    q = fp8q.quantize(x, "mxfp4")
    t64 = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    y = fake_quant(t64, "mxfp4")
    assert y.dtype == torch.float64
    assert_bits_equal(y.detach().numpy().astype(np.float32), q)
    y.sum().backward()
    assert torch.equal(t64.grad, torch.ones_like(t64))
    # a non-contiguous tensor (blocks along its last axis all the same)
    tt = torch.from_numpy(np.ascontiguousarray(x.T)).t()
    assert not tt.is_contiguous()
    assert_bits_equal(fake_quant(tt, "mxfp4").numpy(), q)
    # saturated elements pass the gradient too (FLOOR saturates a block maximum of 7 · 2^k)
    s = torch.tensor([7.0, 1.0, -7.0, 0.1] * 8, requires_grad=True)
    ys = fake_quant(s, "mxfp4")
    assert float(ys.detach()[0]) == 6.0 and float(ys.detach()[2]) == -6.0
    ys.backward(torch.arange(32.0))
    assert torch.equal(s.grad, torch.arange(32.0))


@pytest.mark.parametrize("kw, msg", [
    ({"maxval": 1.0}, "maxval does not apply to block-scaled formats"),
    ({"per_channel": True}, "per_channel does not apply"),
    ({"range": "mse"}, "range='mse' does not apply"),
    ({"arithmetic": "reference"}, "arithmetic='reference' does not apply"),
    ({"block_size": 0}, "block_size: must be at least 1"),
    ({"block_axis": 3}, "block axis"),
    ({"scale_rule": "nearest"}, "scale rule"),
])
def test_fake_quant_errors(torch, kw, msg):
    from fp8q.torch import fake_quant

    t = torch.ones(4, 32, requires_grad=True)
    with pytest.raises(ValueError, match=msg):
        fake_quant(t, "mxfp4", **kw)


def test_fake_quant_block_keywords_on_other_formats(torch):
    from fp8q.torch import fake_quant

    with pytest.raises(ValueError, match="block_size applies to block-scaled formats only"):
        fake_quant(torch.ones(4, 32), "e4m3", block_size=32)
    with pytest.raises(ValueError, match="unknown format 'mxfp3'"):
        fake_quant(torch.ones(4, 32), "mxfp3")


def test_sqnr_covers_block_formats():
    """`fp8q.sqnr` puts block formats beside per-tensor ones: no range (maxval None), the storage
    width with the scale's share, the block size and rule keywords, and the Monte-Carlo check."""
    rows = fp8q.sqnr(["gauss:sigma=1,clip=10"], ["mxfp4", "nvfp4", "e4m3"], verify=200_000)
    by = {r["format"]: r for r in rows}
    assert by["mxfp4"]["maxval"] is None and by["e4m3"]["maxval"] > 0
    assert by["mxfp4"]["bits_per_element"] == 4.25 and by["nvfp4"]["bits_per_element"] == 4.5
    assert by["nvfp4"]["tensor_amax"] > 3 and by["mxfp4"]["tensor_amax"] is None
    for r in rows:
        # analytic within 5 standard errors of the Monte-Carlo
        assert abs(r["mse"] - r["mc_mse"]) < 5 * r["mc_mse_stderr"] + 1e-12, r
    k16 = fp8q.sqnr(["gauss:sigma=1,clip=10"], "mxfp4", block_size=16, scale_rule="rceil")
    assert k16[0]["format"] == "e2m1@16:rceil"
    assert k16[0]["sqnr_db"] != by["mxfp4"]["sqnr_db"]
    for kwargs, needle in [({"block_size": 0}, "block_size"), ({"scale_rule": "up"}, "rule"),
                           ({"formats": "e4m3", "block_size": 16}, "block")]:
        args = {"dists": "gauss:sigma=1", "formats": "mxfp4", **kwargs}
        with pytest.raises(ValueError, match=needle):
            fp8q.sqnr(**args)
