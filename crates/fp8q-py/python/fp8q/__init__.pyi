"""Type stubs of fp8q (see the docstrings in fp8q/__init__.py)."""

import os
from typing import Any, Dict, Literal, Mapping, NamedTuple, Optional, Sequence, Tuple, TypedDict, TypeVar, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

_FloatArray = TypeVar("_FloatArray", npt.NDArray[np.float32], npt.NDArray[np.float64], npt.NDArray[np.float16])
_MaxVal = Union[float, Sequence[float], npt.NDArray[Any]]
_RangeName = Literal["minmax", "mse", "current_minmax", "allminmax", "running_minmax", "line_search"]
_Standard = Literal["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"]
_ScaleRule = Literal["floor", "ceil", "even", "rceil"]

def quantize(
    x: _FloatArray,
    fmt: str,
    maxval: Optional[_MaxVal] = None,
    *,
    per_channel: bool = False,
    range: Optional[_RangeName] = None,
    mantissa_search: bool = False,
    out: Optional[_FloatArray] = None,
    block_size: Optional[int] = None,
    block_axis: Optional[int] = None,
    scale_rule: Optional[_ScaleRule] = None,
) -> _FloatArray:
    """Quantize-dequantize x onto the grid of fmt (same dtype and shape; out=x works in place).

    range defaults to "minmax". Block-scaled formats (mxfp4, nvfp4, e2m1@16/e4m3, ...): blocks of
    block_size (default the format's) along block_axis (default -1), E8M0 scales chosen by
    scale_rule (default the format's); maxval, per_channel, range and mantissa_search raise
    ValueError with them, and the block keywords raise ValueError with the other formats."""

class RangeEstimate(TypedDict):
    min: Union[float, npt.NDArray[np.float32]]
    max: Union[float, npt.NDArray[np.float32]]
    maxval: Union[float, npt.NDArray[np.float32]]
    format: str
    mantissa_bits: Optional[int]
    method: str

def estimate_range(
    x: npt.NDArray[Any],
    fmt: str,
    method: _RangeName = "minmax",
    *,
    per_channel: bool = False,
    mantissa_search: bool = False,
) -> RangeEstimate:
    """The range quantize would use (per channel: arrays along axis 0), and the mantissa bits."""

class BlockEncoding(NamedTuple):
    """A block-scaled tensor as encode returns it and decode takes it (torchao's layout).

    codes: uint8 element codes in the tensor's order; 4-bit elements two per byte, low nibble
    first, the last dimension halved when even (torchao's qdata), else flat (ceil(size / 2),).
    scales: one per block, shaped as the tensor with block_axis shortened to
    ceil(len / block_size): uint8 (E8M0 bytes, 2^(b - 127), 255 = NaN; or float8_e4m3fn bytes)
    or float32 (F32 scales).
    tensor_scale: the FP32 tensor scale of two-level formats (nvfp4: amax / 2688), else None.
    format: the format with block size and scale rule applied. shape: the tensor's shape.
    block_axis: the blocks' axis, 0 .. ndim - 1."""

    codes: npt.NDArray[np.uint8]
    scales: Union[npt.NDArray[np.uint8], npt.NDArray[np.float32]]
    tensor_scale: Optional[float]
    format: str
    shape: Tuple[int, ...]
    block_axis: int

@overload
def encode(x: npt.NDArray[Any], fmt: _Standard = "float8_e4m3fn", saturate: bool = True) -> npt.NDArray[Any]:
    """8-bit codes, bit-exact with ml_dtypes (viewed as the ml_dtypes dtype when installed, else uint8)."""

@overload
def encode(
    x: npt.NDArray[Any],
    fmt: str,
    saturate: bool = True,
    *,
    block_size: Optional[int] = None,
    block_axis: Optional[int] = None,
    scale_rule: Optional[_ScaleRule] = None,
) -> Union[npt.NDArray[Any], BlockEncoding]:
    """A standard encoding's codes, or for a block-scaled format its BlockEncoding (codes, scales,
    tensor scale as torchao lays them out; decode of it equals quantize with the same keywords)."""

@overload
def decode(codes: BlockEncoding) -> npt.NDArray[np.float32]:
    """The float32 values of a BlockEncoding (as quantize gives them)."""

@overload
def decode(
    codes: npt.NDArray[Any],
    fmt: Optional[str] = None,
    *,
    scales: Optional[npt.NDArray[Any]] = None,
    tensor_scale: Optional[float] = None,
    shape: Optional[Sequence[int]] = None,
    block_size: Optional[int] = None,
    block_axis: Optional[int] = None,
    scale_rule: Optional[_ScaleRule] = None,
) -> npt.NDArray[np.float32]:
    """float32 values of 8-bit codes (uint8, or an ml_dtypes float8 array); for a block-scaled
    fmt, of codes with scales= (uint8 or ml_dtypes float8_e8m0fnu/float8_e4m3fn bytes, float32
    for F32 scales; any shape holding one per block), tensor_scale= for two-level formats, and
    shape= when it is not the codes' shape (4-bit: last dimension doubled)."""

class SqnrRow(TypedDict, total=False):
    distribution: str
    family: str
    label: str
    second_moment: float
    format: str
    name: str
    n_bits: int
    maxval: Optional[float]
    bits_per_element: float
    tensor_amax: Optional[float]
    mse: float
    sqnr_db: float
    neg_log_mse_db: float
    xr: float
    dot_product_mse: float
    dot_product_sqnr_db: float
    dot_product_neg_log_mse_db: float
    evaluations: int
    best: bool
    range_method: str
    mc_samples: int
    mc_seed: int
    mc_mse: float
    mc_mse_stderr: float
    mc_mse_z: float
    mc_dot_product_mse: float
    mc_dot_product_stderr: float
    mc_dot_product_z: float

def sqnr(
    dists: Union[None, str, Sequence[str]] = None,
    formats: Union[None, str, Sequence[str]] = None,
    maxval: Optional[float] = None,
    *,
    range_search: Literal["analytic", "samples"] = "analytic",
    samples: int = 1_000_000,
    seed: int = 10,
    verify: Optional[int] = None,
    points_per_octave: int = 32,
    block_size: Optional[int] = None,
    scale_rule: Optional[Literal["floor", "ceil", "even", "rceil"]] = None,
    tensor_size: Optional[int] = None,
) -> list[SqnrRow]:
    """The analytical SQNR study of `fp8q sqnr`: one flat dict per (distribution, format)."""

def analyze(
    tensors: Union[npt.ArrayLike, Mapping[str, npt.ArrayLike]],
    formats: Union[str, Sequence[str]] = ("e5m2", "e4m3", "e3m4", "e2m5", "int8"),
    *,
    per_channel: bool = False,
    range: _RangeName = "minmax",
    mantissa_search: bool = False,
    slot: Literal["weight", "act"] = "weight",
) -> dict[str, Any]:
    """Which format suits each tensor: the report of `fp8q analyze --json` (formats, range,
    per_channel, mantissa_search, slots, summary, skipped), SQNRs as floats (inf when lossless)."""

class Format:
    """A number format with the figures `fp8q formats` prints."""

    def __init__(self, name: str, maxval: Optional[float] = None) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def spec(self) -> str: ...
    @property
    def kind(self) -> Literal["fp", "int", "standard", "block"]: ...
    @property
    def n_bits(self) -> int: ...
    @property
    def exponent_bits(self) -> Optional[int]: ...
    @property
    def mantissa_bits(self) -> Optional[int]: ...
    @property
    def bias(self) -> Optional[float]: ...
    @property
    def max(self) -> float: ...
    @property
    def min(self) -> float: ...
    @property
    def min_normal(self) -> float: ...
    @property
    def min_subnormal(self) -> Optional[float]: ...
    @property
    def distinct_values(self) -> int: ...
    @property
    def maxval(self) -> Optional[float]: ...
    def values(self) -> npt.NDArray[np.float64]:
        """Every distinct value of the grid, ascending."""

def export(
    state_dict_or_path: Union[str, os.PathLike, Mapping[str, Any]],
    out_dir: Union[str, os.PathLike],
    format: Optional[str] = None,
    *,
    per_channel: bool = False,
    layer_formats: Union[None, str, os.PathLike, Mapping[str, Mapping[str, Optional[str]]]] = None,
    tensors: Union[None, str, Sequence[str]] = None,
    scale_rule: Optional[str] = None,
    layout: str = "compressed-tensors",
    force: bool = False,
) -> Dict[str, Any]:
    """Write a low-precision checkpoint (compressed-tensors or Model-Optimizer layout) from a
    checkpoint file or folder or a state dict; exactly `fp8q export`. Returns the report."""
