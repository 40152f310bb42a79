//! Helpers shared by the PTQ tests (each test file uses some of them).
#![allow(dead_code)]

use std::path::PathBuf;

/// The golden PTQ folder named by `FP8Q_GOLDEN_PTQ` (about 85 MB of models, images and reference
/// runs kept outside the repository; `.ci/run` sets it and fails without it).
///
/// `None` when the variable is unset: the test then returns early, saying so, so that
/// `cargo test` passes on a fresh clone with nothing beside it (the in-repository fixture
/// `tests/data/ptq_small` covers the pipeline end to end there). When the variable is set, the
/// folder must hold `runs/`, `weights/` and `images/{train,val}/`, or the test fails: the parity
/// tests must not pass by finding nothing.
pub fn golden_dir() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("FP8Q_GOLDEN_PTQ") else {
        eprintln!("FP8Q_GOLDEN_PTQ is not set: golden PTQ parity test not run (see docs/ptq.md)");
        return None;
    };
    let dir = PathBuf::from(dir);
    assert!(
        ["runs", "weights", "images/train", "images/val"]
            .iter()
            .all(|d| dir.join(d).is_dir()),
        "FP8Q_GOLDEN_PTQ={} does not hold runs/, weights/ and images/{{train,val}}/",
        dir.display()
    );
    Some(dir)
}

/// The logit SQNR against FP32, on `images` training images spread evenly (validation
/// transform: the sensitivity images of `fp8q analyze`), of the PTQ pipeline run of `cfg` with
/// `layers` (flexible bias): installed, calibrated and BN re-estimated through the library's
/// public steps, as `validate-quantized --layer-formats` runs them.
pub fn sensitivity_sqnr(cfg: &fp8q_ptq::run::RunConfig, layers: fp8q_ptq::LayerFormats, images: usize) -> f64 {
    use fp8q_images::{BatchLoader, LoaderOptions, Transform};
    use fp8q_ptq::run::{load_model, quantize, reestimate_bn, TrainingSet};
    let mut c = cfg.clone();
    c.ptq.fp8_set_maxval = true;
    c.ptq.layer_formats = Some(layers);
    let mut train = TrainingSet::new(&c);
    let mut folder = train.get().unwrap().clone();
    folder.subsample(images);
    let opts = LoaderOptions::new(
        c.batch_size,
        Transform::Val {
            size: 224,
            filter: c.interpolation,
        },
    );
    let (mut fp32, _) = load_model(&c, &mut |_| {}).unwrap();
    let (mut model, _) = load_model(&c, &mut |_| {}).unwrap();
    let _installed = quantize(&c, &mut model, &mut train, &mut |_| {}).unwrap();
    reestimate_bn(&c, &mut model, &mut train, &mut |_| {}).unwrap();
    let (mut signal, mut noise) = (0.0f64, 0.0f64);
    for batch in BatchLoader::new(&folder, opts) {
        let x = batch.unwrap().images;
        let want = fp32.forward_fm(x.clone()).unwrap();
        let got = model.forward_fm(x).unwrap();
        for (g, w) in got.iter().zip(&want) {
            signal += (*w as f64).powi(2);
            noise += (*g as f64 - *w as f64).powi(2);
        }
    }
    10.0 * (signal / noise).log10()
}

/// The `--layer-formats` of analysis rows: each slot in its recommended format.
pub fn recommended_formats(rows: &[fp8q_core::analysis::format_choice::AnalysisRow]) -> fp8q_ptq::LayerFormats {
    use fp8q_core::analysis::format_choice::Slot;
    use fp8q_nn::layers::SlotKind;
    let mut layers = fp8q_ptq::LayerFormats::default();
    for r in rows {
        let kind = if r.slot == Slot::Weight {
            SlotKind::Weight
        } else {
            SlotKind::Output
        };
        layers.set(&r.unit, kind, r.recommended.parse().unwrap());
    }
    layers
}

/// The checks every verified mix must pass: the best uniform format is the best of the uniform
/// ones, the mix is not below it, the rows recommend what the mix measured (run again through
/// the pipeline on the same images), and a fall-back recommends the best uniform format
/// everywhere.
pub fn check_mix(cfg: &fp8q_ptq::analyze::AnalysisConfig, a: &fp8q_ptq::analyze::NetworkAnalysis) {
    let m = a.mix.as_ref().expect("a mix with sensitivity");
    let arch = cfg.run.arch;
    let best = m.uniform.iter().map(|u| u.sqnr_db).fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(m.best_uniform.sqnr_db, best, "{arch}: best uniform");
    assert!(
        m.mixed_sqnr_db >= m.best_uniform.sqnr_db,
        "{arch}: mix {:.3} dB below uniform {} {:.3} dB",
        m.mixed_sqnr_db,
        m.best_uniform.format,
        m.best_uniform.sqnr_db
    );
    if m.fell_back_to_uniform {
        assert!(a.rows.iter().all(|r| r.recommended == m.best_uniform.format), "{arch}");
    }
    let again = sensitivity_sqnr(&cfg.run, recommended_formats(&a.rows), cfg.sensitivity_images);
    assert!(
        (again - m.mixed_sqnr_db).abs() < 1e-6,
        "{arch}: the recommended formats give {again} dB run again, the report says {}",
        m.mixed_sqnr_db
    );
}
