"""`fp8q.export`: a float checkpoint (a file, a folder, or a state dict in memory) written as
a low-precision checkpoint that serving stacks load; the library's `fp8q export`
(`crates/fp8q-export`, see ``docs/export.md``)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping

import numpy as np

from . import _native

# safetensors' dtype names of the element types a state dict may hold
_NUMPY_DTYPES = {"float16": "F16", "float64": "F64", "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
                 "uint8": "U8", "bool": "BOOL", "bfloat16": "BF16"}


def _tensor_entry(name, v):
    """('f32', array) or ('raw', (name, dtype, shape, bytes)) for one state-dict value."""
    if type(v).__module__.startswith("torch"):
        import torch
        t = v.detach().cpu().contiguous()
        if t.dtype == torch.float32:
            return "f32", t.numpy()
        names = {torch.bfloat16: ("BF16", torch.int16), torch.float16: ("F16", torch.int16)}
        if t.dtype in names:
            dt, view = names[t.dtype]
            return "raw", (name, dt, list(t.shape), t.view(view).numpy().tobytes())
        v = t.numpy()
    if not isinstance(v, np.ndarray):
        raise TypeError(f"state dict entry '{name}' must be a torch.Tensor or numpy.ndarray (got {type(v).__name__})")
    if v.dtype == np.float32:
        return "f32", np.ascontiguousarray(v)
    dt = _NUMPY_DTYPES.get(v.dtype.name)
    if dt is None:
        raise TypeError(f"state dict entry '{name}': unsupported dtype {v.dtype}")
    return "raw", (name, dt, list(v.shape), np.ascontiguousarray(v).tobytes())


def export(state_dict_or_path, out_dir, format=None, *, per_channel=False, layer_formats=None, tensors=None,
           scale_rule=None, layout="compressed-tensors", force=False):
    """Write a low-precision checkpoint that vLLM (compressed-tensors) or Model-Optimizer's
    loaders read: exactly ``fp8q export`` (``docs/export.md``).

    Parameters
    ----------
    state_dict_or_path : str, os.PathLike or mapping
        A ``.safetensors`` file, a sharded ``model.safetensors.index.json``, a folder holding
        either (its ``config.json`` is merged), a ``.pth``; or a state dict of ``torch.Tensor``
        / NumPy arrays (float32, bfloat16, float16 and integer tensors kept with their dtype).
    out_dir : str or os.PathLike
        The folder to write (written whole or not at all).
    format : str, optional
        The format of every quantized weight: ``"float8_e4m3fn"`` (``"e4m3"``), ``"int8"``,
        ``"mxfp8_e4m3"``, ``"mxfp4"`` or ``"nvfp4"``.
    per_channel : bool
        One scale per output channel (float8).
    layer_formats : mapping or path, optional
        ``{module: {"weight": fmt}}`` (what ``fp8q.torch.analyze(...).layer_formats()`` and
        ``fp8q analyze --write-layer-formats`` give), or a JSON file of it.
    tensors : str or list of str, optional
        Globs of the tensors to quantize (default: 2-D float tensors named ``*.weight``).
    scale_rule : str, optional
        E8M0 rule of the MX formats: ``floor`` (default), ``ceil``, ``even``, ``rceil``.
    layout : str
        ``"compressed-tensors"`` or ``"modelopt"`` (NVFP4).
    force : bool
        Replace an ``out_dir`` that exists and is not empty.

    Returns
    -------
    dict
        The report (``fp8q_export.json``): per quantized tensor its format, shape, SQNR and
        stored tensors; the copied tensors; files, bytes and seconds.

    Raises
    ------
    ValueError, TypeError
        A format with no deployed layout, a weight whose input dimension is not a multiple of the
        block, a non-float tensor selected, a layer format naming no tensor, an ``out_dir`` that
        is not empty, an unreadable input. Nothing is written then.
    """
    if isinstance(layer_formats, (str, os.PathLike)):
        with open(os.fspath(layer_formats)) as f:
            layer_formats = json.load(f)
    if layer_formats is not None and not isinstance(layer_formats, Mapping):
        raise TypeError(f"layer_formats must be a mapping or a JSON file (got {type(layer_formats).__name__})")
    if layer_formats is not None:
        layer_formats = {str(m): {str(k): v for k, v in sides.items()} for m, sides in layer_formats.items()}
    if isinstance(tensors, str):
        tensors = [tensors]
    args = dict(format=format, per_channel=bool(per_channel), layer_formats=layer_formats,
                tensors=list(tensors or []), scale_rule=scale_rule, layout=layout, force=bool(force))
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        return _native.export(os.fspath(state_dict_or_path), os.fspath(out_dir), **args)
    if not isinstance(state_dict_or_path, Mapping):
        raise TypeError("state_dict_or_path must be a path or a mapping of names to tensors "
                        f"(got {type(state_dict_or_path).__name__})")
    names, arrays, raw = [], [], []
    for name, v in state_dict_or_path.items():
        kind, entry = _tensor_entry(str(name), v)
        if kind == "f32":
            names.append(str(name))
            arrays.append(entry)
        else:
            raw.append(entry)
    with tempfile.TemporaryDirectory(prefix="fp8q-export-") as tmp:
        path = os.path.join(tmp, "model.safetensors")
        _native.write_tensors(path, names, arrays, raw)
        return _native.export(path, os.fspath(out_dir), **args)
