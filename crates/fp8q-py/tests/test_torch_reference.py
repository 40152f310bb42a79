"""fp8q.torch's reference arithmetic against the reference formula typed out in torch
(reference_formula.py, evaluated by the installed torch): forward values and the gradients for
x, maxval and the mantissa bits must be bit-identical (compared as int32 bit patterns, so -0.0
differs from +0.0). Skipped when torch is not importable."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fp8q.torch as ft  # noqa: E402
from fp8q.torch import fake_quant, quantize_to_fp8_ste_MM  # noqa: E402
from reference_formula import reference_fp_quant  # noqa: E402


def mismatches(a, b):
    """Elements whose float32 bit patterns differ (NaN matches NaN whatever its payload)."""
    a, b = a.reshape(-1), b.reshape(-1)
    both_nan = torch.isnan(a) & torch.isnan(b)
    return int(((a.view(torch.int32) != b.view(torch.int32)) & ~both_nan).sum())


def run(f, x, n_bits, maxval, mb, sign_bits, g):
    xx = x.detach().clone().requires_grad_()
    mv = maxval.detach().clone().requires_grad_()
    b = mb.detach().clone().requires_grad_()
    y = f(xx, n_bits, mv, b, sign_bits)
    if g is None:
        y.sum().backward()  # an expanded (stride-0) incoming gradient
    else:
        y.backward(g)
    return y.detach(), xx.grad, mv.grad, b.grad


def assert_identical(x, n_bits, maxval, mb, sign_bits, g, kernel=True):
    """Reference formula vs quantize_to_fp8_ste_MM: values and the three gradients, bit for bit;
    by default also that fp8q's kernel (not the torch fallback) did the work."""
    before = ft.STATS["kernel"]
    ref = run(reference_fp_quant, x, n_bits, maxval, mb, sign_bits, g)
    got = run(quantize_to_fp8_ste_MM, x, n_bits, maxval, mb, sign_bits, g)
    if kernel:
        assert ft.STATS["kernel"] == before + 1, "fp8q's kernel was not used"
    counts = {name: mismatches(r, f) for name, r, f in zip(("y", "x.grad", "maxval.grad", "mb.grad"), ref, got)}
    assert counts == {"y": 0, "x.grad": 0, "maxval.grad": 0, "mb.grad": 0}, counts
    return ref


def mixture(n, maxval, gen):
    """Normal and heavy-tailed values around the range, exact zeros of both signs, the bounds,
    values beyond them, infinities and denormals, shuffled."""
    m = float(maxval)
    parts = [
        torch.randn(n // 2, generator=gen) * m / 2,
        torch.randn(n // 4, generator=gen) * torch.exp(torch.randn(n // 4, generator=gen) * 3) * m / 4,
        torch.tensor([0.0, -0.0, m, -m, float("inf"), float("-inf"), 1e-40, -1e-40, 1e-45, -3e-39] * 10),
        (torch.rand(n // 50, generator=gen) - 0.5) * 2e-38,  # denormals
        torch.randn(n // 20, generator=gen) * 4 * m,  # clamped
    ]
    x = torch.cat(parts)
    x = torch.cat([x, torch.randn(n - x.numel(), generator=gen)]) if x.numel() < n else x[:n]
    return x[torch.randperm(n, generator=gen)]


def default_max(e, mant, sign_bits):
    """The reference's default maxval (integer bias) for e exponent and mant mantissa bits."""
    return (2 - 2.0**-mant) * 2.0 ** (2**e - 1 - 2 ** (e - 1)) if e else 2 - 2.0**-mant


CASES = [(s, m) for s in (1, 0) for m in range(1, 8)]


def pow_sensitive(mant, sign_bits, count, seed=0):
    """maxvals (float32) for which torch's scalar pow gives another scale than its vectorized
    pow for at least one binade (about 2 in 100 maxvals): the elements of the scalar tails of
    torch's loops then have other values, which the kernel must reproduce."""
    gen = torch.Generator().manual_seed(seed)
    M = torch.tensor([float(mant)])
    E = 8 - sign_bits - M
    found = []
    while len(found) < count:
        mv = torch.exp(torch.rand(500, generator=gen) * 9 - 4.5).reshape(-1, 1)
        bias = 2**E - torch.log2(mv) + torch.log2(2 - 2 ** (-M)) - 1
        lo = -mv.reshape(-1) if sign_bits else torch.zeros(500)
        _, vec, sca = ft._tables(lo, mv.reshape(-1), bias.reshape(-1), M)
        differ = (vec.view(np.int32) != sca.view(np.int32)).any(1)
        found += mv.reshape(-1)[torch.from_numpy(differ)].tolist()
    return found[:count]


@pytest.mark.parametrize("sign_bits,mant", CASES)
def test_per_tensor_bit_identical(sign_bits, mant):
    """2M elements per maxval: the default maxval (integer bias) and non-integer biases."""
    gen = torch.Generator().manual_seed(100 * sign_bits + mant)
    e = 8 - sign_bits - mant
    for maxval in (default_max(e, mant, sign_bits), 3.7, pow_sensitive(mant, sign_bits, 1)[0]):
        n = 2_000_003  # not a multiple of the vector width: scalar tails in every loop
        x = mixture(n, maxval, gen)
        if sign_bits == 0:
            x = torch.where(torch.rand(n, generator=gen) < 0.3, -x.abs(), x.abs())
        g = torch.randn(n, generator=gen)
        assert_identical(x, 8, torch.tensor([maxval]), torch.tensor([float(mant)]), sign_bits, g)


@pytest.mark.parametrize("sign_bits,mant", CASES)
def test_per_channel_bit_identical(sign_bits, mant):
    """64 channels of 31249 elements (rows not a multiple of the vector width), maxval drawn
    over four decades (non-integer biases), 2-D and 4-D tensors."""
    gen = torch.Generator().manual_seed(1000 + 100 * sign_bits + mant)
    c = 64
    maxval = torch.exp(torch.rand(c, generator=gen) * 9 - 4.5)
    maxval[::8] = torch.tensor(pow_sensitive(mant, sign_bits, 8))
    x = torch.cat([mixture(31249, float(m), gen) for m in maxval]).reshape(c, 31249)
    g = torch.randn(x.shape, generator=gen)
    mb = torch.tensor([float(mant)])
    assert_identical(x, 8, maxval, mb, sign_bits, g)
    x4 = x[:, :31248].reshape(c, 7, 4464, 1)[:, :, :4463].contiguous()
    assert_identical(x4, 8, maxval, mb, sign_bits, None)


def grid_probes(maxval, mant, sign_bits, k=3):
    """Adversarial inputs from the reference's own output: every value of its grid and the
    midpoints between neighbours, each with the k float32 patterns on either side; and the
    patterns around the binade thresholds of fp8q's table (where torch's log2 + bias crosses an
    integer)."""
    n_bits = 8
    sweep = torch.linspace(-1.2 * maxval, 1.2 * maxval, 2_000_001)
    with torch.no_grad():
        grid = torch.unique(reference_fp_quant(sweep, n_bits, torch.tensor([maxval]), torch.tensor([float(mant)]),
                                               sign_bits)).double()
    mids = ((grid[1:] + grid[:-1]) / 2).float()
    M = torch.clamp(torch.round(torch.tensor([float(mant)])), 1, n_bits - sign_bits)
    E = n_bits - sign_bits - M
    mv = torch.tensor([maxval])
    bias = 2**E - torch.log2(mv) + torch.log2(2 - 2 ** (-M)) - 1
    lo = -mv if sign_bits else torch.zeros(1)
    thr, _, _ = ft._tables(lo, mv, bias.reshape(-1), M.reshape(-1))
    thr = torch.from_numpy(thr.view(np.float32).copy()).reshape(-1)
    thr = thr[torch.isfinite(thr)]
    centres = torch.cat([grid.float(), mids, thr, -thr])
    bits = centres.view(torch.int32).to(torch.int64)
    # step through float32 patterns (for negative values too: a pattern is sign + magnitude)
    probes = [(bits + d).clamp(-(2**31), 2**31 - 1).to(torch.int32).view(torch.float32) for d in range(-k, k + 1)]
    return torch.cat(probes)


@pytest.mark.parametrize("sign_bits,mant", [(1, 1), (1, 3), (1, 4), (1, 7), (0, 2), (0, 5)])
def test_adversarial_thresholds_and_midpoints(sign_bits, mant):
    gen = torch.Generator().manual_seed(7 + mant)
    for maxval in (3.7, 250.0, 0.37):
        p = grid_probes(maxval, mant, sign_bits)
        # repeated and shuffled into a tensor of a few million, so that they also land in the
        # scalar tails of torch's loops
        x = p.repeat(max(1, 3_000_017 // p.numel() + 1))[:3_000_017]
        x = x[torch.randperm(x.numel(), generator=gen)]
        g = torch.randn(x.shape, generator=gen)
        assert_identical(x, 8, torch.tensor([maxval]), torch.tensor([float(mant)]), sign_bits, g)


@pytest.mark.parametrize("n", [1, 2, 7, 31, 32, 33, 63, 65, 1000, 32768, 32769, 65573, 100003, 1_048_583])
def test_lengths_and_threads(n):
    """Every length class of torch's loops (all-tail, exact multiples, parallel chunks), with one
    and with two threads, at maxvals where torch's scalar and vectorized pow differ, and with a
    fifth of the inputs -0.0 (maximum(-0.0, 0) is +0.0 in torch's vector loop, -0.0 in its
    scalar one)."""
    gen = torch.Generator().manual_seed(n)
    threads = torch.get_num_threads()
    try:
        for t in sorted({1, 2, threads}):
            torch.set_num_threads(t)
            for sign_bits in (1, 0):
                for mv in pow_sensitive(3, sign_bits, 2, seed=n):
                    x = mixture(n, mv, gen) if n >= 200 else torch.randn(n, generator=gen) * mv
                    x[torch.rand(n, generator=gen) < 0.2] = -0.0
                    g = torch.randn(n, generator=gen)
                    assert_identical(x, 8, torch.tensor([mv]), torch.tensor([3.0]), sign_bits, g)
    finally:
        torch.set_num_threads(threads)


def test_all_tail_tensors():
    """Tensors shorter than torch's vector loop (every element in its scalar loop) or just past
    a multiple of it, per tensor and per channel, every M."""
    gen = torch.Generator().manual_seed(11)
    for sign_bits, mant in CASES:
        mvs = pow_sensitive(mant, sign_bits, 4, seed=mant)
        for n in (1, 3, 15, 16, 17, 31, 33, 47, 64 + 31, 129):
            x = torch.randn(n, generator=gen) * mvs[n % 4]
            x[torch.rand(n, generator=gen) < 0.2] = -0.0
            g = torch.randn(n, generator=gen)
            assert_identical(x, 8, torch.tensor([mvs[n % 4]]), torch.tensor([float(mant)]), sign_bits, g)
        x = torch.randn(4, 37, generator=gen) * 3
        x[torch.rand(x.shape, generator=gen) < 0.2] = -0.0
        g = torch.randn(x.shape, generator=gen)
        assert_identical(x, 8, torch.tensor(mvs), torch.tensor([float(mant)]), sign_bits, g)


def test_scalar_loop_emulation_is_exercised():
    """The cases the tests rely on exist: torch's scalar pow differs from its vectorized pow for
    some maxvals (their tail elements are where a kernel without the emulation fails the tests
    above), and its loops have tails."""
    model = ft._loop_model()
    assert model is not False
    if model[0] is None:
        pytest.skip("this torch's scalar and vectorized pow agree")
    assert len(pow_sensitive(3, 1, 3)) == 3
    assert ft._tails(100003, 100003, model[0], 2) != []


def test_fake_quant_default_is_the_reference():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(256, 1001, generator=gen) * 2
    mv = torch.rand(256, generator=gen) + 0.3
    for fmt, n_bits, mant, sign_bits in (("e4m3", 8, 3, 1), ("e2m5", 8, 5, 1), ("ue4m4", 8, 4, 0), ("e5m2", 8, 2, 1)):
        with torch.no_grad():
            ref = reference_fp_quant(x, n_bits, mv, torch.tensor([float(mant)]), sign_bits)
        assert mismatches(fake_quant(x, fmt, mv), ref) == 0
        assert mismatches(fake_quant(x, fmt, mv, arithmetic="reference"), ref) == 0
        # a number maxval is held as float32, as the reference holds it
        with torch.no_grad():
            ref1 = reference_fp_quant(x, n_bits, torch.tensor([0.7]), torch.tensor([float(mant)]), sign_bits)
        assert mismatches(fake_quant(x, fmt, 0.7), ref1) == 0
    # estimated range: the reference at the estimated maxval
    est = fp8q_estimate(x, "e3m4")
    with torch.no_grad():
        ref = reference_fp_quant(x, 8, torch.tensor([est]), torch.tensor([4.0]), 1)
    assert mismatches(fake_quant(x, "e3m4"), ref) == 0
    # gradients, through fake_quant, for a learned per-channel maxval
    xx, m1 = x.clone().requires_grad_(), mv.clone().requires_grad_()
    fake_quant(xx, "e4m3", m1).backward(torch.ones_like(x))
    xr, m2 = x.clone().requires_grad_(), mv.clone().requires_grad_()
    reference_fp_quant(xr, 8, m2, torch.tensor([3.0]), 1).backward(torch.ones_like(x))
    assert mismatches(xx.grad, xr.grad) == 0 and mismatches(m1.grad, m2.grad) == 0


def fp8q_estimate(x, fmt):
    import fp8q

    return float(fp8q.estimate_range(x.numpy(), fmt)["maxval"])


def test_other_layouts_and_dtypes_run_the_formula():
    """Non-contiguous, float64 and 0-d inputs go through torch's own evaluation: identical."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(300, 200, generator=gen) * 2
    for xin, mv in ((x.t(), torch.tensor([1.7])), (x.double(), torch.tensor([1.7])), (x[0, 0], torch.tensor([1.7])),
                    (x, torch.tensor([1.7], dtype=torch.float64))):
        ref = run(reference_fp_quant, xin, 8, mv, torch.tensor([3.0]), 1, None)
        got = run(quantize_to_fp8_ste_MM, xin, 8, mv, torch.tensor([3.0]), 1, None)
        for r, f in zip(ref, got):
            assert torch.equal(r, f) and r.dtype == f.dtype


def test_nan_inputs():
    x = torch.tensor([float("nan"), 1.0, -2.0] * 40)
    y = quantize_to_fp8_ste_MM(x, 8, torch.tensor([3.7]), torch.tensor([3.0]), 1)
    ref = reference_fp_quant(x, 8, torch.tensor([3.7]), torch.tensor([3.0]), 1)
    assert mismatches(y, ref) == 0 and torch.isnan(y[::3]).all()
    g = torch.randn(x.shape)
    assert_identical(x, 8, torch.tensor([3.7]), torch.tensor([3.0]), 1, g)


def test_no_grad_and_partial_grads():
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(70001, generator=gen)
    mv, mb = torch.tensor([2.2]), torch.tensor([3.0])
    with torch.no_grad():
        assert mismatches(quantize_to_fp8_ste_MM(x, 8, mv, mb, 1), reference_fp_quant(x, 8, mv, mb, 1)) == 0
    # only maxval learned
    m1, m2 = mv.clone().requires_grad_(), mv.clone().requires_grad_()
    quantize_to_fp8_ste_MM(x, 8, m1, mb, 1).sum().backward()
    reference_fp_quant(x, 8, m2, mb, 1).sum().backward()
    assert mismatches(m1.grad, m2.grad) == 0
    # only the mantissa bits learned, unsigned
    b1, b2 = mb.clone().requires_grad_(), mb.clone().requires_grad_()
    quantize_to_fp8_ste_MM(x, 8, mv, b1, 0).sum().backward()
    reference_fp_quant(x, 8, mv, b2, 0).sum().backward()
    assert mismatches(b1.grad, b2.grad) == 0


@pytest.mark.parametrize("n_bits,sign_bits,mant,maxval", [
    (8, 1, 3, 1e-30), (8, 1, 3, 1e30), (8, 1, 3, 3e38), (8, 1, 1, 1e-38), (8, 0, 1, 1e-7), (8, 0, 1, 2e-45),
    (4, 1, 1, 2.0), (6, 0, 2, 0.3), (12, 1, 3, 5.0), (16, 1, 10, 5.0), (3, 1, 1, 1.0), (2, 1, 1, 1.0), (1, 0, 1, 1.0),
])
def test_extreme_ranges_and_other_widths(n_bits, sign_bits, mant, maxval):
    """maxvals from the smallest subnormal to near float32's max (biases far from 8-bit ones,
    subnormal binades), and widths other than 8 bits, including E = 0 (a uniform grid)."""
    gen = torch.Generator().manual_seed(n_bits * 100 + mant)
    x = mixture(100003, maxval, gen)
    g = torch.randn(x.shape, generator=gen)
    assert_identical(x, n_bits, torch.tensor([maxval]), torch.tensor([float(mant)]), sign_bits, g)


def test_many_binades_run_the_formula():
    """16 bits with 2 mantissa bits: 2^13 binades, more than the kernel's tables take; the formula
    runs in torch (same result)."""
    gen = torch.Generator().manual_seed(16)
    x = mixture(10007, 5.0, gen)
    g = torch.randn(x.shape, generator=gen)
    before = ft.STATS["torch"]
    assert_identical(x, 16, torch.tensor([5.0]), torch.tensor([2.0]), 1, g, kernel=False)
    assert ft.STATS["torch"] == before + 1
