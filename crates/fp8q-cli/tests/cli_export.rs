//! `fp8q export` through the built binary: the folder it writes (tensors, config.json,
//! fp8q_export.json, shards), and bad input (exit 2, the tensor or file named, no output left
//! behind). The values are checked against compressed-tensors itself in the Python tests
//! (`crates/fp8q-py/tests/test_export.py`) and against its fixtures in `fp8q-export`'s tests.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

mod common;
use common::{assert_user_error, fp8q, tmpdir};

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A small model: two linear weights (one bf16), a bias, a norm, an int64 counter.
fn write_model(path: &Path, inner: usize) {
    let w0: Vec<f32> = (0..8 * inner).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
    let w1: Vec<u8> = (0..4 * 64)
        .flat_map(|i| half::bf16::from_f32(((i * 13 % 29) as f32 - 14.0) / 9.0).to_le_bytes())
        .collect();
    let b = f32_bytes(&[0.5; 8]);
    let norm = f32_bytes(&[1.0; 64]);
    let steps = 7i64.to_le_bytes().to_vec();
    let w0 = f32_bytes(&w0);
    let views = vec![
        (
            "layers.0.proj.weight",
            safetensors::tensor::TensorView::new(Dtype::F32, vec![8, inner], &w0).unwrap(),
        ),
        (
            "layers.0.proj.bias",
            safetensors::tensor::TensorView::new(Dtype::F32, vec![8], &b).unwrap(),
        ),
        (
            "layers.1.fc.weight",
            safetensors::tensor::TensorView::new(Dtype::BF16, vec![4, 64], &w1).unwrap(),
        ),
        (
            "norm.weight",
            safetensors::tensor::TensorView::new(Dtype::F32, vec![64], &norm).unwrap(),
        ),
        (
            "steps",
            safetensors::tensor::TensorView::new(Dtype::I64, vec![1], &steps).unwrap(),
        ),
    ];
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn run(args: &[&str]) -> std::process::Output {
    let out = fp8q(args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn writes_the_layout_config_and_report() {
    let dir = tmpdir("export-ok");
    let input = dir.join("model.safetensors");
    write_model(&input, 64);
    std::fs::write(
        dir.join("config.json"),
        r#"{"architectures": ["Toy"], "hidden_size": 64}"#,
    )
    .unwrap();
    let out = dir.join("out");
    let o = run(&[
        "export",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--format",
        "nvfp4",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("2 tensors quantized, 3 copied"), "{stdout}");
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "layers.0.proj.bias",
            "layers.0.proj.weight_global_scale",
            "layers.0.proj.weight_packed",
            "layers.0.proj.weight_scale",
            "layers.1.fc.weight_global_scale",
            "layers.1.fc.weight_packed",
            "layers.1.fc.weight_scale",
            "norm.weight",
            "steps"
        ]
    );
    let packed = st.tensor("layers.0.proj.weight_packed").unwrap();
    assert_eq!((packed.dtype(), packed.shape()), (Dtype::U8, &[8usize, 32][..]));
    let scale = st.tensor("layers.1.fc.weight_scale").unwrap();
    assert_eq!((scale.dtype(), scale.shape()), (Dtype::F8_E4M3, &[4usize, 4][..]));
    // copied tensors keep their bytes and dtypes
    assert_eq!(st.tensor("steps").unwrap().data(), 7i64.to_le_bytes());
    assert_eq!(st.tensor("norm.weight").unwrap().dtype(), Dtype::F32);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["architectures"][0], "Toy",
        "the input folder's config.json is kept"
    );
    let q = &config["quantization_config"];
    assert_eq!(q["quant_method"], "compressed-tensors");
    assert_eq!(q["format"], "nvfp4-pack-quantized");
    assert_eq!(
        q["config_groups"]["group_0"]["targets"],
        serde_json::json!(["layers.0.proj", "layers.1.fc"])
    );
    assert_eq!(q["config_groups"]["group_0"]["weights"]["group_size"], 16);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fp8q_export.json")).unwrap()).unwrap();
    assert_eq!(report["tensors"].as_array().unwrap().len(), 2);
    assert!(report["tensors"][0]["sqnr_db"].as_f64().unwrap() > 15.0);
    // nothing but the output folder is left beside it
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
}

#[test]
fn layer_formats_globs_and_shards() {
    let dir = tmpdir("export-mixed");
    let input = dir.join("model.safetensors");
    write_model(&input, 64);
    let lf = dir.join("formats.json");
    std::fs::write(&lf, r#"{"layers.1.fc": {"weight": "mxfp8_e4m3", "act": "e4m3"}}"#).unwrap();
    let out = dir.join("out");
    run(&[
        "export",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--format",
        "e4m3",
        "--per-channel",
        "--layer-formats",
        lf.to_str().unwrap(),
        "--shard-bytes",
        "600",
    ]);
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.safetensors.index.json")).unwrap()).unwrap();
    let map: BTreeMap<String, String> = serde_json::from_value(index["weight_map"].clone()).unwrap();
    assert!(map.values().any(|f| f == "model-00002-of-00002.safetensors"), "{map:?}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    let q = &config["quantization_config"];
    assert_eq!(q["format"], "mixed-precision");
    let groups = q["config_groups"].as_object().unwrap();
    assert_eq!(groups.len(), 2);
    let all: Vec<String> = map.keys().cloned().collect();
    assert!(all.contains(&"layers.1.fc.weight_scale".to_string()) && all.contains(&"layers.0.proj.weight".to_string()));
    // --tensors: only what the globs match
    let out2 = dir.join("out2");
    run(&[
        "export",
        input.to_str().unwrap(),
        "-o",
        out2.to_str().unwrap(),
        "--format",
        "int8",
        "--tensors",
        "layers.0.*.weight",
    ]);
    let bytes = std::fs::read(out2.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("layers.0.proj.weight_packed").unwrap().dtype(), Dtype::I32);
    assert_eq!(st.tensor("layers.1.fc.weight").unwrap().dtype(), Dtype::BF16);
}

#[test]
fn bad_input_is_a_user_error_and_leaves_no_output() {
    let dir = tmpdir("export-bad");
    let input = dir.join("model.safetensors");
    write_model(&input, 40);
    let inp = input.to_str().unwrap();
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    // an inner dimension that is not a multiple of the block
    assert_user_error(
        &fp8q(&["export", inp, "-o", o, "--format", "mxfp4"]),
        &["layers.0.proj.weight", "multiple", "32"],
    );
    // a non-float tensor selected
    assert_user_error(
        &fp8q(&["export", inp, "-o", o, "--format", "int8", "--tensors", "steps"]),
        &["steps", "floating-point"],
    );
    // a layer-formats entry that names no tensor
    let lf = dir.join("lf.json");
    std::fs::write(&lf, r#"{"layers.9.nothing": {"weight": "nvfp4"}}"#).unwrap();
    assert_user_error(
        &fp8q(&["export", inp, "-o", o, "--layer-formats", lf.to_str().unwrap()]),
        &["layers.9.nothing", "no tensor"],
    );
    // formats without a deployed layout, and bad options
    assert_user_error(
        &fp8q(&["export", inp, "-o", o, "--format", "e3m4"]),
        &["e3m4", "serving"],
    );
    assert_user_error(
        &fp8q(&["export", inp, "-o", o, "--format", "float8_e5m2"]),
        &["float8_e5m2", "compressed-tensors"],
    );
    assert_user_error(
        &fp8q(&["export", inp, "-o", o, "--format", "int8", "--layout", "tensorrt"]),
        &["tensorrt"],
    );
    assert_user_error(
        &fp8q(&["export", inp, "-o", o, "--format", "int8", "--tensors", "zz*"]),
        &["zz*", "matches no"],
    );
    assert_user_error(&fp8q(&["export", inp, "-o", o]), &["--format"]);
    assert_user_error(
        &fp8q(&[
            "export",
            dir.join("missing.safetensors").to_str().unwrap(),
            "-o",
            o,
            "--format",
            "int8",
        ]),
        &["missing.safetensors"],
    );
    std::fs::write(dir.join("junk.safetensors"), b"not a checkpoint at all").unwrap();
    assert_user_error(
        &fp8q(&[
            "export",
            dir.join("junk.safetensors").to_str().unwrap(),
            "-o",
            o,
            "--format",
            "int8",
        ]),
        &["junk.safetensors"],
    );
    assert!(!out.exists(), "no output folder after errors");
    // an output folder that exists and is not empty: refused without --force, replaced with it
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    assert_user_error(
        &fp8q(&["export", inp, "-o", o, "--format", "int8"]),
        &["not empty", "--force"],
    );
    assert_eq!(std::fs::read_to_string(out.join("keep.txt")).unwrap(), "mine");
    // a failing export with --force keeps the old folder
    assert_user_error(
        &fp8q(&["export", inp, "-o", o, "--format", "mxfp4", "--force"]),
        &["multiple"],
    );
    assert_eq!(std::fs::read_to_string(out.join("keep.txt")).unwrap(), "mine");
    run(&["export", inp, "-o", o, "--format", "int8", "--force"]);
    assert!(out.join("model.safetensors").is_file() && !out.join("keep.txt").exists());
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        left.iter().all(|n| !n.starts_with('.')),
        "temporary folders left: {left:?}"
    );
}

/// An exported checkpoint reads back: `fp8q analyze` and `fp8q quantize` see each quantized
/// weight as one f32 tensor with the values the layout's reader gives, the parts consumed.
#[test]
fn exported_checkpoints_read_back() {
    let dir = tmpdir("export-back");
    let input = dir.join("model.safetensors");
    write_model(&input, 64);
    for (format, layout) in [
        ("nvfp4", "compressed-tensors"),
        ("nvfp4", "modelopt"),
        ("float8_e4m3fn", "compressed-tensors"),
        ("int8", "compressed-tensors"),
        ("mxfp4", "compressed-tensors"),
    ] {
        let out = dir.join(format!("out-{format}-{layout}"));
        run(&[
            "export",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--format",
            format,
            "--layout",
            layout,
        ]);
        let file = out.join("model.safetensors");
        let o = run(&["analyze", file.to_str().unwrap(), "--json", "--formats", "e4m3,int8"]);
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let units: Vec<&str> = report["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["unit"].as_str().unwrap())
            .collect();
        assert_eq!(units, ["layers.0.proj", "layers.1.fc"], "{format} {layout}");
        assert_eq!(report["slots"][0]["numel"], 8 * 64);
        // the values are the export's: the same SQNR against the input as fp8q_export.json says
        let q = out.join("q.safetensors");
        let o = run(&[
            "quantize",
            file.to_str().unwrap(),
            "--format",
            "e4m3",
            "-o",
            q.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            stdout.contains("layers.0.proj.weight") && !stdout.contains("weight_scale"),
            "{stdout}"
        );
    }
}
