"""Cross-check of fp8q's FP8 fake quantization against an implementation that is not ours:
brevitas' minifloat quantizers (brevitas.core.quant.float.FloatQuant behind its injector API).

How the formats map. fp8q's paper formats (e4m3, e5m2, e3m4, e2m5) have every bit pattern finite
and a bias that follows from the maximum α: their grid is the default-bias grid scaled by
γ = α / maxval(b0) (docs/formats.md). In brevitas that is a minifloat with exponent_bias = b0 =
2^(e-1), no inf and no NaN codes, saturating, under a scale of α / maxval(b0) — which its
"float scaling" computes itself from a max statistic (weights: per output channel, the channel's
absolute maximum) or a constant (inputs: scaling_init = α, fp8q's calibrated maximum).
float8_e4m3fn and float8_e5m2 are brevitas' own OCP quantizers (FpOCP*: NaN at S.1111.111 for
E4M3, inf and NaN codes for E5M2, bias 2^(e-1) - 1), saturating, scaled so that the largest
finite value (448, 57344) is α: fp8q's convention for these encodings.

What is equal, and what is not:

* α a power of two times the format's largest value: both sides are exact, and every value
  (ties, subnormals, saturation, -0) is equal bit for bit — tested on every grid point, every
  midpoint and its neighbours, at scales down to f32 subnormal results (with brevitas'
  scaling_min_val, 1e-10 by default, turned off: with it brevitas clamps tiny scales), on
  per-channel weights and through a whole model (quantized weights, inputs and the output).
* arbitrary α: brevitas computes scale = fl32(α / max), then fl32(x / scale), rounds that to the
  default grid and multiplies back in float32; fp8q rounds x to the exact grid γ·G0 and returns
  the float32 nearest the exact grid value. So (1) where both pick the same grid point the values
  differ by at most one float32 ulp (the scale's rounding); (2) brevitas picks the neighbouring
  grid point exactly where the float32 quotient fl32(x / fl32(α / max)) — recomputed here in
  numpy — rounds to another grid point than the exact x / γ: within about 2^-23 (relative) of a
  midpoint. The tests count these elements and check each one: one grid step apart, fp8q's the
  nearest in exact rational arithmetic.
* ±inf inputs: fp8q saturates them to ±α; brevitas gives NaN (inf / inf inside its
  float_internal_scale path), even in its saturating mode. Tested as such.

Skipped when torch or brevitas is missing."""

import copy
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    brevitas = pytest.importorskip("brevitas")
    import brevitas.nn as qnn  # noqa: E402
    from brevitas.inject.enum import ScalingPerOutputType  # noqa: E402
    from brevitas.quant.float_base import ScaledFloatActBase, ScaledFloatWeightBase  # noqa: E402
    from brevitas.quant.float_quant_ocp import FpOCPActPerTensorFloat, FpOCPWeightPerChannelFloat  # noqa: E402

import fp8q  # noqa: E402
import fp8q.torch as ft  # noqa: E402
from torch import nn  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

# name: (exponent bits, mantissa bits, paper (all codes finite, bias 2^(e-1)) or OCP)
FORMATS = {"e4m3": (4, 3, "paper"), "e5m2": (5, 2, "paper"), "e3m4": (3, 4, "paper"), "e2m5": (2, 5, "paper"),
           "float8_e4m3fn": (4, 3, "ocp"), "float8_e5m2": (5, 2, "ocp")}


def magnitudes(fmt):
    """The non-negative values of the format's unscaled grid, ascending, in code order (so a
    value's index has the parity of its mantissa code), from this test's own enumeration."""
    e, m, kind = FORMATS[fmt]
    bias = 2 ** (e - 1) if kind == "paper" else 2 ** (e - 1) - 1
    vals = [f / 2 ** m * 2.0 ** (1 - bias) for f in range(2 ** m)]
    top = 2 ** e - 1 if (kind == "paper" or e == 4) else 2 ** e - 2  # OCP E5M2: top exponent is inf/NaN
    for c in range(1, top + 1):
        for f in range(2 ** m):
            if kind == "ocp" and e == 4 and c == top and f == 2 ** m - 1:
                continue  # OCP E4M3: S.1111.111 is NaN
            vals.append(2.0 ** (c - bias) * (1 + f / 2 ** m))
    return np.array(vals)


GRID_MAX = {f: float(magnitudes(f)[-1]) for f in FORMATS}


def test_grid_maxima():
    assert GRID_MAX == {"e4m3": 240.0, "e5m2": 57344.0, "e3m4": 15.5, "e2m5": 3.9375, "float8_e4m3fn": 448.0,
                        "float8_e5m2": 57344.0}


def _attrs(fmt):
    e, m, kind = FORMATS[fmt]
    a = dict(bit_width=1 + e + m, exponent_bit_width=e, mantissa_bit_width=m, scaling_min_val=None)
    if kind == "paper":
        a.update(exponent_bias=2 ** (e - 1), saturating=True, inf_values=None, nan_values=None)
    return a


def weight_quant(fmt):
    """brevitas per-output-channel weight quantizer: scale = max |W_c| / largest value."""
    base = ScaledFloatWeightBase if FORMATS[fmt][2] == "paper" else FpOCPWeightPerChannelFloat
    return type(f"W_{fmt}", (base,), dict(_attrs(fmt), scaling_per_output_type=ScalingPerOutputType.CHANNEL))


def input_quant(fmt, maxval):
    """brevitas per-tensor activation quantizer with a constant scale maxval / largest value."""
    base = ScaledFloatActBase if FORMATS[fmt][2] == "paper" else FpOCPActPerTensorFloat
    return type(f"A_{fmt}", (base,), dict(_attrs(fmt), scaling_impl_type="const", scaling_init=float(maxval),
                                          scaling_per_output_type=ScalingPerOutputType.TENSOR))


def value(t):
    return (t.value if hasattr(t, "value") else t).detach()


def brevitas_quantize(x, fmt, maxval):
    q = qnn.QuantIdentity(act_quant=input_quant(fmt, maxval), return_quant_tensor=False)
    with torch.no_grad():
        return value(q(torch.from_numpy(x))).numpy()


def same_bits(a, b):
    return np.asarray(a, np.float32).view(np.int32) == np.asarray(b, np.float32).view(np.int32)


def probe_values(fmt):
    """Every grid value, every midpoint between neighbours (a tie) and the float32 numbers either
    side of it, values beyond the maximum, both signs, ±0 and some random values."""
    g = magnitudes(fmt)
    mid = ((g[1:] + g[:-1]) / 2).astype(np.float32)
    beyond = np.array([g[-1] * 1.0001, g[-1] * 1.03, g[-1] * 2, g[-1] * 1e3], np.float32)
    rnd = np.random.default_rng(0).standard_normal(2000).astype(np.float32) * np.float32(g[-1] / 3)
    pos = np.concatenate([g.astype(np.float32), mid, np.nextafter(mid, np.float32(np.inf)),
                          np.nextafter(mid, np.float32(0)), beyond, np.abs(rnd)])
    return np.concatenate([pos, -pos, np.float32([0.0, -0.0])]).astype(np.float32)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("k", [-125, -20, -3, 0, 9])
def test_power_of_two_scales_bit_exact(fmt, k):
    """α = largest value · 2^k: every result equal bit for bit (k = -125 puts the grid's small
    values among float32 subnormals)."""
    alpha = GRID_MAX[fmt] * 2.0 ** k
    x = (probe_values(fmt) * np.float32(2.0 ** k)).astype(np.float32)
    assert np.isfinite(x).all()
    got = fp8q.quantize(x, fmt, maxval=alpha)
    want = brevitas_quantize(x, fmt, alpha)
    bad = ~same_bits(got, want)
    assert not bad.any(), f"{bad.sum()} of {x.size} differ, e.g. x={x[bad][:3]} fp8q={got[bad][:3]} brevitas={want[bad][:3]}"
    # the grid is hit exactly: grid points stay, and ties went somewhere on the grid
    g = magnitudes(fmt)
    np.testing.assert_array_equal(got[:g.size], (g * 2.0 ** k).astype(np.float32))


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_infinities_saturate_in_fp8q_and_are_nan_in_brevitas(fmt):
    x = np.float32([np.inf, -np.inf, np.nan, 0.0, -0.0])
    alpha = GRID_MAX[fmt] / 8
    got = fp8q.quantize(x, fmt, maxval=alpha)
    want = brevitas_quantize(x, fmt, alpha)
    np.testing.assert_array_equal(got[:2], np.float32([alpha, -alpha]))
    assert np.isnan(got[2]) and same_bits(got[3:], x[3:]).all()
    assert np.isnan(want[:3]).all() and same_bits(want[3:], x[3:]).all()


# --- arbitrary scales: the bound ---------------------------------------------------------------


def _nearest_code(y, fmt):
    """Signed index of the grid value nearest |y| (ties to the even code, beyond the top: the
    top), y float64 on the unscaled grid."""
    g = magnitudes(fmt)
    a = np.minimum(np.abs(y), g[-1])
    hi = np.clip(np.searchsorted(g, a), 1, g.size - 1)
    lo = hi - 1
    dlo, dhi = a - g[lo], g[hi] - a
    idx = np.where(dlo < dhi, lo, np.where(dhi < dlo, hi, np.where(lo % 2 == 0, lo, hi)))
    return np.where(y < 0, -idx, idx)


def _code_of(v, gamma, fmt):
    """The grid point a quantized value stands for (robust: values are within 2^-23 of it)."""
    return _nearest_code(v.astype(np.float64) / gamma, fmt)


def check_against_brevitas(x, fmt, maxval, got, want, what):
    """got = fp8q's values, want = brevitas' for input x (float32) and range maxval (per tensor
    or one per channel along axis 0). Asserts the bound of the module docstring and returns
    (elements, elements on another grid point, elements one ulp apart)."""
    gmax = GRID_MAX[fmt]
    mv = np.asarray(maxval, np.float64).reshape((-1,) + (1,) * (x.ndim - 1)) if np.ndim(maxval) else maxval
    gamma = np.asarray(mv, np.float64) / gmax
    gamma = np.broadcast_to(gamma, x.shape)
    x64 = x.astype(np.float64)
    cf, cb = _code_of(got, gamma, fmt), _code_of(want, gamma, fmt)
    g = magnitudes(fmt)
    # fp8q: the nearest grid point to the exact x / γ, its value the float32 nearest γ·g
    exact = _nearest_code(x64 / gamma, fmt)
    suspicious = np.flatnonzero(exact != cf)
    for i in suspicious:  # float64 may misjudge a quotient extremely close to a midpoint: decide exactly
        xi, mi = Fraction(float(x.flat[i])), Fraction(float(np.broadcast_to(mv, x.shape).flat[i]))
        y = xi * gmax / mi if mi else Fraction(0)
        c = int(cf.flat[i])
        d_f = abs(abs(y) - Fraction(float(g[abs(c)])))
        d_e = abs(abs(y) - Fraction(float(g[abs(int(exact.flat[i]))])))
        assert d_f <= d_e, f"{what}: fp8q is not on the nearest grid point at {i}"
        exact.flat[i] = c
    assert (exact == cf).all(), what
    # magnitude: the float32 nearest γ·g (float64 product, then one rounding); sign: x's (odd)
    np.testing.assert_array_equal(np.abs(got), (g[np.abs(cf)] * gamma).astype(np.float32),
                                  err_msg=f"{what}: fp8q's value is not the float32 nearest γ·g")
    assert (np.signbit(got) == np.signbit(x)).all(), what
    # brevitas: its own float32 arithmetic, replayed in numpy
    scale = (np.broadcast_to(np.asarray(mv, np.float32), x.shape) / np.float32(gmax)).astype(np.float32)
    quotient = (x / scale).astype(np.float32)
    predicted = _nearest_code(quotient.astype(np.float64), fmt)
    np.testing.assert_array_equal(cb, predicted, err_msg=f"{what}: brevitas' grid point is not that of fl32(x/scale)")
    other = cf != cb
    # each disagreement: one grid step, the exact quotient next to a midpoint
    assert (np.abs(cf[other] - cb[other]) == 1).all(), what
    y = np.abs(x64 / gamma)[other]
    lo = np.minimum(np.abs(cf[other]), np.abs(cb[other]))
    mid = (g[lo] + g[lo + 1]) / 2
    assert (np.abs(y - mid) <= 2.0 ** -22 * mid).all(), f"{what}: a disagreement away from a rounding tie"
    # agreement on the grid point: values at most one float32 ulp apart
    same = ~other
    ulp = np.spacing(np.abs(got[same]).astype(np.float32))
    apart = np.abs(got[same].astype(np.float64) - want[same].astype(np.float64))
    assert (apart <= ulp).all(), f"{what}: same grid point, values more than one ulp apart"
    return x.size, int(other.sum()), int((apart > 0).sum())


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_arbitrary_maxval_within_bound(fmt):
    rng = np.random.default_rng(1)
    total = [0, 0, 0]
    for alpha in (3.7, 0.0123456, 1234.567, float(np.float32(np.pi)), 1.0):
        alpha = float(np.float32(alpha))
        x = (rng.standard_normal(50_000) * alpha / 2.5).astype(np.float32)
        got = fp8q.quantize(x, fmt, maxval=alpha)
        want = brevitas_quantize(x, fmt, alpha)
        total = [a + b for a, b in zip(total, check_against_brevitas(x, fmt, alpha, got, want, f"{fmt} {alpha}"))]
    print(f"{fmt}: {total[0]} elements, {total[1]} on another grid point, {total[2]} one ulp apart")
    assert total[1] < total[0] * 1e-3


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_arbitrary_maxval_near_ties(fmt):
    """Inputs a few float32 ulps either side of every scaled midpoint: here brevitas' float32
    quotient does cross midpoints, and every crossing is the one its arithmetic predicts."""
    g = magnitudes(fmt)
    mid = (g[1:] + g[:-1]) / 2
    total = [0, 0, 0]
    for alpha in (3.7, 0.0123456, 1234.567):
        alpha = float(np.float32(alpha))
        centre = (mid * alpha / GRID_MAX[fmt]).astype(np.float32)
        x = [centre]
        up, down = centre.copy(), centre.copy()
        for _ in range(3):
            up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(0))
            x += [up, down]
        x = np.concatenate(x)
        x = np.concatenate([x, -x])
        got = fp8q.quantize(x, fmt, maxval=alpha)
        want = brevitas_quantize(x, fmt, alpha)
        total = [a + b for a, b in zip(total, check_against_brevitas(x, fmt, alpha, got, want, f"{fmt} {alpha}"))]
    print(f"{fmt} near ties: {total[0]} elements, {total[1]} on another grid point, {total[2]} one ulp apart")
    assert total[1] > 0  # the case the bound describes does occur


# --- whole layers and a model ------------------------------------------------------------------


def net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 10)).eval()


def batches(n, seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, 12, 12, generator=gen) for _ in range(n)]


def loop(bs):
    def forward_loop(model):
        for b in bs:
            model(b)
    return forward_loop


def brevitas_model(model, fmt, maxvals):
    """A copy with every Conv2d / Linear replaced by brevitas' QuantConv2d / QuantLinear with the
    same parameters, per-channel weight quantizer and constant input scale maxvals[name]."""
    model = copy.deepcopy(model)
    for name, m in list(model.named_children()):
        if isinstance(m, nn.Conv2d):
            b = qnn.QuantConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                                m.groups, bias=m.bias is not None, weight_quant=weight_quant(fmt),
                                input_quant=input_quant(fmt, maxvals[name]), return_quant_tensor=False)
        elif isinstance(m, nn.Linear):
            b = qnn.QuantLinear(m.in_features, m.out_features, bias=m.bias is not None,
                                weight_quant=weight_quant(fmt), input_quant=input_quant(fmt, maxvals[name]),
                                return_quant_tensor=False)
        else:
            continue
        with torch.no_grad():
            b.weight.copy_(m.weight)
            if m.bias is not None:
                b.bias.copy_(m.bias)
        setattr(model, name, b)
    return model.eval()


def quantized_inputs(model, x, names, get):
    """{name: (layer input, quantized input)} of one forward pass; get(module) is the input quantizer."""
    seen, hooks = {}, []
    mods = dict(model.named_modules())
    for n in names:
        hooks.append(mods[n].register_forward_pre_hook(
            lambda m, a, n=n: seen.__setitem__(n, (a[0].detach().clone(), value(get(m)(a[0]))))))
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    return seen, out


def power_of_two_weights(model, fmt):
    """Scale each output channel so that its absolute maximum is (largest value) · 2^k exactly."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                w = m.weight.view(m.weight.shape[0], -1)
                amax = w.abs().amax(1, keepdim=True)
                target = GRID_MAX[fmt] * torch.exp2(torch.round(torch.log2(amax / GRID_MAX[fmt])))
                w.copy_(w / amax * target)
                assert torch.equal(w.abs().amax(1, keepdim=True), target)
    return model


def compare_model(fmt, power_of_two):
    model = net()
    if power_of_two:
        power_of_two_weights(model, fmt)
    calib, test = batches(2, seed=1), batches(1, seed=2)[0]
    q = ft.quantize(model, loop(calib), weights=fmt, activations=fmt)
    names = [n for n, m in q.named_modules() if hasattr(m, "input_quantizer")]
    assert names == ["0", "2", "6", "8"]
    if power_of_two:  # input ranges: the calibrated maximum rounded up to (largest value) · 2^k
        states = ft.save_states(q)
        for n in names:
            s = states["quantizers"][f"{n}.input"]
            s["maxval"] = GRID_MAX[fmt] * 2.0 ** math.ceil(math.log2(s["maxval"] / GRID_MAX[fmt]))
        ft.load_states(q, states)
    mods = dict(q.named_modules())
    maxvals = {n: mods[n].input_quantizer.maxval for n in names}
    bq = brevitas_model(model, fmt, maxvals)
    bmods = dict(bq.named_modules())
    stats = np.zeros(3, int)
    for n in names:
        w = model.get_submodule(n).weight.detach().numpy()
        with torch.no_grad():
            got = mods[n].weight_quantizer(mods[n].weight).numpy()
        want = value(bmods[n].quant_weight()).numpy()
        np.testing.assert_array_equal(got, fp8q.quantize(w, fmt, per_channel=True))
        if power_of_two:
            assert same_bits(got, want).all(), n
        else:
            amax = np.abs(w.reshape(w.shape[0], -1)).max(1)
            stats += check_against_brevitas(w, fmt, amax, got, want, f"{n}.weight")
    fq, out_f = quantized_inputs(q, test, names, lambda m: m.input_quantizer)
    bqi, out_b = quantized_inputs(bq, test, names, lambda m: m.input_quant)
    for n in names:
        x, got = fq[n]
        xb, want = bqi[n]
        if power_of_two:
            assert torch.equal(x, xb), n  # the same operands so far, so the same layer inputs
            assert same_bits(got.numpy(), want.numpy()).all(), n
        else:
            stats += check_against_brevitas(xb.numpy(), fmt, maxvals[n], ft.fake_quant(xb, fmt, maxvals[n],
                                            arithmetic="exact").numpy(), want.numpy(), f"{n}.input")
    return out_f, out_b, stats


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_model_power_of_two_scales_bit_exact(fmt):
    """fp8q.torch.quantize and the same network of brevitas QuantConv2d / QuantLinear layers: equal
    quantized weights, inputs and outputs, bit for bit."""
    out_f, out_b, _ = compare_model(fmt, power_of_two=True)
    assert torch.equal(out_f, out_b)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_model_calibrated_scales_within_bound(fmt):
    """Calibrated ranges and weights as they are: the bound of the module docstring on every
    quantized weight and input; the outputs agree closely."""
    out_f, out_b, (n, other, ulp) = compare_model(fmt, power_of_two=False)
    rel = float((out_f - out_b).norm() / out_b.norm())
    print(f"{fmt}: {n} quantized elements, {other} on another grid point, {ulp} one ulp apart; "
          f"output relative L2 difference {rel:.2e}")
    assert other <= n * 2e-3
    assert rel < 1e-3
