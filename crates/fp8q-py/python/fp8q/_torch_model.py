"""Whole-model fake quantization: :func:`quantize`, :func:`summary`, :func:`save_states`,
:func:`load_states` (re-exported by :mod:`fp8q.torch`; see ``docs/torch.md``).

How a layer is quantized: every covered layer (``nn.Linear``, ``nn.Conv1d/2d/3d``) keeps its
identity and its parameters, and its class is swapped for a quantized subclass
(:class:`QuantLinear`, :class:`QuantConv2d`, ...; Model-Optimizer does the same) that owns two
submodules, ``weight_quantizer`` and ``input_quantizer``, and whose ``forward`` is the layer's own
arithmetic on the quantized operands. This keeps the ``state_dict`` names of the float model
(``fc.weight`` stays ``fc.weight``; parametrizations would rename it
``fc.parametrizations.weight.original``, a wrapper ``fc.layer.weight``), keeps the very
``nn.Parameter`` objects an optimizer may already hold, and keeps ``isinstance(m, nn.Linear)``
true. Fine-tuning works because the quantized weight is computed from the float weight by
:func:`fp8q.torch.fake_quant` (straight-through gradient) whenever autograd records; without
autograd the quantized weight is cached until the weight changes (its version counter), so
inference quantizes each weight once.

All rounding is the library's: a weight is ``fp8q.quantize(W, fmt, per_channel=..., range=...)``
(block formats: blocks along dim 1), an input ``fp8q.quantize(x, fmt, maxval=A)`` with the
calibrated ``A`` (block formats: blocks along the channel dimension, no calibration).

``functional=True`` also quantizes the operands of ``torch.matmul``, ``@``, ``torch.bmm`` and
``F.scaled_dot_product_attention`` in forward code (attention); that machinery is in
``_torch_functional.py``, which this module calls at its integration points (``quantize``,
calibration, the quantizer list of ``summary`` and the states).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import math
import os
import warnings
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import _native
from ._torch_fold_bn import bn_pairs, fold
from . import estimate_range as _estimate_range
from .torch import _DTYPES, fake_quant

__all__ = ["quantize", "summary", "save_states", "load_states", "Summary", "WeightQuantizer", "InputQuantizer",
           "QuantLinear", "QuantConv1d", "QuantConv2d", "QuantConv3d"]

# the estimators an input quantizer calibrates with (the CLI's names; "minmax" is "allminmax")
RANGES = ("minmax", "allminmax", "current_minmax", "running_minmax", "mse", "line_search")
_MOMENTUM = 0.9  # running_minmax, as the reference's activations
_STATES_VERSION = 1


def _format(fmt, what):
    """A format name checked by the library (lower-cased), or None (that side off)."""
    if fmt is None:
        return None
    if not isinstance(fmt, str):
        raise TypeError(f"{what} must be a format name or None (got {type(fmt).__name__})")
    try:
        _native.Format(fmt)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    return fmt.strip().lower()


def _is_block(fmt):
    return fmt is not None and _native.block_format(fmt, None, None, None) is not None


def _range_name(r):
    if not isinstance(r, str):
        raise TypeError(f"range must be a string (got {type(r).__name__})")
    name = r.strip().lower().replace("-", "_")
    if name not in RANGES:
        raise ValueError(f"unknown range estimator {r!r}: expected one of {', '.join(RANGES)}")
    return name


def _f32(v):
    return float(np.float32(v))


# ---------------------------------------------------------------------------------------------
# Quantizers
# ---------------------------------------------------------------------------------------------


class _Quantizer(nn.Module):
    """Common state: ``format`` (None: off), ``enabled`` (set it to False to bypass)."""

    kind = None
    # fp8q.torch.analyze's observer: when set, ``tap(quantizer, x)`` sees the tensor and the
    # quantizer passes it through unchanged
    _tap = None

    def __init__(self, fmt):
        super().__init__()
        self.format = fmt
        self.enabled = fmt is not None

    @property
    def is_block(self):
        return _is_block(self.format)

    def extra_repr(self):
        return f"format={self.format!r}, enabled={self.enabled}"


class WeightQuantizer(_Quantizer):
    """A layer's weight: ``fp8q.quantize(W, format, per_channel=..., range=...)`` of the current
    weight (block formats: ``block_axis=1``, the reduction dimension), straight-through gradient."""

    kind = "weight"

    def __init__(self, fmt, per_channel=True, range="minmax"):
        super().__init__(fmt)
        self.per_channel = bool(per_channel)
        self.range = range
        self._cache = None

    def _quantize(self, w):
        if self.is_block:
            return fake_quant(w, self.format, block_axis=1)
        # every min-max estimator is the weight's own min and max
        est = "minmax" if self.range.endswith("minmax") else self.range
        return fake_quant(w, self.format, per_channel=self.per_channel, range=est, arithmetic="exact")

    def forward(self, w):
        if not self.enabled:
            return w
        if torch.is_grad_enabled() and w.requires_grad:
            self._cache = None
            return self._quantize(w)
        key = (w.data_ptr(), w._version, tuple(w.shape), w.dtype)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._quantize(w.detach()))
        return self._cache[1]

    def maxval_of(self, w):
        """The range the current weight gets: one float, a list (per channel), None (block)."""
        if self.format is None or self.is_block:
            return None
        est = "minmax" if self.range.endswith("minmax") else self.range
        r = _estimate_range(w.detach().to(torch.float32).numpy(), self.format, est, per_channel=self.per_channel)
        m = r["maxval"]
        return [float(v) for v in np.asarray(m).reshape(-1)] if self.per_channel else float(m)

    def extra_repr(self):
        return super().extra_repr() + f", per_channel={self.per_channel}, range={self.range!r}"


class InputQuantizer(_Quantizer):
    """A layer's input: ``fp8q.quantize(x, format, maxval=maxval)`` with the calibrated
    ``maxval`` (block formats: blocks along the channel dimension, no calibration),
    straight-through gradient (cut outside ``[-maxval, maxval]``)."""

    kind = "input"

    def __init__(self, fmt, range="minmax", spatial_dims=None):
        super().__init__(fmt)
        self.range = range
        self.maxval = None
        self.spatial_dims = spatial_dims  # None for linear layers (channels last)
        self._calib = None

    @property
    def needs_calibration(self):
        return self.format is not None and not self.is_block

    def _channel_axis(self, x):
        if self.spatial_dims is None:
            return -1
        return 1 if x.dim() == self.spatial_dims + 2 else 0

    def forward(self, x):
        if self._tap is not None:
            self._tap(self, x)
            return x
        if not self.enabled:
            return x
        if self.is_block:
            return fake_quant(x, self.format, block_axis=self._channel_axis(x))
        if self._calib is not None:
            self._observe(x)
            return x
        if self.maxval is None:
            raise RuntimeError(f"input quantizer '{self._name}' is not calibrated: give quantize a forward_loop, "
                               "or load_states, or set enabled = False")
        if self.maxval == 0.0:
            # calibration saw only zeros: the range is a point
            return x * 0.0
        return fake_quant(x, self.format, self.maxval, arithmetic="exact")

    # calibration: _calib is {"n": batches, "lo", "hi", "data": [...]} while forward_loop runs

    def _start(self):
        self._calib = {"n": 0, "lo": None, "hi": None, "data": []}

    def _observe(self, x):
        if x.numel() == 0:
            return
        c = self._calib
        v = x.detach()
        if self.range in ("mse", "line_search"):
            c["data"].append(v.to(torch.float32).reshape(-1).clone())
            c["n"] += 1
            return
        r = _estimate_range(v.to(torch.float32).numpy(), self.format, "current_minmax")
        lo, hi = float(r["min"]), float(r["max"])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"input of '{self._name}' has no finite value in a calibration batch")
        if c["n"] == 0 or self.range == "current_minmax":
            c["lo"], c["hi"] = lo, hi
        elif self.range == "running_minmax":
            c["lo"] = (1 - _MOMENTUM) * lo + _MOMENTUM * c["lo"]
            c["hi"] = (1 - _MOMENTUM) * hi + _MOMENTUM * c["hi"]
        else:
            c["lo"], c["hi"] = min(c["lo"], lo), max(c["hi"], hi)
        c["n"] += 1

    def _finish(self):
        """The range from the batches seen; False when forward_loop never called the layer."""
        c, self._calib = self._calib, None
        if c["n"] == 0:
            return False
        if c["data"]:
            r = _estimate_range(torch.cat(c["data"]).numpy(), self.format, self.range)
            self.maxval = _f32(r["maxval"])
        else:
            self.maxval = _f32(max(abs(c["lo"]), abs(c["hi"])))
        return True

    def extra_repr(self):
        return super().extra_repr() + f", range={self.range!r}, maxval={self.maxval}"


# ---------------------------------------------------------------------------------------------
# Quantized layers
# ---------------------------------------------------------------------------------------------


class _QuantLayer:
    """Mixin of the quantized layer classes; ``weight_quantizer`` and ``input_quantizer`` are
    submodules, ``_fp8q_name`` the layer's qualified name."""


class QuantLinear(_QuantLayer, nn.Linear):
    def forward(self, input):
        return F.linear(self.input_quantizer(input), self.weight_quantizer(self.weight), self.bias)


class _QuantConv(_QuantLayer):
    def forward(self, input):
        return self._conv_forward(self.input_quantizer(input), self.weight_quantizer(self.weight), self.bias)


class QuantConv1d(_QuantConv, nn.Conv1d):
    pass


class QuantConv2d(_QuantConv, nn.Conv2d):
    pass


class QuantConv3d(_QuantConv, nn.Conv3d):
    pass


_CLASSES = {nn.Linear: QuantLinear, nn.Conv1d: QuantConv1d, nn.Conv2d: QuantConv2d, nn.Conv3d: QuantConv3d}
_SPATIAL = {nn.Linear: None, nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}
_DYNAMIC = {}


def _base(m):
    """The covered base class of a module, or None. A subclass is covered when it keeps its
    base's forward (``nn.MultiheadAttention``'s ``out_proj`` is not: attention reads its weight
    directly)."""
    for base in _CLASSES:
        if isinstance(m, base) and not isinstance(m, _QuantLayer) and type(m).forward is base.forward:
            return base
    return None


def _quant_class(cls, base):
    if cls is base:
        return _CLASSES[base]
    if cls not in _DYNAMIC:
        _DYNAMIC[cls] = type(f"Quant{cls.__name__}", (_CLASSES[base], cls), {})
    return _DYNAMIC[cls]


def _covered(model):
    """{qualified name: (module, base class)} of the layers quantize covers, in module order."""
    out = {}
    for pname, parent in model.named_modules():
        if isinstance(parent, nn.MultiheadAttention):
            continue
        for cname, m in parent.named_children():
            base = _base(m)
            name = f"{pname}.{cname}" if pname else cname
            if base is not None and name not in out:
                out[name] = (m, base)
    return out


def _quant_layers(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _QuantLayer)]


# ---------------------------------------------------------------------------------------------
# quantize
# ---------------------------------------------------------------------------------------------


def _patterns(v, what):
    if v is None:
        return None
    if isinstance(v, str):
        return [v]
    try:
        out = list(v)
    except TypeError:
        raise TypeError(f"{what} must be a glob string or a list of them (got {type(v).__name__})") from None
    for p in out:
        if not isinstance(p, str):
            raise TypeError(f"{what} must hold strings (got {type(p).__name__})")
    return out


def _check_globs(names, layers, exclude, modules=None):
    """Every glob must match a covered layer, or (``modules``: functional=True) a module name."""
    pool = list(names) + list(modules or ())
    for what, pats in (("layers", layers), ("exclude", exclude)):
        for p in pats or ():
            if any(fnmatch.fnmatchcase(n, p) for n in pool):
                continue
            if modules is None:
                raise ValueError(f"{what} pattern {p!r} matches no Linear or Conv layer of the model "
                                 f"(layers: {', '.join(names) or 'none'})")
            raise ValueError(f"{what} pattern {p!r} matches no Linear or Conv layer and no module of the model "
                             f"(layers: {', '.join(names) or 'none'})")


def _select(names, layers, exclude):
    """The names ``layers`` matches (all when None) that ``exclude`` does not."""
    keep = [n for n in names if layers is None or any(fnmatch.fnmatchcase(n, p) for p in layers)]
    return [n for n in keep if not any(fnmatch.fnmatchcase(n, p) for p in exclude or ())]


def _layer_formats(formats, names, modules=None):
    """Check a {layer: {"weight": fmt, "act": fmt}} mapping; returns it with checked names.
    With ``modules`` (the module names, functional=True) a key may also be ``"operand:<i>"``, and
    a module whose keys are all operand keys may be any module of the model."""
    if formats is None:
        return {}
    if not isinstance(formats, Mapping):
        raise TypeError(f"formats must be a mapping {{layer: {{'weight': fmt, 'act': fmt}}}} "
                        f"(got {type(formats).__name__})")
    out = {}
    for layer, sides in formats.items():
        if not isinstance(sides, Mapping):
            raise TypeError(f"formats['{layer}'] must be a mapping with 'weight' and/or 'act' "
                            f"(got {type(sides).__name__})")
        operands = [k for k in sides if _functional.operand_index(k) is not None]
        bad = [k for k in sides if k not in ("weight", "act") and k not in operands]
        if bad:
            raise ValueError(f"formats['{layer}']: unknown key {bad[0]!r} (expected 'weight', 'act' or "
                             "'operand:<i>')")
        if operands and modules is None:
            raise ValueError(f"formats['{layer}']: key {operands[0]!r} (a matmul operand) needs functional=True")
        if layer not in names:
            if modules is None or not sides or len(operands) < len(sides):
                raise ValueError(f"formats: '{layer}' is not a Linear or Conv layer of the model")
            if layer not in modules:
                raise ValueError(f"formats: '{layer}' is not a module of the model")
        out[layer] = {k: _format(v, f"formats['{layer}']['{k}']") for k, v in sides.items()}
    return out


def _check_weight(name, m):
    w = m.weight
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        dt = getattr(w, "dtype", type(w).__name__)
        raise TypeError(f"layer '{name}': weight is not floating point ({dt})")
    if w.dtype not in _DTYPES:
        raise TypeError(f"layer '{name}': unsupported weight dtype {w.dtype} (expected float32, float64 or float16)")
    if w.device.type != "cpu":
        raise ValueError(f"layer '{name}': fp8q.torch quantizes CPU models (weight on {w.device})")


def _wrap(name, m, base, wfmt, afmt, per_channel, range_, journal):
    old = m.__class__
    m.__class__ = _quant_class(old, base)
    m.weight_quantizer = WeightQuantizer(wfmt, per_channel=per_channel and not _is_block(wfmt), range=range_)
    m.input_quantizer = InputQuantizer(afmt, range=range_, spatial_dims=_SPATIAL[base])
    m._fp8q_name = name
    m.weight_quantizer._name = f"{name}.weight"
    m.input_quantizer._name = f"{name}.input"

    def undo():
        del m.weight_quantizer, m.input_quantizer, m._fp8q_name
        m.__class__ = old

    journal.append(undo)


def quantize(model, forward_loop, *, weights="e4m3", activations="e4m3", per_channel=True, range="minmax",
             formats=None, layers=None, exclude=None, functional=False, fold_bn=False, inplace=False):
    """Fake-quantize every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` of a CPU model with fp8q.

    Each covered layer gets a weight quantizer and an input quantizer (see ``docs/torch.md``):

    * the weight is ``fp8q.quantize(W, fmt, per_channel=per_channel, range=range)`` of the
      current weight (block formats: blocks along dim 1, the reduction dimension);
    * the input is ``fp8q.quantize(x, fmt, maxval=A)``, ``A`` calibrated by ``forward_loop``
      and then fixed (block formats: blocks along the channel dimension, no calibration);
    * with ``functional=True``, each operand of ``torch.matmul``, ``@``, ``torch.bmm`` and
      ``F.scaled_dot_product_attention`` in forward code is quantized like an input (format
      ``activations``; block formats: blocks along the reduction dimension).

    Parameters
    ----------
    model : torch.nn.Module
        A CPU model (float32, float64 or float16 weights). Call ``model.eval()`` first as for any
        calibration: ``forward_loop`` runs it in whatever mode it is in.
    forward_loop : callable or None
        ``forward_loop(model)`` runs the calibration batches through the model it is given (the
        quantized copy), as in Model-Optimizer. It runs under ``torch.no_grad()`` with every
        quantizer off (floating-point calibration); each input quantizer records its input's
        range, and so does each matmul operand (functional=True). None: no calibration (the input
        quantizers that need one raise until :func:`load_states` gives them their ranges; no
        operand quantizer exists until :func:`load_states` creates them).
    weights, activations : str or None
        The format of every weight / input quantizer (any name of ``fp8q formats``: ``"e4m3"``,
        ``"int8"``, ``"float8_e4m3fn"``, ``"mxfp4"``, ``"e3m4@32"``...); None leaves that side in
        floating point. Matmul operands (functional=True) follow ``activations``.
    per_channel : bool
        One weight range per output channel (dim 0). Not for block formats.
    range : str
        The range estimator: ``"minmax"`` (``"allminmax"``: the extreme over all calibration
        batches), ``"current_minmax"`` (the last batch), ``"running_minmax"`` (momentum 0.9),
        ``"mse"`` or ``"line_search"`` (the library's search on all calibration inputs of the
        quantizer taken as one tensor). Weights use it on the weight itself.
    formats : mapping, optional
        Per-layer overrides ``{layer: {"weight": fmt, "act": fmt}}`` (what ``fp8q analyze
        --write-layer-formats`` writes; ``act`` is the layer's input here); a side given as None
        is off; a side not given follows ``weights`` / ``activations``. Keys must be covered
        layers; entries of layers left out by ``layers`` / ``exclude`` are ignored. With
        ``functional=True`` an entry may also give ``"operand:<i>"`` formats for the matmul
        operands of a module (``{"blocks.0.attn": {"operand:2": "e3m4"}}``, ``""`` for the root
        module); an entry with only operand keys may name any module.
    layers, exclude : str or list of str, optional
        fnmatch globs of qualified module names (``"layer1.*"``, ``"fc"``): quantize only the
        layers ``layers`` matches, and not those ``exclude`` matches. Each glob must match a
        covered layer (or, with ``functional=True``, any module name). With ``functional=True``
        the same rule selects operand owners: the products that run in module ``M``'s own
        ``forward`` are quantized when ``M``'s name is selected (the root module's name is
        ``""``; ``"blocks.*.attn"`` selects the attention modules, not their Linear layers).
    functional : bool
        Also quantize both operands of every ``torch.matmul``, ``Tensor.matmul``, ``@``,
        ``torch.bmm``, ``Tensor.bmm`` and ``F.scaled_dot_product_attention`` (decomposed into
        ``softmax(q @ k^T * scale + mask) @ v``, two products) called in forward code. Call ``c``
        of one forward call of the innermost running module ``M`` has operands ``2c`` (left) and
        ``2c + 1`` (right), quantized by ``M.fp8q_operands["operand:<i>"]`` (an
        :class:`~fp8q._torch_functional.OperandQuantizer`, named ``"M.operand:<i>"``). They are
        created when ``forward_loop`` first runs their product; later products without one run
        in floating point (a warning per name). Every module gets two forward hooks.
    fold_bn : bool
        Fold every Conv -> BatchNorm pair (a conv whose output goes only into a BatchNorm of its
        dimension and channel count, found in the ``torch.fx`` graph; by attribute order, with a
        warning, when the model cannot be traced) into the conv's weight and bias with the
        BatchNorm's running statistics, and replace the BatchNorm by ``nn.Identity``, before
        quantizing: the folded weights are the ones quantized. Every pair is folded, whatever
        ``layers`` and ``exclude`` select.
    inplace : bool
        Modify ``model`` itself; by default a deep copy is quantized and ``model`` is untouched.

    Returns
    -------
    torch.nn.Module
        The quantized model (``model`` itself with ``inplace=True``).

    Raises
    ------
    ValueError, TypeError
        An unknown format or range estimator, a glob that matches nothing, a ``formats`` key that
        is not a covered layer (or module, for operand keys), an ``"operand:<i>"`` key without
        ``functional=True``, a non-bool ``functional``, a covered layer whose weight is not a
        floating-point CPU tensor, an already quantized model, a ``forward_loop`` that raises
        (its exception is chained) or feeds non-finite inputs or operands. The model is left as
        it was (with ``functional=True``: no hooks, no ``fp8q_operands``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    if forward_loop is not None and not callable(forward_loop):
        raise TypeError(f"forward_loop must be callable or None (got {type(forward_loop).__name__})")
    if not isinstance(functional, bool):
        raise TypeError(f"functional must be True or False (got {type(functional).__name__})")
    wfmt = _format(weights, "weights")
    afmt = _format(activations, "activations")
    range_ = _range_name(range)
    layers, exclude = _patterns(layers, "layers"), _patterns(exclude, "exclude")
    if _quant_layers(model) or _functional.config_of(model) is not None:
        raise ValueError("model is already quantized by fp8q.torch.quantize (use load_states to change its "
                         "quantizers, or quantize the float model)")
    covered = _covered(model)
    names = list(covered)
    modules = [n for n, _ in model.named_modules()] if functional else None
    overrides = _layer_formats(formats, names, modules)
    _check_globs(names, layers, exclude, modules)
    selected = _select(names, layers, exclude)
    owners = set(_select(modules, layers, exclude)) if functional else ()
    for n in selected:
        _check_weight(n, covered[n][0])

    journal = []
    target = model if inplace else copy.deepcopy(model)
    try:
        if fold_bn:
            for pair in bn_pairs(target, _base):
                fold(*pair, journal)
        mods = dict(target.named_modules())
        for n in selected:
            sides = overrides.get(n, {})
            _wrap(n, mods[n], covered[n][1], sides.get("weight", wfmt), sides.get("act", afmt), per_channel, range_,
                  journal)
        if functional:
            _functional.install(target, owners, overrides, afmt, range_, journal)
        if forward_loop is not None:
            _calibrate(target, forward_loop)
    except BaseException:
        for undo in reversed(journal):
            undo()
        raise
    return target


def _calibrate(model, forward_loop):
    layers = _quant_layers(model)
    todo = [m.input_quantizer for _, m in layers if m.input_quantizer.enabled and m.input_quantizer.needs_calibration]
    weight_on = [m.weight_quantizer.enabled for _, m in layers]
    block_on = [m.input_quantizer.enabled for _, m in layers]
    for _, m in layers:
        m.weight_quantizer.enabled = False
        if m.input_quantizer.is_block:
            m.input_quantizer.enabled = False
    for q in todo:
        q._start()
    config = _functional.config_of(model)  # operand quantizers are created (and started) as their products run
    if config is not None:
        _functional.start_calibration(config)
    try:
        try:
            with torch.no_grad():
                forward_loop(model)
        except Exception as e:
            raise ValueError(f"forward_loop raised {type(e).__name__}: {e}") from e
        unused = [q._name for q in todo if not q._finish()]
        empty = _functional.finish_calibration(config) if config is not None else []
    finally:
        for q in todo:
            q._calib = None
        if config is not None:
            _functional.stop_calibration(config)
        for (_, m), w, b in zip(layers, weight_on, block_on):
            m.weight_quantizer.enabled = w
            m.input_quantizer.enabled = b
    for q in todo:
        if q._name in unused:
            q.enabled = False
    if unused:
        warnings.warn(f"forward_loop never called {len(unused)} quantized layer(s) ({', '.join(unused[:5])}"
                      f"{', ...' if len(unused) > 5 else ''}): their input quantizers stay uncalibrated and "
                      "disabled", stacklevel=3)
    if empty:
        warnings.warn(f"{len(empty)} matmul operand quantizer(s) saw only empty tensors while calibrating "
                      f"({', '.join(empty[:5])}{', ...' if len(empty) > 5 else ''}): they stay uncalibrated and "
                      "disabled", stacklevel=3)


# ---------------------------------------------------------------------------------------------
# summary, states
# ---------------------------------------------------------------------------------------------


def _quantizers(model):
    """(quantizer, owning module) pairs in module order: a layer's weight and input quantizers,
    then the operand quantizers of the module (functional=True) by index. A model quantized with
    functional=True may have none yet (no calibration); any other model must have some."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    out = []
    for _, m in model.named_modules():
        if isinstance(m, _QuantLayer):
            out.append((m.weight_quantizer, m))
            out.append((m.input_quantizer, m))
        out.extend((q, m) for q in _functional.operand_quantizers(m))
    if not out and _functional.config_of(model) is None:
        raise ValueError("model has no fp8q quantizers (quantize it with fp8q.torch.quantize first)")
    return out


def _fmt_maxval(v):
    if v is None:
        return "-"
    if isinstance(v, list):
        return f"{min(v):.4g} .. {max(v):.4g} ({len(v)} ch)"
    return f"{v:.6g}"


class Summary(list):
    """The rows of :func:`summary`; ``str()`` is a table."""

    COLUMNS = ("name", "kind", "format", "range", "maxval", "enabled")

    def __str__(self):
        cells = [list(self.COLUMNS)]
        for r in self:
            cells.append([r["name"], r["kind"], str(r["format"]), str(r["range"]), _fmt_maxval(r["maxval"]),
                          "yes" if r["enabled"] else "no"])
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.COLUMNS))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def summary(model):
    """One row per quantizer of a model quantized by :func:`quantize`, in module order: a dict
    with ``name`` (the layer's qualified name + ``.weight`` / ``.input``; a matmul operand's is
    its module's name + ``.operand:<i>``), ``kind`` (``"weight"``, ``"input"`` or
    ``"operand"``), ``format`` (None: off), ``range`` (the estimator; ``"block"`` for block
    formats, which have none), ``maxval`` (an input's or operand's calibrated range; a weight's
    current range, a list of one value per output channel when per-channel; None for block
    formats, off and uncalibrated quantizers), ``per_channel`` and ``enabled``. A module's
    operand rows come where the module is in module order (before its submodules' rows). The
    returned :class:`Summary` is a list whose ``str`` is a table."""
    rows = Summary()
    for q, m in _quantizers(model):
        if q.kind == "weight":
            maxval, pc = q.maxval_of(m.weight), q.per_channel
        else:
            maxval, pc = (None if q.is_block else q.maxval), False
        rows.append({"name": q._name, "kind": q.kind, "format": q.format,
                     "range": "block" if q.is_block else q.range, "maxval": maxval, "per_channel": pc,
                     "enabled": bool(q.enabled)})
    return rows


def _state(q):
    s = {"kind": q.kind, "format": q.format, "enabled": bool(q.enabled), "range": q.range}
    if q.kind == "weight":
        s["per_channel"] = q.per_channel
    else:
        s["maxval"] = q.maxval
    return s


def save_states(model, path=None):
    """The quantizer states of a quantized model as a JSON-able dict ``{"version": 1,
    "quantizers": {name: state}}``, written to ``path`` when given. A state holds ``kind``,
    ``format``, ``enabled``, ``range`` and ``per_channel`` (weights) or ``maxval`` (inputs and
    operands; weights take their ranges from the weights, which the ``state_dict`` holds)."""
    states = {"version": _STATES_VERSION, "quantizers": {q._name: _state(q) for q, _ in _quantizers(model)}}
    if path is not None:
        with open(os.fspath(path), "w") as f:
            json.dump(states, f, indent=1)
            f.write("\n")
    return states


def _checked_state(name, q, s):
    if not isinstance(s, Mapping):
        raise ValueError(f"states: '{name}' must be an object (got {type(s).__name__})")
    if s.get("kind", q.kind) != q.kind:
        raise ValueError(f"states: '{name}' is a {s.get('kind')} quantizer, the model's is a {q.kind} quantizer")
    fmt = _format(s.get("format"), f"states['{name}']['format']")
    enabled = s.get("enabled", fmt is not None)
    if not isinstance(enabled, bool):
        raise ValueError(f"states: '{name}'.enabled must be true or false")
    rng = _range_name(s.get("range", q.range))
    out = {"format": fmt, "enabled": enabled and fmt is not None, "range": rng}
    if q.kind == "weight":
        out["per_channel"] = bool(s.get("per_channel", q.per_channel)) and not _is_block(fmt)
    else:
        mv = s.get("maxval")
        if mv is not None:
            if isinstance(mv, bool) or not isinstance(mv, (int, float)) or not math.isfinite(mv) or mv < 0:
                raise ValueError(f"states: '{name}'.maxval must be a finite number >= 0 or null (got {mv!r})")
            mv = _f32(mv)
        out["maxval"] = mv
    return out


def load_states(model, states):
    """Set the quantizers of a quantized model from :func:`save_states`' dict or a JSON file
    (a path). The quantizer names must be the model's exactly; nothing changes on an error
    (``ValueError``). A typical restore: ``quantize(model, None, ...)``, then ``load_states``,
    then ``load_state_dict`` of the fine-tuned weights.

    With ``functional=True`` the states' operand quantizers that the model lacks (a model
    quantized with ``forward_loop=None`` has none) are created on their modules, which must be
    modules whose operands the model quantizes."""
    if not isinstance(states, Mapping):
        with open(os.fspath(states)) as f:
            try:
                states = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"quantizer states {states}: invalid JSON ({e})") from None
    qs = states.get("quantizers") if isinstance(states, Mapping) else None
    if not isinstance(qs, Mapping):
        raise ValueError("quantizer states must be an object with a 'quantizers' object")
    if states.get("version", _STATES_VERSION) != _STATES_VERSION:
        raise ValueError(f"quantizer states: unsupported version {states.get('version')!r}")
    mine = {q._name: q for q, _ in _quantizers(model)}
    missing = [n for n in mine if n not in qs]
    new = {n: _functional.operand_slot(model, n) for n in qs if n not in mine}
    extra = [n for n, slot in new.items() if slot is None]
    if missing or extra:
        raise ValueError(f"quantizer states do not match the model: missing {missing or 'none'}, "
                         f"unknown {extra or 'none'}")
    checked = {n: _checked_state(n, q, qs[n]) for n, q in mine.items()}
    for n, (m, i) in new.items():
        template = _functional.OperandQuantizer(None, _functional.scope_of(m).config.range, i % 2)
        checked[n] = _checked_state(n, template, qs[n])
    for n, (m, i) in new.items():
        mine[n] = _functional.create_operand(m, i)
    for n, q in mine.items():
        for k, v in checked[n].items():
            setattr(q, k, v)
        if q.kind == "weight":
            q._cache = None


# matmul operands (functional=True) build on the quantizers above
from . import _torch_functional as _functional  # noqa: E402
