//! Mixed-format PTQ from `analyze`'s recommendation, on the golden networks (`FP8Q_GOLDEN_PTQ`):
//! for ResNet-18 and MobileNetV2, the run that gives every slot its recommended format has a
//! logit SQNR against FP32 at least as high as the best *uniform* 8-bit format among
//! E5M2, E4M3, E3M4, E2M5 and INT8, with the same estimators (the seed README's: per-channel
//! current min–max for weights, all-batch min–max for activations, flexible bias). The
//! recommendation comes from the training images only; the SQNRs are measured on `val/`.

use fp8q_core::analysis::format_choice::Slot;
use fp8q_core::format::Format;
use fp8q_nn::layers::SlotKind;
use fp8q_nn::models::{Architecture, Model};
use fp8q_ptq::analyze::{analyze_network, AnalysisConfig, DEFAULT_FORMATS};
use fp8q_ptq::run::{run, CalibTransform, RunConfig, RunReport};
use fp8q_ptq::{self, LayerFormats, PtqConfig};

mod common;
use common::golden_dir;

fn sqnr_db(reference: &[f32], x: &[f32]) -> f64 {
    let signal: f64 = reference.iter().map(|&v| (v as f64).powi(2)).sum();
    let noise: f64 = reference
        .iter()
        .zip(x)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    10.0 * (signal / noise).log10()
}

fn base(arch: Architecture, weights: &str) -> Option<RunConfig> {
    let dir = golden_dir()?;
    let mut cfg = RunConfig::new(arch, dir.join("images"));
    cfg.model_dir = Some(dir.join("weights").join(weights));
    cfg.batch_size = 8;
    cfg.num_est_batches = 2;
    cfg.calib_transform = CalibTransform::Val;
    cfg.ptq = PtqConfig {
        per_channel: true,
        fp8_set_maxval: true,
        fp8_mantissa_bits: 5,
        fp8_mse_include_mantissa_bits: false,
        weight_quant_method: PtqConfig::range_method("current_minmax").unwrap(),
        act_quant_method: PtqConfig::range_method("allminmax").unwrap(),
        ..PtqConfig::default()
    };
    Some(cfg)
}

fn with_formats(cfg: &RunConfig, formats: LayerFormats) -> RunReport {
    let mut c = cfg.clone();
    c.ptq.layer_formats = Some(formats);
    run(&c, &mut |_| {}).unwrap()
}

fn check(arch: Architecture, weights: &str) {
    let Some(cfg) = base(arch, weights) else { return };
    let mut fp32_cfg = cfg.clone();
    fp32_cfg.ptq.weight_quant = false;
    fp32_cfg.ptq.act_quant = false;
    let fp32 = run(&fp32_cfg, &mut |_| {}).unwrap();

    let analysis = analyze_network(
        &AnalysisConfig {
            run: cfg.clone(),
            formats: DEFAULT_FORMATS.iter().map(|s| s.to_string()).collect(),
            sensitivity_images: 64,
        },
        &mut |_| {},
    )
    .unwrap();
    let kind = |s: Slot| {
        if s == Slot::Weight {
            SlotKind::Weight
        } else {
            SlotKind::Output
        }
    };
    let mut mixed = LayerFormats::default();
    for row in &analysis.rows {
        mixed.set(&row.unit, kind(row.slot), row.recommended.parse().unwrap());
    }
    let m = with_formats(&cfg, mixed);
    let mixed_db = sqnr_db(&fp32.logits, &m.logits);
    eprintln!(
        "{arch}: mixed (analyze's recommendation) {mixed_db:.2} dB, top-1 {:.1}% (FP32 {:.1}%)",
        100.0 * m.metrics.top1(),
        100.0 * fp32.metrics.top1()
    );

    let mut model = Model::load(arch, cfg.model_dir.as_ref().unwrap()).unwrap();
    let plan = fp8q_ptq::setup::plan(&mut model, &cfg.ptq).unwrap();
    let mut best = f64::NEG_INFINITY;
    for name in DEFAULT_FORMATS {
        let f: Format = name.parse().unwrap();
        let mut uniform = LayerFormats::default();
        for p in &plan {
            uniform.set(&p.unit, p.kind, f);
        }
        let u = with_formats(&cfg, uniform);
        let db = sqnr_db(&fp32.logits, &u.logits);
        eprintln!(
            "{arch}: uniform {name} {db:.2} dB, top-1 {:.1}%",
            100.0 * u.metrics.top1()
        );
        best = best.max(db);
    }
    assert!(
        mixed_db >= best,
        "{arch}: the recommended mixed formats give {mixed_db:.2} dB, the best uniform format {best:.2} dB"
    );
}

#[test]
fn resnet18_mixed_formats_beat_every_uniform_format() {
    check(Architecture::Resnet18, "resnet18_shapes10.pth");
}

#[test]
fn mobilenet_v2_mixed_formats_beat_every_uniform_format() {
    check(Architecture::MobilenetV2, "mobilenet_v2_shapes10.pth");
}
