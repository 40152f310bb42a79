"""`fp8q export` read by the other side: compressed-tensors' model-free dequantizer
(`CompressedTensorsDequantizer(dir, dtype=torch.float32)`) loads every layout fp8q writes, and
the values it gives equal independent references bit for bit: torch's float8 cast of
`x / (amax/448)` for FP8, torch's rounding for INT8, torchao's `to_mx` (FLOOR) and fp8q's own
block quantizer for MXFP8 and MXFP4. NVFP4's values lie on the E2M1 grid times the stored
scales, rounded to bf16 as compressed-tensors dequantizes them; they are torchao's NVFP4 values
(per-tensor scale amax/2688) rounded the same way, so the error is torchao's. Bit-identity with
torchao's own f32 output is impossible through this reader: it divides by the global scale
and rounds the product to bf16. Weights in f32 and bf16. Skipped without torch, compressed-tensors or torchao
(CI installs them), or without the fp8q binary."""

import json
import math
import subprocess
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressed_tensors")
pytest.importorskip("torchao")
safetensors_torch = pytest.importorskip("safetensors.torch")

import fp8q  # noqa: E402

warnings.filterwarnings("ignore")


def dequantizer():
    from compressed_tensors.entrypoints.convert.converters.ct_dequantizer import CompressedTensorsDequantizer
    return CompressedTensorsDequantizer


WEIGHTS = ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight", "lm_head.weight"]


def model(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = {
        WEIGHTS[0]: torch.randn(32, 128, generator=g),
        WEIGHTS[1]: torch.randn(16, 64, generator=g) * 0.02,
        WEIGHTS[2]: torch.randn(24, 96, generator=g),
        "model.norm.weight": torch.ones(128),
        "model.layers.0.mlp.down_proj.bias": torch.randn(16, generator=g),
    }
    t[WEIGHTS[0]][3, 7] = 25.0  # an outlier
    t[WEIGHTS[0]][5] = 0.0  # a zero row
    t[WEIGHTS[2]][2, 0:16] = 0.0  # a zero block
    return {k: (v.to(dtype) if k in WEIGHTS else v) for k, v in t.items()}


def export(cli, tmp_path, tensors, *args):
    src = tmp_path / "in"
    src.mkdir(exist_ok=True)
    safetensors_torch.save_file(tensors, src / "model.safetensors")
    (src / "config.json").write_text(json.dumps({"model_type": "llama"}))
    out = tmp_path / "out"
    r = subprocess.run([str(cli), "export", str(src), "-o", str(out), *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def ct_values(out):
    conv = dequantizer()(str(out), dtype=torch.float32)
    stored = safetensors_torch.load_file(out / "model.safetensors")
    return conv.process(dict(stored)), stored


def same_bits(a, b):
    a = a.detach().to(torch.float32).contiguous().numpy()
    b = b.detach().to(torch.float32).contiguous().numpy()
    return np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.fixture(params=[torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def dtype(request):
    return request.param


@pytest.mark.parametrize("per_channel", [False, True])
def test_fp8_equals_torch_float8_cast(cli, tmp_path, dtype, per_channel):
    t = model(dtype)
    out = export(cli, tmp_path, t, "--format", "float8_e4m3fn", *(["--per-channel"] if per_channel else []))
    deq, stored = ct_values(out)
    for name in WEIGHTS:
        x = t[name].float()
        amax = x.abs().amax(dim=1, keepdim=True) if per_channel else x.abs().max().reshape(1)
        scale = amax / 448.0
        scale = torch.where(scale == 0, torch.tensor(2.0 ** -23), scale)
        module = name[: -len(".weight")]
        assert same_bits(stored[module + ".weight_scale"], scale.reshape(stored[module + ".weight_scale"].shape))
        ref = (x / scale).clamp(-448, 448).to(torch.float8_e4m3fn).float() * scale
        assert same_bits(deq[name], ref), name
    assert same_bits(deq["model.norm.weight"], t["model.norm.weight"])


def test_int8_equals_torch_rounding(cli, tmp_path, dtype):
    t = model(dtype)
    out = export(cli, tmp_path, t, "--format", "int8")
    deq, _ = ct_values(out)
    for name in WEIGHTS:
        x = t[name].float()
        scale = x.abs().amax(dim=1, keepdim=True) / 127.0
        scale = torch.where(scale == 0, torch.tensor(2.0 ** -23), scale)
        ref = torch.round((x / scale).clamp(-128, 127)).to(torch.int8).float() * scale  # an int has no -0
        assert same_bits(deq[name], ref), name
        # fp8q's own per-channel INT8 grid (exact arithmetic): within one f32 rounding
        mine = fp8q.quantize(x.numpy(), "int8", per_channel=True)
        np.testing.assert_allclose(deq[name].numpy(), mine, rtol=2 ** -23, atol=0)


@pytest.mark.parametrize("fmt, elem", [("mxfp8_e4m3", "float8_e4m3fn"), ("mxfp4", "fp4")])
def test_mx_equals_torchao_to_mx_floor_and_fp8q(cli, tmp_path, dtype, fmt, elem):
    from torchao.prototype.mx_formats.config import ScaleCalculationMode
    from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx
    elem_dtype = torch.float8_e4m3fn if elem == "float8_e4m3fn" else torch.float4_e2m1fn_x2
    t = model(dtype)
    out = export(cli, tmp_path, t, "--format", fmt)
    deq, stored = ct_values(out)
    for name in WEIGHTS:
        x = t[name].float()
        scale, data = to_mx(x, elem_dtype, 32, ScaleCalculationMode.FLOOR)
        ref = to_dtype(data, scale, elem_dtype, 32, torch.float32)
        assert same_bits(deq[name], ref), (name, fmt)
        module = name[: -len(".weight")]
        assert np.array_equal(stored[module + ".weight_scale"].numpy().reshape(-1),
                              scale.view(torch.uint8).numpy().reshape(-1))
        assert same_bits(deq[name], torch.from_numpy(fp8q.quantize(x.numpy(), fmt, block_axis=1)))


def test_mxfp6_equals_torchao_to_mx_floor_and_fp8q(cli, tmp_path, dtype):
    from torchao.prototype.mx_formats.config import ScaleCalculationMode
    from torchao.prototype.mx_formats.constants import DTYPE_FP6_E2M3
    from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx
    t = model(dtype)
    out = export(cli, tmp_path, t, "--format", "mxfp6_e2m3")
    deq, stored = ct_values(out)
    for name in WEIGHTS:
        x = t[name].float()
        scale, data = to_mx(x, DTYPE_FP6_E2M3, 32, ScaleCalculationMode.FLOOR)
        ref = to_dtype(data, scale, DTYPE_FP6_E2M3, 32, torch.float32)
        assert same_bits(deq[name], ref), name
        assert same_bits(deq[name], torch.from_numpy(fp8q.quantize(x.numpy(), "mxfp6_e2m3", block_axis=1)))


def test_nvfp4_lies_on_the_stored_grid_and_is_no_worse_than_torchao(cli, tmp_path, dtype):
    from torchao.prototype.mx_formats.nvfp4_tensor import NVFP4Tensor, per_tensor_amax_to_scale
    t = model(dtype)
    out = export(cli, tmp_path, t, "--format", "nvfp4")
    deq, stored = ct_values(out)
    grid = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6])
    for name in WEIGHTS:
        x = t[name].float()
        module = name[: -len(".weight")]
        packed = stored[module + ".weight_packed"]
        codes = torch.stack([packed & 0xF, packed >> 4], dim=-1).reshape(x.shape).long()
        s8 = stored[module + ".weight_scale"].float().repeat_interleave(16, dim=1)
        gs = stored[module + ".weight_global_scale"].float()
        assert gs.item() == pytest.approx(448 * 6 / x.abs().max().item(), rel=1e-6)
        on_grid = (grid[codes] * (s8 / gs)).to(torch.bfloat16).float()
        assert same_bits(deq[name], on_grid), name
        # torchao's NVFP4 (per-tensor scale amax/2688), read as compressed-tensors reads NVFP4
        # (the dequantized product rounded to bf16): the same values; so the same error
        amax = x.abs().max()
        ao = NVFP4Tensor.to_nvfp4(x, per_tensor_scale=per_tensor_amax_to_scale(amax)).dequantize(torch.float32)
        ao = ao.to(torch.bfloat16).float()
        # they differ only where x / (scale / global) lies within float rounding of a point
        # halfway between two E2M1 values (bf16 weights come near such ties): fp8q divides by
        # scale / global as compressed-tensors does, torchao multiplies by its reciprocal
        differ = deq[name].view(torch.int32) != ao.view(torch.int32)
        y = (x / (s8 / gs)).abs()[differ]
        ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
        near = ((y[:, None] - ties[None, :]).abs() <= ties * 2.0 ** -20).any(dim=1)
        assert near.all(), (name, y[~near][:5])
        if dtype == torch.float32:
            assert not differ.any(), name
        err, err_ao = float(((deq[name] - x) ** 2).sum()), float(((ao - x) ** 2).sum())
        assert err <= err_ao * 1.001, (name, err, err_ao)


def test_report_and_config(cli, tmp_path):
    t = model(torch.float32)
    out = export(cli, tmp_path, t, "--format", "nvfp4")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "llama"
    from compressed_tensors.quantization import QuantizationConfig
    q = QuantizationConfig.model_validate(config["quantization_config"])
    assert sorted(q.config_groups["group_0"].targets) == sorted(n[: -len(".weight")] for n in WEIGHTS)
    report = json.loads((out / "fp8q_export.json").read_text())
    deq, _ = ct_values(out)
    for r in report["tensors"]:
        x = t[r["name"]].double()
        want = 10 * math.log10(float((x * x).sum()) / float(((deq[r["name"]].double() - x) ** 2).sum()))
        assert r["sqnr_db"] == pytest.approx(want, abs=1e-6)


def test_modelopt_nvfp4_is_torchao_and_converts_to_compressed_tensors(cli, tmp_path, dtype):
    """--layout modelopt: Model-Optimizer's names (`weight` packed, `weight_scale`,
    `weight_scale_2` = amax/2688), bytes equal to torchao's `nvfp4_quantize`; compressed-tensors'
    own ModelOptNvfp4Converter turns it into its NVFP4, which its dequantizer reads."""
    from compressed_tensors.entrypoints.convert.converters.modelopt_nvfp4 import ModelOptNvfp4Converter
    from torchao.prototype.mx_formats.nvfp4_tensor import nvfp4_quantize, per_tensor_amax_to_scale
    t = model(dtype)
    out = export(cli, tmp_path, t, "--format", "nvfp4", "--layout", "modelopt")
    hf = json.loads((out / "hf_quant_config.json").read_text())
    assert hf["quantization"]["quant_algo"] == "W4A16_NVFP4"
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "modelopt"
    stored = safetensors_torch.load_file(out / "model.safetensors")
    modules = [n[: -len(".weight")] for n in WEIGHTS]
    for name, m in zip(WEIGHTS, modules):
        x = t[name].float()
        pts = per_tensor_amax_to_scale(x.abs().max())
        scales, data = nvfp4_quantize(x, 16, pts)
        assert stored[m + ".weight"].dtype == torch.uint8
        assert torch.equal(stored[m + ".weight"].reshape(-1), data.view(torch.uint8).reshape(-1)), name
        assert torch.equal(stored[m + ".weight_scale"].view(torch.uint8).reshape(-1),
                           scales.view(torch.uint8).reshape(-1)), name
        assert stored[m + ".weight_scale_2"].shape == () and same_bits(stored[m + ".weight_scale_2"], pts)
    conv = ModelOptNvfp4Converter(targets=modules)
    converted = conv.process(dict(stored))
    ct = tmp_path / "ct"
    ct.mkdir()
    safetensors_torch.save_file(converted, ct / "model.safetensors")
    qc = conv.update_config(None).model_dump(mode="json")
    qc["quant_method"] = "compressed-tensors"
    (ct / "config.json").write_text(json.dumps({"quantization_config": qc}))
    deq, _ = ct_values(ct)
    grid = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6])
    for name, m in zip(WEIGHTS, modules):
        x = t[name].float()
        packed = stored[m + ".weight"]
        codes = torch.stack([packed & 0xF, packed >> 4], dim=-1).reshape(x.shape).long()
        s8 = stored[m + ".weight_scale"].float().repeat_interleave(16, dim=1)
        # Model-Optimizer's reading: element * scale * scale_2; compressed-tensors' reading of the
        # converted checkpoint works in bf16, so it agrees to bf16 precision
        mine = grid[codes] * s8 * stored[m + ".weight_scale_2"]
        torch.testing.assert_close(deq[name], mine, rtol=2.0 ** -7, atol=0)
        rel = float(((deq[name] - x) ** 2).sum() / (x ** 2).sum())
        assert 10 * math.log10(1 / rel) > 15, name


def test_python_export_of_a_state_dict_and_of_a_path(cli, tmp_path):
    """fp8q.export writes what the command writes: from a path, the same files; from a state
    dict in memory (bf16 kept as bf16), the same quantized tensors; errors are ValueErrors and
    leave nothing behind."""
    t = model(torch.bfloat16)
    via_cli = export(cli, tmp_path, t, "--format", "mxfp4")
    report = fp8q.export(tmp_path / "in", tmp_path / "py_path", "mxfp4")
    assert [r["name"] for r in report["tensors"]] == sorted(WEIGHTS)
    assert (tmp_path / "py_path" / "model.safetensors").read_bytes() == (via_cli / "model.safetensors").read_bytes()
    report = fp8q.export(t, tmp_path / "py_dict", "mxfp4")
    a = safetensors_torch.load_file(tmp_path / "py_dict" / "model.safetensors")
    b = safetensors_torch.load_file(via_cli / "model.safetensors")
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k].view(torch.uint8) if a[k].dtype == torch.float8_e4m3fn
                                                        else a[k], b[k].view(torch.uint8) if b[k].dtype ==
                                                        torch.float8_e4m3fn else b[k]), k
    deq, _ = ct_values(tmp_path / "py_dict")
    assert set(deq) >= set(WEIGHTS)
    # layer formats as a mapping, numpy input
    sd = {k: v.float().numpy() for k, v in t.items()}
    r = fp8q.export(sd, tmp_path / "py_lf", layer_formats={"lm_head": {"weight": "nvfp4", "act": "e4m3"}})
    assert [(x["name"], x["format"]) for x in r["tensors"]] == [("lm_head.weight", "nvfp4")]
    with pytest.raises(ValueError, match="not empty"):
        fp8q.export(sd, tmp_path / "py_lf", "int8")
    with pytest.raises(ValueError, match="e3m4"):
        fp8q.export(sd, tmp_path / "bad", "e3m4")
    with pytest.raises(ValueError, match="nothing"):
        fp8q.export(sd, tmp_path / "bad", "int8", layer_formats={"nothing": {"weight": "int8"}})
    with pytest.raises(TypeError, match="state_dict_or_path"):
        fp8q.export(42, tmp_path / "bad", "int8")
    assert not (tmp_path / "bad").exists()
