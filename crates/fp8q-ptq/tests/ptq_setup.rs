//! Quant-setup placement, save/load of quantization parameters and their error messages, on
//! synthetic ResNet-18 and MobileNetV2 weights (no files needed).

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use fp8q_nn::layers::SlotKind;
use fp8q_nn::models::{mobilenet_v2::SETTINGS, Architecture, Model};
use fp8q_ptq::{self, PtqConfig, QMethodKind, QuantSetup, SlotPlan};
use fp8q_tensors::checkpoint::Checkpoint;
use fp8q_tensors::feature_map::FeatureMap;

/// Deterministic values in [-0.5, 0.5).
fn values(n: usize, seed: usize) -> Vec<f32> {
    let mut s = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

struct Dict(BTreeMap<String, Tensor>);

impl Dict {
    fn put(&mut self, key: String, shape: &[usize], scale: f32, offset: f32) {
        let n = shape.iter().product();
        let v = values(n, self.0.len() + 1)
            .into_iter()
            .map(|x| x * scale + offset)
            .collect();
        self.0.insert(key, Tensor::from_vec(v, shape, &Device::Cpu).unwrap());
    }
    fn conv(&mut self, prefix: &str, cout: usize, cin: usize, k: usize) {
        let scale = 2.0 / ((cin * k * k) as f32).sqrt();
        self.put(format!("{prefix}.weight"), &[cout, cin, k, k], scale, 0.0);
    }
    fn bn(&mut self, prefix: &str, c: usize) {
        self.put(format!("{prefix}.weight"), &[c], 0.2, 1.0);
        self.put(format!("{prefix}.bias"), &[c], 0.2, 0.0);
        self.put(format!("{prefix}.running_mean"), &[c], 0.1, 0.0);
        self.put(format!("{prefix}.running_var"), &[c], 0.2, 1.0);
    }
}

fn resnet18() -> Model {
    let mut d = Dict(BTreeMap::new());
    d.conv("conv1", 64, 3, 7);
    d.bn("bn1", 64);
    let mut cin = 64;
    for stage in 0..4 {
        let planes = 64 << stage;
        for i in 0..2 {
            let p = format!("layer{}.{i}", stage + 1);
            d.conv(&format!("{p}.conv1"), planes, cin, 3);
            d.bn(&format!("{p}.bn1"), planes);
            d.conv(&format!("{p}.conv2"), planes, planes, 3);
            d.bn(&format!("{p}.bn2"), planes);
            if stage > 0 && i == 0 {
                d.conv(&format!("{p}.downsample.0"), planes, cin, 1);
                d.bn(&format!("{p}.downsample.1"), planes);
            }
            cin = planes;
        }
    }
    d.put("fc.weight".into(), &[10, 512], 0.1, 0.0);
    d.put("fc.bias".into(), &[10], 0.1, 0.0);
    let ckpt = Checkpoint {
        path: PathBuf::from("synthetic-resnet18"),
        tensors: d.0,
    };
    Model::from_checkpoint(Architecture::Resnet18, ckpt).unwrap()
}

fn mobilenet_v2() -> Model {
    let mut d = Dict(BTreeMap::new());
    d.conv("features.0.0", 32, 3, 3);
    d.bn("features.0.1", 32);
    let mut cin = 32;
    let mut idx = 1;
    for &(t, c, n, _) in &SETTINGS {
        for _ in 0..n {
            let p = format!("features.{idx}.conv");
            let hidden = cin * t;
            if t == 1 {
                d.conv(&format!("{p}.0"), hidden, 1, 3);
                d.bn(&format!("{p}.1"), hidden);
                d.conv(&format!("{p}.3"), c, hidden, 1);
                d.bn(&format!("{p}.4"), c);
            } else {
                d.conv(&format!("{p}.0"), hidden, cin, 1);
                d.bn(&format!("{p}.1"), hidden);
                d.conv(&format!("{p}.3"), hidden, 1, 3);
                d.bn(&format!("{p}.4"), hidden);
                d.conv(&format!("{p}.6"), c, hidden, 1);
                d.bn(&format!("{p}.7"), c);
            }
            cin = c;
            idx += 1;
        }
    }
    d.conv("features.18.0", 1280, 320, 1);
    d.bn("features.18.1", 1280);
    d.put("classifier.1.weight".into(), &[10, 1280], 0.1, 0.0);
    d.put("classifier.1.bias".into(), &[10], 0.1, 0.0);
    let ckpt = Checkpoint {
        path: PathBuf::from("synthetic-mobilenet_v2"),
        tensors: d.0,
    };
    Model::from_checkpoint(Architecture::MobilenetV2, ckpt).unwrap()
}

/// 4-bit weights and 6-bit activations so that setups' 8- and 4-bit overrides stand out.
fn config(setup: QuantSetup) -> PtqConfig {
    PtqConfig {
        n_bits: 4,
        n_bits_act: Some(6),
        qmethod: QMethodKind::SymmetricUniform,
        quant_setup: setup,
        ..PtqConfig::default()
    }
}

fn find<'a>(plan: &'a [SlotPlan], unit: &str, kind: SlotKind) -> Option<&'a SlotPlan> {
    plan.iter().find(|p| p.unit == unit && p.kind == kind)
}

fn bits(plan: &[SlotPlan], unit: &str, kind: SlotKind) -> u32 {
    find(plan, unit, kind)
        .unwrap_or_else(|| panic!("{unit} {kind:?} not planned"))
        .bits
}

#[test]
fn resnet18_setup_all_places_every_quantizer() {
    let mut m = resnet18();
    let plan = fp8q_ptq::setup::plan(&mut m, &config(QuantSetup::All)).unwrap();
    // 20 conv units × (weight + output) + 8 block outputs + fc weight and logits
    assert_eq!(plan.len(), 20 * 2 + 8 + 2);
    for (unit, kind, b) in [
        ("conv1", SlotKind::Weight, 4),
        ("conv1", SlotKind::Output, 6),
        ("layer1.0.conv2", SlotKind::Output, 6),
        ("layer2.0.downsample.0", SlotKind::Weight, 4),
        ("layer2.0.downsample.0", SlotKind::Output, 6),
        ("layer1.0", SlotKind::BlockOutput, 6),
        ("layer4.1", SlotKind::BlockOutput, 6),
        ("fc", SlotKind::Weight, 4),
        ("fc", SlotKind::Output, 6),
    ] {
        assert_eq!(bits(&plan, unit, kind), b, "{unit} {kind:?}");
    }
    assert!(plan.iter().all(|p| !p.quantize_input));
    // names are the checkpoint prefixes, in execution order
    assert_eq!(plan[0].unit, "conv1");
    assert_eq!(plan.last().unwrap().unit, "fc");
}

#[test]
fn resnet18_other_setups() {
    let mut m = resnet18();
    let fp_logits = fp8q_ptq::setup::plan(&mut m, &config(QuantSetup::FpLogits)).unwrap();
    assert_eq!(fp_logits.len(), 49);
    assert!(find(&fp_logits, "fc", SlotKind::Output).is_none());

    let lsq = fp8q_ptq::setup::plan(&mut m, &config(QuantSetup::Lsq)).unwrap();
    assert!(find(&lsq, "fc", SlotKind::Output).is_none());
    assert_eq!(bits(&lsq, "conv1", SlotKind::Weight), 8);
    assert_eq!(bits(&lsq, "fc", SlotKind::Weight), 8);
    assert_eq!(bits(&lsq, "layer4.1", SlotKind::BlockOutput), 8);
    assert_eq!(bits(&lsq, "layer4.1.conv2", SlotKind::Output), 8);
    assert_eq!(bits(&lsq, "layer4.0", SlotKind::BlockOutput), 6);
    assert_eq!(bits(&lsq, "layer4.1.conv1", SlotKind::Output), 6);
    assert_eq!(bits(&lsq, "layer4.1.conv2", SlotKind::Weight), 4);

    let paper = fp8q_ptq::setup::plan(&mut m, &config(QuantSetup::LsqPaper)).unwrap();
    assert!(paper.iter().all(|p| p.kind != SlotKind::BlockOutput));
    assert!(find(&paper, "conv1", SlotKind::Output).is_none());
    assert_eq!(bits(&paper, "conv1", SlotKind::Weight), 8);
    assert_eq!(bits(&paper, "fc", SlotKind::Weight), 8);
    assert_eq!(bits(&paper, "fc", SlotKind::Output), 8);
    assert_eq!(bits(&paper, "layer1.0.conv1", SlotKind::Output), 6);
    assert!(paper
        .iter()
        .filter(|p| p.kind == SlotKind::Output)
        .all(|p| p.quantize_input));

    let fc4 = fp8q_ptq::setup::plan(&mut m, &config(QuantSetup::Fc4)).unwrap();
    assert_eq!(fc4.len(), 50);
    assert_eq!(bits(&fc4, "conv1", SlotKind::Weight), 8);
    assert_eq!(bits(&fc4, "fc", SlotKind::Weight), 4);
    assert_eq!(bits(&fc4, "fc", SlotKind::Output), 6);

    let err = fp8q_ptq::setup::plan(&mut m, &config(QuantSetup::Fc4Dw8))
        .unwrap_err()
        .to_string();
    assert!(err.contains("fc4_dw8") && err.contains("MobileNetV2"), "{err}");

    let weights_only = PtqConfig {
        act_quant: false,
        ..config(QuantSetup::All)
    };
    let plan = fp8q_ptq::setup::plan(&mut m, &weights_only).unwrap();
    assert_eq!(plan.len(), 21);
    assert!(plan.iter().all(|p| p.kind == SlotKind::Weight));
}

#[test]
fn mobilenet_v2_setups() {
    let mut m = mobilenet_v2();
    let all = fp8q_ptq::setup::plan(&mut m, &config(QuantSetup::All)).unwrap();
    // 52 conv units × 2 + 10 residual blocks + classifier weight and logits
    assert_eq!(all.len(), 52 * 2 + 10 + 2);
    assert!(find(&all, "features.2", SlotKind::BlockOutput).is_none());
    assert!(find(&all, "features.3", SlotKind::BlockOutput).is_some());
    assert!(find(&all, "features.1", SlotKind::BlockOutput).is_none());
    assert_eq!(bits(&all, "features.0.0", SlotKind::Weight), 4);
    assert_eq!(bits(&all, "classifier.1", SlotKind::Output), 6);

    let lsq = fp8q_ptq::setup::plan(&mut m, &config(QuantSetup::Lsq)).unwrap();
    assert_eq!(bits(&lsq, "features.0.0", SlotKind::Weight), 8);
    assert_eq!(bits(&lsq, "features.18.0", SlotKind::Output), 8);
    assert_eq!(bits(&lsq, "classifier.1", SlotKind::Weight), 8);
    assert!(find(&lsq, "classifier.1", SlotKind::Output).is_none());

    let dw8 = fp8q_ptq::setup::plan(&mut m, &config(QuantSetup::Fc4Dw8)).unwrap();
    assert_eq!(bits(&dw8, "features.0.0", SlotKind::Weight), 8);
    assert_eq!(bits(&dw8, "classifier.1", SlotKind::Weight), 4);
    assert_eq!(bits(&dw8, "features.1.conv.0", SlotKind::Weight), 8); // depthwise (t = 1)
    assert_eq!(bits(&dw8, "features.2.conv.3", SlotKind::Weight), 8); // depthwise
    assert_eq!(bits(&dw8, "features.2.conv.0", SlotKind::Weight), 4); // pointwise
    assert_eq!(bits(&dw8, "features.18.0", SlotKind::Weight), 4);
    let fc4 = fp8q_ptq::setup::plan(&mut m, &config(QuantSetup::Fc4)).unwrap();
    assert_eq!(bits(&fc4, "features.2.conv.3", SlotKind::Weight), 4);

    let paper = fp8q_ptq::setup::plan(&mut m, &config(QuantSetup::LsqPaper)).unwrap();
    assert!(paper.iter().all(|p| p.kind != SlotKind::BlockOutput));
    assert!(find(&paper, "features.0.0", SlotKind::Output).is_none());
    assert_eq!(bits(&paper, "classifier.1", SlotKind::Output), 8);
}

fn input(n: usize, hw: usize, seed: usize) -> FeatureMap {
    FeatureMap::from_vec(values(n * 3 * hw * hw, seed), n, 3, hw, hw).unwrap()
}

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("fp8q-ptq-{}-{name}", std::process::id()))
}

/// Calibrate a synthetic ResNet-18 on a small batch with per-channel FP8 weights.
fn calibrated(cfg: &PtqConfig) -> (Model, fp8q_ptq::Installed) {
    let mut m = resnet18();
    let installed = fp8q_ptq::install(&mut m, cfg).unwrap();
    let batches = vec![Ok(fp8q_images::Batch {
        images: input(2, 64, 7),
        labels: vec![0, 1],
        indices: vec![0, 1],
        skipped: vec![],
    })];
    assert_eq!(fp8q_ptq::calibrate(&mut m, &installed, batches, 1, |_| {}).unwrap(), 1);
    (m, installed)
}

fn fp8_config() -> PtqConfig {
    PtqConfig {
        per_channel: true,
        fp8_set_maxval: true,
        fp8_mantissa_bits: 3,
        ..PtqConfig::default()
    }
}

#[test]
fn save_and_load_round_trip() {
    let cfg = fp8_config();
    let (mut a, installed) = calibrated(&cfg);
    let path = temp_file("round-trip.json");
    installed.save_json(&path).unwrap();
    let x = input(1, 64, 11);
    let ya = a.forward_fm(x.clone()).unwrap();
    // a second pass uses the cached quantized weights: same result
    assert_eq!(a.forward_fm(x.clone()).unwrap(), ya);

    let mut b = resnet18();
    let loaded = fp8q_ptq::install(&mut b, &cfg).unwrap();
    loaded.load_json(&path).unwrap();
    // serde_json's `float_roundtrip`: every saved number reads back exactly
    assert_eq!(
        serde_json::to_value(loaded.states()).unwrap(),
        serde_json::to_value(installed.states()).unwrap()
    );
    assert_eq!(b.forward_fm(x).unwrap(), ya, "loaded quantizers give different logits");
    // the file has the golden shape: unit → {weight, act}
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["conv1"]["weight"]["kind"], "fp");
    assert_eq!(v["conv1"]["weight"]["maxval"].as_array().unwrap().len(), 64);
    assert_eq!(v["layer1.0"]["act"]["kind"], "fp");
    assert!(v["layer1.0"].get("weight").is_none());
    std::fs::remove_file(&path).ok();
}

#[test]
fn bad_quant_params_files_name_the_file_and_unit() {
    let cfg = fp8_config();
    let (_, installed) = calibrated(&cfg);
    let mut states = installed.states();
    let load = |states: &fp8q_ptq::UnitStates, name: &str| {
        let path = temp_file(name);
        std::fs::write(&path, serde_json::to_string(states).unwrap()).unwrap();
        let mut m = resnet18();
        let fresh = fp8q_ptq::install(&mut m, &cfg).unwrap();
        let err = fresh.load_json(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).ok();
        (path, err)
    };

    // a missing unit
    let mut missing = states.clone();
    missing.remove("layer2.1.conv1");
    let (path, err) = load(&missing, "missing.json");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("layer2.1.conv1") && err.contains("missing"), "{err}");

    // the wrong kind: an INT state (without a recorded format, as in older files) in an FP slot
    let int = fp8q_core::manager::QuantizerState::Int {
        format: None,
        n_bits: 8,
        delta: vec![0.1],
        zero_point: vec![0.0],
        int_min: Some(-128),
        int_max: Some(127),
    };
    states.get_mut("layer1.0").unwrap().act = Some(int);
    let (path, err) = load(&states, "wrong-kind.json");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("layer1.0") && err.contains("INT"), "{err}");

    // a unit this model does not have
    let mut extra = installed.states();
    extra.insert("layer9.0".into(), extra["layer1.0"].clone());
    let (_, err) = load(&extra, "extra.json");
    assert!(err.contains("layer9.0"), "{err}");

    // not JSON of the right shape
    let path = temp_file("garbage.json");
    std::fs::write(&path, r#"{"conv1": {"weight": {"kind": "nope"}}}"#).unwrap();
    let mut m = resnet18();
    let err = fp8q_ptq::install(&mut m, &cfg)
        .unwrap()
        .load_json(&path)
        .unwrap_err()
        .to_string();
    std::fs::remove_file(&path).ok();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("conv1"),
        "{err}"
    );

    // an unreadable file
    let err = installed
        .load_json(&temp_file("does-not-exist.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does-not-exist.json"), "{err}");
}

#[test]
fn lsq_paper_quantizes_inputs_and_runs() {
    let cfg = PtqConfig {
        quant_setup: QuantSetup::LsqPaper,
        ..fp8_config()
    };
    let (mut m, installed) = calibrated(&cfg);
    let states = installed.states();
    assert!(!states.contains_key("layer1.0"));
    assert!(states["conv1"].act.is_none() && states["conv1"].weight.is_some());
    assert!(states["fc"].act.is_some());
    let y = m.forward_fm(input(1, 64, 3)).unwrap();
    assert!(y.iter().all(|v| v.is_finite()));
}

/// `fc4` with the paper's FP quantizer and its default split (m = 4): the 4-bit FC weight cannot
/// hold 4 mantissa bits, so it keeps one exponent bit (E1M2); every other slot keeps m = 4.
#[test]
fn fc4_with_the_default_fp_split_keeps_an_exponent_bit() {
    let mut m = resnet18();
    let cfg = PtqConfig {
        quant_setup: QuantSetup::Fc4,
        ..PtqConfig::default()
    };
    assert_eq!(cfg.fp8_mantissa_bits, 4);
    let installed = fp8q_ptq::install(&mut m, &cfg).unwrap();
    let method = |unit: &str| {
        let h = installed
            .slots
            .iter()
            .find(|h| h.unit == unit && h.kind == SlotKind::Weight)
            .unwrap();
        h.manager().method()
    };
    let fp = |n_bits, mantissa_bits| fp8q_core::quantizer::QuantMethod::Fp {
        n_bits,
        mantissa_bits,
        allow_unsigned: false,
    };
    assert_eq!(method("fc"), fp(4, 2));
    assert_eq!(method("conv1"), fp(8, 4));
    assert_eq!(method("layer1.0.conv1"), fp(8, 4));
    assert_eq!(cfg.fp_mantissa_bits(3), 1);
    assert_eq!(cfg.fp_mantissa_bits(16), 4);
}

/// With set-maxval off, a slot whose width the quant setup changes keeps the maximum the
/// reference computed when it built the quantizer, from `--n-bits` / `--n-bits-act` and
/// `--fp8-mantissa-bits`: LSQ with `--n-bits 6 --fp8-mantissa-bits 2` puts the first conv's
/// weight in 8 bits (E5M2) but its maximum stays E3M2's default 14, not E5M2's 57344 (found by
/// `tools/reference_diff.py`: the reference's `conv1` weight maxval is 14.0).
#[test]
fn widened_slots_keep_the_maximum_of_the_configured_width_without_set_maxval() {
    for (setup, unit, kind) in [
        (QuantSetup::Lsq, "conv1", SlotKind::Weight),
        (QuantSetup::Lsq, "fc", SlotKind::Weight),
        (QuantSetup::Lsq, "layer4.1", SlotKind::BlockOutput),
        (QuantSetup::LsqPaper, "fc", SlotKind::Output),
        (QuantSetup::Fc4, "conv1", SlotKind::Weight),
    ] {
        let mut m = resnet18();
        let cfg = PtqConfig {
            n_bits: 6,
            fp8_mantissa_bits: 2,
            quant_setup: setup,
            ..PtqConfig::default()
        };
        let installed = fp8q_ptq::install(&mut m, &cfg).unwrap();
        let h = installed
            .slots
            .iter()
            .find(|h| h.unit == unit && h.kind == kind)
            .unwrap();
        match h.state() {
            Some(fp8q_core::manager::QuantizerState::Fp {
                maxval,
                mantissa_bits,
                n_bits,
                ..
            }) => {
                assert_eq!((n_bits, mantissa_bits), (Some(8), 2), "{setup:?} {unit}");
                assert_eq!(maxval, vec![14.0], "{setup:?} {unit}: (2 - 1/4) · 2^(7 - 4)");
            }
            other => panic!("{setup:?} {unit}: {other:?}"),
        }
        // a slot of the configured width: its own default maximum (E3M2: 14 too)
        let h = installed
            .slots
            .iter()
            .find(|h| h.unit == "layer1.0.conv1" && h.kind == SlotKind::Weight)
            .unwrap();
        assert!(
            matches!(h.state(), Some(fp8q_core::manager::QuantizerState::Fp { maxval, .. }) if maxval == vec![14.0])
        );
    }
    // an explicit --fp8-maxval wins everywhere
    let mut m = resnet18();
    let cfg = PtqConfig {
        n_bits: 6,
        fp8_mantissa_bits: 2,
        fp8_maxval: Some(3.0),
        quant_setup: QuantSetup::Lsq,
        ..PtqConfig::default()
    };
    let installed = fp8q_ptq::install(&mut m, &cfg).unwrap();
    let h = installed
        .slots
        .iter()
        .find(|h| h.unit == "conv1" && h.kind == SlotKind::Weight)
        .unwrap();
    assert!(matches!(h.state(), Some(fp8q_core::manager::QuantizerState::Fp { maxval, .. }) if maxval == vec![3.0]));
}
