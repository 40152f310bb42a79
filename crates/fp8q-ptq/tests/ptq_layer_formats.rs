//! Mixed-format PTQ (`--layer-formats`) on the in-repository fixture `tests/data/ptq_small` (a
//! narrow ResNet-18 and MobileNetV2, photographs, and PyTorch's per-channel weight ranges in
//! `expected.json`, made by `tools/make_ptq_fixtures.py`): every slot's quantizer is in the
//! format the file names (unlisted slots in the global one), a listed slot quantizes its weight
//! exactly as a uniform run of that format does, the file is checked against the model and the
//! quant setup, and saved quantization parameters carry the formats.

use std::path::{Path, PathBuf};

use fp8q_core::format::Format;
use fp8q_core::quantizer::QuantMethod;
use fp8q_images::{BatchLoader, ImageFolder, LoaderOptions, Transform};
use fp8q_nn::layers::SlotKind;
use fp8q_nn::models::{Architecture, Model};
use fp8q_ptq::evaluate::evaluate;
use fp8q_ptq::{self, Installed, LayerFormats, PtqConfig};
use serde_json::Value;

const MODELS: [(Architecture, &str); 2] = [
    (Architecture::Resnet18, "resnet18_narrow.pth"),
    (Architecture::MobilenetV2, "mobilenet_v2_narrow.pth.tar"),
];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ptq_small")
}

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("fp8q-layer-formats-{}-{name}", std::process::id()))
}

fn fmt(s: &str) -> Format {
    s.parse().unwrap()
}

/// W8/A8 FP E2M5 (the seed README's), per-channel, the range sets the maximum.
fn base_config() -> PtqConfig {
    PtqConfig {
        fp8_mantissa_bits: 5,
        fp8_set_maxval: true,
        fp8_mse_include_mantissa_bits: false,
        act_quant_method: PtqConfig::range_method("allminmax").unwrap(),
        per_channel: true,
        ..PtqConfig::default()
    }
}

/// `cfg` with the layer formats of `json`, read from a file as the CLI does.
fn with_formats(cfg: &PtqConfig, json: &Value, name: &str) -> PtqConfig {
    let path = temp_file(name);
    std::fs::write(&path, json.to_string()).unwrap();
    let formats = LayerFormats::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    PtqConfig {
        layer_formats: Some(formats),
        ..cfg.clone()
    }
}

fn train_loader() -> BatchLoader {
    let train = ImageFolder::open(fixture().join("images/train")).unwrap();
    BatchLoader::new(&train, LoaderOptions::new(6, Transform::val()))
}

/// Install `cfg` and calibrate on two deterministic training batches.
fn calibrated(arch: Architecture, file: &str, cfg: &PtqConfig) -> (Model, Installed) {
    let mut model = Model::load(arch, fixture().join(file)).unwrap();
    let installed = fp8q_ptq::install(&mut model, cfg).unwrap();
    assert_eq!(
        fp8q_ptq::calibrate(&mut model, &installed, train_loader(), 2, |_| {}).unwrap(),
        2
    );
    (model, installed)
}

fn val_logits(model: &mut Model) -> Vec<f32> {
    let val = ImageFolder::open(fixture().join("images/val")).unwrap();
    evaluate(
        model,
        BatchLoader::new(&val, LoaderOptions::new(5, Transform::val())),
        |_| {},
    )
    .unwrap()
    .logits
}

/// The quantized weight a calibrated model uses for `unit`.
fn quantized_weight(model: &mut Model, unit: &str) -> Vec<f32> {
    let u = model.units_mut().into_iter().find(|u| u.name == unit).unwrap();
    u.effective_weight().unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn fp32_weight(model: &mut Model, unit: &str) -> Vec<f32> {
    let u = model.units_mut().into_iter().find(|u| u.name == unit).unwrap();
    u.conv.weight.flatten_all().unwrap().to_vec1().unwrap()
}

/// A hand-made assignment over the whole plan: every third slot in one of these formats, in turn.
const CYCLE: [&str; 9] = [
    "e5m2",
    "int8",
    "e3m4",
    "int8-asym",
    "e4m3",
    "float8_e4m3fn",
    "e2m5",
    "int6",
    "e3m2",
];

#[test]
fn every_slot_uses_the_format_the_file_names() {
    for (arch, file) in MODELS {
        let mut model = Model::load(arch, fixture().join(file)).unwrap();
        let plan = fp8q_ptq::setup::plan(&mut model, &base_config()).unwrap();
        let mut json = serde_json::Map::new();
        for (i, p) in plan.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
            let role = if p.kind == SlotKind::Weight { "weight" } else { "act" };
            let entry = json.entry(p.unit.clone()).or_insert_with(|| serde_json::json!({}));
            entry[role] = CYCLE[(i / 3) % CYCLE.len()].into();
        }
        let listed = Value::Object(json);
        let cfg = with_formats(&base_config(), &listed, "every-slot.json");
        let (mut model, installed) = calibrated(arch, file, &cfg);
        assert_eq!(installed.slots.len(), plan.len());
        let (mut own, mut global) = (0, 0);
        for (h, p) in installed.slots.iter().zip(&installed.plan) {
            let role = h.role();
            let want = match listed.get(&h.unit).and_then(|e| e.get(role)) {
                Some(Value::String(name)) => {
                    own += 1;
                    name.clone()
                }
                _ => {
                    global += 1;
                    "e2m5".to_string()
                }
            };
            let state = h.state().unwrap();
            let got = state.format().unwrap();
            assert_eq!(got, fmt(&want), "{file} {} {role}", h.unit);
            assert_eq!(p.bits, got.n_bits(), "{file} {} {role}: planned width", h.unit);
            // the quantizer's fields say the same: FP sign and mantissa bits, INT width
            let fields = serde_json::to_value(&state).unwrap();
            match got {
                Format::Fp(f) => {
                    assert_eq!(fields["mantissa_bits"], f.mantissa_bits(), "{file} {}", h.unit);
                    assert_eq!(fields["sign_bits"], 1, "{file} {}", h.unit);
                }
                Format::Int(f) => assert_eq!(fields["n_bits"], f.n_bits, "{file} {}", h.unit),
                Format::Standard(s) => assert_eq!(fields["encoding"], s.name(), "{file} {}", h.unit),
                Format::Block(b) => panic!("{file} {}: no block format was planned, got {b}", h.unit),
            }
            let method = h.manager().config().method;
            if listed.get(&h.unit).and_then(|e| e.get(role)).is_some() {
                assert_eq!(method, QuantMethod::from_format(got), "{file} {}", h.unit);
            }
        }
        assert!(own >= 15 && global >= 30, "{file}: {own} listed, {global} global slots");
        // the run goes through and the table of formats reads back as the file
        assert!(val_logits(&mut model).iter().all(|v| v.is_finite()));
        let formats = installed.formats();
        for (unit, role, f) in cfg.layer_formats.as_ref().unwrap().slots() {
            let kind = if role == "weight" {
                SlotKind::Weight
            } else {
                SlotKind::Output
            };
            assert_eq!(formats.get(unit, kind), Some(f), "{file} {unit} {role}");
        }
    }
}

/// `ueXmY` drops the sign bit on non-negative ranges (ReLU outputs) and is the signed format of
/// the same mantissa bits elsewhere.
#[test]
fn unsigned_formats_follow_the_sign_of_the_range() {
    let (arch, file) = MODELS[0];
    let mut model = Model::load(arch, fixture().join(file)).unwrap();
    let plan = fp8q_ptq::setup::plan(&mut model, &base_config()).unwrap();
    let mut json = serde_json::Map::new();
    for p in plan.iter().filter(|p| p.kind != SlotKind::Weight) {
        json.insert(p.unit.clone(), serde_json::json!({"act": "ue4m4"}));
    }
    let cfg = with_formats(&base_config(), &Value::Object(json), "unsigned.json");
    let (_, installed) = calibrated(arch, file, &cfg);
    let (mut unsigned, mut signed) = (0, 0);
    for h in installed.slots.iter().filter(|h| h.role() == "act") {
        let non_negative = h.manager().range().unwrap().min.iter().all(|&m| m >= 0.0);
        let got = h.state().unwrap().format().unwrap().to_string();
        assert_eq!(got, if non_negative { "ue4m4" } else { "e3m4" }, "{}", h.unit);
        *(if non_negative { &mut unsigned } else { &mut signed }) += 1;
    }
    // ResNet: ReLU outputs are non-negative; the second conv of each block and the logits are not
    assert!(unsigned >= 10 && signed >= 5, "{unsigned} unsigned, {signed} signed");
}

/// PyTorch's per-channel max |w| of `unit` (expected.json).
fn pytorch_absmax(file: &str, unit: &str) -> Vec<f64> {
    let path = fixture().join("expected.json");
    let exp: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let r = &exp["models"][file]["weight_ranges"][unit];
    let nums = |v: &Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    nums(&r["min"])
        .iter()
        .zip(nums(&r["max"]))
        .map(|(a, b)| a.abs().max(b.abs()))
        .collect()
}

/// A weight slot listed as E3M4 quantizes its weight exactly as a uniform E3M4 run (same
/// estimator) does, with PyTorch's per-channel maxima; a slot listed as INT8 as a uniform INT8
/// run does, and as `clamp(round(w / Δ), -128, 127) · Δ` with `Δ = max|w| / 127` per channel.
#[test]
fn listed_weights_match_uniform_runs() {
    for (arch, file, fp_unit, int_unit) in [
        (MODELS[0].0, MODELS[0].1, "layer2.0.conv1", "layer3.1.conv2"),
        (MODELS[1].0, MODELS[1].1, "features.3.conv.0", "features.5.conv.3"),
    ] {
        // the rest of the mixed run differs from both uniform runs (E2M5, some activations E5M2)
        let listed = serde_json::json!({
            fp_unit: {"weight": "e3m4", "act": "e5m2"},
            int_unit: {"weight": "int8"},
        });
        let mixed = with_formats(&base_config(), &listed, "uniform-check.json");
        let uniform_fp = PtqConfig {
            fp8_mantissa_bits: 4,
            ..base_config()
        };
        let uniform_int = PtqConfig {
            qmethod: "symmetric_uniform".parse().unwrap(),
            ..base_config()
        };
        let (mut m, _) = calibrated(arch, file, &mixed);
        let (mut f, _) = calibrated(arch, file, &uniform_fp);
        let (mut i, _) = calibrated(arch, file, &uniform_int);
        let (mut e2m5, _) = calibrated(arch, file, &base_config());

        let fp_w = quantized_weight(&mut m, fp_unit);
        assert_eq!(fp_w, quantized_weight(&mut f, fp_unit), "{file} {fp_unit}: E3M4 weight");
        assert_ne!(
            fp_w,
            quantized_weight(&mut e2m5, fp_unit),
            "{file} {fp_unit}: still E2M5"
        );
        let int_w = quantized_weight(&mut m, int_unit);
        assert_eq!(
            int_w,
            quantized_weight(&mut i, int_unit),
            "{file} {int_unit}: INT8 weight"
        );

        // E3M4 per-channel maxima are PyTorch's max |w|; the largest magnitude of each channel
        // is representable, so it is kept
        let absmax = pytorch_absmax(file, fp_unit);
        let per = fp_w.len() / absmax.len();
        for (c, (q, a)) in fp_w.chunks(per).zip(&absmax).enumerate() {
            let top = q.iter().fold(0f32, |t, x| t.max(x.abs())) as f64;
            assert!(
                (top - a).abs() <= 1e-6 * a,
                "{file} {fp_unit}[{c}]: max |q| {top} vs {a}"
            );
        }
        // INT8: the grid recomputed here from PyTorch's ranges
        let absmax = pytorch_absmax(file, int_unit);
        let w = fp32_weight(&mut m, int_unit);
        let per = w.len() / absmax.len();
        let mut differing = 0;
        for ((ws, qs), a) in w.chunks(per).zip(int_w.chunks(per)).zip(&absmax) {
            let delta = *a as f32 / 127.0;
            for (x, q) in ws.iter().zip(qs) {
                let want = (x / delta).round_ties_even().clamp(-128.0, 127.0) * delta;
                if (want - q).abs() > 1e-6 * a.abs() as f32 {
                    differing += 1;
                }
            }
        }
        assert_eq!(differing, 0, "{file} {int_unit}: INT8 weights off the grid");
    }
}

/// Errors name the file, the unit and the reason.
#[test]
fn bad_layer_formats_are_refused() {
    let (arch, file) = MODELS[0];
    let plan_err = |json: Value, cfg: PtqConfig| {
        let cfg = with_formats(&cfg, &json, "bad.json");
        let mut model = Model::load(arch, fixture().join(file)).unwrap();
        let err = fp8q_ptq::install(&mut model, &cfg).unwrap_err().to_string();
        assert!(err.contains(&temp_file("bad.json").display().to_string()), "{err}");
        err
    };
    let base = base_config;
    let err = plan_err(serde_json::json!({"layer9.0.conv1": {"weight": "e4m3"}}), base());
    assert!(
        err.contains("'layer9.0.conv1'") && err.contains("not in this model"),
        "{err}"
    );
    // a block has an output quantizer but no weight
    let err = plan_err(serde_json::json!({"layer1.0": {"weight": "e4m3"}}), base());
    assert!(err.contains("'layer1.0'") && err.contains("no weight slot"), "{err}");
    // slots the quant setup or the options leave unquantized
    for (json, cfg, needle) in [
        (
            serde_json::json!({"fc": {"act": "int8"}}),
            PtqConfig {
                quant_setup: "FP_logits".parse().unwrap(),
                ..base()
            },
            "quant setup 'FP_logits'",
        ),
        (
            serde_json::json!({"layer2.1": {"act": "int8"}}),
            PtqConfig {
                quant_setup: "LSQ_paper".parse().unwrap(),
                ..base()
            },
            "quant setup 'LSQ_paper'",
        ),
        (
            serde_json::json!({"conv1": {"act": "e4m3"}}),
            PtqConfig {
                act_quant: false,
                ..base()
            },
            "activation quantization is off",
        ),
        (
            serde_json::json!({"conv1": {"weight": "e4m3"}}),
            PtqConfig {
                weight_quant: false,
                ..base()
            },
            "weight quantization is off",
        ),
    ] {
        let unit = json.as_object().unwrap().keys().next().unwrap().clone();
        let err = plan_err(json, cfg);
        assert!(err.contains(&format!("'{unit}'")) && err.contains(needle), "{err}");
    }
    // an unsigned format without a signed counterpart for negative ranges
    let err = plan_err(serde_json::json!({"fc": {"act": "ue1m7"}}), base());
    assert!(err.contains("'fc'") && err.contains("ue1m7"), "{err}");

    // the file itself: unknown format, bad JSON
    for (text, needle) in [
        (r#"{"conv1": {"weight": "e4m4x"}}"#, "'e4m4x'"),
        (r#"{"conv1": {"weight": "e4m3"},"#, "not valid JSON"),
    ] {
        let path = temp_file("bad-file.json");
        std::fs::write(&path, text).unwrap();
        let err = LayerFormats::read(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).ok();
        assert!(
            err.contains(&path.display().to_string()) && err.contains(needle),
            "{err}"
        );
    }
}

/// Saved parameters record each slot's format. Loaded into the same mixed run, or into a run
/// without `--layer-formats` (the file's formats are applied), they reproduce the run; a run
/// whose layer formats disagree with the file is refused, naming the unit; files without
/// formats (older ones) load as before.
#[test]
fn saved_params_carry_the_formats() {
    for (arch, file) in MODELS {
        let unit = match arch {
            Architecture::Resnet18 => "layer1.1.conv1",
            _ => "features.2.conv.0",
        };
        let listed = serde_json::json!({
            unit: {"weight": "int8", "act": "e4m3"},
            "fc": {"weight": "e5m2"},
            "classifier.1": {"weight": "int8-asym"},
        });
        let mut listed = listed.as_object().unwrap().clone();
        listed.remove(if arch == Architecture::Resnet18 {
            "classifier.1"
        } else {
            "fc"
        });
        let mixed = with_formats(&base_config(), &Value::Object(listed), "save.json");
        let (mut model, installed) = calibrated(arch, file, &mixed);
        let logits = val_logits(&mut model);
        let params = temp_file(&format!("{file}-params.json"));
        installed.save_json(&params).unwrap();
        let saved: Value = serde_json::from_str(&std::fs::read_to_string(&params).unwrap()).unwrap();
        assert_eq!(saved[unit]["weight"]["format"], "int8", "{file}");
        assert_eq!(saved[unit]["act"]["format"], "e4m3", "{file}");
        let first = if arch == Architecture::Resnet18 {
            "conv1"
        } else {
            "features.0.0"
        };
        assert_eq!(saved[first]["weight"]["format"], "e2m5", "{file}: unlisted slot");

        for (name, cfg) in [("mixed", mixed.clone()), ("no layer formats", base_config())] {
            let mut fresh = Model::load(arch, fixture().join(file)).unwrap();
            let again = fp8q_ptq::install(&mut fresh, &cfg).unwrap();
            again.load_json(&params).unwrap();
            assert_eq!(again.states(), installed.states(), "{file} {name}: states");
            assert_eq!(val_logits(&mut fresh), logits, "{file} {name}: logits");
        }

        // layer formats that disagree with the file
        let other = with_formats(
            &base_config(),
            &serde_json::json!({unit: {"weight": "e4m3"}}),
            "other.json",
        );
        let mut fresh = Model::load(arch, fixture().join(file)).unwrap();
        let err = fp8q_ptq::install(&mut fresh, &other)
            .unwrap()
            .load_json(&params)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&params.display().to_string()) && err.contains(unit) && err.contains("int8"),
            "{err}"
        );
        std::fs::remove_file(&params).ok();
    }
}

/// A uniform run's parameters without the `format` fields (as written before formats were
/// recorded) still load and reproduce the run.
#[test]
fn params_without_formats_still_load() {
    let (arch, file) = MODELS[1];
    let cfg = PtqConfig {
        weight_quant_method: PtqConfig::range_method("MSE").unwrap(),
        fp8_mse_include_mantissa_bits: true,
        ..base_config()
    };
    let (mut model, installed) = calibrated(arch, file, &cfg);
    let logits = val_logits(&mut model);
    let mut saved = serde_json::to_value(installed.states()).unwrap();
    let mut stripped = 0;
    for unit in saved.as_object_mut().unwrap().values_mut() {
        for state in unit.as_object_mut().unwrap().values_mut() {
            stripped += state.as_object_mut().unwrap().remove("format").is_some() as usize;
        }
    }
    assert_eq!(stripped, installed.slots.len());
    let params = temp_file("old-style.json");
    std::fs::write(&params, saved.to_string()).unwrap();
    let mut fresh = Model::load(arch, fixture().join(file)).unwrap();
    let again = fp8q_ptq::install(&mut fresh, &cfg).unwrap();
    again.load_json(&params).unwrap();
    std::fs::remove_file(&params).ok();
    assert_eq!(again.states(), installed.states());
    assert_eq!(val_logits(&mut fresh), logits);
}
