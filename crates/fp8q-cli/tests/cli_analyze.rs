//! End-to-end checks of `fp8q analyze CHECKPOINT` (weights mode) on the fixtures of
//! `tools/make_analyze_fixtures.py` (`tests/data/analyze/`): statistics and SQNRs against the
//! script's independent numpy computation, equality with `fp8q quantize`, the outputs, and
//! errors.

use serde_json::Value;
use std::path::PathBuf;

mod common;
use common::{assert_user_error, fp8q, tmpdir};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/analyze")
        .join(name)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data("expected.json")).unwrap()).unwrap()
}

fn analyze_json(args: &[&str]) -> Value {
    let mut all = vec!["analyze"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = fp8q(&all);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

/// Statistics and min-max SQNRs (per tensor and per channel) of every weight of both fixtures
/// equal numpy's.
#[test]
fn figures_match_numpy() {
    let exp = expected();
    for file in ["transformer.safetensors", "cnn.pth"] {
        let want = exp[file].as_object().unwrap();
        for (per_channel, key) in [(false, "sqnr_db_per_tensor"), (true, "sqnr_db_per_channel")] {
            let path = data(file);
            let mut args = vec![path.to_str().unwrap()];
            if per_channel {
                args.push("--per-channel");
            }
            let report = analyze_json(&args);
            let slots = report["slots"].as_array().unwrap();
            assert_eq!(slots.len(), want.len(), "{file}");
            for s in slots {
                let name = s["tensor"].as_str().unwrap();
                let w = &want[name];
                assert_eq!(s["slot"], "weight");
                assert_eq!(s["shape"], w["shape"], "{name}");
                assert_eq!(s["numel"], w["stats"]["numel"], "{name}");
                for stat in ["mean", "absmax", "std", "kurtosis", "max_over_sigma"] {
                    let (got, exp) = (s["stats"][stat].as_f64().unwrap(), w["stats"][stat].as_f64().unwrap());
                    assert!(close(got, exp, 1e-9), "{file} {name} {stat}: {got} vs {exp}");
                }
                for f in ["e5m2", "e4m3", "e3m4", "e2m5", "int8"] {
                    let (got, exp) = (s["sqnr_db"][f].as_f64().unwrap(), w[key][f].as_f64().unwrap());
                    assert!((got - exp).abs() < 1e-6, "{file} {name} {key} {f}: {got} vs {exp}");
                    assert!(s["predicted_sqnr_db"][f].as_f64().is_some());
                }
                // the unit is the key without .weight; with no network figures, the
                // recommendation is the measured best
                assert_eq!(s["unit"].as_str().unwrap(), name.strip_suffix(".weight").unwrap());
                assert!(s["output_sqnr_db"].is_null());
                assert_eq!(s["recommended"], s["measured_best"]);
                let best = ["e5m2", "e4m3", "e3m4", "e2m5", "int8"]
                    .into_iter()
                    .max_by(|a, b| {
                        s["sqnr_db"][a]
                            .as_f64()
                            .unwrap()
                            .total_cmp(&s["sqnr_db"][b].as_f64().unwrap())
                    })
                    .unwrap();
                assert_eq!(s["measured_best"], best);
            }
        }
    }
}

/// Non-float tensors are skipped and listed; 1-D tensors are counted; the summary adds up.
#[test]
fn skipped_and_summary() {
    let path = data("transformer.safetensors");
    let r = analyze_json(&[path.to_str().unwrap(), "--formats", "e4m3,int8"]);
    assert_eq!(r["formats"], serde_json::json!(["e4m3", "int8"]));
    let skipped = r["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["name"], "position_ids");
    assert_eq!(skipped[0]["dtype"], "I64");
    assert_eq!(r["not_weights"], 1);
    let s = &r["summary"];
    assert_eq!(s["tensors"], 5);
    assert_eq!(s["parameters"], 2048 + 1024 + 2048 + 2048 + 2048);
    let fm = s["formats"].as_array().unwrap();
    assert_eq!(fm.len(), 2);
    assert_eq!(
        fm[0]["tensors"].as_u64().unwrap() + fm[1]["tensors"].as_u64().unwrap(),
        5
    );
    // parameter-weighted SQNR of e4m3 from the slots
    let slots = r["slots"].as_array().unwrap();
    let (mut w, mut sum) = (0.0, 0.0);
    for x in slots {
        let n = x["numel"].as_f64().unwrap();
        w += n;
        sum += n * x["sqnr_db"]["e4m3"].as_f64().unwrap();
    }
    assert!(close(fm[0]["weighted_sqnr_db"].as_f64().unwrap(), sum / w, 1e-12));
    let pth = data("cnn.pth");
    let r = analyze_json(&[pth.to_str().unwrap()]);
    assert_eq!(r["skipped"][0]["name"], "bn1.num_batches_tracked");
    assert_eq!(r["not_weights"], 1);
}

/// A weight's SQNR is what `fp8q quantize` reports for the same tensor and options.
#[test]
fn equals_fp8q_quantize() {
    let path = data("transformer.safetensors");
    let p = path.to_str().unwrap();
    for opts in [
        vec!["--range", "current_minmax"],
        vec!["--range", "mse", "--per-channel"],
        vec!["--range", "mse", "--mantissa-search"],
    ] {
        let mut args = vec![p, "--formats", "e4m3,int8"];
        args.extend(&opts);
        let report = analyze_json(&args);
        for f in ["e4m3", "int8"] {
            if f == "int8" && opts.contains(&"--mantissa-search") {
                continue;
            }
            let mut q = vec!["quantize", p, "--format", f, "--json"];
            q.extend(&opts);
            let out = fp8q(&q);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let qr: Value = serde_json::from_slice(&out.stdout).unwrap();
            for s in report["slots"].as_array().unwrap() {
                let t = qr
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["name"] == s["tensor"])
                    .unwrap();
                let (a, b) = (s["sqnr_db"][f].as_f64().unwrap(), t["sqnr_db"].as_f64().unwrap());
                assert!((a - b).abs() < 1e-9, "{opts:?} {f} {}: {a} vs {b}", t["name"]);
                assert_eq!(s["used_format"][f], t["format"]);
                let env_max = t["range"]["max"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .fold(f64::NEG_INFINITY, f64::max);
                assert_eq!(s["range"][f]["max"].as_f64().unwrap(), env_max);
            }
        }
    }
}

/// `--csv`, `--write-layer-formats`, `--plot` and the table.
#[test]
fn outputs() {
    let dir = tmpdir("analyze-outputs");
    let path = data("transformer.safetensors");
    let p = path.to_str().unwrap();
    let lf = dir.join("layers.json");
    let svg = dir.join("map.svg");
    let out = fp8q(&[
        "analyze",
        p,
        "--per-channel",
        "--write-layer-formats",
        lf.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("model.layers.0.mlp.up_proj"), "{table}");
    assert!(table.contains('*') && table.contains("position_ids"), "{table}");
    let report = analyze_json(&[p, "--per-channel"]);
    let layers: Value = serde_json::from_str(&std::fs::read_to_string(&lf).unwrap()).unwrap();
    let slots = report["slots"].as_array().unwrap();
    assert_eq!(layers.as_object().unwrap().len(), slots.len());
    for s in slots {
        assert_eq!(layers[s["unit"].as_str().unwrap()]["weight"], s["recommended"]);
    }
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<svg"), "{}", &svg_text[..100.min(svg_text.len())]);
    for needle in ["model.embed_tokens", "kurtosis", "e2m5", " *"] {
        assert!(svg_text.contains(needle), "{needle}");
    }

    let out = fp8q(&["analyze", p, "--csv"]);
    assert!(out.status.success());
    let csv = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 5);
    let head: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(head[0], "unit");
    assert!(head.contains(&"sqnr_db_e4m3") && head.contains(&"predicted_sqnr_db_int8"));
    assert!(lines.iter().all(|l| l.split(',').count() == head.len()));
}

#[test]
fn user_errors() {
    let dir = tmpdir("analyze-errors");
    let good = data("transformer.safetensors");
    let g = good.to_str().unwrap();
    let missing = dir.join("missing.safetensors");
    assert_user_error(&fp8q(&["analyze", missing.to_str().unwrap()]), &["missing.safetensors"]);
    let txt = dir.join("notes.txt");
    std::fs::write(&txt, "hello, not a checkpoint").unwrap();
    assert_user_error(&fp8q(&["analyze", txt.to_str().unwrap()]), &["notes.txt"]);
    let empty = dir.join("empty.pth");
    std::fs::write(&empty, "").unwrap();
    assert_user_error(&fp8q(&["analyze", empty.to_str().unwrap()]), &["empty.pth", "empty"]);
    // a truncated safetensors file
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_user_error(&fp8q(&["analyze", cut.to_str().unwrap()]), &["cut.safetensors"]);
    // a truncated .pth
    let pth = std::fs::read(data("cnn.pth")).unwrap();
    let cutp = dir.join("cut.pth");
    std::fs::write(&cutp, &pth[..pth.len() / 2]).unwrap();
    assert_user_error(&fp8q(&["analyze", cutp.to_str().unwrap()]), &["cut.pth"]);
    assert_user_error(&fp8q(&["analyze", g, "--formats", "e4m3,e9m9"]), &["--formats", "e9m9"]);
    assert_user_error(&fp8q(&["analyze", g, "--formats", "e4m3,e4m3"]), &["twice"]);
    assert_user_error(&fp8q(&["analyze", g, "--mantissa-search"]), &["--range mse"]);
    assert_user_error(&fp8q(&["analyze", g, "--range", "median"]), &["median"]);
    assert_user_error(&fp8q(&["analyze"]), &["CHECKPOINT"]);
    let nowhere = dir.join("no/such/dir/l.json");
    assert_user_error(
        &fp8q(&["analyze", g, "--write-layer-formats", nowhere.to_str().unwrap()]),
        &["l.json"],
    );
}

/// Network mode with sensitivity reports the verified mix in `--json` and the table: every
/// uniform format's logit SQNR, the best one, and a mix not below it; weights mode has none.
#[test]
fn network_mode_reports_the_mix_against_every_uniform_format() {
    let f = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fp8q-ptq/tests/data/ptq_small");
    let (model, images) = (f.join("resnet18_narrow.pth"), f.join("images"));
    let args = [
        "--architecture",
        "resnet18",
        "--model-dir",
        model.to_str().unwrap(),
        "--images-dir",
        images.to_str().unwrap(),
        "--batch-size",
        "4",
        "--per-channel",
        "--formats",
        "e4m3,e2m5,int8",
        "--sensitivity-images",
        "8",
        "--no-progress-bar",
    ];
    let r = analyze_json(&args);
    let mix = &r["mix"];
    let uniform = mix["uniform"].as_array().expect("mix.uniform");
    let names: Vec<&str> = uniform.iter().map(|u| u["format"].as_str().unwrap()).collect();
    assert_eq!(names, ["e4m3", "e2m5", "int8"]);
    let best = uniform
        .iter()
        .map(|u| u["sqnr_db"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(mix["best_uniform"]["sqnr_db"].as_f64().unwrap(), best);
    assert!(mix["mixed_sqnr_db"].as_f64().unwrap() >= best, "{mix}");
    assert_eq!(mix["images"], 8);

    let mut all = vec!["analyze"];
    all.extend_from_slice(&args);
    let out = fp8q(&all);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("recommended mix") && table.contains("uniform e2m5"),
        "{table}"
    );

    let weights = analyze_json(&[data("cnn.pth").to_str().unwrap()]);
    assert!(weights.get("mix").is_none());
}

/// Block-scaled formats among `--formats` in network mode: no range (`null`), measured and
/// predicted SQNR per slot, a uniform run each in the mix; the recommendation may take them, and
/// the written `--write-layer-formats` file runs through `validate-quantized --layer-formats`.
#[test]
fn network_mode_with_block_formats() {
    let dir = tmpdir("analyze-network-blocks");
    let f = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fp8q-ptq/tests/data/ptq_small");
    let (model, images) = (f.join("resnet18_narrow.pth"), f.join("images"));
    let lf = dir.join("layers.json");
    let common = [
        "--architecture",
        "resnet18",
        "--model-dir",
        model.to_str().unwrap(),
        "--images-dir",
        images.to_str().unwrap(),
        "--batch-size",
        "4",
        "--no-progress-bar",
    ];
    let mut args = common.to_vec();
    args.extend_from_slice(&[
        "--per-channel",
        "--formats",
        "e4m3,int8,mxint8,mxfp4",
        "--sensitivity-images",
        "8",
        "--write-layer-formats",
        lf.to_str().unwrap(),
    ]);
    let r = analyze_json(&args);
    let slots = r["slots"].as_array().unwrap();
    assert!(!slots.is_empty());
    for s in slots {
        for b in ["mxint8", "mxfp4"] {
            assert!(s["range"][b].is_null(), "{}", s["range"]);
            assert_eq!(s["used_format"][b], b);
            assert!(s["sqnr_db"][b].as_f64().unwrap().is_finite(), "{s}");
            assert!(s["predicted_sqnr_db"][b].as_f64().is_some(), "{s}");
            assert!(s["output_sqnr_db"][b].as_f64().is_some(), "{s}");
        }
        assert!(s["range"]["e4m3"]["channels"].as_u64().unwrap() >= 1);
    }
    let names: Vec<&str> = r["mix"]["uniform"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["format"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["e4m3", "int8", "mxint8", "mxfp4"]);
    let recommended: Vec<&str> = slots.iter().map(|s| s["recommended"].as_str().unwrap()).collect();
    assert!(
        recommended.iter().any(|f| f.starts_with("mx")),
        "no block format recommended: {recommended:?}"
    );
    // the file lists them, and validate-quantized runs it
    let layers: Value = serde_json::from_str(&std::fs::read_to_string(&lf).unwrap()).unwrap();
    let listed = layers.to_string();
    assert!(listed.contains("\"mx"), "{listed}");
    let mut run = vec!["validate-quantized"];
    run.extend_from_slice(&common);
    run.extend_from_slice(&["--max-val-images", "8", "--layer-formats", lf.to_str().unwrap()]);
    let out = fp8q(&run);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // the range options do not apply to block formats: ignored for them, not an error
    let checkpoint = data("cnn.pth");
    let w = analyze_json(&[
        checkpoint.to_str().unwrap(),
        "--formats",
        "e4m3,mxfp6_e2m3,nvfp4",
        "--range",
        "mse",
        "--per-channel",
    ]);
    for s in w["slots"].as_array().unwrap() {
        assert!(s["range"]["mxfp6_e2m3"].is_null() && s["range"]["nvfp4"].is_null());
        assert!(s["range"]["e4m3"].is_object());
    }
    // --block-size and --scale-rule apply to the block formats
    let k = analyze_json(&[
        checkpoint.to_str().unwrap(),
        "--formats",
        "e4m3,mxfp4",
        "--block-size",
        "16",
        "--scale-rule",
        "rceil",
    ]);
    assert_eq!(k["formats"][1], "e2m1@16:rceil");
    assert_user_error(
        &fp8q(&[
            "analyze",
            checkpoint.to_str().unwrap(),
            "--formats",
            "e4m3",
            "--block-size",
            "16",
        ]),
        &["--block-size", "block-scaled"],
    );
}
