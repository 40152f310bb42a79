"""fp8q.torch's exact arithmetic against the paper's formula typed out in PyTorch
(reference_formula.py): forward values and gradients for x, maxval and the mantissa bits, and
fake_quant's interface. The reference arithmetic's bit-identity is tested in
test_torch_reference.py. Skipped when torch is not importable."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fp8q  # noqa: E402
from fp8q.torch import fake_quant, quantize_to_fp8_ste_MM  # noqa: E402
from reference_formula import reference_fp_quant  # noqa: E402

E4M3_DEFAULT = 240.0  # (2 - 2^-3) * 2^(15 - 8): integer bias


def exact_ste_MM(x, n_bits, maxval, mb, sign_bits):
    return quantize_to_fp8_ste_MM(x, n_bits, maxval, mb, sign_bits, arithmetic="exact")


def run_both(x, n_bits, maxval, mb, sign_bits, g):
    """(y, x.grad, maxval.grad, mb.grad) of the reference formula and of fp8q's exact arithmetic."""
    out = []
    for f in (reference_fp_quant, exact_ste_MM):
        xx = x.detach().clone().requires_grad_()
        mv = maxval.detach().clone().requires_grad_()
        b = mb.detach().clone().requires_grad_()
        y = f(xx, n_bits, mv, b, sign_bits)
        y.backward(g)
        out.append((y.detach(), xx.grad, mv.grad, b.grad))
    return out


def data(shape, maxval, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen) * 2 * float(np.max(maxval))
    flat = x.view(-1)
    flat[0], flat[1], flat[2] = float(np.max(maxval)), -float(np.max(maxval)), 0.0  # ties with the bounds
    g = torch.randn(*shape, generator=gen)
    return x, g


@pytest.mark.parametrize("mant", [1, 2, 3, 4, 5])
def test_integer_bias_is_bit_identical(mant):
    """maxval = default max * 2^k: values are bit-identical wherever the reference's own value is
    on the exact grid (its float32 log2 is sometimes inexact even here: then every value is off
    by an ulp), and so is the input gradient."""
    e = 7 - mant
    default_max = (2 - 2.0**-mant) * 2.0 ** (2**e - 1 - 2 ** (e - 1))
    whole = 0
    for k in (-3, 0, 2):
        maxval = torch.tensor([default_max * 2.0**k])
        x, g = data((5000,), maxval.numpy(), seed=mant)
        (yr, gxr, gmr, gbr), (yf, gxf, gmf, gbf) = run_both(x, 8, maxval, torch.tensor([float(mant)]), 1, g)
        exact = torch.isin(yr, torch.from_numpy(fp8q.Format(f"e{e}m{mant}", maxval=float(maxval)).values()).float())
        assert torch.equal(yf[exact], yr[exact])
        if exact.all():
            whole += 1
            assert torch.equal(yf, yr)
        assert torch.equal(gxf, gxr)
        assert torch.allclose(gmf, gmr, rtol=1e-3, atol=1e-4)
        assert torch.allclose(gbf, gbr, rtol=1e-3, atol=1e-4)
    assert whole >= 2


@pytest.mark.parametrize("sign_bits", [1, 0])
def test_real_valued_bias_within_spec(sign_bits):
    """Elsewhere the reference carries float32 noise: values within SPEC 2.1's tolerance, the input
    gradient within an ulp (fp8q's is exactly the incoming gradient, the reference's (g*s)/s)."""
    for maxval in ([3.7], [0.9, 2.5, 11.0, 0.013]):
        maxval = torch.tensor(maxval)
        x, g = data((4, 2500), maxval.numpy(), seed=len(maxval))
        (yr, gxr, gmr, gbr), (yf, gxf, gmf, gbf) = run_both(x, 8, maxval, torch.tensor([3.0]), sign_bits, g)
        close = (yf - yr).abs() <= torch.clamp(1e-5 * yr.abs(), min=1e-30)
        assert (~close).sum() <= max(1, x.numel() // 10_000)
        assert torch.allclose(gxf, gxr, rtol=2e-7, atol=0)
        assert torch.allclose(gmf, gmr, rtol=1e-3, atol=1e-4)
        assert torch.allclose(gbf, gbr, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("arithmetic", ["exact", "reference"])
def test_ste_gradient_values(arithmetic):
    """Straight-through inside the range, zero outside, half at a bound (torch's min/max rule)."""
    x = torch.tensor([-5.0, -2.0, -1.0, 0.3, 1.0, 2.0, 7.0], requires_grad=True)
    y = fake_quant(x, "e4m3", torch.tensor([2.0]), arithmetic=arithmetic)
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0]
    if arithmetic == "exact":
        assert y.tolist()[0] == -2.0 and y.tolist()[-1] == 2.0
    else:  # the reference's float32 bias (log2(1.875) is inexact) puts its top value an ulp below 2
        assert y.tolist()[0] == -y.tolist()[-1] and 2.0 - 2.0**-20 <= y.tolist()[-1] < 2.0


def test_fake_quant_matches_numpy_and_is_zero_copy_in():
    x = torch.randn(16, 64)
    mv = torch.rand(16) + 0.5
    y = fake_quant(x, "e3m4", mv, arithmetic="exact")
    assert y.dtype == x.dtype and y.shape == x.shape
    assert np.array_equal(y.numpy(), fp8q.quantize(x.numpy(), "e3m4", maxval=mv.numpy()))
    # the numpy view handed to the kernel is the tensor's own buffer
    assert x.detach().numpy().__array_interface__["data"][0] == x.data_ptr()
    # estimated ranges and other dtypes
    assert np.array_equal(fake_quant(x, "e4m3", per_channel=True, arithmetic="exact").numpy(),
                          fp8q.quantize(x.numpy(), "e4m3", per_channel=True))
    # INT formats and standard encodings have one arithmetic: the exact one
    assert np.array_equal(fake_quant(x, "int8", 2.0).numpy(), fp8q.quantize(x.numpy(), "int8", maxval=2.0))
    for arithmetic in ("exact", "reference"):
        x64 = x.double().requires_grad_()
        y64 = fake_quant(x64, "e4m3", arithmetic=arithmetic)
        y64.sum().backward()
        assert y64.dtype == torch.float64 and x64.grad.dtype == torch.float64
        assert fake_quant(x.half(), "e5m2", 4.0, arithmetic=arithmetic).dtype == torch.float16
        assert fake_quant(x.t(), "e4m3", 1.0, arithmetic=arithmetic).shape == (64, 16)  # non-contiguous


@pytest.mark.parametrize("arithmetic", ["exact", "reference"])
def test_fake_quant_gradient_estimated_range(arithmetic):
    x = torch.randn(1000, requires_grad=True)
    fake_quant(x, "e4m3", arithmetic=arithmetic).sum().backward()
    # the estimated range contains every value: gradient 1, except half at the extreme (a tie)
    ext = x.detach().abs() == x.detach().abs().max()
    assert torch.all(x.grad[~ext] == 1.0) and torch.all(x.grad[ext] == 0.5)


def test_torch_errors():
    with pytest.raises(TypeError, match="unsupported dtype 'torch.bfloat16'"):
        fake_quant(torch.ones(3, dtype=torch.bfloat16), "e4m3", 1.0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        fake_quant(np.ones(3, np.float32), "e4m3", 1.0)
    with pytest.raises(ValueError, match="unknown format 'e4'"):
        fake_quant(torch.ones(3), "e4", 1.0)
    with pytest.raises(ValueError, match="maxval has 2 values but x has 3 channel"):
        fake_quant(torch.ones(3, 4), "e4m3", torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="maxval must be positive and finite"):
        quantize_to_fp8_ste_MM(torch.ones(3), 8, torch.tensor([0.0]), torch.tensor([3.0]), 1)
    with pytest.raises(ValueError, match="sign_bits"):
        quantize_to_fp8_ste_MM(torch.ones(3), 8, torch.tensor([1.0]), 3, 2)
    with pytest.raises(ValueError, match="exponent bits"):
        quantize_to_fp8_ste_MM(torch.ones(3), 8, torch.tensor([1.0]), 7, 1, arithmetic="exact")
    # the reference arithmetic takes E = 0, as the reference does (a uniform grid)
    assert quantize_to_fp8_ste_MM(torch.ones(3), 8, torch.tensor([1.0]), 7, 1).shape == (3,)
    for arithmetic in ("exact", "reference"):
        with pytest.raises(ValueError, match="maxval has 2 values but x has 3 channel"):
            fake_quant(torch.ones(3, 4), "e4m3", torch.tensor([1.0, 2.0]), arithmetic=arithmetic)
        with pytest.raises(ValueError, match="unknown format 'e4'"):
            fake_quant(torch.ones(3), "e4", 1.0, arithmetic=arithmetic)
        with pytest.raises(TypeError, match="unsupported dtype 'torch.bfloat16'"):
            fake_quant(torch.ones(3, dtype=torch.bfloat16), "e4m3", 1.0, arithmetic=arithmetic)
        with pytest.raises(ValueError, match="maxval must be positive and finite"):
            fake_quant(torch.ones(3), "e4m3", float("nan"), arithmetic=arithmetic)
    with pytest.raises(ValueError, match="arithmetic must be"):
        fake_quant(torch.ones(3), "e4m3", 1.0, arithmetic="float64")
    with pytest.raises(ValueError, match="arithmetic must be"):
        quantize_to_fp8_ste_MM(torch.ones(3), 8, torch.tensor([1.0]), 3, 1, arithmetic="fast")
    with pytest.raises(ValueError, match="flexible-bias FP format"):
        fake_quant(torch.ones(3), "int8", 1.0, arithmetic="reference")
    with pytest.raises(ValueError, match="mantissa bit"):
        fake_quant(torch.ones(3), "e5m0", 1.0, arithmetic="reference")
    with pytest.raises(ValueError, match="maxval fixes the range"):
        fake_quant(torch.ones(3), "e4m3", 1.0, range="mse")
    with pytest.raises(TypeError, match="maxval must be a torch.Tensor"):
        quantize_to_fp8_ste_MM(torch.ones(3), 8, 1.0, 3, 1)
    with pytest.raises(ValueError, match="maxval must be positive and finite"):
        quantize_to_fp8_ste_MM(torch.ones(3), 8, torch.tensor([float("inf")]), 3, 1)
    with pytest.raises(ValueError, match="n_bits - sign_bits"):
        quantize_to_fp8_ste_MM(torch.ones(3), 1, torch.tensor([1.0]), 3, 1)
    with pytest.raises(TypeError, match="n_bits must be an int"):
        quantize_to_fp8_ste_MM(torch.ones(3), 8.0, torch.tensor([1.0]), 3, 1)
    with pytest.raises(ValueError, match="num_mantissa_bits must be finite"):
        quantize_to_fp8_ste_MM(torch.ones(3), 8, torch.tensor([1.0]), float("nan"), 1)
    with pytest.raises(ValueError, match="num_mantissa_bits must hold one value"):
        quantize_to_fp8_ste_MM(torch.ones(3), 8, torch.tensor([1.0]), torch.tensor([3.0, 4.0]), 1)
    with pytest.raises(TypeError, match="num_mantissa_bits must be a number"):
        quantize_to_fp8_ste_MM(torch.ones(3), 8, torch.tensor([1.0]), "3", 1)
    with pytest.raises(ValueError, match="does not broadcast"):
        quantize_to_fp8_ste_MM(torch.ones(3, 4), 8, torch.tensor([1.0, 2.0]), 3, 1)
    with pytest.raises(ValueError, match="CPU tensor"):
        quantize_to_fp8_ste_MM(torch.ones(3, device="meta"), 8, torch.tensor([1.0]), 3, 1)
