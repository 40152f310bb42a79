"""Type stubs of fp8q (see the docstrings in fp8q/__init__.py)."""

from typing import Any, Literal, Mapping, Optional, Sequence, TypedDict, TypeVar, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

_FloatArray = TypeVar("_FloatArray", npt.NDArray[np.float32], npt.NDArray[np.float64], npt.NDArray[np.float16])
_MaxVal = Union[float, Sequence[float], npt.NDArray[Any]]
_RangeName = Literal["minmax", "mse", "current_minmax", "allminmax", "running_minmax", "line_search"]
_Standard = Literal["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"]

def quantize(
    x: _FloatArray,
    fmt: str,
    maxval: Optional[_MaxVal] = None,
    *,
    per_channel: bool = False,
    range: _RangeName = "minmax",
    mantissa_search: bool = False,
    out: Optional[_FloatArray] = None,
) -> _FloatArray:
    """Quantize-dequantize x onto the grid of fmt (same dtype and shape; out=x works in place)."""

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

def encode(x: npt.NDArray[Any], fmt: _Standard = "float8_e4m3fn", saturate: bool = True) -> npt.NDArray[Any]:
    """8-bit codes, bit-exact with ml_dtypes (viewed as the ml_dtypes dtype when installed, else uint8)."""

def decode(codes: npt.NDArray[Any], fmt: Optional[_Standard] = None) -> npt.NDArray[np.float32]:
    """float32 values of 8-bit codes (uint8, or an ml_dtypes float8 array)."""

class SqnrRow(TypedDict, total=False):
    distribution: str
    family: str
    label: str
    second_moment: float
    format: str
    name: str
    n_bits: int
    maxval: float
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
    def kind(self) -> Literal["fp", "int", "standard"]: ...
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
