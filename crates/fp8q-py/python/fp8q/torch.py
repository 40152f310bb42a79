"""PyTorch support: :func:`fake_quant` with a straight-through gradient,
:func:`quantize_to_fp8_ste_MM`, a drop-in for the paper reference's function of that name, and
whole models: :func:`quantize` (fake-quantize every Linear and Conv layer, calibrated by a
forward loop), :func:`summary`, :func:`save_states` and :func:`load_states` (defined in
``fp8q/_torch_model.py``; see ``docs/torch.md``).

Two arithmetics for the flexible-bias FP formats:

* ``"reference"``: the reference's own float32 arithmetic (``quantize_to_fp8_ste_MM`` of
  Qualcomm-AI-research/FP8-quantization, evaluated by the installed torch): bit-identical values
  and gradients. torch's ``log2`` and ``pow`` decide the binade thresholds and the scales; they
  are evaluated with torch on the few values that matter (per channel), and fp8q's Rust kernel
  does the elementwise work (clamp, binade, divide, round half to even, multiply) exactly as
  torch's float32 operations do, and the elementwise gradients of autograd's formulas; torch
  sums those onto maxval, the bias and the mantissa bits, as it does for the reference.
* ``"exact"``: fp8q's exact grid (:func:`fp8q.quantize`, the CLI). Where the flexible bias is
  not an integer the reference's float32 ``log2``/``pow`` make its step an ulp off, so some values
  differ from the reference by an ulp (SPEC section 2.1's tolerance).

This module and ``_torch_model`` are the only fp8q modules that import torch. Tensors must live on the CPU; their buffers
are handed to fp8q's kernels as NumPy views (no copy for contiguous float32).
"""

from __future__ import annotations

import collections
import math
import re

import numpy as np
import torch

from . import _native
from . import estimate_range as _estimate_range

__all__ = ["fake_quant", "quantize_to_fp8_ste_MM", "ARITHMETICS", "quantize", "summary", "save_states",
           "load_states", "Summary", "analyze", "Report"]

ARITHMETICS = ("reference", "exact")

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



# ---------------------------------------------------------------------------------------------
# Reference arithmetic
# ---------------------------------------------------------------------------------------------


class _RoundSTE(torch.autograd.Function):
    """torch.round forward (half to even), identity backward: the reference's round_ste_func."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


def _reference_rest(x, minval, maxval, M, bias):
    """The reference's elementwise part in torch itself, op by op (the slow path: other dtypes,
    layouts or broadcasts than the kernel takes)."""
    xc = torch.min(torch.max(x, minval), maxval)
    log_scales = torch.clamp((torch.floor(torch.log2(torch.abs(xc)) + bias)).detach(), 1.0)
    scales = 2.0 ** (log_scales - M - bias)
    return _RoundSTE.apply(xc / scales) * scales


# torch's CPU elementwise loops (cpu_kernel_vec) run full SIMD chunks through the vectorized
# function (SLEEF for pow) and the rest of each inner loop through the scalar one (libm's powf);
# the two can differ by an ulp. Which elements are "tails" follows from the vector width, the
# grain size of at::parallel_for and the thread count; _LOOP is measured once per process.
_GRAIN = 32768
_LOOP = None  # (width or None when the vector and scalar pow agree, max_zero_model_ok) or False


def _chunks(n, threads):
    """The ranges at::parallel_for hands its threads for n elements (serial up to the grain)."""
    if n <= _GRAIN or threads <= 1:
        return [(0, n)]
    t = min(threads, -(-n // _GRAIN))
    size = -(-n // t)
    return [(b, min(n, b + size)) for b in range(0, n, size)]


def _tails(n, row, width, threads):
    """Index ranges of the elements torch's loops evaluate with the scalar function: the last
    (length mod width) elements of every inner loop; inner loops are rows of ``row`` elements
    cut at the threads' chunk bounds."""
    out = []
    for b, e in _chunks(n, threads):
        s = b
        while s < e:
            r = min(e, (s // row + 1) * row)
            t = (r - s) % width
            if t:
                out.append((r - t, r))
            s = r
    return out


def _scalar_path(t):
    """Evaluate through a strided view: torch then runs its scalar loop on every element."""
    buf = torch.empty(t.numel() * 2, dtype=t.dtype)
    view = buf[::2]
    view.copy_(t.reshape(-1))
    return view


def _vector_path(f, t):
    """f(t) with every element in a full SIMD chunk of torch's vectorized loop: contiguous pieces
    whose length is a multiple of 64 and below the parallel grain."""
    flat = t.reshape(-1)
    n = flat.numel()
    padded = torch.zeros(-(-max(n, 1) // 64) * 64, dtype=t.dtype)
    padded[:n] = flat
    out = torch.cat([f(padded[i:i + 16384]) for i in range(0, padded.numel(), 16384)])
    return out[:n].reshape(t.shape)


def _calibrate():
    """Measure which elements torch's pow and maximum evaluate in their scalar loops, and check
    the model of _tails against it for this torch, CPU and thread count. False: no model fits
    (the reference arithmetic then runs in torch itself)."""
    threads = torch.get_num_threads()
    # the thresholds assume one log2 whatever the loop (torch runs its log2 through the vectorized
    # function even on loop tails and strided inputs; exhaustively checked for torch 2.15/AVX-512)
    a = torch.randint(1, 0x7F800000, (1 << 16,), generator=torch.Generator().manual_seed(0),
                      dtype=torch.int32).view(torch.float32)
    whole = torch.log2(a).view(torch.int32)
    if not torch.equal(whole, torch.log2(_scalar_path(a)).view(torch.int32)):
        return False
    short = torch.cat([torch.log2(a[i:i + 7]) for i in range(0, 7 * 200, 7)]).view(torch.int32)
    if not torch.equal(short, whole[:7 * 200]):
        return False
    y = torch.linspace(-20.0, 20.0, 1 << 16)
    vec = _vector_path(lambda t: 2.0 ** t, y)
    sca = 2.0 ** _scalar_path(y)
    differ = torch.nonzero(vec.view(torch.int32) != sca.view(torch.int32)).flatten()
    lengths = (1, 17, 31, 33, 47, 63, 65, 100, 1000, _GRAIN, _GRAIN + 1, 65573, 100003, 300007)
    width = None
    if differ.numel():
        ys = float(y[differ[0]])
        v = _vector_path(lambda t: 2.0 ** t, torch.tensor([ys]))[0].view(torch.int32)
        observed = [(2.0 ** torch.full((n,), ys)).view(torch.int32) != v for n in lengths]
        for w in (8, 16, 32, 64):
            if all(torch.equal(obs, _mask(n, _tails(n, n, w, threads))) for n, obs in zip(lengths, observed)):
                width = w
                break
        else:
            return False
    # maximum(-0.0, +0.0): +0.0 from the vector loop, -0.0 (its first argument) from the scalar
    # one; its loop may have another width than pow's
    cases = []
    for shape in ((1000,), (7, 45), (3, 40017), (64, 33), (5, 1), (2, 3, 50)):
        x = torch.full(shape, -0.0)
        n, c = x.numel(), shape[0]
        for lo, row in ((torch.zeros(1), n), (torch.zeros([c] + [1] * (len(shape) - 1)), _row(n, c))):
            cases.append((n, row, torch.signbit(torch.max(x, lo)).reshape(-1)))
    for w in (8, 16, 32, 64):
        if all(torch.equal(got, _mask(n, _tails(n, row, w, threads))) for n, row, got in cases):
            return (width, w)
    return False


def _row(n, channels):
    """Inner-loop length of an elementwise op of x (n elements) with a per-channel operand."""
    return n if channels == 1 or n == channels else n // channels


def _mask(n, ranges):
    m = torch.zeros(n, dtype=torch.bool)
    for a, b in ranges:
        m[a:b] = True
    return m


def _loop_model():
    global _LOOP
    if _LOOP is None:
        _LOOP = _calibrate()
    return _LOOP


_TABLES = collections.OrderedDict()
# calls of the reference arithmetic by path: "kernel" (fp8q's) or "torch" (the formula in torch)
STATS = collections.Counter()
_MAX_BINADES = 4096


def _tables(lo, hi, b, M):
    """Per channel: the thresholds of binades 2.. (bit patterns, +inf padded), and the scales of
    binades 1.. as torch's vectorized and scalar pow give them. None if too many binades."""
    key = (lo.numpy().tobytes(), hi.numpy().tobytes(), b.numpy().tobytes(), M.numpy().tobytes())
    hit = _TABLES.get(key)
    if hit is not None:
        try:
            _TABLES.move_to_end(key)
        except KeyError:  # dropped by another thread meanwhile
            pass
        return hit
    bc = b.reshape(-1, 1)

    def binade(bits):  # the reference's floor(log2|xc| + bias), clamped to 1
        a = bits.to(torch.int32).view(torch.float32)
        return torch.clamp(torch.floor(torch.log2(a) + bc), 1.0)

    kmax = binade(hi.view(torch.int32).to(torch.int64).reshape(-1, 1)).reshape(-1)
    K = int(kmax.max())
    if K > _MAX_BINADES or lo.numel() * K > (1 << 24):
        return None
    ks = torch.arange(2, K + 1, dtype=torch.float32).reshape(1, -1)
    top = hi.view(torch.int32).to(torch.int64).reshape(-1, 1).expand(-1, K - 1).clone()
    low = torch.zeros_like(top)  # +0: binade 1
    live = ks <= kmax.reshape(-1, 1)
    # bisection on bit patterns: binade(low) < k <= binade(top); log2 is monotone (checked)
    while K > 1:
        open_ = live & (top - low > 1)
        if not bool(open_.any()):
            break
        mid = (low + top) // 2
        up = binade(mid) >= ks
        top = torch.where(open_ & up, mid, top)
        low = torch.where(open_ & ~up, mid, low)
    # the table rule must hold near every threshold (4 patterns each side)
    for d in (-4, -3, -2, -1, 0, 1, 2, 3):
        p = (top + d).clamp(0, 0x7F7FFFFF)
        if not bool(((binade(p) >= ks) == (p >= top))[live].all()):
            return None
    thr = torch.where(live, top, torch.full_like(top, 0x7F800000)).to(torch.int32).view(torch.float32)
    kk = torch.arange(1, K + 1, dtype=torch.float32).reshape(1, -1)
    t = kk - M - bc  # the reference's log_scales - M - bias
    vector = _vector_path(lambda u: 2.0 ** u, t)
    scalar = (2.0 ** _scalar_path(t)).reshape(t.shape)
    out = (thr.contiguous().view(torch.int32).numpy().view(np.uint32),
           vector.contiguous().numpy(), scalar.contiguous().numpy())
    _TABLES[key] = out
    while len(_TABLES) > 64:
        try:
            _TABLES.popitem(last=False)
        except KeyError:
            break
    return out


class _Plan:
    """What the kernel needs for one call: channels, tables and the scalar-loop elements."""

    def __init__(self, x, lo, hi, tables, signed, model):
        n = x.numel()
        threads = torch.get_num_threads()
        pow_width, max_width = model
        # pow runs on a tensor of x's shape: one inner loop per thread's chunk
        pow_tails = _tails(n, n, pow_width, threads) if pow_width else []
        # maximum(x, 0) of the unsigned case: rows of x along the channel's broadcast
        max_tails = [] if signed else _tails(n, _row(n, lo.numel()), max_width, threads)
        self.args = (lo.numpy(), hi.numpy()) + tables + (pow_tails, max_tails)


def _plan(x, minval, maxval, M, bias, signed):
    """A _Plan when the kernel can evaluate this call bit for bit, else None."""
    if not (x.dtype == maxval.dtype == minval.dtype == M.dtype == bias.dtype == torch.float32):
        return None
    if x.dim() == 0 or x.numel() == 0 or not x.is_contiguous() or M.numel() != 1:
        return None
    shape = torch.broadcast_shapes(x.shape, maxval.shape, minval.shape, M.shape, bias.shape)
    if tuple(shape) != tuple(x.shape):
        return None
    c = bias.numel()
    for t in (maxval, minval, bias):
        if t.numel() != 1 and (t.numel() != c or c != x.shape[0] or t.dim() != x.dim()
                               or any(d != 1 for d in t.shape[1:])):
            return None
    model = _loop_model()
    if model is False:
        return None
    lo = minval.detach().reshape(-1).expand(c).contiguous()
    hi = maxval.detach().reshape(-1).expand(c).contiguous()
    b = bias.detach().reshape(-1).contiguous()
    with torch.no_grad():
        tables = _tables(lo, hi, b, M.detach().reshape(-1))
    if tables is None:
        return None
    return _Plan(x, lo, hi, tables, signed, model)


class _RefQuant(torch.autograd.Function):
    """The reference's ops from the clamp to the result, in fp8q's kernel (same values, same
    elementwise gradients; autograd sums them onto minval, maxval, M and the bias)."""

    @staticmethod
    def forward(ctx, x, minval, maxval, M, bias, plan):
        out = torch.empty(x.shape, dtype=torch.float32)
        _native.reference_forward(x.detach().reshape(-1).numpy(), out.view(-1).numpy(), *plan.args)
        ctx.save_for_backward(x)
        ctx.plan = plan
        return out

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        need = ctx.needs_input_grad
        want = (need[0], need[1], need[2], need[3] or need[4])
        outs = [torch.empty(x.shape, dtype=torch.float32) if w else None for w in want]
        g = g.to(torch.float32).contiguous()
        _native.reference_backward(x.detach().reshape(-1).numpy(), g.reshape(-1).numpy(),
                                   [o.view(-1).numpy() if o is not None else None for o in outs],
                                   *ctx.plan.args)
        gx, glo, ghi, ngt = outs
        g_m = ngt if need[3] else None
        g_b = ngt if need[4] else None
        if g_m is not None and g_b is not None and x.numel() == 1:
            g_m = ngt.clone()  # autograd may accumulate into a gradient of the input's own shape
        return gx, glo, ghi, g_m, g_b, None


def _check_maxval_tensor(maxval):
    if not isinstance(maxval, torch.Tensor):
        raise TypeError(f"maxval must be a torch.Tensor (got {type(maxval).__name__})")
    if maxval.device.type != "cpu":
        raise ValueError(f"maxval must be a CPU tensor (got one on {maxval.device})")
    if not maxval.is_floating_point():
        raise TypeError(f"maxval must be a floating-point tensor (got {maxval.dtype})")
    if maxval.numel() == 0:
        raise ValueError("maxval is empty: give one value, or one per channel")
    v = maxval.detach()
    bad = ~(torch.isfinite(v) & (v > 0))
    if bool(bad.any()):
        raise ValueError(f"maxval must be positive and finite (got {float(v.reshape(-1)[bad.reshape(-1)][0])})")


def _reference(x, n_bits, maxval, mb, sign_bits):
    """quantize_to_fp8_ste_MM with its small-tensor ops in torch (the same expressions as the
    reference, so the same autograd graph) and the elementwise ops in the kernel."""
    M = torch.clamp(_RoundSTE.apply(mb), 1, n_bits - sign_bits)
    E = n_bits - sign_bits - M
    if maxval.dim() == 0:
        maxval = maxval.reshape(1)
    if maxval.shape[0] != 1 and maxval.dim() != x.dim():
        maxval = maxval.view([-1] + [1] * (x.dim() - 1))
    bias = 2**E - torch.log2(maxval) + torch.log2(2 - 2 ** (-M)) - 1
    minval = -maxval if sign_bits == 1 else torch.zeros_like(maxval)
    try:
        torch.broadcast_shapes(x.shape, maxval.shape, M.shape)
    except RuntimeError:
        raise ValueError(f"maxval of shape {tuple(maxval.shape)} does not broadcast to x of shape {tuple(x.shape)} "
                         "(give one maxval, or one per channel along axis 0)") from None
    plan = _plan(x, minval, maxval, M, bias, sign_bits == 1)
    STATS["torch" if plan is None else "kernel"] += 1
    if plan is None:
        return _reference_rest(x, minval, maxval, M, bias)
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in (x, minval, maxval, M, bias))):
        out = torch.empty(x.shape, dtype=torch.float32)
        _native.reference_forward(x.detach().reshape(-1).numpy(), out.view(-1).numpy(), *plan.args)
        return out
    return _RefQuant.apply(x, minval, maxval, M, bias, plan)


def _fp_params(fmt):
    """(n_bits, mantissa bits, sign_bits) of a flexible-bias FP format name, or None."""
    m = re.fullmatch(r"(u?)e(\d+)m(\d+)", fmt.strip().lower())
    if not m:
        return None
    unsigned, e, mant = m.group(1) == "u", int(m.group(2)), int(m.group(3))
    return (e + mant + (0 if unsigned else 1), mant, 0 if unsigned else 1)


def _block_forward(x, fmt, block_size, block_axis, scale_rule):
    """fp8q's block quantizer on the tensor's buffer, into a new tensor."""
    xd = x.detach()
    out = torch.empty(xd.shape, dtype=xd.dtype)
    _native.quantize(xd.numpy(), fmt, None, False, None, False, out.numpy(), block_size, block_axis, scale_rule)
    return out


class _BlockFakeQuant(torch.autograd.Function):
    """Forward: fp8q's block quantizer (:func:`fp8q.quantize`). Backward: the straight-through
    estimator, the gradient passed on unchanged."""

    @staticmethod
    def forward(ctx, x, fmt, block_size, block_axis, scale_rule):
        return _block_forward(x, fmt, block_size, block_axis, scale_rule)

    @staticmethod
    def backward(ctx, g):
        return g, None, None, None, None


def _block_fake_quant(t, fmt, maxval, per_channel, range_, mantissa_search, arithmetic, block_size, block_axis,
                      scale_rule):
    if arithmetic not in (None, "exact"):
        raise ValueError(f"arithmetic={arithmetic!r} does not apply to block-scaled formats ({fmt}): "
                         "they have one arithmetic, 'exact'")
    if maxval is not None or per_channel or range_ is not None or mantissa_search:
        # the library names the option that does not apply
        _native.quantize(np.zeros(1, np.float32), fmt, _maxval_list(maxval), per_channel, range_, mantissa_search,
                         None, block_size, block_axis, scale_rule)
    if torch.is_grad_enabled() and t.requires_grad:
        return _BlockFakeQuant.apply(t, fmt, block_size, block_axis, scale_rule)
    return _block_forward(t, fmt, block_size, block_axis, scale_rule)


def fake_quant(t, fmt="e4m3", maxval=None, *, per_channel=False, range=None, mantissa_search=False,
               arithmetic=None, block_size=None, block_axis=None, scale_rule=None):
    """Quantize-dequantize a CPU tensor with fp8q, differentiably.

    The backward pass is the straight-through estimator of the paper's reference: the gradient
    flows through the rounding and is cut where ``t`` was clamped (half of it at a value equal to
    a bound, as torch's ``min``/``max`` give). When ``maxval`` is a tensor that requires grad it
    also gets the reference's gradient (learned range).

    Parameters
    ----------
    t : torch.Tensor
        float32, float64 or float16 on the CPU, any shape.
    fmt : str
        Format name (``"e4m3"``, ``"ue4m3"``, ``"e2m5"``, ``"int8"``, ``"float8_e4m3fn"``...).
    maxval : float or torch.Tensor, optional
        The range ``[-maxval, maxval]`` (``[0, maxval]`` for ``ueXmY``): one value, or one per
        channel along axis 0 (shape ``[C]`` or ``[C, 1, ...]``). Without it the range is
        estimated from ``t`` (``range``, ``per_channel``, ``mantissa_search`` as in
        :func:`fp8q.quantize`).
    arithmetic : {"reference", "exact"}, optional
        For the flexible-bias FP formats (``eXmY``, ``ueXmY``, at least one mantissa bit) the
        default is ``"reference"``: the result and the gradients are those of the reference's
        ``quantize_to_fp8_ste_MM(t, n_bits, maxval, mantissa_bits, sign_bits)`` (see
        :func:`quantize_to_fp8_ste_MM`), bit for bit, with ``maxval`` held as float32 as the
        reference holds it. float64 tensors are rounded to float32 first and float16 ones widen
        (the result has ``t``'s dtype); the kernel runs on the buffer of a contiguous tensor,
        non-contiguous ones go through the reference's formula in torch. ``"exact"`` is
        :func:`fp8q.quantize` on the
        tensor's buffer (float64 rounded to float32 first), fp8q's exact grid: where the bias is
        not an integer some values are an ulp away from the reference's. INT formats and the
        standard 8-bit encodings have one arithmetic, ``"exact"``.
    block_size, block_axis, scale_rule
        Block-scaled formats (``"mxfp4"``, ``"nvfp4"``, ``"e2m1@32:rceil"``...): as in
        :func:`fp8q.quantize`. The forward pass is :func:`fp8q.quantize` (each block scaled by its
        own largest magnitude; ``maxval``, ``per_channel``, ``range`` and ``mantissa_search``
        raise ``ValueError``), the backward pass the straight-through estimator: the gradient
        passes unchanged, saturated elements included.
        Other formats raise ``ValueError`` when given these keywords.
    """
    _check(t, "t")
    if isinstance(fmt, str) and _native.block_format(fmt, block_size, block_axis, scale_rule) is not None:
        return _block_fake_quant(t, fmt, maxval, per_channel, range, mantissa_search, arithmetic, block_size,
                                 block_axis, scale_rule)
    range = "minmax" if range is None else range
    params = _fp_params(fmt) if isinstance(fmt, str) else None
    if arithmetic is None:
        arithmetic = "reference" if params is not None and params[1] >= 1 else "exact"
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"arithmetic must be 'reference' or 'exact' (got {arithmetic!r})")
    if arithmetic == "exact":
        return _run(t, fmt, maxval, per_channel, range, mantissa_search)
    _native.Format(fmt)  # unknown names raise here
    if params is None or params[1] < 1:
        raise ValueError(f"arithmetic='reference' needs a flexible-bias FP format with mantissa bits "
                         f"(eXmY or ueXmY), not {fmt!r}")
    n_bits, mant, sign_bits = params
    if maxval is None:
        est = _estimate_range(t.detach().to(torch.float32).numpy(), fmt, range, per_channel=per_channel,
                              mantissa_search=mantissa_search)
        if est["mantissa_bits"] is not None:
            mant = int(est["mantissa_bits"])
        mv = torch.as_tensor(np.asarray(est["maxval"], dtype=np.float32)).reshape(-1)
    else:
        if range not in ("minmax", "current_minmax") or mantissa_search:
            raise ValueError(f"maxval fixes the range: range='{range}' cannot be used with it")
        if isinstance(maxval, torch.Tensor):
            _check_maxval_tensor(maxval)
            mv = maxval.reshape(-1).to(torch.float32)
        else:
            vals = _maxval_list(maxval)
            if not vals:
                raise ValueError("maxval is empty: give one value, or one per channel")
            mv = torch.tensor(vals, dtype=torch.float32)
        _check_maxval_tensor(mv)
    c = mv.numel()
    if c != 1 and (t.dim() == 0 or t.shape[0] != c):
        got = t.shape[0] if t.dim() else 0
        raise ValueError(f"maxval has {c} values but x has {got} channel(s) along axis 0 "
                         "(give one maxval per channel, or a single one)")
    # float32 arithmetic whatever the dtype (as the exact arithmetic): float64 rounds to float32
    # first, float16 widens exactly; the result is cast back to t's dtype
    x = t if t.dtype == torch.float32 else t.to(torch.float32)
    y = _reference(x, n_bits, mv, torch.tensor([float(mant)]), sign_bits)
    return y if t.dtype == torch.float32 else y.to(t.dtype)


def quantize_to_fp8_ste_MM(x_float, n_bits, maxval, num_mantissa_bits, sign_bits, *, arithmetic="reference"):
    """Drop-in for the reference's ``quantize_to_fp8_ste_MM`` (same arguments; same result and
    same gradients for ``x_float``, a learned ``maxval`` and ``num_mantissa_bits``, bit for bit).

    ``maxval`` is a tensor of one value or one per channel along axis 0; ``num_mantissa_bits``
    a tensor (or a number), rounded and clamped to ``1 .. n_bits - sign_bits`` as the reference
    does; ``sign_bits`` 1 (signed, range ``[-maxval, maxval]``) or 0 (unsigned, ``[0, maxval]``).

    With ``arithmetic="reference"`` (the default) the small per-channel ops (mantissa bits, bias,
    minval) are the reference's own torch expressions, and the elementwise part runs in fp8q's
    kernel for a contiguous float32 tensor with float32 maxval and mantissa bits, one maxval or
    one per channel along axis 0. torch's float32 ``log2`` and ``pow`` are evaluated with torch on
    the few values that matter (each channel's binade thresholds and scales), including the ulp
    by which torch's scalar ``pow`` loop can differ from its vectorized one on the last elements
    of each loop. Other dtypes, layouts and broadcasts, and formats of more than 4096 binades
    (13 or more exponent bits), run the reference's formula in torch (same result, torch's speed).

    With ``arithmetic="exact"`` the forward pass is fp8q's exact kernel (:func:`fp8q.quantize`):
    bit-identical to the reference wherever its float32 arithmetic is exact (an integer bias),
    else within SPEC section 2.1's tolerance; the gradients are the reference's in closed form
    (float64), close to but not bit-identical with autograd's float32 ones, and it needs at least
    one exponent bit.

    Unlike the reference, which returns NaN, a maxval that is not positive and finite raises
    ValueError; NaN inputs give NaN (its payload bits are not reproduced).
    """
    _check(x_float, "x_float")
    _check_maxval_tensor(maxval)
    if sign_bits not in (0, 1):
        raise ValueError(f"sign_bits must be 0 or 1 (got {sign_bits})")
    if isinstance(n_bits, bool) or not isinstance(n_bits, (int, np.integer)):
        raise TypeError(f"n_bits must be an int (got {type(n_bits).__name__})")
    n_bits = int(n_bits)
    if n_bits - sign_bits < 1:
        raise ValueError(f"n_bits - sign_bits must be at least 1 (got n_bits={n_bits}, sign_bits={sign_bits})")
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"arithmetic must be 'reference' or 'exact' (got {arithmetic!r})")
    if isinstance(num_mantissa_bits, torch.Tensor):
        mb = num_mantissa_bits
        if mb.numel() != 1:
            raise ValueError(f"num_mantissa_bits must hold one value (got {mb.numel()})")
        if not mb.is_floating_point():
            mb = mb.to(torch.float32)
    else:
        try:
            if isinstance(num_mantissa_bits, (str, bytes)):
                raise TypeError
            mb = torch.tensor([float(num_mantissa_bits)])
        except (TypeError, ValueError):
            raise TypeError(f"num_mantissa_bits must be a number or a tensor "
                            f"(got {type(num_mantissa_bits).__name__})") from None
    if not bool(torch.isfinite(mb.detach()).all()):
        raise ValueError("num_mantissa_bits must be finite")
    if arithmetic == "reference":
        return _reference(x_float, n_bits, maxval, mb, sign_bits)
    return _exact_ste_MM(x_float, n_bits, maxval, num_mantissa_bits, sign_bits)


def _exact_ste_MM(x_float, n_bits, maxval, num_mantissa_bits, sign_bits):
    """quantize_to_fp8_ste_MM in fp8q's exact arithmetic, with closed-form gradients."""
    mantissa_t = num_mantissa_bits if isinstance(num_mantissa_bits, torch.Tensor) else None
    b = float(num_mantissa_bits.detach().reshape(-1)[0]) if mantissa_t is not None else float(num_mantissa_bits)
    m = int(min(max(round(b), 1), n_bits - sign_bits))  # Python's round is half-to-even, as torch's
    e = n_bits - sign_bits - m
    fmt = f"{'' if sign_bits else 'u'}e{e}m{m}"
    return _run(x_float, fmt, maxval, False, "minmax", False, mantissa_t, n_bits, sign_bits)


# whole-model quantization (it builds on fake_quant above)
from ._torch_model import Summary, load_states, quantize, save_states, summary  # noqa: E402
from ._torch_analyze import Report, analyze  # noqa: E402
