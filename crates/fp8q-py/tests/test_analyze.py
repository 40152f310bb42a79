"""fp8q.analyze: which format suits each tensor, against fp8q.quantize (measured SQNR recomputed
in NumPy), against the command line's `fp8q analyze CHECKPOINT --json` on the same tensors, and
its errors."""

import json
import math
import struct
import subprocess

import numpy as np
import pytest

import fp8q


def _state_dict():
    rng = np.random.default_rng(7)
    return {
        "conv.weight": rng.standard_normal((8, 4, 3, 3)).astype(np.float32),
        "fc.weight": (rng.standard_t(3, (10, 64)) * 0.05).astype(np.float32),
        "head.weight": rng.uniform(-2, 2, (6, 33)).astype(np.float32),
    }


def _sqnr_db(x, q):
    x, q = x.astype(np.float64), q.astype(np.float64)
    noise = float(((x - q) ** 2).sum())
    return math.inf if noise == 0 else 10 * math.log10(float((x * x).sum()) / noise)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("range_name", ["minmax", "mse"])
def test_measured_sqnr_is_that_of_quantize(per_channel, range_name):
    sd = _state_dict()
    formats = ["e5m2", "e4m3", "e3m4", "e2m5", "int8", "float8_e4m3fn"]
    report = fp8q.analyze(sd, formats, per_channel=per_channel, range=range_name)
    assert report["formats"] == formats
    assert report["range"] == ("current_minmax" if range_name == "minmax" else range_name)
    assert [s["tensor"] for s in report["slots"]] == list(sd)
    assert [s["unit"] for s in report["slots"]] == ["conv", "fc", "head"]
    for slot in report["slots"]:
        x = sd[slot["tensor"]]
        assert slot["shape"] == list(x.shape) and slot["numel"] == x.size and slot["slot"] == "weight"
        for f in formats:
            q = fp8q.quantize(x, f, per_channel=per_channel, range=range_name)
            want = _sqnr_db(x, q)
            assert slot["sqnr_db"][f] == pytest.approx(want, rel=1e-9, abs=1e-9), (slot["unit"], f)
        best = max(formats, key=lambda f: slot["sqnr_db"][f])
        assert slot["measured_best"] == best
        assert slot["range"]["e4m3"]["channels"] == (x.shape[0] if per_channel else 1)
    assert report["summary"]["tensors"] == 3
    assert report["summary"]["parameters"] == sum(x.size for x in sd.values())


def test_heavy_tails_want_exponent_bits():
    # the paper's point: outliers call for exponent bits, a uniform tensor for mantissa bits
    rng = np.random.default_rng(3)
    heavy = rng.standard_t(2, 200_000).astype(np.float32)
    flat = rng.uniform(-1, 1, 200_000).astype(np.float32)
    r = fp8q.analyze({"heavy": heavy, "flat": flat}, "e5m2,e4m3,e3m4,e2m5,int8")
    best = {s["unit"]: s["measured_best"] for s in r["slots"]}
    assert best["flat"] in ("int8", "e2m5")
    assert best["heavy"] in ("e4m3", "e5m2")
    fits = {s["unit"]: s["fit"]["family"] for s in r["slots"]}
    assert fits == {"heavy": "student-t", "flat": "uniform"}


def test_lossless_is_inf_and_other_dtypes_are_listed():
    r = fp8q.analyze({
        "zeros.weight": np.zeros((4, 4), np.float32),
        "steps": np.arange(5),
        "empty": np.zeros((0, 3), np.float16),
        "w": np.ones((3, 2), np.float64),
    }, ["e4m3", "int8"])
    by_unit = {s["unit"]: s for s in r["slots"]}
    assert set(by_unit) == {"zeros", "w"}
    assert by_unit["zeros"]["sqnr_db"] == {"e4m3": math.inf, "int8": math.inf}
    assert by_unit["w"]["sqnr_db"]["int8"] == math.inf  # 1.0 is the range's end
    assert r["skipped"] == [
        {"name": "steps", "dtype": "int64", "shape": [5], "reason": "not a floating-point tensor"},
        {"name": "empty", "dtype": "float16", "shape": [0, 3], "reason": "empty"},
    ]


def test_single_array_and_mantissa_search():
    x = np.random.default_rng(1).standard_normal((16, 32)).astype(np.float32)
    r = fp8q.analyze(x, ["e4m3", "int8"], range="mse", mantissa_search=True, per_channel=True, slot="act")
    (s,) = r["slots"]
    assert s["unit"] == "tensor" and s["slot"] == "act"
    # the searched split keeps 8 bits; INT has no mantissa to search
    assert s["used_format"]["e4m3"].startswith("E") and s["used_format"]["int8"] == "INT8"
    est = fp8q.estimate_range(x, "e4m3", "mse", per_channel=True, mantissa_search=True)
    assert s["used_format"]["e4m3"] == est["format"].upper()


def _safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for k, v in tensors.items():
        b = np.ascontiguousarray(v, dtype="<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


@pytest.mark.parametrize("extra", [[], ["--per-channel"], ["--range", "mse", "--mantissa-search"]])
def test_agrees_with_cli(cli, tmp_path, extra):
    sd = _state_dict()
    path = tmp_path / "w.safetensors"
    _safetensors(path, sd)
    formats = "e5m2,e4m3,e3m4,e2m5,int8,mxfp6_e2m3,nvfp4"
    doc = json.loads(subprocess.run([cli, "analyze", str(path), "--formats", formats, "--json", *extra],
                                    check=True, capture_output=True, text=True).stdout)
    r = fp8q.analyze(sd, formats, per_channel="--per-channel" in extra,
                     range="mse" if "mse" in extra else "minmax", mantissa_search="--mantissa-search" in extra)
    for key in ("formats", "range", "per_channel", "mantissa_search", "skipped"):
        assert r[key] == doc[key], key
    # the CLI's JSON writes inf/NaN as null, and float32 fields (ranges) in their shortest float32
    # spelling: compare through JSON, floats as float32 where they differ
    _same(json.loads(json.dumps(r["slots"])), doc["slots"])
    _same(json.loads(json.dumps(r["summary"])), doc["summary"])


def _same(a, b, path="$"):
    if isinstance(a, dict) and isinstance(b, dict):
        assert list(a) == list(b), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and ".range." in path:
        assert np.float32(a) == np.float32(b), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_errors():
    x = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match="listed twice"):
        fp8q.analyze(x, "e4m3,e4m3")
    with pytest.raises(ValueError, match="no format given"):
        fp8q.analyze(x, [])
    with pytest.raises(ValueError, match="e9m9"):
        fp8q.analyze(x, "e9m9")
    with pytest.raises(ValueError, match="flexible-bias FP format"):
        fp8q.analyze(x, "int8", range="mse", mantissa_search=True)
    with pytest.raises(ValueError, match="median"):
        fp8q.analyze(x, "e4m3", range="median")
    with pytest.raises(ValueError, match="slot"):
        fp8q.analyze(x, "e4m3", slot="bias")
    with pytest.raises(ValueError, match="no floating-point tensor"):
        fp8q.analyze({"a": np.arange(3)}, "e4m3")
    with pytest.raises(ValueError, match="no finite values"):
        fp8q.analyze({"nan": np.full((2, 2), np.nan, np.float32)}, "e4m3")
    with pytest.raises(TypeError):
        fp8q.analyze({"s": "not an array"}, "e4m3")


def test_torch_tensors():
    torch = pytest.importorskip("torch")
    w = torch.randn(8, 16, requires_grad=True)
    r = fp8q.analyze({"a.weight": w, "b.weight": w.detach().to(torch.bfloat16)}, ["e4m3"])
    assert [s["unit"] for s in r["slots"]] == ["a", "b"]
    want = fp8q.analyze(w.detach().numpy(), ["e4m3"])["slots"][0]["sqnr_db"]
    assert r["slots"][0]["sqnr_db"] == want


def test_block_formats():
    """Block-scaled formats: no range (None), measured SQNR that of fp8q.quantize with blocks
    along axis 1, a prediction close to it on Gaussian weights, block_size/scale_rule applied,
    and recommended where they win (a Gaussian tensor with a few huge outliers)."""
    rng = np.random.default_rng(11)
    w = (rng.standard_normal((256, 512)) * 0.02).astype(np.float32)
    conv = (rng.standard_normal((64, 48, 3, 3)) * 0.1).astype(np.float32)
    formats = ["e4m3", "mxfp8_e4m3", "mxfp6_e2m3", "mxfp4", "nvfp4"]
    report = fp8q.analyze({"fc.weight": w, "conv.weight": conv}, formats, range="mse", per_channel=True)
    assert report["formats"] == formats
    for row, x in zip(report["slots"], [w, conv]):
        assert row["range"]["e4m3"]["channels"] == x.shape[0]
        for f in formats[1:]:
            assert row["range"][f] is None
            assert row["used_format"][f] == f
            q = fp8q.quantize(x, f, block_axis=1)
            assert row["sqnr_db"][f] == pytest.approx(_sqnr_db(x, q), abs=1e-6)
            assert abs(row["predicted_sqnr_db"][f] - row["sqnr_db"][f]) < 1.0, (f, row["sqnr_db"], row["predicted_sqnr_db"])

    sized = fp8q.analyze(w, "e4m3,mxfp4,nvfp4", block_size=16, scale_rule="rceil")
    assert sized["formats"] == ["e4m3", "e2m1@16:rceil", "nvfp4"]
    q = fp8q.quantize(w, "mxfp4", block_axis=1, block_size=16, scale_rule="rceil")
    assert sized["slots"][0]["sqnr_db"]["e2m1@16:rceil"] == pytest.approx(_sqnr_db(w, q), abs=1e-6)
    with pytest.raises(ValueError, match="block-scaled"):
        fp8q.analyze(w, "e4m3,int8", block_size=16)

    x = rng.standard_normal(256 * 1024).astype(np.float32)
    x[[0, 23757, 47514]] = [300.0, -300.0, 300.0]
    out = fp8q.analyze({"w": x.reshape(256, 1024)}, ["e4m3", "int8", "mxint8"])
    row = out["slots"][0]
    assert row["measured_best"] == row["predicted_best"] == row["recommended"] == "mxint8"
    assert out["summary"]["formats"][2]["tensors"] == 1
