"""Type stubs of fp8q.torch (see the docstrings in fp8q/torch.py)."""

from typing import Counter, Literal, Optional, Tuple, Union

import torch

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
