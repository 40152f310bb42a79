//! `fp8q validate-quantized --layer-formats FILE` through the built binary, on the
//! in-repository fixture (`fp8q-ptq/tests/data/ptq_small`, a narrow MobileNetV2): the report and
//! the saved parameters record each slot's format, `--print-config` shows the file, saved
//! parameters reproduce the mixed run without the file, and bad files are user errors (exit
//! code 2) naming the file.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{assert_user_error, fp8q, tmpdir};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fp8q-ptq/tests/data/ptq_small")
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A quick MobileNetV2 E4M3 run: 8 validation images, one deterministic calibration batch.
fn run(extra: &[&str]) -> Output {
    let model = s(&fixture().join("mobilenet_v2_narrow.pth.tar"));
    let images = s(&fixture().join("images"));
    let mut args = vec![
        "validate-quantized",
        "--architecture",
        "mobilenet_v2",
        "--model-dir",
        &model,
        "--images-dir",
        &images,
        "--batch-size",
        "4",
        "--max-val-images",
        "8",
        "--num-est-batches",
        "1",
        "--calib-transform",
        "val",
        "--no-reestimate-bn-stats",
        "--fp8-mantissa-bits",
        "3",
        "--fp8-set-maxval",
    ];
    args.extend_from_slice(extra);
    fp8q(&args)
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const MIXED: &str = r#"{"features.0.0": {"weight": "int8", "act": "e5m2"},
 "features.2.conv.3": {"weight": "e2m5"},
 "classifier.1": {"weight": "int8-asym", "act": "float8_e4m3fn"}}"#;

#[test]
fn mixed_run_records_and_reloads_its_formats() {
    let dir = tmpdir("layer-formats");
    let formats = dir.join("mixed.json");
    std::fs::write(&formats, MIXED).unwrap();
    let (report, params) = (dir.join("run.json"), dir.join("q.json"));

    let out = run(&["--layer-formats", &s(&formats), "--print-config"]);
    assert_ok(&out);
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: serde_json::Value = serde_json::from_str(MIXED).unwrap();
    assert_eq!(config["layer_formats"]["formats"], want);
    assert_eq!(config["layer_formats"]["file"], s(&formats));

    let out = run(&[
        "--layer-formats",
        &s(&formats),
        "--json",
        &s(&report),
        "--save-quant-params",
        &s(&params),
    ]);
    assert_ok(&out);
    let v = json(&report);
    let q = &v["quantizers"];
    for (unit, role, format, kind) in [
        ("features.0.0", "weight", "int8", "int"),
        ("features.0.0", "act", "e5m2", "fp"),
        ("features.2.conv.3", "weight", "e2m5", "fp"),
        ("features.2.conv.3", "act", "e4m3", "fp"),
        ("features.2.conv.0", "weight", "e4m3", "fp"),
        ("classifier.1", "weight", "int8-asym", "int"),
        ("classifier.1", "act", "float8_e4m3fn", "standard"),
    ] {
        assert_eq!(q[unit][role]["format"], format, "{unit} {role}");
        assert_eq!(q[unit][role]["kind"], kind, "{unit} {role}");
    }
    assert_eq!(v["config"]["layer_formats"]["formats"], want);
    assert_eq!(json(&params)["features.0.0"]["weight"]["format"], "int8");

    // without --layer-formats the saved formats are applied: the same logits
    let again = dir.join("again.json");
    assert_ok(&run(&["--load-quant-params", &s(&params), "--json", &s(&again)]));
    assert_eq!(json(&again)["logits"], v["logits"]);
    assert_eq!(json(&again)["quantizers"], v["quantizers"]);

    // with layer formats that disagree with the saved ones: refused, naming the unit
    let other = dir.join("other.json");
    std::fs::write(&other, r#"{"features.0.0": {"weight": "e3m4"}}"#).unwrap();
    assert_user_error(
        &run(&["--load-quant-params", &s(&params), "--layer-formats", &s(&other)]),
        &[&s(&params), "features.0.0", "int8", "e3m4"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_layer_formats_files_are_user_errors() {
    let dir = tmpdir("layer-formats-bad");
    for (name, text, extra, needles) in [
        (
            "json.json",
            r#"{"features.0.0": {"weight": "#,
            &[][..],
            &["not valid JSON"][..],
        ),
        (
            "unit.json",
            r#"{"features.99.conv.0": {"weight": "e4m3"}}"#,
            &[],
            &["'features.99.conv.0'", "not in this model"],
        ),
        (
            "format.json",
            r#"{"features.0.0": {"weight": "e4m3x"}}"#,
            &[],
            &["'features.0.0' weight", "'e4m3x'"],
        ),
        (
            "key.json",
            r#"{"features.0.0": {"bias": "e4m3"}}"#,
            &[],
            &["unknown key 'bias'"],
        ),
        (
            "placed.json",
            r#"{"features.0.0": {"act": "e4m3"}}"#,
            &["--no-act-quant"],
            &["'features.0.0' act", "activation quantization is off"],
        ),
        (
            "setup.json",
            r#"{"classifier.1": {"act": "e4m3"}}"#,
            &["--quant-setup", "FP_logits"],
            &["'classifier.1' act", "FP_logits"],
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let mut args = vec!["--layer-formats", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let path_s = s(&path);
        let mut all = vec![path_s.as_str()];
        all.extend_from_slice(needles);
        assert_user_error(&run(&args), &all);
    }
    // the FP32 baseline has no slot to give a format
    let fine = dir.join("fine.json");
    std::fs::write(&fine, MIXED).unwrap();
    assert_user_error(
        &run(&["--layer-formats", &s(&fine), "--no-weight-quant", "--no-act-quant"]),
        &["--layer-formats", "FP32"],
    );
    let missing = dir.join("missing.json");
    assert_user_error(
        &run(&["--layer-formats", &s(&missing), "--print-config"]),
        &[&s(&missing)],
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `--weight-format` / `--act-format` take any format, block-scaled ones included; `--block-size`
/// and `--scale-rule` apply to every block format (listed ones too); the report records each
/// slot's format; saved parameters reproduce the run; bad formats are user errors.
#[test]
fn block_formats_per_side_and_per_slot() {
    let dir = tmpdir("block-formats");
    let formats = dir.join("mixed.json");
    std::fs::write(&formats, r#"{"features.0.0": {"weight": "mxfp6_e2m3"}}"#).unwrap();
    let (report, params) = (dir.join("run.json"), dir.join("q.json"));
    let out = run(&[
        "--weight-format",
        "mxfp4",
        "--act-format",
        "nvfp4",
        "--block-size",
        "16",
        "--scale-rule",
        "rceil",
        "--layer-formats",
        &s(&formats),
        "--json",
        &s(&report),
        "--save-quant-params",
        &s(&params),
    ]);
    assert_ok(&out);
    let v = json(&report);
    let q = &v["quantizers"];
    for (unit, role, format) in [
        ("features.0.0", "weight", "e2m3@16:rceil"),
        ("features.0.0", "act", "nvfp4"),
        ("features.2.conv.3", "weight", "e2m1@16:rceil"),
        ("classifier.1", "act", "nvfp4"),
    ] {
        assert_eq!(q[unit][role]["format"], format, "{unit} {role}");
        assert_eq!(q[unit][role]["kind"], "block", "{unit} {role}");
    }
    let text = v["logits"].to_string();
    assert!(text.len() > 100 && !text.contains("null"), "{text}");
    let again = dir.join("again.json");
    assert_ok(&run(&["--load-quant-params", &s(&params), "--json", &s(&again)]));
    assert_eq!(json(&again)["logits"], v["logits"]);

    for (bad, needles) in [
        (["--weight-format", "mxfp5"], vec!["mxfp5"]),
        (["--act-format", "e2m1@0"], vec!["block size"]),
        (["--weight-format", "e2m1@16/int8"], vec!["cannot hold"]),
        (["--scale-rule", "up"], vec!["scale rule"]),
    ] {
        assert_user_error(&run(&bad), &needles);
    }
    std::fs::remove_dir_all(&dir).ok();
}
