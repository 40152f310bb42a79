"""fp8q.torch.quantize on whole models (a small CNN with Conv->BN->ReLU blocks, a transformer-ish
block of Linear layers, a ResNet-style residual net): every weight and input quantizer equals
fp8q.quantize on the same tensor, formats overrides, include/exclude globs, sides off, block
formats, BN folding, gradients, inplace, summary, state save/load, and the errors (which leave
the model unchanged). Skipped when torch is not importable."""

import copy
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fp8q  # noqa: E402
import fp8q.torch as ft  # noqa: E402
from torch import nn  # noqa: E402


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


class Block(nn.Module):
    """Attention and MLP of Linear layers (matmuls in forward code are not quantized without
    functional=True)."""

    def __init__(self, d=32):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.mlp = nn.Sequential(nn.Linear(d, 64), nn.GELU(), nn.Linear(64, d))

    def forward(self, x):
        a = torch.softmax(self.q(x) @ self.k(x).transpose(-1, -2) / 32 ** 0.5, -1) @ self.v(x)
        x = x + self.o(a)
        return x + self.mlp(x)


class Residual(nn.Module):
    """A ResNet BasicBlock's layout: conv1, bn1, relu, conv2, bn2 and a downsample Sequential."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + self.downsample(x))


def tiny_resnet():
    return nn.Sequential(Residual(3, 8, 1), Residual(8, 16, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 4))


def randomize_bn(model, seed=1):
    """BN with non-trivial running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)
    return model


def cnn():
    torch.manual_seed(0)
    return randomize_bn(CNN()).eval()


def block():
    torch.manual_seed(0)
    return Block().eval()


def images(n=3, seed=2, size=8):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, size, size, generator=gen) for _ in range(n)]


def tokens(n=3, seed=2):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 5, 32, generator=gen) * 2 for _ in range(n)]


def loop_over(batches):
    def forward_loop(model):
        for b in batches:
            model(b)
    return forward_loop


def layer_inputs(model, batches):
    """{name: [input of every call]} of the Linear and Conv layers of a float model."""
    seen, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            hooks.append(m.register_forward_pre_hook(lambda mod, args, name=name: seen.setdefault(name, []).append(
                args[0].detach().clone())))
    with torch.no_grad():
        for b in batches:
            model(b)
    for h in hooks:
        h.remove()
    return seen


def quant_layers(model):
    return {n: m for n, m in model.named_modules() if hasattr(m, "weight_quantizer")}


def capture_quantized_inputs(model, batch):
    """{name: (layer input, the input quantizer's output)} of one forward pass."""
    seen, hooks = {}, []
    for name, m in quant_layers(model).items():
        q = m.input_quantizer
        hooks.append(q.register_forward_hook(
            lambda mod, args, out, name=name: seen.__setitem__(name, (args[0].detach().clone(), out.detach().clone()))))
    with torch.no_grad():
        model(batch)
    for h in hooks:
        h.remove()
    return seen


def assert_weights(model, fmt, **kw):
    """Every quantized weight equals fp8q.quantize(W, fmt, **kw) (default per_channel=True)."""
    kw = kw or {"per_channel": True}
    for name, m in quant_layers(model).items():
        with torch.no_grad():
            got = m.weight_quantizer(m.weight).numpy()
        want = fp8q.quantize(m.weight.detach().numpy(), fmt, **kw)
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("make,data", [(cnn, images), (block, tokens), (tiny_resnet, images)])
@pytest.mark.parametrize("fmt", ["e4m3", "e3m4", "int8", "float8_e4m3fn"])
def test_weights_and_inputs_equal_library(make, data, fmt):
    model = make().eval()
    batches = data()
    inputs = layer_inputs(model, batches)
    q = ft.quantize(model, loop_over(batches), weights=fmt, activations=fmt)
    layers = quant_layers(q)
    assert sorted(layers) == sorted(inputs)
    assert_weights(q, fmt)
    for name, m in layers.items():
        want = max(float(x.abs().max()) for x in inputs[name])
        assert m.input_quantizer.maxval == want, name
    for name, (x, y) in capture_quantized_inputs(q, batches[0]).items():
        A = layers[name].input_quantizer.maxval
        np.testing.assert_array_equal(y.numpy(), fp8q.quantize(x.numpy(), fmt, maxval=A), err_msg=name)


def test_model_output_is_layerwise_library_quantization():
    """The quantized Linear computes F.linear(quantize(x), quantize(W), b)."""
    model = nn.Sequential(nn.Linear(16, 8)).eval()
    x = torch.randn(4, 16)
    q = ft.quantize(model, loop_over([x]))
    A = float(x.abs().max())
    wq = fp8q.quantize(model[0].weight.detach().numpy(), "e4m3", per_channel=True)
    xq = fp8q.quantize(x.numpy(), "e4m3", maxval=A)
    want = torch.from_numpy(xq) @ torch.from_numpy(wq).T + model[0].bias.detach()
    with torch.no_grad():
        assert torch.equal(q(x), want)


def test_per_tensor_weights_and_other_estimators():
    model = block()
    batches = tokens()
    q = ft.quantize(model, loop_over(batches), per_channel=False)
    assert_weights(q, "e4m3", per_channel=False)
    inputs = layer_inputs(model, batches)
    for rng in ("current_minmax", "running_minmax", "mse"):
        q = ft.quantize(model, loop_over(batches), range=rng)
        for name, m in quant_layers(q).items():
            xs = inputs[name]
            if rng == "current_minmax":
                want = float(xs[-1].abs().max())
            elif rng == "running_minmax":
                lo, hi = float(xs[0].min()), float(xs[0].max())
                for x in xs[1:]:
                    lo, hi = 0.1 * float(x.min()) + 0.9 * lo, 0.1 * float(x.max()) + 0.9 * hi
                want = float(np.float32(max(abs(lo), abs(hi))))
            else:
                flat = torch.cat([x.reshape(-1) for x in xs]).numpy()
                want = float(fp8q.estimate_range(flat, "e4m3", "mse")["maxval"])
            assert m.input_quantizer.maxval == pytest.approx(want, rel=1e-6), (rng, name)
        if rng == "mse":
            assert_weights(q, "e4m3", per_channel=True, range="mse")


def test_formats_overrides_and_none_sides():
    model = cnn()
    batches = images()
    formats = {"features.0": {"weight": "e3m4", "act": "int8"}, "fc": {"act": None}, "features.3": {"weight": None}}
    q = ft.quantize(model, loop_over(batches), weights="e5m2", activations="e2m5", formats=formats)
    layers = quant_layers(q)
    wf = {n: m.weight_quantizer.format for n, m in layers.items()}
    af = {n: m.input_quantizer.format for n, m in layers.items()}
    assert wf == {"features.0": "e3m4", "features.3": None, "fc": "e5m2"}
    assert af == {"features.0": "int8", "features.3": "e2m5", "fc": None}
    w = layers["features.3"].weight
    assert layers["features.3"].weight_quantizer(w) is w
    assert not layers["fc"].input_quantizer.enabled
    seen = capture_quantized_inputs(q, batches[0])
    x, y = seen["fc"]
    assert torch.equal(x, y)
    x, y = seen["features.0"]
    np.testing.assert_array_equal(y.numpy(), fp8q.quantize(x.numpy(), "int8", maxval=layers["features.0"]
                                                           .input_quantizer.maxval))
    # a whole side off
    q = ft.quantize(model, loop_over(batches), weights=None)
    assert all(not m.weight_quantizer.enabled for m in quant_layers(q).values())
    q = ft.quantize(model, None, activations=None)
    with torch.no_grad():
        q(batches[0])
    assert_weights(q, "e4m3")


def test_globs_include_exclude():
    model = cnn()
    batches = images()
    q = ft.quantize(model, loop_over(batches), layers="features.*")
    assert sorted(quant_layers(q)) == ["features.0", "features.3"]
    assert type(q.fc) is nn.Linear
    q = ft.quantize(model, loop_over(batches), exclude=["fc", "features.0"])
    assert sorted(quant_layers(q)) == ["features.3"]
    q = ft.quantize(model, loop_over(batches), layers=["features.*", "fc"], exclude="*.3")
    assert sorted(quant_layers(q)) == ["fc", "features.0"]
    # formats of a left-out layer are ignored
    q = ft.quantize(model, loop_over(batches), exclude="fc", formats={"fc": {"weight": "int8"}})
    assert "fc" not in quant_layers(q)


def test_block_formats():
    model = cnn()
    batches = images(size=8)
    q = ft.quantize(model, loop_over(batches), weights="mxfp4", activations="mxfp8_e4m3", fold_bn=True)
    for name, m in quant_layers(q).items():
        assert m.input_quantizer.maxval is None
        with torch.no_grad():
            got = m.weight_quantizer(m.weight).numpy()
        np.testing.assert_array_equal(got, fp8q.quantize(m.weight.detach().numpy(), "mxfp4", block_axis=1))
    for name, (x, y) in capture_quantized_inputs(q, batches[0]).items():
        axis = 1 if x.dim() == 4 else -1
        np.testing.assert_array_equal(y.numpy(), fp8q.quantize(x.numpy(), "mxfp8_e4m3", block_axis=axis),
                                      err_msg=name)
    # block sizes and rules by spelling; no calibration needed
    q = ft.quantize(block(), None, weights="e2m1@16:rceil", activations="nvfp4")
    x = tokens()[0]
    for name, (xi, y) in capture_quantized_inputs(q, x).items():
        np.testing.assert_array_equal(y.numpy(), fp8q.quantize(xi.numpy(), "nvfp4", block_axis=-1))
    assert_weights(q, "e2m1@16:rceil", block_axis=1)


@pytest.mark.parametrize("make", [cnn, tiny_resnet])
def test_fold_bn(make):
    model = randomize_bn(make()).eval()
    batches = images()
    q = ft.quantize(model, None, weights=None, activations=None, fold_bn=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in q.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        for b in batches:
            torch.testing.assert_close(q(b), model(b), rtol=1e-5, atol=1e-5)
    # the folded weights are the quantized ones
    folded = {n: m.weight.detach().clone() for n, m in quant_layers(q).items()}
    q = ft.quantize(model, loop_over(batches), fold_bn=True)
    for name, m in quant_layers(q).items():
        assert torch.equal(m.weight.detach(), folded[name])
    assert_weights(q, "e4m3")


def test_gradients_flow_and_fine_tuning():
    model = cnn()
    batches = images()
    q = ft.quantize(model, loop_over(batches), fold_bn=True)
    q.train()
    params = dict(q.named_parameters())
    out = q(batches[0])
    out.square().sum().backward()
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    # an optimizer step changes the weights, and the quantized weight follows
    opt = torch.optim.SGD(q.parameters(), lr=0.1)
    opt.step()
    q.eval()
    assert_weights(q, "e4m3")


def test_inplace():
    model = cnn()
    before = copy.deepcopy(model.state_dict())
    batches = images()
    q = ft.quantize(model, loop_over(batches), fold_bn=True)
    assert q is not model
    assert type(model.fc) is nn.Linear and isinstance(model.features[1], nn.BatchNorm2d)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    q = ft.quantize(model, loop_over(batches), inplace=True)
    assert q is model and isinstance(model.fc, nn.Linear) and type(model.fc) is not nn.Linear
    assert hasattr(model.fc, "input_quantizer")
    # the state_dict keeps the float model's names
    assert set(model.state_dict()) == set(before)


def test_summary():
    model = cnn()
    q = ft.quantize(model, loop_over(images()), formats={"fc": {"weight": "mxfp4", "act": None}})
    rows = ft.summary(q)
    assert isinstance(rows, list)
    assert [r["name"] for r in rows] == ["features.0.weight", "features.0.input", "features.3.weight",
                                         "features.3.input", "fc.weight", "fc.input"]
    assert [r["kind"] for r in rows] == ["weight", "input"] * 3
    w0, i0, _, _, fcw, fci = rows
    assert w0["format"] == "e4m3" and w0["per_channel"] and len(w0["maxval"]) == 8
    want = fp8q.estimate_range(q.features[0].weight.detach().numpy(), "e4m3", per_channel=True)["maxval"]
    np.testing.assert_array_equal(np.float32(w0["maxval"]), want)
    assert i0["maxval"] == q.features[0].input_quantizer.maxval and i0["enabled"]
    assert fcw["format"] == "mxfp4" and fcw["maxval"] is None and fcw["range"] == "block"
    assert fci["format"] is None and not fci["enabled"]
    table = str(rows)
    lines = table.splitlines()
    assert lines[0].split() == ["name", "kind", "format", "range", "maxval", "enabled"]
    assert len(lines) == 2 + len(rows)
    assert "features.0.input" in table and "(8 ch)" in table


def test_states_round_trip(tmp_path):
    model = block()
    batches = tokens()
    formats = {"q": {"weight": "e3m4", "act": "int8"}, "mlp.0": {"act": "mxfp8_e4m3"}}
    q = ft.quantize(model, loop_over(batches), formats=formats, range="mse")
    q.o.input_quantizer.enabled = False
    path = tmp_path / "states.json"
    saved = ft.save_states(q, path)
    assert json.loads(path.read_text()) == saved
    assert saved["quantizers"]["q.input"] == {"kind": "input", "format": "int8", "enabled": True, "range": "mse",
                                              "maxval": q.q.input_quantizer.maxval}
    # restore: quantize without calibration, load the states (and the weights)
    fresh = ft.quantize(block(), None)
    with pytest.raises(RuntimeError, match="not calibrated"):
        fresh(batches[0])
    ft.load_states(fresh, path)
    fresh.load_state_dict(q.state_dict())
    x = tokens(seed=9)[0]
    with torch.no_grad():
        assert torch.equal(fresh(x), q(x))
    assert ft.summary(fresh) == ft.summary(q)
    ft.load_states(fresh, saved)  # a dict works too


def _raising_loop(model):
    model(torch.randn(2, 3, 8, 8))
    raise RuntimeError("out of batches")


class IntLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.fc.weight = nn.Parameter(torch.ones(4, 4, dtype=torch.int32), requires_grad=False)


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("kw,err,match", [
    ({"weights": "e9m9x"}, ValueError, "unknown format"),
    ({"activations": "bogus"}, ValueError, "unknown format"),
    ({"weights": 8}, TypeError, "format name"),
    ({"formats": {"fc": {"weight": "nope"}}}, ValueError, "unknown format"),
    ({"formats": {"head": {"weight": "e4m3"}}}, ValueError, "'head' is not a Linear or Conv layer"),
    ({"formats": {"fc": {"wieght": "e4m3"}}}, ValueError, "unknown key"),
    ({"layers": "block*"}, ValueError, "matches no Linear or Conv layer"),
    ({"exclude": ["fc", "nothing.*"]}, ValueError, "matches no Linear or Conv layer"),
    ({"range": "max"}, ValueError, "unknown range estimator"),
    ({"forward_loop": _raising_loop}, ValueError, "forward_loop raised RuntimeError: out of batches"),
    ({"forward_loop": lambda m: m(torch.full((1, 3, 8, 8), float("inf")))}, ValueError, "forward_loop raised"),
    ({"forward_loop": 3}, TypeError, "forward_loop must be callable"),
])
def test_bad_input_leaves_model_unchanged(kw, err, match, inplace):
    kw = dict(kw)
    model = cnn()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(err, match=match):
        ft.quantize(model, kw.pop("forward_loop", loop_over(images())), fold_bn=True, inplace=inplace, **kw)
    assert type(model.fc) is nn.Linear and not hasattr(model.fc, "input_quantizer")
    assert isinstance(model.features[1], nn.BatchNorm2d)
    assert set(model.state_dict()) == set(before)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.features[0].bias is None


def test_other_errors(tmp_path):
    with pytest.raises(TypeError, match="not floating point"):
        ft.quantize(IntLinear(), None)
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        ft.quantize("model", None)
    with pytest.raises(TypeError, match="functional must be True or False"):
        ft.quantize(cnn(), None, functional="yes")
    q = ft.quantize(cnn(), None)
    with pytest.raises(ValueError, match="already quantized"):
        ft.quantize(q, None)
    with pytest.raises(ValueError, match="no fp8q quantizers"):
        ft.summary(cnn())
    states = ft.save_states(q)
    bad = copy.deepcopy(states)
    del bad["quantizers"]["fc.input"]
    with pytest.raises(ValueError, match="missing"):
        ft.load_states(q, bad)
    bad = copy.deepcopy(states)
    bad["quantizers"]["fc.input"]["maxval"] = -1.0
    bad["quantizers"]["fc.weight"]["format"] = "e8m8"
    with pytest.raises(ValueError):
        ft.load_states(q, bad)
    assert q.fc.weight_quantizer.format == "e4m3"
    bad = copy.deepcopy(states)
    bad["quantizers"]["fc.input"]["maxval"] = "big"
    with pytest.raises(ValueError, match="maxval"):
        ft.load_states(q, bad)
    path = tmp_path / "broken.json"
    path.write_text("{")
    with pytest.raises(ValueError, match="invalid JSON"):
        ft.load_states(q, path)


def test_uncalled_layer_warns_and_is_disabled():
    model = nn.ModuleDict({"used": nn.Linear(4, 4), "unused": nn.Linear(4, 4)})
    with pytest.warns(UserWarning, match="never called"):
        q = ft.quantize(model, lambda m: m["used"](torch.randn(3, 4)))
    assert q["used"].input_quantizer.enabled and not q["unused"].input_quantizer.enabled
    assert q["unused"].weight_quantizer.enabled


def test_multihead_attention_out_proj_is_not_covered():
    model = nn.Sequential(nn.Linear(8, 8))
    model.append(nn.MultiheadAttention(8, 2))
    names = [r["name"] for r in ft.summary(ft.quantize(model, None))]
    assert names == ["0.weight", "0.input"]


class ConvThenOther(nn.Module):
    """Attribute order says conv1 -> bn, but bn normalises conv2's output; conv1's output also
    feeds a skip connection (so even a conv1 -> bn graph edge could not be folded)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.bn2 = nn.BatchNorm2d(8)
        self.conv3 = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        y = self.conv1(x)
        z = self.bn(self.conv2(y)) + y
        return self.bn2(self.conv3(z)) + self.conv3(z)  # conv3 runs twice: not foldable


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        if x.sum() > 0:  # control flow on a tensor value: torch.fx cannot trace it
            x = -x
        return self.bn(self.conv(x))


def test_fold_bn_follows_the_graph_not_the_attribute_order():
    model = randomize_bn(ConvThenOther()).eval()
    q = ft.quantize(model, None, weights=None, activations=None, fold_bn=True)
    assert isinstance(q.bn, nn.Identity) and isinstance(q.bn2, nn.BatchNorm2d)
    assert torch.equal(q.conv1.weight, model.conv1.weight)  # not folded
    assert not torch.equal(q.conv2.weight, model.conv2.weight)  # folded with bn
    assert torch.equal(q.conv3.weight, model.conv3.weight)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(q(x), model(x), rtol=1e-5, atol=1e-5)


def test_fold_bn_on_an_untraceable_model_falls_back_to_attribute_order_with_a_warning():
    model = randomize_bn(Untraceable()).eval()
    with pytest.warns(UserWarning, match="cannot trace"):
        q = ft.quantize(model, None, weights=None, activations=None, fold_bn=True)
    assert isinstance(q.bn, nn.Identity)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(q(x), model(x), rtol=1e-5, atol=1e-5)
