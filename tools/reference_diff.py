"""Differential audit of `fp8q validate-quantized` against the reference's own PTQ pipeline.

Runs the REFERENCE code (Qualcomm-AI-research/FP8-quantization, `image_net.py validate-quantized`,
its click options, models, quantizers and range estimators, unchanged) and `fp8q
validate-quantized` with the same options on the shapes10 fixture of the golden PTQ set, with the
golden runs' deterministic data settings (calibration and BN re-estimation read `train/` with the
validation transform, unshuffled, sorted), and compares top-1, the logits (relative L2, argmax
agreement) and every quantizer's state (FP: maxval per channel, mantissa and sign bits; INT: delta,
zero point). A second fp8q run loads the reference's calibrated quantizer states
(`--load-quant-params`) and compares the logits again: that isolates the forward pass (and BN
re-estimation) from calibration.

This is a dev-time audit tool: it needs torch, torchvision, click, scipy and numpy, and is not used
by CI or any test. Usage:

    python tools/reference_diff.py [--mirror GIT_DIR] [--golden DIR] [--fp8q BIN] [--out DIR]
        [--arithmetic integer-bias|exact]
        [--self-noise] ARCH -- VALIDATE_QUANTIZED_OPTIONS...
    python tools/reference_diff.py --matrix [--only SUBSTRING] [--arch ARCH] [...]
    python tools/reference_diff.py --export-reference OUT.json ARCH -- OPTIONS...

ARCH is resnet18 or mobilenet_v2. The options are the reference's spellings (what both accept);
`--images-dir`, `--architecture`, `--model-dir`, `--load-type fp32` and `--batch-size 8` are
added when absent, and `--qmethod fp_quantizer` (fp8q's default; the reference's default
symmetric_uniform stops with UnboundLocalError). fp8q's own `--bn-reestimation-batches N` is
honoured on the reference side by replacing its count `int(0.02 * len(train_loader))` with N;
without it both use the reference's rule.

Running the reference under torch 2.x on a CPU needs these patches, all applied here by
monkeypatching (the checkout extracted from the mirror is not edited):
  0. (the only edit of the extracted checkout, a one-line sed) Python >= 3.11 refuses the
     reference's `enum.Flag` subclasses with non-integer values (`utils/utils.py`: option enums
     whose values are classes or InterpolationMode members); they become `enum.Enum`s, which is
     all they are used as (named, listed, compared):
       sed -i 's/^from enum import Flag, auto$/from enum import Enum as Flag, auto/' utils/utils.py
  1. `timm` and `pytorch-ignite` are not installed: `timm.models.layers.activations(_me)` get dummy
     activation classes (only used in an isinstance list), and ignite's ProgressBar, metrics and
     `create_supervised_evaluator` are replaced by a plain loop that keeps the logits.
  2. `torch.nn.Module.cuda` returns the module unchanged (the reference's `--cuda` is on by
     default).
  3. The data loaders (`utils.qat_utils.ImageNetDataLoaders`): train = `train/` with the
     validation transform, unshuffled, `num_workers=0`; val as in the reference (`num_workers=0`).
  4. The ResNets load `--model-dir` (the reference ignores it and downloads torchvision's ImageNet
     weights: `models.resnet_quantized.resnet18/resnet50` are replaced by constructors that load
     the given state dict) and MobileNetV2 is built with the checkpoint's number of classes
     (`models.mobilenet_v2_quantized.MobileNetV2`).
  5. `ReestimateBNStats` gets the `--bn-reestimation-batches` count when one is given.
  6. `quant_params_dict` defines `fp8_kwargs` only for `--qmethod fp_quantizer`, so every INT
     run stops with UnboundLocalError: INT runs get no FP keywords (as the golden INT runs). A mix
     of INT and FP (`--qmethod-act`) still fails in the reference (INT quantizers refuse the FP
     keywords, which go to both).

Two optional patches are experiments, not compatibility fixes (7, `--arithmetic`):
  * `--arithmetic integer-bias` rounds the bias `b = 2^e - log2(maxval) + log2(2 - 2^-m) - 1` of
    the reference's FP quantizer to the nearest integer when it is within 1e-5 of one, and changes
    nothing else. The reference evaluates `b` in f32; for E3M4 at its default maxval 15.5 that
    gives 4 + 2^-21 instead of 4, which puts every output 3.3e-7 (relative) below the grid.
  * `--arithmetic exact` evaluates the reference's FP formula in f64 (the bias snapped to an
    integer within 1e-9 of it) and rounds the result to f32: the exact grid, up to a double
    rounding no f32 input reaches in practice, which is what fp8q computes.
fp8q computes the grid exactly, so these tell the reference's f32 noise apart from real
differences (docs/differences.md, "Exact FP quantization").
"""
import argparse
import contextlib
import io
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
import types

DEFAULT_MIRROR = "/work/.mirror/Qualcomm-AI-research+FP8-quantization/repo"
DEFAULT_GOLDEN = "/work/shared/golden/ptq"
DEFAULT_FP8Q = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "fp8q")
WORK = "/tmp/ref-audit"

WEIGHTS = {"resnet18": "resnet18_shapes10.pth", "mobilenet_v2": "mobilenet_v2_shapes10.pth"}
REF_ARCH = {"resnet18": "resnet18_quantized", "mobilenet_v2": "mobilenet_v2_quantized"}
# options only fp8q has: dropped from the reference's command line
FP8Q_ONLY_VALUED = {"--bn-reestimation-batches", "--calib-transform", "--json", "--max-val-images",
                    "--save-logits", "--save-quant-params", "--load-quant-params", "--layer-formats",
                    "--shard"}


# ---------------------------------------------------------------------------------------------
# the reference side


def extract_reference(mirror, dest):
    if not os.path.isfile(os.path.join(dest, "image_net.py")):
        os.makedirs(dest, exist_ok=True)
        archive = subprocess.run(["git", "-C", mirror, "archive", "HEAD"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    # patch 0
    subprocess.run(["sed", "-i", "s/^from enum import Flag, auto$/from enum import Enum as Flag, auto/",
                    os.path.join(dest, "utils", "utils.py")], check=True)
    return dest


class _Captured:
    logits = None
    labels = None


def _install_stubs():
    """Patch 1: modules the reference imports that are not installed."""
    from torch import nn

    if "timm" not in sys.modules:
        timm = types.ModuleType("timm")
        models = types.ModuleType("timm.models")
        layers = types.ModuleType("timm.models.layers")
        acts = types.ModuleType("timm.models.layers.activations")
        acts_me = types.ModuleType("timm.models.layers.activations_me")
        for mod, names in ((acts, ["Swish", "HardSwish", "HardSigmoid"]),
                           (acts_me, ["SwishMe", "HardSwishMe", "HardSigmoidMe"])):
            for n in names:
                setattr(mod, n, type(n, (nn.Module,), {}))
        timm.models, models.layers, layers.activations, layers.activations_me = models, layers, acts, acts_me
        for name, mod in (("timm", timm), ("timm.models", models), ("timm.models.layers", layers),
                          ("timm.models.layers.activations", acts),
                          ("timm.models.layers.activations_me", acts_me)):
            sys.modules[name] = mod

    if "ignite" not in sys.modules:
        import torch

        ignite = types.ModuleType("ignite")
        contrib = types.ModuleType("ignite.contrib")
        handlers = types.ModuleType("ignite.contrib.handlers")
        engine = types.ModuleType("ignite.engine")
        metrics = types.ModuleType("ignite.metrics")

        class ProgressBar:
            def attach(self, *_a, **_k):
                pass

        class _Metric:
            def __init__(self, *a, **k):
                pass

        class _Evaluator:
            def __init__(self, model):
                self.model = model
                self.state = types.SimpleNamespace(metrics={})

            def run(self, loader):
                self.model.eval()
                outs, labels = [], []
                with torch.no_grad():
                    for x, y in loader:
                        outs.append(self.model(x))
                        labels.append(y)
                logits, y = torch.cat(outs), torch.cat(labels)
                _Captured.logits, _Captured.labels = logits, y
                top5 = logits.topk(5, 1).indices
                self.state.metrics = {
                    "top_1_accuracy": (logits.argmax(1) == y).float().mean().item(),
                    "top_5_accuracy": (top5 == y[:, None]).any(1).float().mean().item(),
                    "loss": torch.nn.functional.cross_entropy(logits, y).item(),
                }

        handlers.ProgressBar = ProgressBar
        engine.create_supervised_evaluator = lambda model, metrics=None, device=None: _Evaluator(model)
        metrics.Accuracy = metrics.TopKCategoricalAccuracy = metrics.Loss = _Metric
        for name, mod in (("ignite", ignite), ("ignite.contrib", contrib), ("ignite.contrib.handlers", handlers),
                          ("ignite.engine", engine), ("ignite.metrics", metrics)):
            sys.modules[name] = mod


def _patch_reference(bn_batches, noise):
    """Patches 2-5."""
    import torch
    import torchvision
    from torch.utils.data import DataLoader
    from torchvision import transforms

    torch.nn.Module.cuda = lambda self, *a, **k: self  # patch 2

    import utils.qat_utils as qat_utils
    import models.resnet_quantized as rq
    import models.mobilenet_v2_quantized as mq
    import image_net

    class DeterministicLoaders:  # patch 3
        def __init__(self, images_dir, image_size, batch_size, num_workers, interpolation):
            normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
            steps = [transforms.Resize(image_size + 24, interpolation=interpolation.value),
                     transforms.CenterCrop(image_size), transforms.ToTensor(), normalize]
            if noise:
                gen = torch.Generator().manual_seed(1234)
                steps.append(transforms.Lambda(lambda t: t * (1 + 1e-6 * torch.randn(t.shape, generator=gen))))
            tf = transforms.Compose(steps)
            self.train_loader = DataLoader(torchvision.datasets.ImageFolder(os.path.join(images_dir, "train"), tf),
                                           batch_size=batch_size, shuffle=False, num_workers=0)
            self.val_loader = DataLoader(torchvision.datasets.ImageFolder(os.path.join(images_dir, "val"), tf),
                                         batch_size=batch_size, shuffle=False, num_workers=0)

    qat_utils.ImageNetDataLoaders = DeterministicLoaders

    def loader_of(ctor):  # patch 4
        def build(pretrained=True, **_kw):
            sd = torch.load(_State.model_dir, map_location="cpu")
            model = ctor(num_classes=sd["fc.weight"].shape[0])
            model.load_state_dict(sd)
            return model
        return build

    rq.resnet18 = loader_of(torchvision.models.resnet18)
    rq.resnet50 = loader_of(torchvision.models.resnet50)
    orig_mnv2 = mq.MobileNetV2 if not hasattr(mq.MobileNetV2, "_orig") else mq.MobileNetV2._orig

    def mnv2(*a, **k):
        sd = torch.load(_State.model_dir, map_location="cpu")
        return orig_mnv2(n_class=sd["classifier.1.weight"].shape[0])
    mnv2._orig = orig_mnv2
    mq.MobileNetV2 = mnv2

    # patch 6: `quant_params_dict` defines `fp8_kwargs` only when --qmethod is fp_quantizer, so
    # every INT run stops with UnboundLocalError; INT runs get no FP keywords instead (the golden
    # INT runs were made so). A mix of INT and FP methods still fails in the reference: the FP
    # keywords go to weight and activation quantizers alike, and INT quantizers refuse them.
    from quantization.quantization_manager import QMethods
    orig_qpd = getattr(image_net.quant_params_dict, "_orig", image_net.quant_params_dict)

    def quant_params_dict(config):
        real = config.quant.qmethod
        if real.name.startswith("fp_quantizer"):
            return orig_qpd(config)
        config.quant.qmethod = QMethods.fp_quantizer
        try:
            qparams = orig_qpd(config)
        finally:
            config.quant.qmethod = real
        qparams["method"] = real.cls
        if not config.quant.qmethod_act.name.startswith("fp_quantizer"):
            qparams["fp8_kwargs"] = {}
        return qparams
    quant_params_dict._orig = orig_qpd
    image_net.quant_params_dict = quant_params_dict

    orig_bn = getattr(qat_utils.ReestimateBNStats, "_orig", qat_utils.ReestimateBNStats)

    class Reestimate(orig_bn):  # patch 5
        def __init__(self, model, data_loader, num_batches=50):
            super().__init__(model, data_loader, num_batches if bn_batches is None else bn_batches)
            _State.bn_batches_asked = self.num_batches
    Reestimate._orig = orig_bn
    image_net.ReestimateBNStats = Reestimate
    return image_net


def _patch_arithmetic(mode):
    """Patch 7 (optional): the reference's FP quantizer with its bias snapped to an integer
    (`integer-bias`) or evaluated exactly (`exact`); `None` restores it."""
    import torch
    import quantization.quantizers.fp8_quantizer as fq
    from quantization.quantizers.rounding_utils import round_ste_func

    orig = getattr(fq.quantize_to_fp8_ste_MM, "_orig", fq.quantize_to_fp8_ste_MM)
    if mode is None:
        fq.quantize_to_fp8_ste_MM = orig
        return
    dtype, snap = (torch.float32, 1e-5) if mode == "integer-bias" else (torch.float64, 1e-9)

    def patched(x_float, n_bits, maxval, num_mantissa_bits, sign_bits):
        M = torch.clamp(round_ste_func(num_mantissa_bits), 1, n_bits - sign_bits).to(dtype)
        E = n_bits - sign_bits - M
        if maxval.shape[0] != 1 and len(maxval.shape) != len(x_float.shape):
            maxval = maxval.view([-1] + [1] * (len(x_float.shape) - 1))
        mv = maxval.to(dtype)
        b = 2**E - torch.log2(mv) + torch.log2(2 - 2 ** (-M)) - 1
        b = torch.where((b - b.round()).abs() < snap, b.round(), b)
        lo = -mv if sign_bits == 1 else torch.zeros_like(mv)
        xc = torch.min(torch.max(x_float.to(dtype), lo), mv)
        k = torch.clamp(torch.floor(torch.log2(torch.abs(xc)) + b).detach(), 1.0)
        s = 2.0 ** (k - M - b)
        return (round_ste_func(xc / s) * s).to(x_float.dtype)
    patched._orig = orig
    fq.quantize_to_fp8_ste_MM = patched


class _State:
    arithmetic = None
    model_dir = None
    bn_batches_asked = None
    model = None


def split_options(opts):
    """(reference argv, fp8q-only options as a dict)."""
    ref, only, i = [], {}, 0
    while i < len(opts):
        o = opts[i]
        key = o.split("=", 1)[0]
        if key in FP8Q_ONLY_VALUED:
            if "=" in o:
                only[key] = o.split("=", 1)[1]
            else:
                only[key] = opts[i + 1]
                i += 1
        elif key in ("--skip-bad-images", "--print-config"):
            only[key] = True
        else:
            ref.append(o)
        i += 1
    return ref, only


def has(opts, name):
    return any(o == name or o.startswith(name + "=") for o in opts)


def complete_options(arch, opts, golden):
    """Add the options every run of the audit shares, unless given."""
    opts = list(opts)
    if not has(opts, "--images-dir"):
        opts += ["--images-dir", os.path.join(golden, "images")]
    if not has(opts, "--architecture"):
        opts += ["--architecture", REF_ARCH[arch]]
    if not has(opts, "--model-dir"):
        opts += ["--model-dir", os.path.join(golden, "weights", WEIGHTS[arch])]
    if not has(opts, "--load-type"):
        opts += ["--load-type", "fp32"]
    if not has(opts, "--batch-size"):
        opts += ["--batch-size", "8"]
    if not has(opts, "--qmethod"):
        opts += ["--qmethod", "fp_quantizer"]
    return opts


def unit_names(model, arch):
    """Reference module path -> (fp8q unit name, module) for every quantized module."""
    from quantization.hijacker import QuantizationHijacker
    from quantization.base_quantized_classes import QuantizedActivation
    from quantization.autoquant_utils import QuantizedActivationWrapper

    out = {}
    for path, mod in model.named_modules():
        if isinstance(mod, QuantizedActivationWrapper):
            continue  # average pools reuse the quantizer before them (or have none, LSQ_paper)
        if not isinstance(mod, (QuantizationHijacker, QuantizedActivation)):
            continue
        p = path.split(".")
        if arch == "resnet18":
            if p == ["features", "0"]:
                name = "conv1"
            elif p[0] == "fc":
                name = "fc"
            else:
                layer = f"layer{int(p[1]) - 1}.{p[2]}"  # features: [conv1+bn1+relu, maxpool, layer1..4]
                if len(p) == 3:
                    name = layer
                elif p[3] == "features":
                    name = f"{layer}.conv{int(p[4]) + 1}"
                else:
                    name = f"{layer}.downsample.0"
        else:
            if p[0] == "classifier":
                name = "classifier.1"
            elif len(p) == 2:
                name = f"features.{p[1]}"  # an inverted residual block's own output quantizer
            elif p[2] == "conv":
                name = f"features.{p[1]}.conv.{int(p[3]) * 3}"
            else:
                name = f"features.{p[1]}.0"
        out[path] = (name, mod)
    return out


def quantizer_state(manager):
    import torch
    from quantization.quantization_manager import QuantizationManager
    from quantization.quantizers.fp8_quantizer import FPQuantizer

    if not isinstance(manager, QuantizationManager):
        return None
    q = manager.quantizer
    if isinstance(q, FPQuantizer):
        return {"kind": "fp", "n_bits": int(q.n_bits), "maxval": [float(v) for v in q.maxval.flatten()],
                "mantissa_bits": int(torch.round(q.mantissa_bits.flatten()[0]).item()), "sign_bits": int(q.sign_bits)}
    if q._delta is None:
        return None
    zp = q.zero_point
    zp = zp.flatten().tolist() if torch.is_tensor(zp) else [float(zp)]
    return {"kind": "int", "n_bits": int(q.n_bits), "delta": [float(v) for v in q.delta.flatten()],
            "zero_point": [float(v) for v in zp], "int_min": int(q.int_min), "int_max": int(q.int_max)}


def reference_states(model, arch):
    states = {}
    for path, (name, mod) in unit_names(model, arch).items():
        entry = {}
        if hasattr(mod, "weight_quantizer") and mod._quant_w.item():
            s = quantizer_state(mod.weight_quantizer)
            if s:
                entry["weight"] = s
        if mod._quant_a.item():
            # a non-residual MobileNetV2 block has a quantizer that never acts
            acts = getattr(mod, "use_res_connect", True)
            s = quantizer_state(mod.activation_quantizer) if acts else None
            if s:
                entry["act"] = s
        if entry:
            states.setdefault(name, {}).update(entry)
    return states


def run_reference(arch, opts, golden, mirror, noise=False, threads=1):
    """Run the reference's validate-quantized; returns a dict (or {'error': ...})."""
    import torch

    ref_dir = extract_reference(mirror, os.path.join(WORK, "reference"))
    if ref_dir not in sys.path:
        sys.path.insert(0, ref_dir)
    torch.set_num_threads(threads)
    _install_stubs()
    ref_opts, only = split_options(complete_options(arch, opts, golden))
    bn = only.get("--bn-reestimation-batches")
    image_net = _patch_reference(None if bn is None else int(bn), noise)
    _patch_arithmetic(_State.arithmetic)
    _State.model_dir = ref_opts[ref_opts.index("--model-dir") + 1]
    _State.bn_batches_asked = None
    _Captured.logits = None

    # keep the model the command builds
    import utils.qat_utils as qat_utils
    orig_get = getattr(qat_utils.get_dataloaders_and_model, "_orig", qat_utils.get_dataloaders_and_model)

    def get(*a, **k):
        loaders, model = orig_get(*a, **k)
        _State.model = model
        return loaders, model
    get._orig = orig_get
    image_net.get_dataloaders_and_model = get

    out = io.StringIO()
    t = time.time()
    try:
        with contextlib.redirect_stdout(out):
            image_net.fp8_cmd_group.main(args=["validate-quantized"] + ref_opts, standalone_mode=False)
    except SystemExit as e:  # click usage errors
        return {"error": f"exit {e.code}", "stdout": out.getvalue()[-2000:]}
    except Exception as e:  # noqa: BLE001 - the reference's own failure is a result here
        return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    logits, labels = _Captured.logits, _Captured.labels
    if logits is None:
        return {"error": "no evaluation ran", "stdout": out.getvalue()[-2000:]}
    return {
        "seconds": time.time() - t,
        "logits": logits.tolist(),
        "labels": labels.tolist(),
        "top1": (logits.argmax(1) == labels).float().mean().item(),
        "quantizers": reference_states(_State.model, arch),
        "bn_batches_asked": _State.bn_batches_asked,
    }


# ---------------------------------------------------------------------------------------------
# the fp8q side


def run_fp8q(binary, arch, opts, golden, out_json, extra=(), threads=1):
    opts = complete_options(arch, opts, golden)
    ref_opts, only = split_options(opts)
    cmd = [binary, "validate-quantized"] + opts + ["--json", out_json, "--num-workers", str(threads),
                                                    "--no-progress-bar"] + list(extra)
    if "--calib-transform" not in only:
        cmd += ["--calib-transform", "val"]
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": f"exit {p.returncode}: {p.stderr.strip()[-600:]}"}
    with open(out_json) as f:
        rep = json.load(f)
    rep["seconds"] = time.time() - t
    rep["stderr"] = p.stderr
    return rep


# ---------------------------------------------------------------------------------------------
# comparison


def rel_l2(a, b):
    num = sum((x - y) ** 2 for ra, rb in zip(a, b) for x, y in zip(ra, rb))
    den = sum(y * y for rb in b for y in rb)
    return math.sqrt(num / max(den, 1e-300))


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def compare_states(ours, ref):
    """Summary of quantizer differences: worst relative range error of weights / acts, the first
    unit's act error, and every structural mismatch."""
    res = {"w_rel": 0.0, "a_rel": 0.0, "a_first_rel": None, "w_worst": None, "a_worst": None, "issues": []}
    units = list(ref)
    for unit in sorted(set(ours) | set(ref), key=lambda u: units.index(u) if u in units else 1e9):
        for role in ("weight", "act"):
            o, r = ours.get(unit, {}).get(role), ref.get(unit, {}).get(role)
            if o is None and r is None:
                continue
            if o is None or r is None:
                res["issues"].append(f"{unit}.{role}: {'missing in fp8q' if o is None else 'extra in fp8q'}")
                continue
            if o["kind"] != r["kind"]:
                res["issues"].append(f"{unit}.{role}: kind {o['kind']} vs {r['kind']}")
                continue
            if o["kind"] == "fp":
                for k in ("mantissa_bits", "sign_bits", "n_bits"):
                    if k in o and int(o[k]) != int(r[k]):
                        res["issues"].append(f"{unit}.{role}: {k} {o[k]} vs {r[k]}")
                vals = list(zip(o["maxval"], r["maxval"]))
                if len(o["maxval"]) != len(r["maxval"]):
                    res["issues"].append(f"{unit}.{role}: {len(o['maxval'])} vs {len(r['maxval'])} channels")
            else:
                if int(o["n_bits"]) != int(r["n_bits"]):
                    res["issues"].append(f"{unit}.{role}: n_bits {o['n_bits']} vs {r['n_bits']}")
                zo, zr = o["zero_point"], r["zero_point"]
                if len(zr) == 1 and len(zo) > 1:
                    zr = zr * len(zo)
                if [float(z) for z in zo] != [float(z) for z in zr]:
                    nz = sum(1 for a, b in zip(zo, zr) if float(a) != float(b))
                    res["issues"].append(f"{unit}.{role}: {nz} zero point(s) differ")
                if "int_min" in o and (o["int_min"], o["int_max"]) != (r["int_min"], r["int_max"]):
                    res["issues"].append(f"{unit}.{role}: int range {o['int_min']}..{o['int_max']} vs "
                                         f"{r['int_min']}..{r['int_max']}")
                vals = list(zip(o["delta"], r["delta"]))
            worst = max((rel(a, b) for a, b in vals), default=0.0)
            key = "w" if role == "weight" else "a"
            if worst > res[f"{key}_rel"]:
                res[f"{key}_rel"], res[f"{key}_worst"] = worst, unit
            if role == "act" and res["a_first_rel"] is None:
                res["a_first_rel"] = worst
    return res


def diff(arch, opts, args, tag=None):
    """Run both sides on one configuration and return a result row."""
    os.makedirs(args.out, exist_ok=True)
    tag = tag or f"{arch}__{abs(hash((arch, tuple(opts)))) % 10**8}"
    row = {"tag": tag, "arch": arch, "options": " ".join(opts)}
    ref = run_reference(arch, opts, args.golden, args.mirror)
    ours = run_fp8q(args.fp8q, arch, opts, args.golden, os.path.join(args.out, tag + ".fp8q.json"))
    if "error" in ref or "error" in ours:
        row["reference_error"] = ref.get("error")
        row["fp8q_error"] = ours.get("error")
        row["verdict"] = "both fail" if ("error" in ref and "error" in ours) else "ONE FAILS"
        if "traceback" in ref:
            row["reference_traceback"] = ref["traceback"][-800:]
        return row
    # states of the reference, loadable by fp8q
    ref_states = os.path.join(args.out, tag + ".ref_states.json")
    with open(ref_states, "w") as f:
        json.dump({"quantizers": ref["quantizers"]}, f)
    n = len(ref["labels"])
    assert ours["labels"] == ref["labels"], "validation order differs"
    row.update({
        "top1_ref": round(ref["top1"] * n), "top1_fp8q": round(ours["top1"] * n), "images": n,
        "rel_l2": rel_l2(ours["logits"], ref["logits"]),
        "argmax_agree": sum(1 for a, b in zip(ours["logits"], ref["logits"])
                            if max(range(len(a)), key=a.__getitem__) == max(range(len(b)), key=b.__getitem__)) / n,
        "bn_batches": (ours.get("config", {}).get("bn_reestimation_batches"), ref["bn_batches_asked"]),
    })
    st = compare_states(ours.get("quantizers") or {}, ref["quantizers"])
    row.update(st)
    if ref["quantizers"]:
        loaded = run_fp8q(args.fp8q, arch, opts, args.golden, os.path.join(args.out, tag + ".loaded.json"),
                          extra=["--load-quant-params", ref_states])
        if "error" in loaded:
            row["loaded_error"] = loaded["error"]
        else:
            row["rel_l2_loaded"] = rel_l2(loaded["logits"], ref["logits"])
            row["top1_loaded"] = round(loaded["top1"] * n)
    # how far the reference moves from itself under float noise: always asked for, or when the
    # logits differ more than the golden README's floors
    if args.self_noise or row["rel_l2"] > 0.05 or row.get("rel_l2_loaded", 0) > 0.01 or row["argmax_agree"] < 0.95:
        noisy = run_reference_noise(arch, opts, args)
        row["self_noise"] = rel_l2(noisy["logits"], ref["logits"]) if noisy else None
        # how far the reference's own calibration moves under that noise (sequential calibration
        # carries a flipped rounding into every later range)
        row["self_noise_a"] = compare_states(noisy["quantizers"], ref["quantizers"])["a_rel"] if noisy else None
    row["verdict"] = verdict(row)
    return row


def run_reference_noise(arch, opts, args):
    r = run_reference(arch, opts, args.golden, args.mirror, noise=True)
    return None if "error" in r else r


def verdict(row):
    """The golden README's tolerances, plus exact structure (mantissa / sign bits, zero points)."""
    bad = []
    if row["issues"]:
        bad.append("state")
    if row["w_rel"] > 1e-5:
        bad.append("weight ranges")
    if (row["a_first_rel"] or 0) > 1e-4:
        bad.append("first act range")
    noise = row.get("self_noise") or 0
    if row["rel_l2"] > max(0.05, 3 * noise) or row["argmax_agree"] < 0.95:
        bad.append("logits")
    if abs(row["top1_ref"] - row["top1_fp8q"]) > 2:
        bad.append("top1")
    marginal = False
    if "rel_l2_loaded" in row and row["rel_l2_loaded"] > max(0.01, 3 * noise):
        # one noise draw is itself noisy (the golden runs' self_noise is often twice what a draw
        # here gives): up to 3% with the reference's ranges is reported as marginal
        if row["rel_l2_loaded"] <= 0.03:
            marginal = True
        else:
            bad.append("logits with reference ranges")
    if bad:
        return "MISMATCH: " + ", ".join(bad)
    return "marginal (logits with reference ranges)" if marginal else "match"


# ---------------------------------------------------------------------------------------------
# the matrix


def matrix():
    """(tag, arch, options) of the audit: each option varied from a base, and random mixes."""
    base_fp = ["--qmethod", "fp_quantizer", "--fp8-set-maxval", "--no-reestimate-bn-stats"]
    rows = []

    def add(tag, opts, archs=("resnet18", "mobilenet_v2")):
        for a in archs:
            rows.append((f"{a}__{tag}", a, opts))

    add("fp_m3_setmax", base_fp + ["--fp8-mantissa-bits", "3"])
    for m in (1, 2, 5, 6):
        add(f"fp_m{m}_setmax", base_fp + ["--fp8-mantissa-bits", str(m)], archs=("resnet18",))
    add("fp_m3_nosetmax", ["--qmethod", "fp_quantizer", "--fp8-mantissa-bits", "3", "--no-reestimate-bn-stats"])
    add("fp_maxval4_nosetmax", ["--qmethod", "fp_quantizer", "--fp8-maxval", "4", "--no-reestimate-bn-stats"])
    add("fp_n7_m3", base_fp + ["--n-bits", "7", "--fp8-mantissa-bits", "3"], archs=("resnet18",))
    add("fp_n6_m2_pc", base_fp + ["--n-bits", "6", "--fp8-mantissa-bits", "2", "--per-channel"])
    add("fp_n4_m1", base_fp + ["--n-bits", "4", "--fp8-mantissa-bits", "1"], archs=("resnet18",))
    add("fp_unsigned", base_fp + ["--fp8-allow-unsigned", "--fp8-mantissa-bits", "3"])
    add("fp_unsigned_nosetmax", ["--qmethod", "fp_quantizer", "--fp8-allow-unsigned", "--no-reestimate-bn-stats"],
        archs=("resnet18",))
    add("fp_allminmax_2b", base_fp + ["--act-quant-method", "allminmax", "--num-est-batches", "2"])
    add("fp_running_3b", base_fp + ["--act-quant-method", "running_minmax", "--num-est-batches", "3"],
        archs=("resnet18",))
    add("fp_running_mom05_2b", base_fp + ["--act-momentum", "0.5", "--num-est-batches", "2"], archs=("resnet18",))
    add("fp_w_allminmax_pc", base_fp + ["--weight-quant-method", "allminmax", "--per-channel"], archs=("resnet18",))
    add("fp_w_running", base_fp + ["--weight-quant-method", "running_minmax", "--num-est-batches", "2"],
        archs=("resnet18",))
    add("fp_w_mse_pc", base_fp + ["--weight-quant-method", "MSE", "--per-channel"], archs=("mobilenet_v2",))
    add("fp_w_mse_nomant", base_fp + ["--weight-quant-method", "MSE", "--no-fp8-mse-include-mantissa-bits"],
        archs=("resnet18",))
    add("fp_a_mse", base_fp + ["--act-quant-method", "MSE"], archs=("resnet18",))
    add("fp_a_mse_2b_nomant", base_fp + ["--act-quant-method", "MSE", "--num-est-batches", "2",
                                         "--no-fp8-mse-include-mantissa-bits"], archs=("mobilenet_v2",))
    add("fp_mse_unsigned", base_fp + ["--weight-quant-method", "MSE", "--act-quant-method", "MSE",
                                      "--fp8-allow-unsigned"], archs=("resnet18",))
    for setup in ("LSQ", "LSQ_paper", "FP_logits", "fc4"):
        add(f"fp_setup_{setup}", base_fp + ["--quant-setup", setup, "--n-bits", "6", "--fp8-mantissa-bits", "2"])
    add("fp_setup_fc4_dw8", base_fp + ["--quant-setup", "fc4_dw8", "--n-bits", "6", "--fp8-mantissa-bits", "2"],
        archs=("mobilenet_v2",))
    add("fp_setup_fc4_dw8_resnet", base_fp + ["--quant-setup", "fc4_dw8"], archs=("resnet18",))
    add("fp_LSQ_nosetmax_n6", ["--qmethod", "fp_quantizer", "--quant-setup", "LSQ", "--n-bits", "6",
                               "--fp8-mantissa-bits", "2", "--no-reestimate-bn-stats"])
    add("fp_noweight", base_fp + ["--no-weight-quant"], archs=("resnet18",))
    add("fp_noact", base_fp + ["--no-act-quant", "--num-est-batches", "3"], archs=("resnet18",))
    add("fp32", ["--no-weight-quant", "--no-act-quant", "--no-reestimate-bn-stats"], archs=("resnet18",))
    add("fp_bn2", ["--qmethod", "fp_quantizer", "--fp8-set-maxval", "--bn-reestimation-batches", "2"])
    add("fp_bn_default", ["--qmethod", "fp_quantizer", "--fp8-set-maxval"])
    add("int8_sym", ["--qmethod", "symmetric_uniform", "--no-reestimate-bn-stats"])
    add("int4_sym_pc", ["--qmethod", "symmetric_uniform", "--n-bits", "4", "--per-channel", "--no-reestimate-bn-stats"],
        archs=("resnet18",))
    add("int6_asym_pc_allmm", ["--qmethod", "asymmetric_uniform", "--n-bits", "6", "--per-channel",
                               "--act-quant-method", "allminmax", "--num-est-batches", "2", "--no-reestimate-bn-stats"])
    add("int_w8_a_fp", ["--qmethod", "symmetric_uniform", "--qmethod-act", "fp_quantizer", "--fp8-set-maxval",
                        "--no-reestimate-bn-stats"], archs=("resnet18",))
    add("fp_w_a_int", ["--qmethod", "fp_quantizer", "--qmethod-act", "asymmetric_uniform", "--fp8-set-maxval",
                       "--n-bits-act", "6", "--no-reestimate-bn-stats"], archs=("resnet18",))
    add("int_LSQ_paper_n4", ["--qmethod", "symmetric_uniform", "--quant-setup", "LSQ_paper", "--n-bits", "4",
                             "--no-reestimate-bn-stats"])
    add("int_fc4", ["--qmethod", "asymmetric_uniform", "--quant-setup", "fc4", "--no-reestimate-bn-stats"],
        archs=("mobilenet_v2",))
    add("int_mse", ["--qmethod", "symmetric_uniform", "--act-quant-method", "MSE", "--no-reestimate-bn-stats"],
        archs=("resnet18",))
    add("fp_m7", base_fp + ["--fp8-mantissa-bits", "7"], archs=("resnet18",))
    add("fp_golden_section", base_fp + ["--weight-quant-method", "MSE", "--weight-opt-method", "golden_section"],
        archs=("resnet18",))
    add("fp_setup_fc4_m4", base_fp + ["--quant-setup", "fc4"], archs=("resnet18",))
    add("fp_mse_unsigned_2b", base_fp + ["--act-quant-method", "MSE", "--fp8-allow-unsigned",
                                         "--num-est-batches", "2"], archs=("resnet18",))
    add("fp_a_mse_nosetmax", ["--qmethod", "fp_quantizer", "--act-quant-method", "MSE", "--no-reestimate-bn-stats"],
        archs=("resnet18",))
    add("act_num_candidates_running", base_fp + ["--act-num-candidates", "50"], archs=("resnet18",))
    add("readme", ["--batch-size", "64", "--seed", "10", "--n-bits", "8", "--cuda", "--load-type", "fp32",
                   "--quant-setup", "all", "--qmethod", "fp_quantizer", "--per-channel", "--fp8-mantissa-bits=5",
                   "--fp8-set-maxval", "--no-fp8-mse-include-mantissa-bits", "--weight-quant-method=current_minmax",
                   "--act-quant-method=allminmax", "--num-est-batches=1"], archs=("mobilenet_v2",))
    # random mixes
    rng = random.Random(7)
    for k in range(8):
        arch = rng.choice(["resnet18", "mobilenet_v2"])
        q = rng.choice(["fp_quantizer", "fp_quantizer", "symmetric_uniform", "asymmetric_uniform"])
        n = rng.choice([4, 6, 8])
        opts = ["--qmethod", q, "--n-bits", str(n)]
        if q == "fp_quantizer":
            opts += ["--fp8-mantissa-bits", str(rng.randint(1, n - 2))]
            opts += [rng.choice(["--fp8-set-maxval", "--fp8-set-maxval", "--no-fp8-set-maxval"])]
            opts += [rng.choice(["--fp8-allow-unsigned", "--no-fp8-allow-unsigned"])]
        opts += [rng.choice(["--per-channel", "--no-per-channel"])]
        opts += ["--act-quant-method", rng.choice(["current_minmax", "allminmax", "running_minmax"])]
        opts += ["--num-est-batches", str(rng.randint(1, 3))]
        opts += ["--quant-setup", rng.choice(["all", "LSQ", "FP_logits", "fc4", "LSQ_paper"])]
        opts += rng.choice([["--no-reestimate-bn-stats"], ["--bn-reestimation-batches", "2"]])
        rows.append((f"{arch}__random{k}", arch, opts))
    return rows


def fmt_row(r):
    if "verdict" in r and r["verdict"] in ("both fail", "ONE FAILS"):
        return (f"{r['tag']:<42} {r['verdict']:<10} ref: {str(r.get('reference_error'))[:90]} | "
                f"fp8q: {str(r.get('fp8q_error'))[:120]}")
    return (f"{r['tag']:<42} top1 {r['top1_fp8q']:>2}/{r['top1_ref']:>2}  rel_l2 {r['rel_l2']:.2e}  "
            f"loaded {r.get('rel_l2_loaded', float('nan')):.2e}  agree {r['argmax_agree']:.3f}  "
            f"noise {r.get('self_noise') or float('nan'):.1e} (a {float('nan') if r.get('self_noise_a') is None else r['self_noise_a']:.1e})  "
            f"w {r['w_rel']:.1e} a1 {r['a_first_rel'] or 0:.1e} a {r['a_rel']:.1e}  {r['verdict']}"
            + (f"  [{'; '.join(r['issues'][:3])}{' …' if len(r['issues']) > 3 else ''}]" if r["issues"] else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", default=DEFAULT_MIRROR)
    ap.add_argument("--golden", default=DEFAULT_GOLDEN)
    ap.add_argument("--fp8q", default=DEFAULT_FP8Q)
    ap.add_argument("--out", default=os.path.join(WORK, "runs"))
    ap.add_argument("--self-noise", action="store_true", help="also run the reference on inputs x(1+1e-6 N(0,1))")
    ap.add_argument("--arithmetic", choices=("integer-bias", "exact"), default=None,
                    help="patch 7: the reference's FP quantizer with its f32 bias snapped to an integer, "
                         "or evaluated exactly (f64)")
    ap.add_argument("--matrix", action="store_true")
    ap.add_argument("--only", default=None, help="matrix rows whose tag contains this")
    ap.add_argument("--export-reference", default=None, metavar="OUT.json",
                    help="only run the reference and write its logits, labels and quantizer states")
    ap.add_argument("arch", nargs="?", choices=sorted(WEIGHTS))
    ap.add_argument("options", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    opts = args.options[1:] if args.options[:1] == ["--"] else args.options
    _State.arithmetic = args.arithmetic
    if args.export_reference:
        ref = run_reference(args.arch, opts, args.golden, args.mirror)
        with open(args.export_reference, "w") as f:
            json.dump(ref, f)
        print(ref.get("error") or f"top1 {ref['top1']:.4f}, {len(ref['quantizers'])} units")
        return
    if not args.matrix:
        row = diff(args.arch, opts, args)
        print(fmt_row(row))
        print(json.dumps({k: v for k, v in row.items() if k != "options"}, indent=1))
        return
    results = []
    for tag, arch, o in matrix():
        if args.only and not any(o in tag for o in args.only.split(",")):
            continue
        if args.arch and arch != args.arch:
            continue
        row = diff(arch, o, args, tag=tag)
        results.append(row)
        print(fmt_row(row), flush=True)
    with open(os.path.join(args.out, "matrix.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
