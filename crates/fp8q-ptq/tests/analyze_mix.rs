//! The recommended mix of `fp8q analyze` on a network is verified end to end (issue 20): on the
//! sensitivity images it never measures below the best uniform format, and the rows recommend
//! exactly the mix it measured. On the fixture's ResNet-18 the per-slot choice made before
//! (each slot in its own best format) loses to uniform E2M5: the case these tests pin.

use std::path::{Path, PathBuf};

use fp8q_nn::models::Architecture;
use fp8q_ptq::analyze::{analyze_network, AnalysisConfig, DEFAULT_FORMATS};
use fp8q_ptq::run::{CalibTransform, RunConfig};
use fp8q_ptq::PtqConfig;

mod common;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ptq_small")
}

fn config(arch: Architecture, file: &str) -> AnalysisConfig {
    let mut run = RunConfig::new(arch, fixture().join("images"));
    run.model_dir = Some(fixture().join(file));
    run.batch_size = 4;
    run.num_est_batches = 2;
    // the command line's defaults: training transform for calibration, BN re-estimation
    run.calib_transform = CalibTransform::Train;
    run.reestimate_bn = true;
    run.ptq = PtqConfig {
        per_channel: true,
        weight_quant_method: PtqConfig::range_method("current_minmax").unwrap(),
        act_quant_method: PtqConfig::range_method("allminmax").unwrap(),
        ..PtqConfig::default()
    };
    AnalysisConfig {
        run,
        formats: DEFAULT_FORMATS.iter().map(|s| s.to_string()).collect(),
        sensitivity_images: 16,
    }
}

#[test]
fn resnet18_where_the_per_slot_choice_loses_to_a_uniform_format() {
    let cfg = config(Architecture::Resnet18, "resnet18_narrow.pth");
    let a = analyze_network(&cfg, &mut |_| {}).unwrap();
    let m = a.mix.as_ref().unwrap();
    eprintln!("{m:#?}");
    assert!(
        m.per_slot_sqnr_db < m.best_uniform.sqnr_db,
        "the case this test pins: the per-slot choice ({:.3} dB) below uniform {} ({:.3} dB)",
        m.per_slot_sqnr_db,
        m.best_uniform.format,
        m.best_uniform.sqnr_db
    );
    common::check_mix(&cfg, &a);
}

#[test]
fn mobilenet_v2_mix_beats_every_uniform_format() {
    let cfg = config(Architecture::MobilenetV2, "mobilenet_v2_narrow.pth.tar");
    let a = analyze_network(&cfg, &mut |_| {}).unwrap();
    let m = a.mix.as_ref().unwrap();
    eprintln!("{m:#?}");
    common::check_mix(&cfg, &a);
    assert!(m.switches_kept > 0 && !m.fell_back_to_uniform, "{m:#?}");
    assert!(m.mixed_sqnr_db > m.best_uniform.sqnr_db, "{m:#?}");
}

#[test]
fn without_sensitivity_there_is_no_mix() {
    let mut cfg = config(Architecture::Resnet18, "resnet18_narrow.pth");
    cfg.sensitivity_images = 0;
    let a = analyze_network(&cfg, &mut |_| {}).unwrap();
    assert!(a.mix.is_none());
}
