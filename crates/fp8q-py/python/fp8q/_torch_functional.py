"""Quantizing the operands of matrix products made in ``forward`` code: ``functional=True`` of
:func:`fp8q.torch.quantize` (see ``docs/torch.md``).

Attention multiplies activations by activations (``q @ k.transpose(-2, -1)``, ``probs @ v``)
in its ``forward``, not in a Linear layer, so the layer quantizers of ``_torch_model`` never see
those operands. Here:

* a :class:`torch.overrides.TorchFunctionMode` (:class:`_OperandMode`) intercepts
  ``torch.matmul``, ``Tensor.matmul``, ``@`` (``Tensor.__matmul__`` / ``__rmatmul__``),
  ``torch.bmm``, ``Tensor.bmm`` and ``F.scaled_dot_product_attention`` (decomposed into its math
  formula: two products) and sends each floating-point operand through an
  :class:`OperandQuantizer`;
* the mode is active exactly while a module of the quantized model runs: every module gets a
  forward pre-hook (:func:`_enter`) and an ``always_call`` forward hook (:func:`_exit`) that keep
  a thread-local stack of ``[module, calls]`` frames; the outermost pre-hook enters the mode and
  the matching post-hook (which torch also runs when ``forward`` raises) leaves it;
* a product belongs to the innermost module whose ``forward`` is running. Call ``c`` of one
  ``forward`` call of module ``M`` has operands ``2c`` (left) and ``2c + 1`` (right), quantized
  by ``M.fp8q_operands["operand:<i>"]``, named ``"<M's name>.operand:<i>"``;
* operand quantizers are created the first time their product runs while ``forward_loop``
  calibrates; afterwards a product without a quantizer runs in floating point (a warning per
  name). :func:`fp8q.torch.load_states` creates the ones its states name.

The hooks are module-level functions that look their state up on the module they are given
(``module._fp8q_scope``, a :class:`_Scope`), so ``copy.deepcopy`` of a quantized model gives a
copy whose hooks drive the copy's quantizers.
"""

from __future__ import annotations

import math
import re
import threading
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

# fp8q.torch first: it loads _torch_model, which loads this module at its end
from .torch import _DTYPES  # isort: skip
from ._torch_model import InputQuantizer, _Quantizer  # isort: skip

__all__ = ["OperandQuantizer"]

PREFIX = "operand:"
_KEY = re.compile(r"operand:(0|[1-9][0-9]*)")
_CONTAINER = "fp8q_operands"  # the nn.ModuleDict attribute of an owning module


def operand_index(key):
    """``"operand:3"`` -> 3; anything else -> None."""
    m = _KEY.fullmatch(key) if isinstance(key, str) else None
    return int(m.group(1)) if m else None


class OperandQuantizer(InputQuantizer):
    """One operand of a matrix product in forward code: :class:`InputQuantizer`'s calibration
    and ``fp8q.quantize(x, format, maxval=maxval)``; block formats scale blocks along the
    reduction dimension: the last dimension of the left operand (``side`` 0), the second to last
    of the right one (``side`` 1; the last of a 1-D right operand)."""

    kind = "operand"

    def __init__(self, fmt, range="minmax", side=0):
        super().__init__(fmt, range=range)
        if side not in (0, 1):
            raise ValueError(f"side must be 0 (left operand) or 1 (right operand), got {side!r}")
        self.side = side

    def _channel_axis(self, x):
        return -2 if self.side == 1 and x.dim() >= 2 else -1

    def extra_repr(self):
        return super().extra_repr() + f", side={self.side}"


# ---------------------------------------------------------------------------------------------
# State on the modules
# ---------------------------------------------------------------------------------------------


class _Config:
    """Shared by the modules of one quantized model: the operand format and range estimator,
    the quantizers being calibrated (a list while ``forward_loop`` runs, else None) and the
    names already warned about."""

    def __init__(self, fmt, range_):
        self.format = fmt
        self.range = range_
        self.calib = None
        self.warned = set()


class _Scope:
    """``module._fp8q_scope``: the module's qualified name, whether its operands are quantized
    (``layers``/``exclude``), its ``{"operand:<i>": format}`` overrides, the shared config."""

    def __init__(self, name, selected, formats, config):
        self.name = name
        self.selected = selected
        self.formats = formats
        self.config = config

    def operand_name(self, index):
        return f"{self.name}.{PREFIX}{index}" if self.name else f"{PREFIX}{index}"


def scope_of(module):
    return module.__dict__.get("_fp8q_scope")


def config_of(model):
    """The functional config of a quantized model (found on its first scoped module), or None."""
    for m in model.modules():
        s = scope_of(m)
        if s is not None:
            return s.config
    return None


def scoped_modules(model):
    """{qualified name the quantizer names use: module} of the scoped modules of ``model``."""
    out = {}
    for m in model.modules():
        s = scope_of(m)
        if s is not None:
            out.setdefault(s.name, m)
    return out


def operand_quantizers(module):
    """The operand quantizers a module owns, by index."""
    ops = module._modules.get(_CONTAINER)
    if ops is None:
        return []
    return [q for _, q in sorted(ops.items(), key=lambda kv: operand_index(kv[0]))]


def create_operand(module, index):
    """A new operand quantizer ``index`` on a scoped module (its format from the module's
    overrides, else the model's operand format)."""
    scope = scope_of(module)
    key = f"{PREFIX}{index}"
    q = OperandQuantizer(scope.formats.get(key, scope.config.format), scope.config.range, index % 2)
    q._name = scope.operand_name(index)
    ops = module._modules.get(_CONTAINER)
    if ops is None:
        ops = nn.ModuleDict()
        setattr(module, _CONTAINER, ops)
    ops[key] = q
    return q


def operand_slot(model, name):
    """(module, index) of an operand quantizer name that ``load_states`` may create on
    ``model``: a selected scoped module's name + ``.operand:<i>``; else None."""
    owner, _, key = name.rpartition(".")
    index = operand_index(key)
    if index is None:
        return None
    m = scoped_modules(model).get(owner)
    if m is None or not scope_of(m).selected:
        return None
    return m, index


def install(model, selected, formats, fmt, range_, journal):
    """Scope and hook every module of ``model`` except the quantizers. ``selected``: the module
    names whose operands are quantized; ``formats``: ``{module: {"operand:<i>": fmt}}``. The
    undo (appended to ``journal``) removes the hooks, the scopes and the operand quantizers."""
    config = _Config(fmt, range_)
    scoped, handles = [], []

    def undo():
        for h in handles:
            h.remove()
        for m in scoped:
            m.__dict__.pop("_fp8q_scope", None)
            m._modules.pop(_CONTAINER, None)

    journal.append(undo)
    for name, m in model.named_modules():
        if isinstance(m, _Quantizer):
            continue
        ops = {k: v for k, v in formats.get(name, {}).items() if operand_index(k) is not None}
        m._fp8q_scope = _Scope(name, name in selected, ops, config)
        scoped.append(m)
        handles.append(m.register_forward_pre_hook(_enter, prepend=True))
        handles.append(m.register_forward_hook(_exit, always_call=True))


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------


def start_calibration(config):
    config.calib = []


def finish_calibration(config):
    """Fix the ranges of the operand quantizers created while calibrating; the names of those
    that saw no value (disabled)."""
    unused = []
    for q in config.calib:
        if not q._finish():
            q.enabled = False
            unused.append(q._name)
    return unused


def stop_calibration(config):
    for q in config.calib or ():
        q._calib = None
    config.calib = None


# ---------------------------------------------------------------------------------------------
# The module stack and the mode
# ---------------------------------------------------------------------------------------------

_tls = threading.local()


def _stack():
    s = getattr(_tls, "stack", None)
    if s is None:
        s = _tls.stack = []
    return s


def _enter(module, args):
    """Forward pre-hook: push the module's frame; the outermost one enters the mode."""
    stack = _stack()
    if not stack:
        mode = _OperandMode()
        mode.__enter__()
        _tls.mode = mode
    stack.append([module, 0])


def _exit(module, args, output):
    """Forward hook (``always_call``): pop the module's frame (and any left above it), leave the
    mode with the outermost one. Does nothing when the pre-hook did not run (an earlier
    pre-hook raised)."""
    stack = _stack()
    for depth in range(len(stack) - 1, -1, -1):
        if stack[depth][0] is module:
            del stack[depth:]
            break
    else:
        return
    if not stack:
        mode, _tls.mode = _tls.mode, None
        mode.__exit__(None, None, None)


class _OperandMode(TorchFunctionMode):
    """Routes the intercepted products to their handler with the innermost frame; every other
    call runs unchanged. (Torch takes the mode off while ``__torch_function__`` runs, so the
    quantizers' own torch calls are not intercepted.)"""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = _HANDLERS.get(func)
        stack = _stack()
        if handler is None or not stack:
            return func(*args, **kwargs)
        return handler(stack[-1], func, args, kwargs)


# ---------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------


def _quantizable(x):
    return isinstance(x, torch.Tensor) and x.dtype in _DTYPES and x.device.type == "cpu"


def _operand(module, index, x):
    """Operand ``index`` of ``module``'s current forward call, through its quantizer."""
    scope = scope_of(module)
    if scope is None or not scope.selected or not _quantizable(x):
        return x
    config = scope.config
    ops = module._modules.get(_CONTAINER)
    key = f"{PREFIX}{index}"
    q = ops[key] if ops is not None and key in ops else None
    if q is None:
        if config.calib is None:
            name = scope.operand_name(index)
            if name not in config.warned:
                config.warned.add(name)
                warnings.warn(f"fp8q: operand quantizer '{name}' does not exist (its product did not run while "
                              "forward_loop calibrated, and load_states did not create it): the operand stays "
                              "in floating point", stacklevel=2)
            return x
        q = create_operand(module, index)
        if q.enabled and q.needs_calibration:
            q._start()
            config.calib.append(q)
    if config.calib is not None and q._calib is None:
        return x  # calibration runs in floating point: block formats and disabled quantizers wait
    return q(x)


def _next_calls(frame, n):
    c = frame[1]
    frame[1] += n
    return c


def _product(module, call, left, right):
    """``left @ right`` with operands ``2 call`` and ``2 call + 1`` quantized."""
    return torch.matmul(_operand(module, 2 * call, left), _operand(module, 2 * call + 1, right))


def _positional(args, kwargs, names):
    """The two operands as positional arguments (keywords ``names`` moved in front)."""
    args, kwargs = list(args), dict(kwargs)
    for i, n in enumerate(names):
        if len(args) == i and n in kwargs:
            args.append(kwargs.pop(n))
    return args, kwargs


def _matmul(frame, func, args, kwargs):
    """``torch.matmul``, ``Tensor.matmul``, ``@``, ``torch.bmm``, ``Tensor.bmm``: one call."""
    call = _next_calls(frame, 1)
    args, kwargs = _positional(args, kwargs, ("input", "mat2" if func in _BMM else "other"))
    if len(args) < 2:
        return func(*args, **kwargs)
    module = frame[0]
    left, right = _operand(module, 2 * call, args[0]), _operand(module, 2 * call + 1, args[1])
    return func(left, right, *args[2:], **kwargs)


def _rmatmul(frame, func, args, kwargs):
    """``self.__rmatmul__(other)`` is ``other @ self``: ``other`` is the left operand."""
    call = _next_calls(frame, 1)
    if len(args) != 2 or kwargs:
        return func(*args, **kwargs)
    module = frame[0]
    right, left = args
    left = _operand(module, 2 * call, left)
    return func(_operand(module, 2 * call + 1, right), left)


_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
_HAS_GQA = "enable_gqa" in (F.scaled_dot_product_attention.__doc__ or "")  # torch >= 2.5


def _sdpa(frame, func, args, kwargs):
    """``F.scaled_dot_product_attention`` as its math formula, two products (calls ``c`` and
    ``c + 1``: operands ``q``, ``k^T``, then ``softmax(...)``, ``v``)::

        softmax(q @ k.transpose(-2, -1) * scale + mask) @ v

    ``scale`` defaults to ``1/sqrt(E)``; ``is_causal`` masks above the diagonal (top-left
    aligned), a bool ``attn_mask`` keeps its True entries, a float one is added; ``enable_gqa``
    repeats the key and value heads. ``dropout_p`` must be 0 unless the owning module is in eval
    mode (then dropout is not applied)."""
    call = _next_calls(frame, 2)
    module = frame[0]
    scope = scope_of(module)
    p = dict(zip(_SDPA_ARGS, args))
    known = _SDPA_ARGS if _HAS_GQA else _SDPA_ARGS[:-1]
    if len(args) > len(known) or any(k not in known or k in p for k in kwargs):
        return func(*args, **kwargs)  # torch reports the bad call
    p.update(kwargs)
    q, k, v = p.get("query"), p.get("key"), p.get("value")
    if scope is None or not scope.selected or not all(_quantizable(t) for t in (q, k, v)):
        return func(*args, **kwargs)
    where = f"scaled_dot_product_attention in '{scope.name or '<root>'}'"
    dropout_p = float(p.get("dropout_p") or 0.0)
    if dropout_p != 0.0 and module.training:
        raise ValueError(f"{where}: dropout_p={dropout_p} in training mode is not supported by functional "
                         "quantization (call model.eval() or pass dropout_p=0)")
    mask, causal = p.get("attn_mask"), bool(p.get("is_causal", False))
    if causal and mask is not None:
        raise ValueError(f"{where}: attn_mask and is_causal=True cannot both be given")
    if p.get("enable_gqa", False):
        k = k.repeat_interleave(q.size(-3) // k.size(-3), -3)
        v = v.repeat_interleave(q.size(-3) // v.size(-3), -3)
    scale = p.get("scale")
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    scores = _product(module, call, q, k.transpose(-2, -1)) * scale
    if causal:
        keep = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(keep.logical_not(), float("-inf"))
    elif mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(mask.logical_not(), float("-inf"))
        else:
            scores = scores + mask
    return _product(module, call + 1, torch.softmax(scores, dim=-1), v)


_BMM = {torch.bmm, torch.Tensor.bmm}
_HANDLERS = {f: _matmul for f in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, *_BMM)}
_HANDLERS[torch.Tensor.__rmatmul__] = _rmatmul
_HANDLERS[F.scaled_dot_product_attention] = _sdpa
