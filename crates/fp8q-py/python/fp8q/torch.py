"""PyTorch support: :func:`fake_quant` with a straight-through gradient, and
:func:`quantize_to_fp8_ste_MM`, a drop-in for the paper reference's function of that name.

This is the only fp8q module that imports torch. Tensors must live on the CPU; their buffers
are handed to fp8q's kernels as NumPy views (no copy for contiguous float32/float64/float16).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _native
from . import estimate_range as _estimate_range

__all__ = ["fake_quant", "quantize_to_fp8_ste_MM"]

_DTYPES = (torch.float32, torch.float64, torch.float16)
_LN2 = math.log(2.0)


def _check(t, what):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor (got {type(t).__name__})")
    if t.device.type != "cpu":
        raise ValueError(f"{what} must be a CPU tensor (got one on {t.device})")
    if t.dtype not in _DTYPES:
        raise TypeError(f"unsupported dtype '{t.dtype}': expected float32, float64 or float16")


def _maxval_list(maxval):
    """None, a number, or a tensor/array of one value or one per channel -> None or floats."""
    if maxval is None:
        return None
    if isinstance(maxval, torch.Tensor):
        return maxval.detach().to("cpu", torch.float64).reshape(-1).tolist()
    if isinstance(maxval, str):
        raise TypeError("maxval must be a number or a tensor of numbers (got str)")
    return np.asarray(maxval, dtype=np.float64).reshape(-1).tolist()


def _forward(x, fmt, maxvals, per_channel, range_, mantissa_search):
    """fp8q's kernel on the tensor's buffer, into a new tensor (both shared with NumPy)."""
    xd = x.detach()
    out = torch.empty(xd.shape, dtype=xd.dtype)
    _native.quantize(xd.numpy(), fmt, maxvals, per_channel, range_, mantissa_search, out.numpy())
    return out


def _channel_view(v, x):
    """A per-tensor (one value) or per-channel (x.shape[0] values) tensor, broadcastable to x."""
    if v.numel() == 1 or x.dim() == 0:
        return v.reshape([1] * max(x.dim(), 1)) if x.dim() else v.reshape(())
    return v.reshape([-1] + [1] * (x.dim() - 1))


def _reduce_to(g, like):
    """Sum a gradient of x's shape onto a per-tensor or per-channel parameter of shape ``like``."""
    if like.numel() == 1:
        return g.sum().reshape(like.shape)
    return g.reshape(g.shape[0], -1).sum(1).reshape(like.shape)


class _FakeQuant(torch.autograd.Function):
    """Forward: fp8q's kernel. Backward: the reference's gradients, evaluated in closed form."""

    @staticmethod
    def forward(ctx, x, maxval_t, mantissa_t, fmt, maxvals, per_channel, range_, mantissa_search,
                alpha, signed, n_bits, sign_bits):
        y = _forward(x, fmt, maxvals, per_channel, range_, mantissa_search)
        ctx.save_for_backward(x, y, alpha, maxval_t if maxval_t is not None else alpha,
                              mantissa_t if mantissa_t is not None else alpha)
        ctx.signed, ctx.n_bits, ctx.sign_bits = signed, n_bits, sign_bits
        ctx.has_maxval, ctx.has_mantissa = maxval_t is not None, mantissa_t is not None
        return y

    @staticmethod
    def backward(ctx, g):
        x, y, alpha, maxval_t, mantissa_t = ctx.saved_tensors
        a = _channel_view(alpha.to(x.dtype), x)
        lo = -a if ctx.signed else torch.zeros_like(a)
        # clamp(x, lo, a) as torch.min(torch.max(x, lo), a): gradient 1 inside, 0 outside, and
        # torch's tie rule (half to each argument) where x equals a bound
        gx = None
        if ctx.needs_input_grad[0]:
            w = torch.where((x < lo) | (x > a), 0.0, 1.0).to(g.dtype)
            w = torch.where((x == lo) | (x == a), 0.5, w).to(g.dtype)
            gx = g * w
        gm = gb = None
        need_m = ctx.has_maxval and ctx.needs_input_grad[1]
        need_b = ctx.has_mantissa and ctx.needs_input_grad[2]
        if need_m or need_b:
            xc = torch.minimum(torch.maximum(x, lo), a)
            # the scale s = 2^(k - M - bias) moves with maxval and the mantissa bits; the STE
            # rounding makes d y / d s = round(xc/s) - xc/s = (y - xc) / s
            dy = g * (y - xc)
            if need_m:
                # d s / d maxval = s / maxval; plus the clamp's own dependence on maxval
                dclamp = torch.where(x > a, 1.0, 0.0) + torch.where(x == a, 0.5, 0.0)
                if ctx.signed:
                    dclamp = dclamp - torch.where(x < lo, 1.0, 0.0) - torch.where(x == lo, 0.5, 0.0)
                gm = _reduce_to(dy / a + g * dclamp.to(g.dtype), maxval_t).to(maxval_t.dtype)
            if need_b:
                # M = clamp(round(b), 1, n - sign), E = n - sign - M,
                # bias = 2^E - log2(maxval) + log2(2 - 2^-M) - 1, s = 2^(k - M - bias):
                # d s / d M = s ln2 (2^E ln2 - 1 - 2^-M / (2 - 2^-M))
                r = torch.round(mantissa_t.detach().to(torch.float64)).requires_grad_()
                with torch.enable_grad():
                    m = torch.clamp(r, 1, ctx.n_bits - ctx.sign_bits)
                    # torch's own clamp rule decides whether the gradient passes at a bound
                    (inside,) = torch.autograd.grad(m.sum(), r)
                m = m.detach()
                e = ctx.n_bits - ctx.sign_bits - m
                ds = _LN2 * (2.0 ** e * _LN2 - 1.0 - 2.0 ** (-m) / (2.0 - 2.0 ** (-m)))
                gb = (dy.sum() * ds * inside).reshape(mantissa_t.shape).to(mantissa_t.dtype)
        return gx, gm, gb, None, None, None, None, None, None, None, None, None


def _run(x, fmt, maxval, per_channel, range_, mantissa_search, mantissa_t=None, n_bits=None, sign_bits=None):
    _check(x, "t")
    maxval_t = maxval if isinstance(maxval, torch.Tensor) else None
    if maxval_t is not None:
        _check(maxval_t, "maxval")
    maxvals = _maxval_list(maxval)
    grads = x.requires_grad or (maxval_t is not None and maxval_t.requires_grad) or (
        mantissa_t is not None and mantissa_t.requires_grad)
    if not (grads and torch.is_grad_enabled()):
        return _forward(x, fmt, maxvals, per_channel, range_, mantissa_search)
    spec = fmt.strip().lower()
    signed = not spec.startswith("u")
    if maxvals is None:
        est = _estimate_range(x.detach().numpy(), fmt, range_, per_channel=per_channel,
                              mantissa_search=mantissa_search)
        alpha = torch.as_tensor(np.asarray(est["maxval"], dtype=np.float64))
        signed = signed or float(np.min(est["min"])) < 0
    else:
        alpha = torch.tensor(maxvals, dtype=torch.float64).to(torch.float32).to(torch.float64)
    return _FakeQuant.apply(x, maxval_t, mantissa_t, fmt, maxvals, per_channel, range_, mantissa_search,
                            alpha.reshape(-1), signed, n_bits, sign_bits)


def fake_quant(t, fmt="e4m3", maxval=None, *, per_channel=False, range="minmax", mantissa_search=False):
    """Quantize-dequantize a CPU tensor with fp8q, differentiably.

    The forward pass is :func:`fp8q.quantize` on the tensor's buffer (no copy for a contiguous
    tensor; non-contiguous tensors are copied). The backward pass is the straight-through
    estimator of the paper's reference: the gradient flows unchanged through the rounding and
    is cut where ``t`` was clamped (half of it at a value equal to a bound, as torch's
    ``min``/``max`` give). When ``maxval`` is a tensor that requires grad it also gets the
    reference's gradient (learned range).

    Parameters
    ----------
    t : torch.Tensor
        float32, float64 or float16 on the CPU, any shape.
    fmt : str
        Format name (``"e4m3"``, ``"e2m5"``, ``"int8"``, ``"float8_e4m3fn"``...).
    maxval : float or torch.Tensor, optional
        The range ``[-maxval, maxval]``: one value, or one per channel along axis 0 (shape
        ``[C]`` or ``[C, 1, ...]``). Without it the range is estimated from ``t`` (``range``,
        ``per_channel``, ``mantissa_search`` as in :func:`fp8q.quantize`).
    """
    return _run(t, fmt, maxval, per_channel, range, mantissa_search)


def quantize_to_fp8_ste_MM(x_float, n_bits, maxval, num_mantissa_bits, sign_bits):
    """Drop-in for the reference's ``quantize_to_fp8_ste_MM`` (same arguments, same result,
    same gradients, including those for a learned ``maxval`` and ``num_mantissa_bits``).

    ``maxval`` is a tensor of one value or one per channel along axis 0; ``num_mantissa_bits``
    a number or tensor, rounded and clamped to ``1 .. n_bits - sign_bits`` as the reference does;
    ``sign_bits`` 1 (signed, range ``[-maxval, maxval]``) or 0 (unsigned, ``[0, maxval]``).
    The forward pass is fp8q's exact kernel: bit-identical to the reference wherever the
    reference's float32 ``log2`` arithmetic is exact (integer bias, e.g. the default maxval),
    otherwise within the 1e-5 relative tolerance of SPEC section 2.1 (the reference is off by
    an ulp there; a rare exact tie may resolve the other way). Unlike the reference, which returns
    NaN, a maxval of 0 or a format without exponent bits raises ValueError.
    """
    if sign_bits not in (0, 1):
        raise ValueError(f"sign_bits must be 0 or 1 (got {sign_bits})")
    n_bits = int(n_bits)
    mantissa_t = num_mantissa_bits if isinstance(num_mantissa_bits, torch.Tensor) else None
    b = float(num_mantissa_bits.detach().reshape(-1)[0]) if mantissa_t is not None else float(num_mantissa_bits)
    if mantissa_t is not None and mantissa_t.numel() != 1:
        raise ValueError(f"num_mantissa_bits must hold one value (got {mantissa_t.numel()})")
    m = int(min(max(round(b), 1), n_bits - sign_bits))  # Python's round is half-to-even, as torch's
    e = n_bits - sign_bits - m
    fmt = f"{'' if sign_bits else 'u'}e{e}m{m}"
    return _run(x_float, fmt, maxval, False, "minmax", False, mantissa_t, n_bits, sign_bits)
