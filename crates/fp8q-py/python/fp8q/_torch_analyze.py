"""Which format each tensor of a PyTorch model needs: :func:`analyze` and its :class:`Report`
(re-exported by :mod:`fp8q.torch`; see ``docs/torch.md``).

The analysis runs on a private quantized copy of the model (:func:`fp8q.torch.quantize` with
every quantizer in place), with the user's calibration loop run several times:

1. **Reference and calibration**: the loop runs the float model itself, whose outputs are the
   reference of every SQNR below; then it runs the copy in floating point, and each input (and
   operand) quantizer records the largest magnitude of what it sees over all batches: the
   range ``A`` that ``quantize(range="minmax")`` would fix.
2. **Statistics**: the loop runs again in floating point; each activation batch is measured as
   it passes (:class:`fp8q._native.StreamedAnalysis`, the library's streamed analysis): its
   moments are merged and its quantization error in every format at the fixed range ``A`` is
   summed, then the batch is dropped. Weights are analysed as ``fp8q.analyze`` analyses them
   (the library's per-tensor analysis, per channel by default).
3. **Sensitivity** (``sensitivity=True``): for every slot and format, the loop runs with only
   that slot quantized in that format; the SQNR of the model's outputs against the reference.
4. **The mix** (``mix=True``): every format in every slot at once (the uniform formats), then
   greedy switches from the best uniform format to each slot's own best, largest gain first,
   each kept only when the output SQNR rises. The result never measures below the best
   uniform format on the loop's batches.

Every quantizer is the one :func:`fp8q.torch.quantize` installs for the same options, so
``quantize(model, forward_loop, formats=report.layer_formats())`` reproduces the mix.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from . import _native
from . import analyze as _analyze_tensors
from ._torch_model import _format, _is_block, _quantizers, quantize

__all__ = ["analyze", "Report"]

DEFAULT_FORMATS = ("e5m2", "e4m3", "e3m4", "e2m5", "int8")


# ---------------------------------------------------------------------------------------------
# The slots of a quantized model
# ---------------------------------------------------------------------------------------------


class _Slot:
    """One quantizer of the working copy: its qualified name, unit (the module), slot name
    (``weight``, ``input``, ``operand:<i>``), the quantizer, and the layer (weights)."""

    def __init__(self, q, layer):
        self.q = q
        self.layer = layer
        self.name = q._name
        if q.kind == "operand":
            head, _, tail = self.name.rpartition(".")
            self.unit, self.slot = head, tail
        else:
            self.unit, self.slot = self.name.rsplit(".", 1)
        self.maxval = None  # the calibrated range of an input or operand

    @property
    def layer_formats_key(self):
        return {"weight": "weight", "input": "act"}.get(self.slot, self.slot)

    def set(self, fmt, per_channel):
        """Quantize this slot in ``fmt`` (None: off), as quantize would install it."""
        q = self.q
        if fmt is None:
            q.enabled = False
            return
        q.format = fmt
        q.enabled = True
        q.range = "minmax"
        if q.kind == "weight":
            q.per_channel = per_channel and not _is_block(fmt)
            q._cache = None
        else:
            q.maxval = self.maxval


def _output_tensor(out):
    """The tensor of a model's output that the SQNRs compare: the output itself, its
    ``logits`` (a Hugging Face ``ModelOutput``, a dict), or its first tensor."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        if isinstance(out.get("logits"), torch.Tensor):
            return out["logits"]
        values = list(out.values())
    elif isinstance(out, (tuple, list)):
        values = list(out)
    else:
        values = []
    for v in values:
        t = _output_tensor(v) if isinstance(v, (torch.Tensor, Mapping, tuple, list)) else None
        if t is not None:
            return t
    return None


class _Outputs:
    """A forward hook on the root module: records the outputs of one run of the loop (the
    reference) or compares each output with the reference (signal and noise sums)."""

    def __init__(self):
        self.reference = None
        self.recorded = []
        self.signal = self.noise = 0.0
        self.calls = 0
        self.handle = None

    def attach(self, model):
        if self.handle is None:
            self.handle = model.register_forward_hook(self._hook)

    def detach(self):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def _hook(self, module, args, out):
        t = _output_tensor(out)
        if t is None:
            raise ValueError(f"the model's output ({type(out).__name__}) holds no tensor to compare")
        t = t.detach().to(torch.float64)
        if self.reference is None:
            self.recorded.append(t.clone())
            return
        k = self.calls
        self.calls += 1
        if k >= len(self.reference) or self.reference[k].shape != t.shape:
            raise ValueError("forward_loop must run the same batches every time it is called (the analysis "
                             f"runs it several times): call {k + 1} differs from the first run")
        ref = self.reference[k]
        self.signal += float(torch.sum(ref * ref))
        self.noise += float(torch.sum((t - ref) ** 2))

    def fix_reference(self):
        self.reference, self.recorded = self.recorded, []

    def start(self):
        self.signal = self.noise = 0.0
        self.calls = 0

    def sqnr_db(self):
        if self.calls != len(self.reference):
            raise ValueError("forward_loop must run the same batches every time it is called (the analysis "
                             f"runs it several times): {self.calls} model calls, {len(self.reference)} in the first run")
        if self.noise == 0.0:
            return math.inf
        return 10.0 * math.log10(self.signal / self.noise)


def _run(model, forward_loop):
    try:
        with torch.no_grad():
            forward_loop(model)
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"forward_loop raised {type(e).__name__}: {e}") from e


def _layout(q, x):
    """(outer, len, inner) around the block axis the quantizer uses for ``x``."""
    shape = tuple(x.shape)
    if not shape:
        return 1, 1, 1
    axis = q._channel_axis(x) % len(shape)
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def _argmax(values):
    """Index of the largest value; NaN and None never win; the first on ties."""
    best = None
    for i, v in enumerate(values):
        if v is None or v != v:
            continue
        if best is None or v > values[best]:
            best = i
    return best


def _json_safe(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Mapping):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


class Report:
    """What :func:`analyze` found.

    Attributes
    ----------
    formats : list of str
        The formats analysed, in order.
    per_channel : bool
        Weight ranges per output channel.
    slots : list of dict
        One dict per quantizer, in the shape of ``fp8q analyze --json``'s ``slots``: ``unit``
        (the module's qualified name), ``slot`` (``"weight"``, ``"input"`` or
        ``"operand:<i>"``), ``shape`` (an activation's: of one batch), ``numel`` (all batches),
        ``stats``, ``fit``, per-format maps ``range``, ``sqnr_db`` (measured) and
        ``predicted_sqnr_db`` (the fitted distribution's), ``predicted_best``,
        ``measured_best``, ``output_sqnr_db`` (the model's output SQNR with only this slot
        quantized, per format; None without sensitivity) and ``recommended`` (the slot's format
        in the verified mix; without a mix, its best by ``output_sqnr_db``, else by
        ``sqnr_db``).
    mix : dict or None
        The verification of the recommended mix: ``uniform`` (per format, the output SQNR with
        every slot in that format), ``best_uniform``, ``per_slot_sqnr_db`` (every slot in its
        own best format), ``mixed_sqnr_db`` (the recommendation), ``switches_tried``,
        ``switches_kept``, ``model_calls`` (per run of the loop).
    skipped : list of dict
        Quantizers not analysed, with the reason.
    """

    def __init__(self, formats, per_channel, slots, mix, skipped):
        self.formats = list(formats)
        self.per_channel = per_channel
        self.slots = slots
        self.mix = mix
        self.skipped = skipped

    def layer_formats(self):
        """``{unit: {"weight": fmt, "act": fmt, "operand:<i>": fmt}}`` with each slot's
        recommended format: the ``formats=`` argument of :func:`fp8q.torch.quantize` (and the
        shape of ``fp8q analyze --write-layer-formats``; ``act`` is a layer's input)."""
        out = {}
        for r in self.slots:
            key = {"weight": "weight", "input": "act"}.get(r["slot"], r["slot"])
            out.setdefault(r["unit"], {})[key] = r["recommended"]
        return out

    def to_dict(self):
        return {"formats": self.formats, "per_channel": self.per_channel, "slots": self.slots, "mix": self.mix,
                "skipped": self.skipped}

    def to_json(self, path=None):
        """The report as JSON text (an infinite SQNR is ``null``, as in the CLI's JSON),
        written to ``path`` when given."""
        text = json.dumps(_json_safe(self.to_dict()), indent=1)
        if path is not None:
            with open(os.fspath(path), "w") as f:
                f.write(text + "\n")
        return text

    def plot(self, path):
        """Draw the heat map (slots x formats, the recommendation framed, kurtosis beside) to
        an SVG file, as ``fp8q analyze --plot`` draws it."""
        labels, values, rec, kurt = [], [], [], []
        for r in self.slots:
            labels.append(f"{r['unit'] or '(root)'} [{r['slot']}]")
            src = r["output_sqnr_db"] if r.get("output_sqnr_db") is not None else r["sqnr_db"]
            values.append([float(src.get(f, math.nan)) for f in self.formats])
            rec.append(r["recommended"])
            kurt.append(float(r["stats"]["kurtosis"]))
        _native.write_heat_map(os.fspath(path), self.formats, labels, values, rec, kurt)

    def __str__(self):
        head = ["unit", "slot"] + self.formats + ["recommended"]
        cells = [head]
        for r in self.slots:
            src = r["output_sqnr_db"] if r.get("output_sqnr_db") is not None else r["sqnr_db"]
            cells.append([r["unit"] or "(root)", r["slot"]] + [f"{src[f]:.2f}" for f in self.formats]
                         + [r["recommended"]])
        widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        what = "output SQNR (dB) with only that slot quantized" if any(
            r.get("output_sqnr_db") is not None for r in self.slots) else "tensor SQNR (dB)"
        lines.insert(0, f"{what}; recommended: the verified mix")
        if self.mix is not None:
            m = self.mix
            lines.append(f"mix: {m['mixed_sqnr_db']:.2f} dB at the output; best uniform "
                         f"{m['best_uniform']['format']} {m['best_uniform']['sqnr_db']:.2f} dB")
        return "\n".join(lines)

    def __repr__(self):
        return f"<fp8q.torch.Report: {len(self.slots)} slots x {len(self.formats)} formats>"


# ---------------------------------------------------------------------------------------------
# analyze
# ---------------------------------------------------------------------------------------------


def _formats(formats):
    if isinstance(formats, str):
        formats = [formats]
    try:
        fmts = list(formats)
    except TypeError:
        raise TypeError(f"formats must be a list of format names (got {type(formats).__name__})") from None
    if not fmts:
        raise ValueError("formats is empty: give at least one format")
    out = []
    for f in fmts:
        if f is None:
            raise TypeError("formats must hold format names (got None)")
        name = _format(f, "formats")
        if name in out:
            raise ValueError(f"format {name!r} is listed twice")
        out.append(name)
    return out


def analyze(model, forward_loop, *, formats=DEFAULT_FORMATS, per_channel=True, weights=True, activations=True,
            sensitivity=True, mix=True, functional=False, layers=None, exclude=None, fold_bn=False):
    """Which format each weight, input and (``functional=True``) matmul operand of a CPU model
    needs: measured and predicted SQNR per format, the model's sensitivity to each slot, and a
    recommended mix verified end to end (see ``docs/torch.md``).

    Parameters
    ----------
    model : torch.nn.Module
        The float model (left untouched: the analysis runs on a copy). Call ``model.eval()``.
    forward_loop : callable
        ``forward_loop(model)`` runs the calibration batches through the model it is given; it
        is called several times (3, plus one per slot and format with ``sensitivity``, plus
        the mix's runs) and must run the same batches each time. The first tensor of each
        model output (a ``logits`` entry if there is one) is what the output SQNRs compare.
    formats : list of str
        The formats compared (any names ``fp8q formats`` lists, block formats included).
    per_channel : bool
        Weight ranges per output channel (as ``quantize``).
    weights, activations : bool
        Analyse the weights / the inputs (and operands).
    sensitivity : bool
        Measure the output SQNR with only one slot quantized, for every slot and format.
    mix : bool
        Build and verify the recommended mix (below).
    functional : bool
        Also analyse the operands of ``torch.matmul``, ``@``, ``torch.bmm`` and
        ``scaled_dot_product_attention`` calls in forward code (``quantize(functional=True)``).
    layers, exclude, fold_bn
        As :func:`fp8q.torch.quantize`.

    Returns
    -------
    Report
        ``report.slots`` (one dict per slot), ``report.mix``, ``report.layer_formats()`` (for
        ``quantize(formats=...)``), ``report.to_json()``, ``report.plot(path)``.

    Memory: each activation batch is measured and dropped as it passes (the statistics and one
    error sum per format are kept); the model's outputs of one run of the loop are kept as the
    reference of the output SQNRs.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    if not callable(forward_loop):
        raise TypeError(f"forward_loop must be callable (got {type(forward_loop).__name__})")
    fmts = _formats(formats)
    if not (weights or activations):
        raise ValueError("weights and activations are both False: nothing to analyse")
    per_channel = bool(per_channel)

    # 1. the reference outputs: the float model itself (a hook on it for one run of the loop)
    outputs = _Outputs()
    outputs.attach(model)
    try:
        _run(model, forward_loop)
    finally:
        outputs.detach()
    outputs.fix_reference()
    if not outputs.reference:
        raise ValueError("forward_loop never called the model")
    # calibration (ranges: the min-max over all batches) on a quantized copy
    with warnings.catch_warnings():
        # layers the loop never calls are listed in the report's `skipped`
        warnings.simplefilter("ignore")
        work = quantize(model, forward_loop, weights="e4m3", activations="e4m3", per_channel=per_channel,
                        range="minmax", layers=layers, exclude=exclude, functional=functional, fold_bn=fold_bn,
                        inplace=False)
    outputs.attach(work)
    try:
        slots, skipped = [], []
        for q, layer in _quantizers(work):
            s = _Slot(q, layer)
            if q.kind == "weight":
                if weights:
                    slots.append(s)
                continue
            if not activations:
                continue
            if q.maxval is None and not q.is_block:
                skipped.append({"name": s.name, "reason": "forward_loop never called it"})
                continue
            s.maxval = q.maxval
            if q.maxval == 0.0:
                skipped.append({"name": s.name, "reason": "its calibration saw only zeros"})
                continue
            slots.append(s)
        # everything in floating point until a run sets its slots
        for q, _ in _quantizers(work):
            q.enabled = False
        if not slots:
            raise ValueError("nothing to analyse: no weight or input quantizer "
                             + (f"({'; '.join(k['name'] + ': ' + k['reason'] for k in skipped)})" if skipped else ""))

        # 2. statistics: weights from the tensors, activations streamed through the loop
        rows = {}
        acts = [s for s in slots if s.q.kind != "weight"]
        if acts:
            streams = {s.name: _native.StreamedAnalysis(fmts, s.maxval if any(not _is_block(f) for f in fmts) else None)
                       for s in acts}
            shapes = {}

            def tap(q, x):
                if x.numel() == 0 or not x.is_floating_point():
                    return
                streams[q._name].add(x.detach().to(torch.float32).contiguous().numpy(), *_layout(q, x))
                shapes[q._name] = list(x.shape)

            for s in acts:
                s.q._tap = tap
            try:
                _run(work, forward_loop)
            finally:
                for s in acts:
                    s.q._tap = None
            for s in acts:
                if streams[s.name].numel == 0:
                    skipped.append({"name": s.name, "reason": "it saw no floating-point elements"})
                    continue
                row = dict(streams[s.name].finish(s.unit, shapes[s.name]))
                row["slot"] = s.slot
                rows[s.name] = row
        wslots = [s for s in slots if s.q.kind == "weight"]
        if wslots:
            tensors = {s.name: s.layer.weight.detach().to(torch.float32).numpy() for s in wslots}
            rep = _analyze_tensors(tensors, formats=fmts, per_channel=per_channel, range="minmax")
            by_name = {r["tensor"]: r for r in rep["slots"]}
            for s in wslots:
                if s.name not in by_name:
                    skipped.append({"name": s.name, "reason": "an empty weight"})
                    continue
                row = dict(by_name[s.name])
                row["unit"], row["slot"] = s.unit, "weight"
                rows[s.name] = row
        slots = [s for s in slots if s.name in rows]
        table = [rows[s.name] for s in slots]

        def measure(choice):
            for s, f in zip(slots, choice):
                s.set(f, per_channel)
            outputs.start()
            _run(work, forward_loop)
            return outputs.sqnr_db()

        # 3. sensitivity: one slot quantized at a time
        if sensitivity:
            for i, (s, row) in enumerate(zip(slots, table)):
                per = {}
                for f in fmts:
                    choice = [None] * len(slots)
                    choice[i] = f
                    per[f] = measure(choice)
                row["output_sqnr_db"] = per
                best = _argmax([per[f] for f in fmts])
                row["recommended"] = fmts[best] if best is not None else row["measured_best"]

        # 4. the mix, verified end to end
        verification = None
        if mix:
            uniform = [{"format": f, "sqnr_db": measure([f] * len(slots))} for f in fmts]
            start = _argmax([u["sqnr_db"] for u in uniform])
            start = 0 if start is None else start
            own = [fmts.index(r["recommended"]) for r in table]
            score = [r["output_sqnr_db"] if sensitivity else r["sqnr_db"] for r in table]
            proposals = [(i, f) for i, f in enumerate(own) if f != start]
            def gain(p):
                a, b = score[p[0]][fmts[p[1]]], score[p[0]][fmts[start]]
                g = 0.0 if a == b else a - b
                return -g if g == g else math.inf  # largest gain first, NaN last

            proposals.sort(key=gain)
            choice = [start] * len(slots)
            current, kept = uniform[start]["sqnr_db"], 0
            for i, f in proposals:
                trial = list(choice)
                trial[i] = f
                v = measure([fmts[k] for k in trial])
                if v > current:
                    choice, current, kept = trial, v, kept + 1
            per_slot = measure([fmts[k] for k in own])
            for r, k in zip(table, choice):
                r["recommended"] = fmts[k]
            verification = {"model_calls": len(outputs.reference), "uniform": uniform,
                            "best_uniform": uniform[start], "per_slot_sqnr_db": per_slot,
                            "mixed_sqnr_db": current, "switches_tried": len(proposals), "switches_kept": kept}
    finally:
        outputs.detach()
    return Report(fmts, per_channel, table, verification, skipped)
