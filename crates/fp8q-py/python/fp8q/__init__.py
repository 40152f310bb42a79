"""fp8q: FP8 (and any ExMy) quantization for NumPy and PyTorch.

Fast quantize-dequantize ("fake quantization") onto the flexible-bias floating-point grids of
*FP8 Quantization: The Power of the Exponent* (Kuzmin et al., NeurIPS 2022), INT grids and the
deployed 8-bit encodings; bit-exact float8 encode/decode; range estimators; the analytical SQNR
study. The kernels are fp8q's Rust library: arrays pass without copies, the GIL is released
while they run, and rayon spreads the work over all cores.

Format names are those of ``fp8q formats``: ``eXmY`` (signed flexible-bias FP of 1+X+Y bits),
``ueXmY`` (unsigned), ``intN`` (symmetric INT), ``intN-asym``, the standard encodings
``float8_e4m3fn``, ``float8_e5m2``, ``float8_e4m3fnuz``, ``float8_e5m2fnuz``, and the
block-scaled formats: ``mxfp8_e4m3``, ``mxfp8_e5m2``, ``mxfp6_e3m2``, ``mxfp6_e2m3``, ``mxfp4``,
``mxint8``, ``nvfp4`` and ``ELEMENT@K[/SCALE][:RULE]`` (``e3m4@32``, ``e2m1@16/e4m3``,
``int4@128/f32``, ``e2m1@32:rceil``). A block-scaled format splits an axis (the last by default)
into blocks of ``K`` values that share a scale taken from the block's largest magnitude: it has
no range of its own (:func:`quantize` and :func:`encode` take ``block_size``, ``block_axis`` and
``scale_rule`` for them instead).

PyTorch support lives in :mod:`fp8q.torch` (imported on demand; this module never imports torch).
"""

from __future__ import annotations

from collections.abc import Mapping as _Mapping
from typing import NamedTuple as _NamedTuple, Optional as _Optional

import numpy as _np

from . import _native
from ._native import Format

__all__ = ["quantize", "encode", "decode", "BlockEncoding", "estimate_range", "sqnr", "analyze", "export", "Format",
           "__version__"]

__version__ = _native.__version__

_STANDARD = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")


def _array(x, what="x"):
    """NumPy arrays pass as they are; other array-likes (lists, scalars) go through np.asarray."""
    if isinstance(x, _np.ndarray):
        return x
    if hasattr(x, "__array__") or isinstance(x, (list, tuple, int, float)):
        return _np.asarray(x)
    raise TypeError(f"{what} must be a NumPy array (got {type(x).__name__})")


def _maxvals(maxval):
    """None, one maximum, or one per channel -> None or a list of floats."""
    if maxval is None:
        return None
    if isinstance(maxval, str):
        raise TypeError("maxval must be a number or an array of numbers (got str)")
    try:
        arr = _np.asarray(maxval, dtype=_np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"maxval must be a number or an array of numbers ({e})") from None
    return arr.ravel().tolist()


def quantize(x, fmt, maxval=None, *, per_channel=False, range=None, mantissa_search=False, out=None,
             block_size=None, block_axis=None, scale_rule=None):
    """Quantize-dequantize ``x`` onto the grid of ``fmt``: every value becomes the nearest grid
    value (ties to even), values beyond the range saturate, NaN stays NaN.

    Parameters
    ----------
    x : numpy.ndarray
        float32, float64 or float16, any shape. A C-contiguous float32 array is read in place;
        other layouts are copied first. float64 is rounded to float32 first (as the CLI does with
        float64 files), float16 widens exactly; the kernels compute in float32. The result has
        the dtype of ``x`` (float16 results are rounded to float16).
    fmt : str
        A format name as printed by ``fp8q formats`` (``"e4m3"``, ``"int8"``, ``"float8_e4m3fn"``,
        ``"mxfp4"``, ``"nvfp4"``, ``"e2m1@16/e4m3"``).
    maxval : float or array of float, optional
        Fix the range to ``[-maxval, maxval]`` (``[0, maxval]`` for unsigned FP formats). An array
        of ``x.shape[0]`` values gives one range per channel along axis 0. Rounded to float32
        like the CLI and the reference do. Without it the range is estimated from ``x``.
    per_channel : bool
        Estimate one range per index of axis 0 (output channel of a weight).
    range : str, optional
        Range estimator when ``maxval`` is not given: ``"minmax"`` (min and max of ``x``, the
        default) or ``"mse"`` (the 111-candidate MSE search); the CLI's names ``current_minmax``,
        ``allminmax``, ``running_minmax`` and ``line_search`` are accepted too.
    mantissa_search : bool
        With ``range="mse"`` and a flexible FP format: also search the mantissa bits (same total
        width). Use :func:`estimate_range` to see the split chosen.
    out : numpy.ndarray, optional
        Where to write the result: same shape and dtype as ``x``, C-contiguous. ``out=x`` works
        in place with no copy.
    block_size : int, optional
        Block-scaled formats: values per block, overriding the format's (``mxfp4``'s 32). A
        dimension that is not a multiple of it ends with a shorter block.
    block_axis : int, optional
        Block-scaled formats: the axis the blocks run along (default ``-1``, the last; negative
        counts from the end).
    scale_rule : {"floor", "ceil", "even", "rceil"}, optional
        Block-scaled formats with E8M0 scales: how the power-of-two scale is chosen from the
        block's largest magnitude, overriding the format's (``floor``, OCP MX v1.0, unless the
        spelling says otherwise; ``rceil`` is cuBLAS's and torchao's RCEIL).

    A block-scaled format has no range: ``maxval``, ``per_channel``, ``range`` and
    ``mantissa_search`` raise ``ValueError`` with it, as ``block_size``, ``block_axis`` and
    ``scale_rule`` do with the other formats. Each block is scaled by its own largest magnitude
    (NVFP4's two levels: an FP32 tensor scale from the largest magnitude of all of ``x`` and an
    E4M3 scale per block); the values are those of :func:`decode` of :func:`encode`, and of
    torchao's MX and NVFP4 reference quantizers.

    Returns
    -------
    numpy.ndarray
        ``out`` if given, else a new array.

    Raises
    ------
    ValueError
        unknown format or range method, bad maxval or per-channel maxval length, incompatible
        options, a block size below 1, a block axis out of range, ``out`` not C-contiguous or
        overlapping ``x`` partially.
    TypeError
        an unsupported dtype, ``out`` of another dtype.
    """
    return _native.quantize(
        _array(x), fmt, _maxvals(maxval), per_channel, range, mantissa_search,
        None if out is None else _array(out, "out"), block_size, block_axis, scale_rule,
    )


def estimate_range(x, fmt, method="minmax", *, per_channel=False, mantissa_search=False):
    """Estimate the quantization range of ``x`` for ``fmt`` the way :func:`quantize` does.

    Returns a dict with ``min``, ``max`` and ``maxval`` (``max(|min|, |max|)``) -- floats, or
    float32 arrays with one entry per channel along axis 0 when ``per_channel`` -- and
    ``format`` (the spelling of the format used: a mantissa search may change the split),
    ``mantissa_bits`` (None for INT and standard encodings) and ``method``.
    ``method`` and ``mantissa_search`` are as ``range`` and ``mantissa_search`` of
    :func:`quantize`.
    """
    return _native.estimate_range(_array(x), fmt, method, per_channel, mantissa_search)


class BlockEncoding(_NamedTuple):
    """A tensor in a block-scaled format, as :func:`encode` returns it and :func:`decode` takes
    it; the arrays are laid out as torchao lays out its MX and NVFP4 tensors.

    Attributes
    ----------
    codes : numpy.ndarray of uint8
        The element codes in the tensor's order: FP elements as ``sign | exponent | mantissa``
        with the OCP bias (FP6 in the low 6 bits of a byte), the 8-bit elements as their
        ml_dtypes byte, INT elements in two's complement. 4-bit elements are packed two per byte,
        low nibble first (torchao's ``qdata`` of ``float4_e2m1fn_x2``): the last dimension is
        halved when it is even, else the codes are one flat dimension of ``ceil(size / 2)``
        bytes. Other elements: one byte per value, shaped as the tensor.
    scales : numpy.ndarray
        One scale per block, shaped as the tensor with the block axis shortened to
        ``ceil(len / block_size)``: uint8 E8M0 bytes (``2^(b - 127)``, 255 = NaN) or
        ``float8_e4m3fn`` bytes for E4M3 scales, float32 values for F32 scales.
    tensor_scale : float or None
        The FP32 tensor scale of a two-level format (NVFP4: ``amax / (448 * 6)``), else None.
    format : str
        The format with the block size and scale rule applied (``"mxfp4"``, ``"e2m1@16:rceil"``).
    shape : tuple of int
        The shape of the tensor.
    block_axis : int
        The axis the blocks run along (0 .. ndim - 1).
    """

    codes: _np.ndarray
    scales: _np.ndarray
    tensor_scale: _Optional[float]
    format: str
    shape: tuple
    block_axis: int


def _ml_dtype(fmt):
    try:
        import ml_dtypes
    except ImportError:
        return None
    return getattr(ml_dtypes, fmt, None)


def _f64_to_f32_round_to_odd(x):
    """float64 to float32 rounded to odd: an inexact result whose last bit is even steps to its
    other neighbour. Rounding that to nearest-even in a format of at most 22 significant bits
    gives the float64 value correctly rounded, with no double rounding (the float32 carries the
    sticky information in its last bit)."""
    with _np.errstate(over="ignore", invalid="ignore"):
        f = x.astype(_np.float32)
        back = f.astype(_np.float64)
        bits = f.view(_np.uint32).copy()
        adjust = (back != x) & _np.isfinite(back) & ((bits & 1) == 0)
        grow = _np.abs(x) > _np.abs(back)
    bits[adjust & grow] += 1
    bits[adjust & ~grow] -= 1
    return bits.view(_np.float32)


# ml_dtypes dtypes of stored scales that decode reads as their bytes
_SCALE_BYTES = ("float8_e8m0fnu", "float8_e4m3fn")


def encode(x, fmt="float8_e4m3fn", saturate=True, *, block_size=None, block_axis=None, scale_rule=None):
    """Encode ``x`` into the 8-bit codes of a standard encoding, bit-exact with ml_dtypes
    (round to nearest, ties to even), or into the codes and scales of a block-scaled format.

    ``x`` is float32/float64/float16 of any shape. float64 is rounded once, directly to the
    format, as ml_dtypes >= 0.7 casts it (ml_dtypes < 0.7 rounded it to float32 first).
    With ``saturate=True`` values beyond the largest finite value become +-max (what
    quantization simulation wants); with ``saturate=False`` they cast as ml_dtypes does (+-Inf
    for float8_e5m2, NaN for the others). Returns an array of the shape of ``x`` holding the
    codes: viewed as the ml_dtypes dtype of ``fmt`` when ml_dtypes is installed, else uint8.

    **Block-scaled formats** (``"mxfp4"``, ``"nvfp4"``, ``"e2m1@32:rceil"``, elements of at most
    8 bits): returns a :class:`BlockEncoding` ``(codes, scales, tensor_scale, format, shape,
    block_axis)`` laid out as torchao's MX and NVFP4 tensors (``qdata``, ``scale`` and NVFP4's
    ``per_tensor_scale`` when blocks run along the last axis); ``decode`` of it equals
    :func:`quantize` with the same keywords. ``block_size``, ``block_axis`` and ``scale_rule`` are
    those of :func:`quantize`; float64 is rounded to float32 first; elements always saturate
    (``saturate=False`` is an error).
    """
    fmt = fmt.strip().lower() if isinstance(fmt, str) else fmt
    x = _array(x)
    block = _native.block_format(fmt, block_size, block_axis, scale_rule)
    if block is not None:
        if not saturate:
            raise ValueError(f"saturate=False does not apply to block-scaled formats ({block}): "
                             "elements always saturate to the largest element value")
        codes, scales, tensor_scale, name, axis = _native.encode_blocks(x, fmt, block_size, block_axis, scale_rule)
        return BlockEncoding(codes, scales, tensor_scale, name, tuple(x.shape), axis)
    if x.dtype == _np.float64:
        x = _f64_to_f32_round_to_odd(x)
    codes = _native.encode(x, fmt, saturate)
    dt = _ml_dtype(fmt)
    return codes.view(dt) if dt is not None else codes


def _bytes(a, what):
    """uint8 arrays as they are; ml_dtypes float8 arrays (E8M0, E4M3) as their bytes."""
    a = _array(a, what)
    if a.dtype.name in _SCALE_BYTES or a.dtype.name in _STANDARD:
        return a.view(_np.uint8)
    return a


def decode(codes, fmt=None, *, scales=None, tensor_scale=None, shape=None, block_size=None, block_axis=None,
           scale_rule=None):
    """Decode 8-bit codes of a standard encoding to float32 (NaN codes give NaN, the Inf codes of
    float8_e5m2 give +-Inf), or a block-scaled tensor.

    ``codes`` is a uint8 array or an ml_dtypes float8 array; for the latter ``fmt`` defaults to
    its dtype's name.

    **Block-scaled formats**: ``decode(enc)`` with the :class:`BlockEncoding` ``encode`` returned
    (no other argument), or ``decode(codes, fmt, scales=..., tensor_scale=...)`` with arrays laid
    out as :class:`BlockEncoding` describes (torchao's ``qdata`` and ``scale`` viewed as uint8,
    and NVFP4's ``per_tensor_scale`` as a float). ``scales`` may have any shape holding one
    scale per block (read in C order); E8M0 and E4M3 scales are uint8 (or ml_dtypes
    ``float8_e8m0fnu`` / ``float8_e4m3fn``), F32 scales float32. ``shape`` is the tensor's
    shape: by default the shape of ``codes``, its last dimension doubled for 4-bit elements
    (give it when the codes are flat). ``block_size``, ``block_axis`` and ``scale_rule`` are
    those used to encode. Returns float32 of ``shape``.
    """
    if isinstance(codes, BlockEncoding):
        given = [k for k, v in (("fmt", fmt), ("scales", scales), ("tensor_scale", tensor_scale), ("shape", shape),
                                ("block_size", block_size), ("block_axis", block_axis),
                                ("scale_rule", scale_rule)) if v is not None]
        if given:
            raise ValueError(f"decode(encoding) takes the format and layout from the BlockEncoding; "
                             f"{', '.join(given)} cannot be given with it")
        enc = codes
        return _native.decode_blocks(_array(enc.codes, "codes"), _array(enc.scales, "scales"), enc.format,
                                     enc.tensor_scale, list(enc.shape), None, enc.block_axis, None)
    codes = _array(codes, "codes")
    name = codes.dtype.name
    if fmt is None and name in _STANDARD:
        fmt = name
    if fmt is None:
        raise ValueError("decode needs fmt for uint8 codes (e.g. 'float8_e4m3fn', or 'mxfp4' with scales=)")
    block = _native.block_format(fmt, block_size, block_axis, scale_rule)
    if block is None:
        given = [k for k, v in (("scales", scales), ("tensor_scale", tensor_scale), ("shape", shape)) if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} applies to block-scaled formats only, not to {fmt}")
        if name in _STANDARD:
            codes = codes.view(_np.uint8)
        return _native.decode(codes, fmt)
    if scales is None:
        raise ValueError(f"decoding {block} needs scales= (one scale per block)")
    if tensor_scale is not None:
        tensor_scale = float(tensor_scale)
    if shape is not None:
        shape = [int(d) for d in shape]
    return _native.decode_blocks(_bytes(codes, "codes"), _bytes(scales, "scales"), fmt, tensor_scale, shape,
                                 block_size, block_axis, scale_rule)


def _names(v, what):
    if v is None:
        return None
    if isinstance(v, str):
        return [s for s in (p.strip() for p in v.split(",")) if s]
    try:
        return [str(s) for s in v]
    except TypeError:
        raise TypeError(f"{what} must be a string or a list of strings (got {type(v).__name__})") from None


def sqnr(dists=None, formats=None, maxval=None, *, range_search="analytic", samples=1_000_000, seed=10,
         verify=None, points_per_octave=32, block_size=None, scale_rule=None, tensor_size=None):
    """The analytical SQNR study of ``fp8q sqnr``: expected quantization MSE, SQNR and the error
    of a product of two independent quantized values, for each distribution x format, at the
    optimal range (or at ``maxval``).

    Parameters
    ----------
    dists : str or list of str, optional
        Distributions as the CLI spells them: ``"uniform:min=-1,max=1"``,
        ``"gauss:mu=0,sigma=1,min=-10,max=10"``, ``"student-t:nu=8,min=-100,max=100"``
        (``clip=C`` is short for ``min=-C,max=C``). Default: the paper's three.
    formats : str or list of str, optional
        Format names (a comma-separated string works too). Default: e5m2, e4m3, e3m4, e2m5, int8.
    maxval : float, optional
        Evaluate at the range ``[-maxval, maxval]`` instead of the optimal one.
    range_search : {"analytic", "samples"}
        Minimize the analytical MSE, or the reference's 1000-candidate line search on
        ``samples`` draws with ``seed``.
    verify : int, optional
        Monte-Carlo cross-check with this many samples (adds the ``mc_*`` keys).
    points_per_octave : int
        Scan density of the optimal-range search (4 to 4096).
    block_size, scale_rule : optional
        Block size and E8M0 rule (``"floor"``, ``"ceil"``, ``"even"``, ``"rceil"``) of every
        block-scaled format (``"mxfp4"``, ``"nvfp4"``, ``"e3m4@32"``, ...), which are analysed
        exactly per block (no range: ``maxval`` is None for them).
    tensor_size : int, optional
        Elements of the tensor whose maximum sets a two-level format's FP32 tensor scale (NVFP4);
        default the Monte-Carlo's sample count, else 2^24.

    Returns
    -------
    list of dict
        One flat dict per (distribution, format), in order: ``distribution`` (spec), ``family``,
        ``label``, ``second_moment``, ``format``, ``name``, ``n_bits``, ``maxval``,
        ``bits_per_element``, ``tensor_amax`` (two-level block formats), ``mse``,
        ``sqnr_db``, ``neg_log_mse_db``, ``xr``, ``dot_product_mse``, ``dot_product_sqnr_db``,
        ``dot_product_neg_log_mse_db``, ``evaluations``, ``best``, ``range_method``.
        ``pandas.DataFrame(fp8q.sqnr())`` makes a table of it.
    """
    if maxval is not None:
        maxval = float(maxval)
    samples, seed = int(samples), int(seed)
    verify = None if verify is None else int(verify)
    for what, n in (("samples", samples), ("verify", verify)):
        if n is not None and n < 2:
            raise ValueError(f"{what}: '{n}' is not a whole number of at least 2")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be a whole number in 0 .. 2^64 (got {seed})")
    if block_size is not None:
        block_size = int(block_size)
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1 (got {block_size})")
    if tensor_size is not None:
        tensor_size = int(tensor_size)
    return _native.sqnr(_names(dists, "dists"), _names(formats, "formats"), maxval, range_search,
                        samples, seed, verify, int(points_per_octave), block_size, scale_rule,
                        tensor_size)


def _tensor(v, name):
    """An array to analyse: NumPy arrays as they are; PyTorch tensors detached, moved to the CPU
    and (bfloat16, which NumPy lacks) widened to float32; other array-likes via np.asarray."""
    if hasattr(v, "detach") and hasattr(v, "numpy"):
        t = v.detach().cpu()
        if t.is_floating_point() and str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return t.numpy()
    return _array(v, f"tensors[{name!r}]")


def analyze(tensors, formats=("e5m2", "e4m3", "e3m4", "e2m5", "int8"), *, per_channel=False, range="minmax",
            mantissa_search=False, slot="weight", block_size=None, scale_rule=None):
    """Which format suits each tensor: ``fp8q analyze``'s per-tensor analysis (the same library
    code as ``fp8q analyze CHECKPOINT``), for arrays you already hold.

    For every tensor and format: the range the format gets, the measured SQNR of the
    quantize-dequantized tensor, the analytical SQNR of a uniform, Gaussian or Student's t
    fitted to the tensor (its kurtosis) at that range, and the best format by each.

    Parameters
    ----------
    tensors : array or mapping of name -> array
        One array, or named arrays such as a state dict (NumPy arrays or PyTorch tensors).
        float32/float64/float16 (and torch bfloat16) are analysed; arrays of other dtypes and
        empty ones are listed under ``skipped``. A name's unit is the name without a trailing
        ``.weight``; a single array is named ``"tensor"``. Unlike ``fp8q analyze CHECKPOINT``,
        which takes the tensors of two or more dimensions, every array given is analysed
        (vectors and scalars with one range).
    formats : str or list of str
        Format names (a comma-separated string works too). Block-scaled formats (``mxfp8_e4m3``,
        ``mxfp6_e2m3``, ``mxfp4``, ``mxint8``, ``nvfp4``, ``ELEMENT@K[/SCALE][:RULE]``) have no
        range: ``range``, ``per_channel`` and ``mantissa_search`` do not apply to them (their
        ``range`` is ``None``); their blocks run along axis 1 of arrays of two or more dimensions
        (the reduction dimension of a linear or conv weight, as in PTQ), along the only axis of
        a vector. Their predicted SQNR is the expected error of the block format on a
        distribution fitted to the tensor's magnitudes.
    per_channel : bool
        One range per index of axis 0 for arrays of two or more dimensions.
    range : str
        ``"minmax"`` (``current_minmax``), ``"mse"`` or any estimator ``fp8q quantize`` names.
    mantissa_search : bool
        With ``range="mse"``: FP formats also search their mantissa bits (the split used is in
        ``used_format``).
    slot : {"weight", "act"}
        What the tensors are, for the rows' ``slot`` field.
    block_size : int, optional
        Block size of every block-scaled format in ``formats`` (as ``fp8q analyze --block-size``).
    scale_rule : str, optional
        E8M0 scale rule of every block-scaled format with E8M0 scales: ``floor``, ``ceil``,
        ``even`` or ``rceil`` (as ``--scale-rule``).

    Returns
    -------
    dict
        The fields of ``fp8q analyze --json``: ``formats``, ``range``, ``per_channel``,
        ``mantissa_search``, ``slots`` (one dict per tensor: ``unit``, ``slot``, ``tensor``,
        ``shape``, ``numel``, ``stats``, ``fit``, per-format maps ``range``, ``used_format``,
        ``sqnr_db``, ``predicted_sqnr_db``, then ``predicted_best``, ``measured_best``,
        ``recommended``), ``summary`` and ``skipped``. An SQNR is ``inf`` where a format loses
        nothing (the CLI's JSON writes ``null`` there).
    """
    if isinstance(tensors, _Mapping):
        items = [(str(k), v) for k, v in tensors.items()]
    else:
        items = [("tensor", tensors)]
    names = [k for k, _ in items]
    arrays = [_tensor(v, k) for k, v in items]
    fmts = _names(formats, "formats")
    if fmts is None:
        raise TypeError("formats must be a string or a list of strings (got None)")
    if slot not in ("weight", "act"):
        raise ValueError(f"slot must be 'weight' or 'act' (got {slot!r})")
    return _native.analyze(names, arrays, fmts, range, bool(per_channel), bool(mantissa_search), slot,
                           block_size, scale_rule)


from ._export import export  # noqa: E402
