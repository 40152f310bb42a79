"""Batch-norm folding for :func:`fp8q.torch.quantize` (``fold_bn=True``): which Conv ->
BatchNorm pairs a model has, and folding one pair.

A pair is a conv whose output goes only into a BatchNorm of its dimension and channel count
with running statistics. The model's graph says which BatchNorm follows which conv:
``torch.fx`` traces it (every conv and BatchNorm kept as one call). A conv whose output is also
used elsewhere (a skip connection of the un-normalised output) is not a pair, nor is a conv or
BatchNorm called more than once. A model that cannot be traced (control flow on tensor values)
falls back to attribute order: a conv followed, in its parent's attribute order, by a matching
BatchNorm (torchvision's ``conv1``, ``bn1`` and ``Sequential(conv, bn)``), with a warning.
"""

from __future__ import annotations

import warnings

import torch
import torch.fx
from torch import nn

_BN_FOR = {nn.Conv1d: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d, nn.Conv3d: nn.BatchNorm3d}


def _matches(conv, bn, base):
    return (base in _BN_FOR and isinstance(bn, _BN_FOR[base]) and bn.num_features == conv.out_channels
            and bn.running_mean is not None)


class _Tracer(torch.fx.Tracer):
    """Keeps every conv and BatchNorm (subclasses included) as one module call."""

    def is_leaf_module(self, m, qualname):
        if isinstance(m, (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm)):
            return True
        return super().is_leaf_module(m, qualname)


def _by_attribute_order(model, base_of):
    pairs = []
    for _, parent in model.named_modules():
        children = list(parent._modules.items())
        for (_, conv), (bn_name, bn) in zip(children, children[1:]):
            if _matches(conv, bn, base_of(conv)):
                pairs.append((parent, conv, bn_name, bn))
    return pairs


def bn_pairs(model, base_of):
    """``(parent of the BatchNorm, conv, BatchNorm attribute name, BatchNorm)`` for each pair
    (see the module's documentation); ``base_of(m)`` is the covered base class of a module."""
    modules = dict(model.named_modules())
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules.values()):
        return []
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # noqa: BLE001 - any tracing failure means: no graph
        warnings.warn(f"fold_bn: torch.fx cannot trace the model ({type(e).__name__}: {str(e)[:200]}); "
                      "folding each conv into the BatchNorm that follows it in attribute order, unchecked",
                      stacklevel=4)
        return _by_attribute_order(model, base_of)
    calls = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls.setdefault(node.target, []).append(node)
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.modules.batchnorm._BatchNorm):
            continue
        bn = modules[node.target]
        src = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if not isinstance(src, torch.fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue
        conv = modules.get(src.target)
        if conv is None or len(calls[src.target]) != 1 or len(calls[node.target]) != 1:
            continue
        if _matches(conv, bn, base_of(conv)):
            parent_name, _, bn_name = node.target.rpartition(".")
            pairs.append((modules[parent_name], conv, bn_name, bn))
    return pairs


def fold(parent, conv, bn_name, bn, journal):
    """Fold bn's eval-mode affine map into conv's weight and bias (float64), bn -> Identity."""
    with torch.no_grad():
        inv = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
        scale = bn.weight.double() * inv if bn.affine else inv
        shift = (bn.bias.double() if bn.affine else 0.0) - bn.running_mean.double() * scale
        w = conv.weight.detach().double() * scale.reshape([-1] + [1] * (conv.weight.dim() - 1))
        b = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(scale)
        old_w = conv.weight.detach().clone()
        old_b = None if conv.bias is None else conv.bias.detach().clone()
        conv.weight.copy_(w.to(conv.weight.dtype))
        if conv.bias is None:
            conv.bias = nn.Parameter((b * scale + shift).to(conv.weight.dtype))
        else:
            conv.bias.copy_((b * scale + shift).to(conv.bias.dtype))
    setattr(parent, bn_name, nn.Identity())

    def undo():
        with torch.no_grad():
            conv.weight.copy_(old_w)
            if old_b is None:
                conv.bias = None
            else:
                conv.bias.copy_(old_b)
        setattr(parent, bn_name, bn)

    journal.append(undo)
