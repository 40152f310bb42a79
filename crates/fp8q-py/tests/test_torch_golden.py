"""fp8q.torch.quantize on the golden trained ResNet-18 (torchvision layout,
$FP8Q_GOLDEN_PTQ/weights/resnet18_shapes10.pth) against the weight quantizers that
`fp8q validate-quantized` installs for the same options, read from --save-quant-params:

  weights="e4m3"       --qmethod fp_quantizer --n-bits 8 --fp8-mantissa-bits 3 --fp8-set-maxval
  range="minmax"       --weight-quant-method current_minmax (a weight's own min and max)
  per_channel          --per-channel / --no-per-channel
  activations=None     --no-act-quant

The CLI does not write quantized weights (--save-checkpoint-dir has no effect there), so the
test compares the ranges exactly and the quantized weights through
fp8q.quantize(W, "e4m3", maxval=ranges).

BN folding: validate-quantized never folds BN (docs/ptq.md, docs/differences.md: the conv weight
is quantized as it is and BN runs afterwards, as in the paper's reference). So with fold_bn=False
the ranges are the CLI's exactly; with fold_bn=True each folded channel's range is the CLI's
range times |gamma / sqrt(var + eps)| of its BN (float64 product, rounded once to float32: the
maximum commutes with a per-channel positive scale and with rounding), and only that.

Activations: the CLI quantizes unit outputs, fp8q.torch layer inputs. One pair is the same
tensor up to a max-pool that keeps the maximum: the output of the stem (conv1, bn1, relu), range
"conv1" in the CLI, is the input of layer1.0.conv1 after torchvision's max-pool (3x3, stride 2,
padding 1: every pixel is in a window). With float weights on both sides and the same two
calibration images it must agree within the golden README's 1e-4 relative.

Needs FP8Q_GOLDEN_PTQ (the golden folder; CI always sets it, so there the test runs) and the
fp8q binary (FP8Q_CLI, see conftest.py); skipped without them, or without torchvision."""

import functools
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import fp8q  # noqa: E402
import fp8q.torch as ft  # noqa: E402
from torch import nn  # noqa: E402


@pytest.fixture(scope="module")
def golden_ptq():
    root = os.environ.get("FP8Q_GOLDEN_PTQ")
    if not root:
        pytest.skip("FP8Q_GOLDEN_PTQ is not set (the golden PTQ folder)")
    root = pathlib.Path(root)
    for d in ("weights/resnet18_shapes10.pth", "images/train", "images/val"):
        if not (root / d).exists():
            pytest.fail(f"FP8Q_GOLDEN_PTQ={root} has no {d}")
    return root


@functools.lru_cache(maxsize=1)
def _state_dict(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def resnet18(golden_ptq):
    sd = _state_dict(golden_ptq / "weights" / "resnet18_shapes10.pth")
    model = torchvision.models.resnet18(weights=None, num_classes=sd["fc.weight"].shape[0])
    model.load_state_dict(sd)
    return model.eval()


def run_cli(cli, golden_ptq, tmp_path, *options):
    out = tmp_path / "quant_params.json"
    cmd = [cli, "validate-quantized", "--images-dir", str(golden_ptq / "images"), "--architecture", "resnet18",
           "--model-dir", str(golden_ptq / "weights" / "resnet18_shapes10.pth"),
           "--qmethod", "fp_quantizer", "--n-bits", "8", "--fp8-mantissa-bits", "3", "--fp8-set-maxval",
           "--weight-quant-method", "current_minmax", "--no-reestimate-bn-stats", "--calib-transform", "val",
           "--num-est-batches", "1", "--max-val-images", "1", "--no-progress-bar", "--num-workers", "1",
           "--save-quant-params", str(out), *options]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def cli_weights(cli, golden_ptq, tmp_path_factory):
    """{per_channel: {unit: weight state}} of the CLI (weights only, one batch of one image)."""
    out = {}
    for pc in (True, False):
        params = run_cli(cli, golden_ptq, tmp_path_factory.mktemp("cli"), "--no-act-quant", "--batch-size", "1",
                         "--per-channel" if pc else "--no-per-channel")
        out[pc] = {unit: s["weight"] for unit, s in params.items()}
    return out


def layer_names(model):
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def bn_scales(model):
    """{conv name: |gamma / sqrt(var + eps)|} (float64) of torchvision ResNet-18's conv -> BN pairs."""
    mods = dict(model.named_modules())
    out = {}
    for name in layer_names(model):
        if name == "fc":
            continue
        bn = mods[name[:-1] + "1" if name.endswith("downsample.0") else name.replace("conv", "bn")]
        var = bn.running_var.double().numpy()
        out[name] = np.abs(bn.weight.detach().double().numpy() / np.sqrt(var + bn.eps))
    return out


@pytest.mark.parametrize("fold_bn", [False, True])
@pytest.mark.parametrize("per_channel", [True, False])
def test_weight_quantizers_match_validate_quantized(golden_ptq, cli_weights, per_channel, fold_bn):
    model = resnet18(golden_ptq)
    names = layer_names(model)
    cli = cli_weights[per_channel]
    assert sorted(cli) == sorted(names)
    # the CLI's per-channel ranges: fp32 weights' per-channel maximum (checked here, not assumed)
    for n in names:
        s = cli_weights[True][n]
        assert s["kind"] == "fp" and s["format"] == "e4m3" and s["n_bits"] == 8, (n, s)
        w = model.get_submodule(n).weight.detach().numpy()
        np.testing.assert_array_equal(np.float32(s["maxval"]), np.abs(w.reshape(w.shape[0], -1)).max(1), err_msg=n)
    q = ft.quantize(model, None, weights="e4m3", activations=None, per_channel=per_channel, fold_bn=fold_bn)
    rows = {r["name"][: -len(".weight")]: r for r in ft.summary(q) if r["kind"] == "weight"}
    assert sorted(rows) == sorted(names)
    scales = bn_scales(model)
    for n in names:
        if not fold_bn or n == "fc":
            want = np.float32(cli[n]["maxval"])
        else:
            per_ch = (np.float64(cli_weights[True][n]["maxval"]) * scales[n]).astype(np.float32)
            want = per_ch if per_channel else per_ch.max()
        got = np.float32(rows[n]["maxval"])
        np.testing.assert_array_equal(got, want, err_msg=n)
        m = q.get_submodule(n)
        with torch.no_grad():
            wq = m.weight_quantizer(m.weight).numpy()
        w = m.weight.detach().numpy()
        if not fold_bn:
            np.testing.assert_array_equal(w, model.get_submodule(n).weight.detach().numpy(), err_msg=n)
        np.testing.assert_array_equal(wq, fp8q.quantize(w, "e4m3", maxval=want), err_msg=n)


def train_images(golden_ptq, count):
    """The first images of train/ in the CLI's --calib-transform val order (class folders sorted,
    files sorted) with the validation transform, as torchvision does it on PIL images."""
    from PIL import Image
    from torchvision import transforms as T

    tf = T.Compose([T.Resize(248), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    files = [f for d in sorted((golden_ptq / "images" / "train").iterdir()) if d.is_dir()
             for f in sorted(d.iterdir()) if f.is_file()]
    return torch.stack([tf(Image.open(f).convert("RGB")) for f in files[:count]])


def test_first_activation_range_matches_validate_quantized(cli, golden_ptq, tmp_path):
    params = run_cli(cli, golden_ptq, tmp_path, "--no-weight-quant", "--act-quant-method", "allminmax",
                     "--batch-size", "2")
    want = params["conv1"]["act"]["maxval"]
    want = float(want[0] if isinstance(want, list) else want)
    x = train_images(golden_ptq, 2)
    for fold_bn in (False, True):
        q = ft.quantize(resnet18(golden_ptq), lambda m: m(x), weights=None, activations="e4m3", fold_bn=fold_bn,
                        layers="layer1.0.conv1")
        got = q.layer1[0].conv1.input_quantizer.maxval
        assert got == pytest.approx(want, rel=1e-4), (fold_bn, got, want)
