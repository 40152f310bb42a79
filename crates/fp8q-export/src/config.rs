//! The `quantization_config` a layout puts in `config.json`, from the formats the tensors were
//! exported in: one config group per format, targeting its modules by name.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::format::ExportFormat;
use crate::layout::Layout;

/// The compressed-tensors compression format of a weight-only format (the one
/// compressed-tensors' reader infers from the weight arguments: weight-only 8-bit floats are
/// `naive-quantized`, weight-only integers `pack-quantized`).
pub fn compression_format(format: &ExportFormat) -> &'static str {
    match format {
        ExportFormat::Fp8 { .. } => "naive-quantized",
        ExportFormat::Int8 => "pack-quantized",
        ExportFormat::Mx(_) if format.packed() => "mxfp4-pack-quantized",
        ExportFormat::Mx(_) if format.element_bits() == 6 => "mxfp6-pack-quantized",
        ExportFormat::Mx(_) => "mxfp8-quantized",
        ExportFormat::Nvfp4(_) => "nvfp4-pack-quantized",
    }
}

/// The `weights` quantization arguments of a format, as compressed-tensors serializes its
/// `QuantizationArgs` (the fields it writes for a weight-only scheme).
fn weight_args(format: &ExportFormat) -> Value {
    let (num_bits, kind) = match format {
        ExportFormat::Int8 => (8, "int"),
        f => (f.element_bits(), "float"),
    };
    let (strategy, group_size, scale_dtype): (&str, Value, Option<&str>) = match format {
        ExportFormat::Fp8 { per_channel: true, .. } | ExportFormat::Int8 => ("channel", Value::Null, None),
        ExportFormat::Fp8 { .. } => ("tensor", Value::Null, None),
        ExportFormat::Mx(b) => ("group", json!(b.block_size()), Some("torch.uint8")),
        ExportFormat::Nvfp4(b) => ("tensor_group", json!(b.block_size()), Some("torch.float8_e4m3fn")),
    };
    let mut args = json!({
        "dynamic": false,
        "group_size": group_size,
        "num_bits": num_bits,
        "strategy": strategy,
        "symmetric": true,
        "type": kind,
    });
    if let Some(d) = scale_dtype {
        args["scale_dtype"] = json!(d);
    }
    args
}

/// Model-Optimizer's name of NVFP4 weight-only quantization.
pub const MODELOPT_NVFP4_WEIGHT_ONLY: &str = "W4A16_NVFP4";

/// The `quantization_config` for `layout`, given each exported module's format (by module name)
/// and the modules with a 2-D weight that were left in floating point (Model-Optimizer's
/// `ignore`).
pub fn quantization_config(layout: Layout, modules: &BTreeMap<String, ExportFormat>, excluded: &[String]) -> Value {
    // one group per distinct format, in the order first seen by module name
    let mut groups: Vec<(ExportFormat, Vec<String>)> = Vec::new();
    for (m, f) in modules {
        match groups.iter_mut().find(|(g, _)| g == f) {
            Some((_, names)) => names.push(m.clone()),
            None => groups.push((*f, vec![m.clone()])),
        }
    }
    match layout {
        Layout::CompressedTensors => {
            let mut config_groups = serde_json::Map::new();
            for (i, (f, names)) in groups.iter().enumerate() {
                config_groups.insert(
                    format!("group_{i}"),
                    json!({
                        "targets": names,
                        "weights": weight_args(f),
                        "input_activations": null,
                        "output_activations": null,
                        "format": compression_format(f),
                    }),
                );
            }
            let formats: Vec<&str> = groups.iter().map(|(f, _)| compression_format(f)).collect();
            let overall = match formats.as_slice() {
                [] => "dense",
                [one] => one,
                [first, rest @ ..] if rest.iter().all(|f| f == first) => first,
                _ => "mixed-precision",
            };
            json!({
                "quant_method": "compressed-tensors",
                "format": overall,
                "quantization_status": "compressed",
                "config_groups": Value::Object(config_groups),
                "ignore": [],
                "kv_cache_scheme": null,
                "global_compression_ratio": null,
                "moe_sparsity_config": null,
                "sparsity_config": {},
                "transform_config": {},
                "producer": {"name": "fp8q", "version": env!("CARGO_PKG_VERSION")},
            })
        }
        Layout::ModelOpt => {
            let group = groups
                .first()
                .and_then(|(f, _)| f.block())
                .map(|b| b.block_size())
                .unwrap_or(16);
            json!({
                "config_groups": {"group_0": {
                    "weights": {"dynamic": false, "num_bits": 4, "type": "float", "group_size": group},
                    "targets": ["Linear"],
                }},
                "ignore": excluded,
                "quant_algo": MODELOPT_NVFP4_WEIGHT_ONLY,
                "producer": {"name": "fp8q", "version": env!("CARGO_PKG_VERSION")},
                "quant_method": "modelopt",
            })
        }
    }
}

/// Model-Optimizer's `hf_quant_config.json`, which its loaders (TensorRT-LLM, vLLM) read.
pub fn modelopt_hf_quant_config(excluded: &[String]) -> Value {
    json!({
        "producer": {"name": "fp8q", "version": env!("CARGO_PKG_VERSION")},
        "quantization": {
            "quant_algo": MODELOPT_NVFP4_WEIGHT_ONLY,
            "kv_cache_quant_algo": null,
            "group_size": 16,
            "exclude_modules": excluded,
        },
    })
}
