"""Type stubs of fp8q.torch (see the docstrings in fp8q/torch.py)."""

from typing import Optional, Union

import torch

def fake_quant(
    t: torch.Tensor,
    fmt: str = "e4m3",
    maxval: Union[None, float, torch.Tensor] = None,
    *,
    per_channel: bool = False,
    range: str = "minmax",
    mantissa_search: bool = False,
) -> torch.Tensor:
    """Quantize-dequantize a CPU tensor with a straight-through gradient (and maxval's gradient)."""

def quantize_to_fp8_ste_MM(
    x_float: torch.Tensor,
    n_bits: int,
    maxval: torch.Tensor,
    num_mantissa_bits: Union[float, torch.Tensor],
    sign_bits: int,
) -> torch.Tensor:
    """Drop-in for the paper reference's function of this name."""
