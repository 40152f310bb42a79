//! Mixed-format PTQ from `analyze`'s recommendation, on the golden networks (`FP8Q_GOLDEN_PTQ`):
//! for ResNet-18 and MobileNetV2, the recommended mix, verified end to end on the sensitivity
//! images (8 training images, validation transform: enough for the property, and the full-width
//! golden MobileNetV2 makes every image count in CI's time), measures at least as high a logit SQNR
//! against FP32 as the best *uniform* format among E5M2, E4M3, E3M4, E2M5 and INT8, with the
//! same estimators (the seed README's: per-channel current min–max for weights, all-batch
//! min–max for activations, flexible bias); and the rows' recommended formats, run again through
//! the PTQ pipeline, give exactly the SQNR the report states.
//!
//! (On images the recommendation was not chosen on, such as `val/`, no format choice can promise
//! that: see docs/analyze.md.)

use fp8q_nn::models::Architecture;
use fp8q_ptq::analyze::{analyze_network, AnalysisConfig, DEFAULT_FORMATS};
use fp8q_ptq::run::{CalibTransform, RunConfig};
use fp8q_ptq::PtqConfig;

mod common;
use common::golden_dir;

fn check(arch: Architecture, weights: &str) {
    let Some(dir) = golden_dir() else { return };
    let mut run = RunConfig::new(arch, dir.join("images"));
    run.model_dir = Some(dir.join("weights").join(weights));
    run.batch_size = 8;
    run.num_est_batches = 2;
    run.calib_transform = CalibTransform::Val;
    run.ptq = PtqConfig {
        per_channel: true,
        fp8_set_maxval: true,
        fp8_mantissa_bits: 5,
        fp8_mse_include_mantissa_bits: false,
        weight_quant_method: PtqConfig::range_method("current_minmax").unwrap(),
        act_quant_method: PtqConfig::range_method("allminmax").unwrap(),
        ..PtqConfig::default()
    };
    let cfg = AnalysisConfig {
        run,
        formats: DEFAULT_FORMATS.iter().map(|s| s.to_string()).collect(),
        sensitivity_images: 8,
    };
    let analysis = analyze_network(&cfg, &mut |_| {}).unwrap();
    let m = analysis.mix.as_ref().unwrap();
    eprintln!("{arch}: {m:#?}");
    common::check_mix(&cfg, &analysis);
}

#[test]
fn resnet18_mixed_formats_beat_every_uniform_format() {
    check(Architecture::Resnet18, "resnet18_shapes10.pth");
}

#[test]
fn mobilenet_v2_mixed_formats_beat_every_uniform_format() {
    check(Architecture::MobilenetV2, "mobilenet_v2_shapes10.pth");
}
