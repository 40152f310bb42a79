"""fp8q.torch.quantize on real architectures built here, randomly initialised (no downloads):
torchvision's ResNet-18 (eval; with and without BN folding) and a small torchvision
VisionTransformer. Every expectation is computed in this file from the float model and
fp8q.quantize on tensors captured with hooks, never read back from the quantized model:

* which layers are covered (written out by hand: nn.MultiheadAttention's out_proj is not);
* every quantized weight is fp8q.quantize(W, fmt, per_channel=True) of the float weight, or of the
  weight folded here in float64 with the BN's running statistics;
* every calibrated input range is max |input| over the calibration batches, as seen by forward
  pre-hooks on the float (or independently folded) model;
* the quantized model's output equals, bit for bit, a reference that runs the float model with its
  weights replaced by their quantized values and every covered layer's input replaced by
  fp8q.quantize(x, fmt, maxval=A) in a forward pre-hook;
* the output SQNR against the float model is sane.

Skipped when torch or torchvision is missing."""

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import fp8q  # noqa: E402
import fp8q.torch as ft  # noqa: E402
from torch import nn  # noqa: E402

# in module order: a block's conv1, conv2, then its downsample
RESNET18_LAYERS = (["conv1"]
                   + [f"layer{i}.{j}.{c}" for i in range(1, 5) for j in range(2)
                      for c in ("conv1", "conv2") + (("downsample.0",) if i > 1 and j == 0 else ())]
                   + ["fc"])
# out_proj of nn.MultiheadAttention is deliberately not covered (attention reads its weight itself)
VIT_LAYERS = (["conv_proj"]
              + [f"encoder.layers.encoder_layer_{i}.mlp.{j}" for i in range(2) for j in (0, 3)]
              + ["heads.head"])


def resnet18_bn_pairs():
    """(conv, bn) qualified names of torchvision's ResNet-18, written out."""
    pairs = [("conv1", "bn1")]
    for i in range(1, 5):
        for j in range(2):
            pairs += [(f"layer{i}.{j}.conv1", f"layer{i}.{j}.bn1"), (f"layer{i}.{j}.conv2", f"layer{i}.{j}.bn2")]
    pairs += [(f"layer{i}.0.downsample.0", f"layer{i}.0.downsample.1") for i in (2, 3, 4)]
    return pairs


def images(n, seed, size=32, batch=4):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, size, size, generator=gen) for _ in range(n)]


def make_resnet18():
    """Random init; BN affine parameters random and running statistics those of random images
    (cumulative average over a few training-mode batches), so that BN folding is not trivial and
    activations stay normalised."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.momentum = None
        model.train()
        for x in images(3, seed=3, batch=8):
            model(x)
    return model.eval()


def make_vit():
    """torchvision initialises heads.head to zero: give it random weights so that the output and
    its SQNR mean something (the zero weight is checked separately)."""
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                 hidden_dim=32, mlp_dim=64, num_classes=10)
    with torch.no_grad():
        nn.init.normal_(model.heads.head.weight, std=0.2)
        nn.init.normal_(model.heads.head.bias, std=0.1)
    return model.eval()


def fold_here(model, pairs):
    """A copy of a float model with each (conv, bn) folded in float64 by this test's own formula
    (w * gamma / sqrt(var + eps), beta - mean * gamma / sqrt(var + eps)), bn -> Identity."""
    model = copy.deepcopy(model)
    mods = dict(model.named_modules())
    with torch.no_grad():
        for conv_name, bn_name in pairs:
            conv, bn = mods[conv_name], mods[bn_name]
            var = bn.running_var.double().numpy()
            s = bn.weight.double().numpy() / np.sqrt(var + bn.eps)
            w = conv.weight.double().numpy() * s[:, None, None, None]
            b0 = np.zeros_like(s) if conv.bias is None else conv.bias.double().numpy()
            b = (b0 - bn.running_mean.double().numpy()) * s + bn.bias.double().numpy()
            conv.weight.copy_(torch.from_numpy(w.astype(np.float32)))
            conv.bias = nn.Parameter(torch.from_numpy(b.astype(np.float32)))
            parent, _, attr = bn_name.rpartition(".")
            setattr(mods[parent] if parent else model, attr, nn.Identity())
    return model


def float_inputs(model, names, batches):
    """{name: [input of every call]} of the named layers of a float model (forward pre-hooks)."""
    seen = {n: [] for n in names}
    mods = dict(model.named_modules())
    hooks = [mods[n].register_forward_pre_hook(lambda m, a, n=n: seen[n].append(a[0].detach().clone()))
             for n in names]
    with torch.no_grad():
        for b in batches:
            model(b)
    for h in hooks:
        h.remove()
    return seen


def layerwise_reference(model, names, maxvals, fmt):
    """The float model with quantized weights and pre-hooks quantizing every covered input."""
    ref = copy.deepcopy(model)
    mods = dict(ref.named_modules())
    with torch.no_grad():
        for n in names:
            w = mods[n].weight
            w.copy_(torch.from_numpy(fp8q.quantize(w.detach().numpy(), fmt, per_channel=True)))

            def pre(m, args, A=maxvals[n]):
                return (torch.from_numpy(fp8q.quantize(args[0].detach().numpy(), fmt, maxval=A)),) + args[1:]

            mods[n].register_forward_pre_hook(pre)
    return ref


def quantized_layers(model):
    return {n: m for n, m in model.named_modules() if hasattr(m, "weight_quantizer")}


def sqnr_db(ref, test):
    ref, test = ref.double(), test.double()
    return 10 * math.log10(float((ref ** 2).sum()) / float(((ref - test) ** 2).sum()))


def check_model(float_model, q, names, calib, test_batch, fmt):
    """The checks of this file on one quantized model; float_model is the (folded) float model
    the quantized one should act like. Returns (max |q - ref|, SQNR of q against float)."""
    layers = quantized_layers(q)
    assert list(layers) == names
    inputs = float_inputs(float_model, names, calib)
    fmods = dict(float_model.named_modules())
    maxvals = {}
    for n in names:
        m = layers[n]
        w = fmods[n].weight.detach()
        # the quantized model keeps the (folded) float weight and quantizes it
        assert torch.equal(m.weight.detach(), w), n
        with torch.no_grad():
            got = m.weight_quantizer(m.weight)
        np.testing.assert_array_equal(got.numpy(), fp8q.quantize(w.numpy(), fmt, per_channel=True), err_msg=n)
        assert len(inputs[n]) == len(calib), n
        maxvals[n] = max(float(x.abs().max()) for x in inputs[n])
        assert m.input_quantizer.maxval == maxvals[n], n
    ref = layerwise_reference(float_model, names, maxvals, fmt)
    with torch.no_grad():
        got, want, fl = q(test_batch), ref(test_batch), float_model(test_batch)
    return float((got - want).abs().max()), sqnr_db(fl, got), got, want


def loop(batches):
    def forward_loop(model):
        for b in batches:
            model(b)
    return forward_loop


def test_resnet18_covered_layers_weights_inputs_and_output():
    model = make_resnet18()
    assert [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))] == RESNET18_LAYERS
    calib, test = images(2, seed=4), images(1, seed=5)[0]
    q = ft.quantize(model, loop(calib), weights="e4m3", activations="e4m3")
    diff, sqnr, got, want = check_model(model, q, RESNET18_LAYERS, calib, test, "e4m3")
    assert torch.equal(got, want), f"max |q - layerwise reference| = {diff}"
    # measured 8.3 dB: low because a randomly initialised ResNet-18 amplifies any perturbation
    # (test_resnet18_sqnr_is_that_of_equal_power_noise); each quantized tensor is near 31 dB
    assert sqnr > 6, sqnr
    # the float model is untouched
    assert all(type(m) in (nn.Conv2d, nn.Linear) for n, m in model.named_modules() if n in RESNET18_LAYERS)


def test_resnet18_fold_bn():
    model = make_resnet18()
    folded = fold_here(model, resnet18_bn_pairs())
    calib, test = images(2, seed=4), images(1, seed=5)[0]
    # folding alone keeps the eval model's function (to float rounding)
    q0 = ft.quantize(model, None, weights=None, activations=None, fold_bn=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in q0.modules())
    with torch.no_grad():
        torch.testing.assert_close(q0(test), model(test), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(q0(test), folded(test), rtol=1e-5, atol=1e-5)
    # the folded weights and biases are this test's float64 fold, rounded once to float32 (bit
    # for bit here; gamma / sqrt(var + eps) and gamma * (1 / sqrt(var + eps)) could differ in
    # the last float64 bit, which did not reach float32 for these weights)
    fl = dict(folded.named_modules())
    for n, m in quantized_layers(q0).items():
        assert torch.equal(m.weight.detach(), fl[n].weight.detach()), n
        assert torch.equal(m.bias.detach(), fl[n].bias.detach()), n
    q = ft.quantize(model, loop(calib), weights="e4m3", activations="e4m3", fold_bn=True)
    diff, sqnr, got, want = check_model(folded, q, RESNET18_LAYERS, calib, test, "e4m3")
    assert torch.equal(got, want), f"max |q - layerwise reference| = {diff}"
    assert sqnr > 6, sqnr  # measured 8.3 dB


@pytest.mark.parametrize("fmt", ["e4m3", "e3m4"])
def test_vit(fmt):
    model = make_vit()
    linears = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [n for n in linears if n.endswith("out_proj")] == [f"encoder.layers.encoder_layer_{i}.self_attention"
                                                              ".out_proj" for i in range(2)]
    calib, test = images(2, seed=6), images(1, seed=7)[0]
    q = ft.quantize(model, loop(calib), weights=fmt, activations=fmt)
    diff, sqnr, got, want = check_model(model, q, VIT_LAYERS, calib, test, fmt)
    assert torch.equal(got, want), f"max |q - layerwise reference| = {diff}"
    # the attention's own projections stay in floating point
    for i in range(2):
        att = q.encoder.layers[i].self_attention
        assert type(att.out_proj) is nn.modules.linear.NonDynamicallyQuantizableLinear
        assert not hasattr(att, "weight_quantizer")
    print(f"ViT {fmt}: output SQNR {sqnr:.2f} dB")
    assert sqnr > {"e4m3": 19, "e3m4": 25}[fmt], sqnr


def test_vit_zero_head_as_torchvision_initialises_it():
    """torchvision's ViT starts with heads.head all zero: a per-channel range of 0 must give zeros,
    not NaN, and the zero-bias head then outputs exact zeros."""
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                 hidden_dim=32, mlp_dim=64, num_classes=10).eval()
    assert not model.heads.head.weight.any()
    calib = images(1, seed=6)
    q = ft.quantize(model, loop(calib))
    with torch.no_grad():
        w = q.heads.head.weight_quantizer(q.heads.head.weight)
        out = q(calib[0])
    assert torch.equal(w, torch.zeros_like(w))
    assert torch.equal(out, torch.zeros_like(out))
    rows = {r["name"]: r for r in ft.summary(q)}
    assert rows["heads.head.weight"]["maxval"] == [0.0] * 10


def test_resnet18_sqnr_is_that_of_equal_power_noise():
    """At random init ResNet-18's output SQNR under e4m3 is low (about 10 dB weights only, 8 dB
    with inputs) although every weight is quantized at about 31 dB: the network amplifies
    perturbations of its early layers. Control: the same network with Gaussian noise of the same
    power as each layer's quantization error added to its weight (three seeds) loses as much."""
    model = make_resnet18()
    test = torch.cat(images(4, seed=9))
    with torch.no_grad():
        fl = model(test)
    mods = dict(model.named_modules())
    for n in RESNET18_LAYERS:
        w = mods[n].weight.detach()
        assert sqnr_db(w, torch.from_numpy(fp8q.quantize(w.numpy(), "e4m3", per_channel=True))) > 30, n
    q = ft.quantize(model, None, weights="e4m3", activations=None)
    with torch.no_grad():
        got = sqnr_db(fl, q(test))
    control = []
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        noisy = copy.deepcopy(model)
        nm = dict(noisy.named_modules())
        with torch.no_grad():
            for n in RESNET18_LAYERS:
                w = nm[n].weight
                err = torch.from_numpy(fp8q.quantize(w.numpy(), "e4m3", per_channel=True)) - w
                w.add_(torch.randn(w.shape, generator=gen) * err.pow(2).mean().sqrt())
            control.append(sqnr_db(fl, noisy(test)))
    print(f"ResNet-18 e4m3 weights only: {got:.2f} dB; equal-power Gaussian weight noise: "
          + ", ".join(f"{c:.2f}" for c in control) + " dB")
    assert abs(got - np.mean(control)) < 2, (got, control)
