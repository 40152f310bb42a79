#!/usr/bin/env python3
"""Cost of fake quantization on a ViT forward on the CPU: fp8q.torch.quantize against the float
model and against brevitas' minifloat fake quantization of the same layers.

The model is torchvision's VisionTransformer at ViT-S/16 width, half its depth (image 224,
patch 16, hidden 384, 6 heads, MLP 1536, 6 layers; batch 8): the real layer shapes of a small
ViT (197 tokens of 384 channels, a 16x16 stride-16 patch conv), about 2.3 GFLOP per image, so that
one forward takes a fraction of a second on two threads and the whole run about a minute.
Randomly initialised: speed does not depend on the weights.

Rows (under no_grad, two warm-up forwards each, then --repeats rounds in which every model runs
one timed forward in turn; img/s and the ratio use the fastest forward, the least disturbed by
other work on the machine):

* float: the model as built;
* fp8q e4m3/e4m3: fp8q.torch.quantize(weights="e4m3", activations="e4m3"), calibrated on two
  batches: weights quantized once and cached, every covered layer's input fake-quantized per
  forward (conv_proj, the MLP linears, the head; attention's in/out projections are not covered);
* fp8q e4m3 weights only: the same with activations=None (shows the cached weights cost nothing);
* fp8q functional=True: the same plus matmul operands, when this fp8q has it (else the row says so);
* brevitas e4m3/e4m3: the same layers as brevitas QuantConv2d / QuantLinear with the paper's E4M3
  (bias 8, no inf/NaN, saturating) per-channel weights (scale from the weight's max) and per-tensor
  inputs with fp8q's calibrated ranges as constant scales; brevitas re-quantizes the weights on
  every forward (its default eval behaviour).

    PYTHONPATH=crates/fp8q-py/python python3 tools/bench_torch_vit.py [--threads 2] [--batch 8] [--repeats 5]

Needs torch, torchvision and (for its row) brevitas; prints img/s and the ratio of each row's time
to the float model's.
"""

import argparse
import copy
import os
import statistics
import time
import warnings


def build(args):
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=args.image, patch_size=args.patch, num_layers=args.layers,
                                                 num_heads=args.heads, hidden_dim=args.hidden, mlp_dim=args.mlp,
                                                 num_classes=1000)
    with torch.no_grad():
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision starts it at zero
    return model.eval()


def interleaved(models, x, repeats, warmup=2):
    """{name: (min, median) seconds per forward}, {name: output}: the models timed in turns, one
    forward each per round, so that a load change on the machine hits every row alike."""
    import torch

    times = {n: [] for n in models}
    outs = {}
    with torch.no_grad():
        for n, m in models.items():
            for _ in range(warmup):
                outs[n] = m(x)
        for _ in range(repeats):
            for n, m in models.items():
                t = time.perf_counter()
                m(x)
                times[n].append(time.perf_counter() - t)
    return {n: (min(v), statistics.median(v)) for n, v in times.items()}, outs


def brevitas_model(model, q):
    """model's covered layers as brevitas layers, input scales from the fp8q-quantized q."""
    import torch
    from torch import nn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import brevitas.nn as qnn
        from brevitas.inject.enum import ScalingPerOutputType
        from brevitas.quant.float_base import ScaledFloatActBase, ScaledFloatWeightBase

    paper_e4m3 = dict(bit_width=8, exponent_bit_width=4, mantissa_bit_width=3, exponent_bias=8, saturating=True,
                      inf_values=None, nan_values=None)
    W = type("E4M3Weight", (ScaledFloatWeightBase,),
             dict(paper_e4m3, scaling_per_output_type=ScalingPerOutputType.CHANNEL))

    def A(maxval):
        return type("E4M3Input", (ScaledFloatActBase,),
                    dict(paper_e4m3, scaling_impl_type="const", scaling_init=float(maxval),
                         scaling_per_output_type=ScalingPerOutputType.TENSOR))

    out = copy.deepcopy(model)
    qmods = dict(q.named_modules())
    for name, m in list(out.named_modules()):
        if name not in qmods or not hasattr(qmods[name], "input_quantizer"):
            continue
        maxval = qmods[name].input_quantizer.maxval
        if isinstance(m, nn.Conv2d):
            b = qnn.QuantConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                                m.groups, bias=m.bias is not None, weight_quant=W, input_quant=A(maxval),
                                return_quant_tensor=False)
        else:
            b = qnn.QuantLinear(m.in_features, m.out_features, bias=m.bias is not None, weight_quant=W,
                                input_quant=A(maxval), return_quant_tensor=False)
        with torch.no_grad():
            b.weight.copy_(m.weight)
            if m.bias is not None:
                b.bias.copy_(m.bias)
        parent, _, attr = name.rpartition(".")
        setattr(out.get_submodule(parent) if parent else out, attr, b)
    return out.eval()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--image", type=int, default=224)
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--mlp", type=int, default=1536)
    args = p.parse_args()

    import torch
    import fp8q
    import fp8q.torch as ft

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(1)
    calib = [torch.randn(args.batch, 3, args.image, args.image, generator=gen) for _ in range(2)]
    x = torch.randn(args.batch, 3, args.image, args.image, generator=gen)

    def loop(m):
        for b in calib:
            m(b)

    model = build(args)
    print(f"fp8q {fp8q.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"ViT image {args.image}, patch {args.patch}, {args.layers} layers, hidden {args.hidden}, "
          f"{args.heads} heads, MLP {args.mlp}; batch {args.batch}, {args.repeats} rounds")
    models, notes = {"float": model}, {}
    q = ft.quantize(model, loop, weights="e4m3", activations="e4m3")
    models["fp8q e4m3/e4m3"] = q
    models["fp8q e4m3 weights only"] = ft.quantize(model, None, weights="e4m3", activations=None)
    try:
        models["fp8q functional=True"] = ft.quantize(model, loop, weights="e4m3", activations="e4m3", functional=True)
    except NotImplementedError as e:
        notes["fp8q functional=True"] = f"not available: {str(e).split(';')[0]}"
    try:
        models["brevitas e4m3/e4m3"] = brevitas_model(model, q)
    except ImportError as e:
        notes["brevitas e4m3/e4m3"] = f"not available ({e})"
    load0 = os.getloadavg()[0]
    times, outs = interleaved(models, x, args.repeats)
    load1 = os.getloadavg()[0]
    print(f"load average (1 min) {load0:.2f} before, {load1:.2f} after: above {args.threads} other work shares "
          "the cores, and the min column is the better guide")
    if "brevitas e4m3/e4m3" in outs:
        y, yq = outs["brevitas e4m3/e4m3"], outs["fp8q e4m3/e4m3"]
        rel = float((y - yq).norm() / yq.norm())
        print(f"brevitas vs fp8q output: relative L2 difference {rel:.2e} (the same grids; the values differ by float32 "
              "scale rounding and rare near-tie roundings, which quantized layers downstream amplify)")
    t_float = times["float"][0]
    y_float = outs["float"].double()
    print(f"{'':26} {'min ms':>8} {'median':>8} {'img/s':>7} {'vs float':>9}  SQNR vs float")
    for name in ["float", "fp8q e4m3/e4m3", "fp8q e4m3 weights only", "fp8q functional=True", "brevitas e4m3/e4m3"]:
        if name in notes:
            print(f"{name:26} {notes[name]}")
            continue
        tmin, tmed = times[name]
        err = (outs[name].double() - y_float).pow(2).sum()
        sq = "" if name == "float" else f"{10 * torch.log10(y_float.pow(2).sum() / err).item():.1f} dB"
        print(f"{name:26} {tmin * 1e3:8.1f} {tmed * 1e3:8.1f} {args.batch / tmin:7.2f} {tmin / t_float:8.2f}x  {sq}")

if __name__ == "__main__":
    main()
