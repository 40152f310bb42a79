"""The paper's FP quantizer (SPEC section 2.1) typed out in PyTorch, as its reference evaluates it:
float32 tensor arithmetic with log2/pow and straight-through rounding. Used as the independent
oracle of the torch tests and as the "reference formula" of bench/bench.py."""

import torch


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


def reference_fp_quant(x, n_bits, maxval, mantissa_bits, sign_bits):
    """q(x) for a maxval tensor (one value, or one per channel along dim 0) and a mantissa-bit
    tensor; differentiable in x, maxval and mantissa_bits like the reference."""
    m = torch.clamp(_RoundSTE.apply(mantissa_bits), 1, n_bits - sign_bits)
    e = n_bits - sign_bits - m
    if maxval.shape[0] != 1 and maxval.dim() != x.dim():
        maxval = maxval.view([-1] + [1] * (x.dim() - 1))
    bias = 2 ** e - torch.log2(maxval) + torch.log2(2 - 2 ** (-m)) - 1
    lo = -maxval if sign_bits == 1 else torch.zeros_like(maxval)
    xc = torch.min(torch.max(x, lo), maxval)
    k = torch.clamp(torch.floor(torch.log2(torch.abs(xc)) + bias).detach(), 1.0)
    step = 2.0 ** (k - m - bias)
    return _RoundSTE.apply(xc / step) * step
