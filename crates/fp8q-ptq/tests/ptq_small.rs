//! The PTQ pipeline end to end on the in-repository fixture `tests/data/ptq_small`
//! (made by `tools/make_ptq_fixtures.py`): JPEG/PNG photographs in ImageNet layout, a narrow
//! ResNet-18 (zip `torch.save`) and a narrow MobileNetV2 in the paper's layout (legacy
//! `torch.save`, like the paper's `mobilenet_v2.pth.tar`). The expected values were computed by
//! PyTorch, torchvision and Pillow. These tests need nothing outside the repository; the full
//! parity suite against the reference's runs is `golden_ptq_*` (behind `FP8Q_GOLDEN_PTQ`).

use std::path::{Path, PathBuf};

use fp8q_images::{BatchLoader, ImageFolder, LoaderOptions, Transform};
use fp8q_nn::models::{Architecture, Model};
use fp8q_ptq::evaluate::{evaluate, Evaluation};
use fp8q_ptq::{self, Installed, PtqConfig};
use serde_json::Value;

const MODELS: [(Architecture, &str); 2] = [
    (Architecture::Resnet18, "resnet18_narrow.pth"),
    (Architecture::MobilenetV2, "mobilenet_v2_narrow.pth.tar"),
];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ptq_small")
}

fn expected() -> Value {
    let path = fixture().join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        _ => panic!("not a number: {v}"),
    }
}

fn rel_l2(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let num: f64 = got.iter().zip(want).map(|(&a, b)| (a as f64 - b).powi(2)).sum();
    (num / want.iter().map(|b| b * b).sum::<f64>()).sqrt()
}

fn split(name: &str) -> ImageFolder {
    ImageFolder::open(fixture().join("images").join(name)).unwrap()
}

fn eval(model: &mut Model) -> Evaluation {
    evaluate(
        model,
        BatchLoader::new(&split("val"), LoaderOptions::new(5, Transform::val())),
        |_| {},
    )
    .unwrap()
}

/// The seed README's configuration: W8/A8 FP, 5 mantissa bits (E2M5), per-channel, the range sets
/// the maximum, current min-max for weights and all-batch min-max for activations.
fn seed_config() -> PtqConfig {
    PtqConfig {
        qmethod: "fp_quantizer".parse().unwrap(),
        qmethod_act: None,
        n_bits: 8,
        n_bits_act: None,
        fp8_mantissa_bits: 5,
        fp8_maxval: None,
        fp8_set_maxval: true,
        fp8_mse_include_mantissa_bits: false,
        fp8_allow_unsigned: false,
        weight_quant_method: PtqConfig::range_method("current_minmax").unwrap(),
        act_quant_method: PtqConfig::range_method("allminmax").unwrap(),
        act_momentum: 0.9,
        per_channel: true,
        weight_quant: true,
        act_quant: true,
        quant_setup: "all".parse().unwrap(),
        layer_formats: None,
        weight_format: None,
        act_format: None,
    }
}

/// Install, calibrate on two deterministic training batches, re-estimate BN on `bn_batches`.
fn quantize(arch: Architecture, file: &str, cfg: &PtqConfig, bn_batches: usize) -> (Model, Installed) {
    let mut model = Model::load(arch, fixture().join(file)).unwrap();
    let installed = fp8q_ptq::install(&mut model, cfg).unwrap();
    let opts = LoaderOptions::new(6, Transform::val());
    let train = split("train");
    let done = fp8q_ptq::calibrate(
        &mut model,
        &installed,
        BatchLoader::new(&train, opts.clone()),
        2,
        |_| {},
    )
    .unwrap();
    assert_eq!(done, 2);
    let used = fp8q_ptq::reestimate_bn(&mut model, BatchLoader::new(&train, opts), bn_batches, |_| {}).unwrap();
    assert_eq!(used, bn_batches);
    (model, installed)
}

/// FP32 logits on JPEG (4:2:0, 4:4:4, progressive, grayscale) and PNG photographs, decoded,
/// resized and normalized as torchvision and Pillow do: within 1e-5 relative L2 of PyTorch's.
#[test]
fn fp32_logits_match_pytorch() {
    let exp = expected();
    let val = split("val");
    let files: Vec<String> = val
        .samples
        .iter()
        .map(|(p, _)| p.strip_prefix(&val.root).unwrap().to_string_lossy().replace('\\', "/"))
        .collect();
    let want_files: Vec<&str> = exp["val_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        files, want_files,
        "validation order differs from torchvision's ImageFolder"
    );
    for (arch, file) in MODELS {
        let mut model = Model::load(arch, fixture().join(file)).unwrap();
        let ev = eval(&mut model);
        let labels: Vec<usize> = floats(&exp["labels"]).iter().map(|&l| l as usize).collect();
        assert_eq!(ev.labels, labels);
        let m = &exp["models"][file];
        let want = floats(&m["fp32_logits"]);
        let rel = rel_l2(&ev.logits, &want);
        assert!(rel <= 1e-5, "{file}: FP32 logits {rel:.2e} rel-L2 from PyTorch's");
        let classes = model.num_classes();
        for (i, (g, w)) in ev.logits.chunks(classes).zip(want.chunks(classes)).enumerate() {
            let r = rel_l2(g, w);
            assert!(
                r <= 1e-4,
                "{file}: image {} ({}) logits {r:.2e} from PyTorch's",
                i,
                files[i]
            );
        }
        assert_eq!(ev.metrics.top1(), m["fp32_top1"].as_f64().unwrap(), "{file}: top-1");
    }
}

/// Weight quantizers after calibration: per channel, the FP maximum is max(|min|, |max|) of that
/// output channel as PyTorch computed it; per tensor, the maximum over channels.
#[test]
fn weight_ranges_match_pytorch() {
    let exp = expected();
    for (arch, file) in MODELS {
        let ranges = exp["models"][file]["weight_ranges"].as_object().unwrap();
        for per_channel in [true, false] {
            let cfg = PtqConfig {
                per_channel,
                ..seed_config()
            };
            let (_, installed) = quantize(arch, file, &cfg, 0);
            let states = serde_json::to_value(installed.states()).unwrap();
            let states = states.as_object().unwrap();
            let mut checked = 0;
            for (unit, r) in ranges {
                let lo = floats(&r["min"]);
                let hi = floats(&r["max"]);
                let mut want: Vec<f64> = lo.iter().zip(&hi).map(|(a, b)| a.abs().max(b.abs())).collect();
                if !per_channel {
                    want = vec![want.iter().cloned().fold(0.0, f64::max)];
                }
                let got = floats(&states[unit]["weight"]["maxval"]);
                assert_eq!(got.len(), want.len(), "{file} {unit}");
                for (c, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!((g - w).abs() <= 1e-6 * w.abs(), "{file} {unit}[{c}]: maxval {g} vs {w}");
                }
                assert_eq!(states[unit]["weight"]["mantissa_bits"], 5, "{file} {unit}");
                checked += 1;
            }
            assert!(checked >= 20, "{file}: only {checked} weight quantizers");
        }
    }
}

/// The seed configuration end to end: every slot of quant setup `all` calibrated, evaluated;
/// E2M5 keeps the logits near the FP32 ones and the accuracy. Then BN re-estimation (one batch
/// of all twelve training images: tiny batches give noisy statistics, so only its effect is
/// checked) moves the logits and keeps them finite.
#[test]
fn seed_configuration_end_to_end() {
    let exp = expected();
    for (arch, file) in MODELS {
        let (mut model, installed) = quantize(arch, file, &seed_config(), 0);
        assert!(
            installed.slots.len() >= 20,
            "{file}: {} quantizers",
            installed.slots.len()
        );
        let ev = eval(&mut model);
        assert!(ev.logits.iter().all(|v| v.is_finite()), "{file}: non-finite logits");
        let m = &exp["models"][file];
        let rel = rel_l2(&ev.logits, &floats(&m["fp32_logits"]));
        assert!(rel > 1e-4 && rel < 0.1, "{file}: E2M5 logits {rel:.3} rel-L2 from FP32");
        let fp32_top1 = m["fp32_top1"].as_f64().unwrap();
        let top1 = ev.metrics.top1();
        assert!(top1 >= fp32_top1 - 0.2, "{file}: top-1 {top1} vs FP32 {fp32_top1}");

        let train = split("train");
        let loader = BatchLoader::new(&train, LoaderOptions::new(train.len(), Transform::val()));
        assert_eq!(fp8q_ptq::reestimate_bn(&mut model, loader, 1, |_| {}).unwrap(), 1);
        let after = eval(&mut model).logits;
        assert!(
            after.iter().all(|v| v.is_finite()),
            "{file}: non-finite logits after BN re-estimation"
        );
        assert_ne!(after, ev.logits, "{file}: BN re-estimation changed nothing");
    }
}

/// Saved quantization parameters reproduce a run bit for bit in a fresh model.
#[test]
fn saved_quant_params_reproduce_the_run() {
    let dir = std::env::temp_dir().join(format!("fp8q_ptq_small_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (arch, file) in MODELS {
        let cfg = PtqConfig {
            weight_quant_method: PtqConfig::range_method("MSE").unwrap(),
            fp8_mse_include_mantissa_bits: true,
            ..seed_config()
        };
        let (mut model, installed) = quantize(arch, file, &cfg, 0);
        let first = eval(&mut model).logits;
        let params = dir.join(format!("{file}.json"));
        installed.save_json(&params).unwrap();
        let mut fresh = Model::load(arch, fixture().join(file)).unwrap();
        let again = fp8q_ptq::install(&mut fresh, &cfg).unwrap();
        again.load_json(&params).unwrap();
        assert_eq!(installed.states(), again.states(), "{file}: states differ after reload");
        assert_eq!(eval(&mut fresh).logits, first, "{file}: reloaded run differs");
    }
    std::fs::remove_dir_all(&dir).ok();
}
