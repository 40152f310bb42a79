"""fp8q: FP8 (and any ExMy) quantization for NumPy and PyTorch.

Fast quantize-dequantize ("fake quantization") onto the flexible-bias floating-point grids of
*FP8 Quantization: The Power of the Exponent* (Kuzmin et al., NeurIPS 2022), INT grids and the
deployed 8-bit encodings; bit-exact float8 encode/decode; range estimators; the analytical SQNR
study. The kernels are fp8q's Rust library: arrays pass without copies, the GIL is released
while they run, and rayon spreads the work over all cores.

Format names are those of ``fp8q formats``: ``eXmY`` (signed flexible-bias FP of 1+X+Y bits),
``ueXmY`` (unsigned), ``intN`` (symmetric INT), ``intN-asym``, and the standard encodings
``float8_e4m3fn``, ``float8_e5m2``, ``float8_e4m3fnuz``, ``float8_e5m2fnuz``.

PyTorch support lives in :mod:`fp8q.torch` (imported on demand; this module never imports torch).
"""

from __future__ import annotations

from collections.abc import Mapping as _Mapping

import numpy as _np

from . import _native
from ._native import Format

__all__ = ["quantize", "encode", "decode", "estimate_range", "sqnr", "analyze", "Format", "__version__"]

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


def quantize(x, fmt, maxval=None, *, per_channel=False, range="minmax", mantissa_search=False, out=None):
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
        A format name as printed by ``fp8q formats`` (``"e4m3"``, ``"int8"``, ``"float8_e4m3fn"``).
    maxval : float or array of float, optional
        Fix the range to ``[-maxval, maxval]`` (``[0, maxval]`` for unsigned FP formats). An array
        of ``x.shape[0]`` values gives one range per channel along axis 0. Rounded to float32
        like the CLI and the reference do. Without it the range is estimated from ``x``.
    per_channel : bool
        Estimate one range per index of axis 0 (output channel of a weight).
    range : str
        Range estimator when ``maxval`` is not given: ``"minmax"`` (min and max of ``x``) or
        ``"mse"`` (the 111-candidate MSE search); the CLI's names ``current_minmax``,
        ``allminmax``, ``running_minmax`` and ``line_search`` are accepted too.
    mantissa_search : bool
        With ``range="mse"`` and a flexible FP format: also search the mantissa bits (same total
        width). Use :func:`estimate_range` to see the split chosen.
    out : numpy.ndarray, optional
        Where to write the result: same shape and dtype as ``x``, C-contiguous. ``out=x`` works
        in place with no copy.

    Returns
    -------
    numpy.ndarray
        ``out`` if given, else a new array.

    Raises
    ------
    ValueError
        unknown format or range method, bad maxval or per-channel maxval length, incompatible
        options, ``out`` not C-contiguous or overlapping ``x`` partially.
    TypeError
        an unsupported dtype, ``out`` of another dtype.
    """
    return _native.quantize(
        _array(x), fmt, _maxvals(maxval), per_channel, range, mantissa_search,
        None if out is None else _array(out, "out"),
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


def encode(x, fmt="float8_e4m3fn", saturate=True):
    """Encode ``x`` into the 8-bit codes of a standard encoding, bit-exact with ml_dtypes
    (round to nearest, ties to even).

    ``x`` is float32/float64/float16 of any shape. float64 is rounded once, directly to the
    format, as ml_dtypes >= 0.7 casts it (ml_dtypes < 0.7 rounded it to float32 first).
    With ``saturate=True`` values beyond the largest finite value become +-max (what
    quantization simulation wants); with ``saturate=False`` they cast as ml_dtypes does (+-Inf
    for float8_e5m2, NaN for the others). Returns an array of the shape of ``x`` holding the
    codes: viewed as the ml_dtypes dtype of ``fmt`` when ml_dtypes is installed, else uint8.
    """
    fmt = fmt.strip().lower() if isinstance(fmt, str) else fmt
    x = _array(x)
    if x.dtype == _np.float64:
        x = _f64_to_f32_round_to_odd(x)
    codes = _native.encode(x, fmt, saturate)
    dt = _ml_dtype(fmt)
    return codes.view(dt) if dt is not None else codes


def decode(codes, fmt=None):
    """Decode 8-bit codes of a standard encoding to float32 (NaN codes give NaN, the Inf codes of
    float8_e5m2 give +-Inf).

    ``codes`` is a uint8 array or an ml_dtypes float8 array; for the latter ``fmt`` defaults to
    its dtype's name.
    """
    codes = _array(codes, "codes")
    name = codes.dtype.name
    if name in _STANDARD:
        if fmt is None:
            fmt = name
        codes = codes.view(_np.uint8)
    if fmt is None:
        raise ValueError("decode needs fmt for uint8 codes (e.g. 'float8_e4m3fn')")
    return _native.decode(codes, fmt)


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
         verify=None, points_per_octave=32):
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

    Returns
    -------
    list of dict
        One flat dict per (distribution, format), in order: ``distribution`` (spec), ``family``,
        ``label``, ``second_moment``, ``format``, ``name``, ``n_bits``, ``maxval``, ``mse``,
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
    return _native.sqnr(_names(dists, "dists"), _names(formats, "formats"), maxval, range_search,
                        samples, seed, verify, int(points_per_octave))


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
            mantissa_search=False, slot="weight"):
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
        Format names (a comma-separated string works too).
    per_channel : bool
        One range per index of axis 0 for arrays of two or more dimensions.
    range : str
        ``"minmax"`` (``current_minmax``), ``"mse"`` or any estimator ``fp8q quantize`` names.
    mantissa_search : bool
        With ``range="mse"``: FP formats also search their mantissa bits (the split used is in
        ``used_format``).
    slot : {"weight", "act"}
        What the tensors are, for the rows' ``slot`` field.

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
    return _native.analyze(names, arrays, fmts, range, bool(per_channel), bool(mantissa_search), slot)
