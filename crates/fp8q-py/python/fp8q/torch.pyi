"""Type stubs of fp8q.torch (see the docstrings in fp8q/torch.py)."""

import os
from typing import Any, Callable, Counter, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import torch

_M = TypeVar("_M", bound=torch.nn.Module)

_Arithmetic = Literal["reference", "exact"]

ARITHMETICS: Tuple[str, str]
STATS: Counter[str]

def fake_quant(
    t: torch.Tensor,
    fmt: str = "e4m3",
    maxval: Union[None, float, torch.Tensor] = None,
    *,
    per_channel: bool = False,
    range: Optional[str] = None,
    mantissa_search: bool = False,
    arithmetic: Optional[_Arithmetic] = None,
    block_size: Optional[int] = None,
    block_axis: Optional[int] = None,
    scale_rule: Optional[Literal["floor", "ceil", "even", "rceil"]] = None,
) -> torch.Tensor:
    """Quantize-dequantize a CPU tensor with a straight-through gradient (and maxval's gradient).

    arithmetic: "reference" (default for eXmY/ueXmY: bit-identical values and gradients with the
    reference's quantize_to_fp8_ste_MM) or "exact" (fp8q's exact grid, as fp8q.quantize; the only
    one for INT formats, the standard encodings and block-scaled formats). range defaults to
    "minmax".

    Block-scaled formats (mxfp4, nvfp4, ...): forward fp8q.quantize with block_size, block_axis
    and scale_rule; backward the straight-through estimator (the gradient passes unchanged);
    maxval, per_channel, range and mantissa_search raise ValueError with them."""

def quantize_to_fp8_ste_MM(
    x_float: torch.Tensor,
    n_bits: int,
    maxval: torch.Tensor,
    num_mantissa_bits: Union[float, torch.Tensor],
    sign_bits: int,
    *,
    arithmetic: _Arithmetic = "reference",
) -> torch.Tensor:
    """Drop-in for the paper reference's function of this name: bit-identical values and
    gradients (x, maxval, num_mantissa_bits) with arithmetic="reference" (the default)."""

# whole models (fp8q/_torch_model.py, docs/torch.md)

class Summary(List[Dict[str, Any]]):
    """The rows of summary(); str() is a table."""

def quantize(
    model: _M,
    forward_loop: Optional[Callable[[_M], Any]],
    *,
    weights: Optional[str] = "e4m3",
    activations: Optional[str] = "e4m3",
    per_channel: bool = True,
    range: str = "minmax",
    formats: Optional[Mapping[str, Mapping[str, Optional[str]]]] = None,
    layers: Union[None, str, Sequence[str]] = None,
    exclude: Union[None, str, Sequence[str]] = None,
    functional: bool = False,
    fold_bn: bool = False,
    inplace: bool = False,
) -> _M:
    """Fake-quantize every Linear and Conv1d/2d/3d layer: weights fp8q.quantize(W, fmt,
    per_channel=...) (block formats along dim 1), inputs fp8q.quantize(x, fmt, maxval=A) with A
    calibrated by forward_loop(model) (block formats along the channel dimension). Straight-through
    gradients. functional=True also quantizes both operands of torch.matmul, @, torch.bmm and
    F.scaled_dot_product_attention in forward code (quantizers "<module>.operand:<i>", created
    while forward_loop calibrates; formats keys "operand:<i>"; block formats along the reduction
    dimension)."""

def summary(model: torch.nn.Module) -> Summary:
    """One row per quantizer: name, kind ("weight", "input", "operand"), format, range, maxval,
    per_channel, enabled."""

def save_states(model: torch.nn.Module, path: Union[None, str, os.PathLike] = None) -> Dict[str, Any]:
    """The quantizer states as a JSON-able dict, written to path when given."""

def load_states(model: torch.nn.Module, states: Union[str, os.PathLike, Mapping[str, Any]]) -> None:
    """Set the quantizers from save_states' dict or JSON file (creating the operand quantizers of a
    functional=True model that it names); ValueError (model unchanged) on a mismatch."""

class Report:
    """What analyze() found: formats, per_channel, slots (one dict per quantizer: unit, slot,
    stats, sqnr_db, predicted_sqnr_db, output_sqnr_db, recommended, ...), mix, skipped."""

    formats: List[str]
    per_channel: bool
    slots: List[Dict[str, Any]]
    mix: Optional[Dict[str, Any]]
    skipped: List[Dict[str, str]]
    def layer_formats(self) -> Dict[str, Dict[str, str]]:
        """{unit: {"weight": fmt, "act": fmt, "operand:<i>": fmt}}: quantize(formats=...)."""
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json(self, path: Union[None, str, os.PathLike] = None) -> str:
        """The report as JSON (infinite SQNRs as null), written to path when given."""
    def plot(self, path: Union[str, os.PathLike]) -> None:
        """The heat map (slots x formats) as SVG."""

def analyze(
    model: torch.nn.Module,
    forward_loop: Callable[[torch.nn.Module], Any],
    *,
    formats: Sequence[str] = ("e5m2", "e4m3", "e3m4", "e2m5", "int8"),
    per_channel: bool = True,
    weights: bool = True,
    activations: bool = True,
    sensitivity: bool = True,
    mix: bool = True,
    functional: bool = False,
    layers: Union[None, str, Sequence[str]] = None,
    exclude: Union[None, str, Sequence[str]] = None,
    fold_bn: bool = False,
) -> Report:
    """Per weight, input and (functional) operand: measured and predicted SQNR per format, the
    output SQNR with only that slot quantized, and a mix verified end to end, never below the
    best uniform format. Activations are streamed: memory is the statistics, not the batches."""
