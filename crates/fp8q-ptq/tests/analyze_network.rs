//! `fp8q_ptq::analyze::analyze_network` on the in-repository fixture (`tests/data/ptq_small`):
//! one row per slot the quant setup places, tensor SQNRs that agree with the PTQ pipeline's own
//! quantizer, and a network sensitivity (computed from cached stage inputs) that equals a full
//! forward pass with that one slot quantized.

use std::path::{Path, PathBuf};

use fp8q_core::analysis::format_choice::Slot;
use fp8q_core::manager::QuantManager;
use fp8q_images::{BatchLoader, ImageFolder, LoaderOptions, Transform};
use fp8q_nn::layers::SlotKind;
use fp8q_nn::models::{Architecture, Model};
use fp8q_ptq::analyze::{analyze_network, slot_config, AnalysisConfig};
use fp8q_ptq::run::{CalibTransform, RunConfig};
use fp8q_ptq::{self, ManagedQuantizer, PtqConfig, SlotPlan};

const MODELS: [(Architecture, &str); 2] = [
    (Architecture::Resnet18, "resnet18_narrow.pth"),
    (Architecture::MobilenetV2, "mobilenet_v2_narrow.pth.tar"),
];
const FORMATS: [&str; 3] = ["e4m3", "e2m5", "int8"];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ptq_small")
}

fn config(arch: Architecture, file: &str, sensitivity_images: usize) -> AnalysisConfig {
    let mut run = RunConfig::new(arch, fixture().join("images"));
    run.model_dir = Some(fixture().join(file));
    run.batch_size = 4;
    run.num_est_batches = 2;
    run.calib_transform = CalibTransform::Val;
    run.ptq = PtqConfig {
        per_channel: true,
        weight_quant_method: PtqConfig::range_method("current_minmax").unwrap(),
        act_quant_method: PtqConfig::range_method("allminmax").unwrap(),
        ..PtqConfig::default()
    };
    AnalysisConfig {
        run,
        formats: FORMATS.iter().map(|s| s.to_string()).collect(),
        sensitivity_images,
    }
}

fn db(signal: f64, noise: f64) -> f64 {
    10.0 * (signal / noise).log10()
}

/// SQNR of `x` quantized by a fresh `format` quantizer of a weight slot, calibrated on `x` by the
/// manager the PTQ pipeline uses.
fn weight_sqnr(ptq: &PtqConfig, unit: &str, format: &str, x: &[f32], channels: usize) -> (f64, QuantManager) {
    let slot = SlotPlan {
        unit: unit.to_string(),
        kind: SlotKind::Weight,
        bits: 8,
        quantize_input: false,
        format: None,
    };
    let mut m = QuantManager::new(slot_config(ptq, &slot, format.parse().unwrap()).unwrap()).unwrap();
    let mut q = x.to_vec();
    m.forward(&mut q, channels).unwrap();
    m.fix();
    let signal: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
    let noise: f64 = x.iter().zip(&q).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    (db(signal, noise), m)
}

#[test]
fn one_row_per_planned_slot_with_the_pipelines_weight_sqnr() {
    for (arch, file) in MODELS {
        let cfg = config(arch, file, 0);
        let out = analyze_network(&cfg, &mut |_| {}).unwrap();
        let mut model = Model::load(arch, fixture().join(file)).unwrap();
        let plan = fp8q_ptq::setup::plan(&mut model, &cfg.run.ptq).unwrap();
        assert_eq!(out.rows.len(), plan.len(), "{file}");
        for (row, p) in out.rows.iter().zip(&plan) {
            assert_eq!(row.unit, p.unit);
            let want = if p.kind == SlotKind::Weight {
                Slot::Weight
            } else {
                Slot::Act
            };
            assert_eq!(row.slot, want, "{}", p.unit);
            assert!(row.output_sqnr_db.is_none());
            assert_eq!(row.recommended, row.measured_best);
        }
        assert_eq!(out.calibration_batches, 2);
        // every conv weight's SQNR is that of the PTQ pipeline's quantizer on the same tensor
        let mut checked = 0;
        for u in model.units_mut() {
            let row = out
                .rows
                .iter()
                .find(|r| r.unit == u.name && r.slot == Slot::Weight)
                .unwrap();
            let w: Vec<f32> = u.conv.weight.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(row.numel as usize, w.len());
            for f in FORMATS {
                let (want, _) = weight_sqnr(&cfg.run.ptq, &u.name, f, &w, u.conv.out_channels);
                let got = *row.sqnr_db.get(f).unwrap_or_else(|| panic!("{}: no {f}", u.name));
                assert!(
                    (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                    "{} {f}: {got} vs {want}",
                    u.name
                );
            }
            checked += 1;
        }
        assert!(checked >= 10, "{file}: {checked} units");
    }
}

#[test]
fn sensitivity_equals_a_full_forward_with_one_slot_quantized() {
    for (arch, file) in MODELS {
        let cfg = config(arch, file, 6);
        let out = analyze_network(&cfg, &mut |_| {}).unwrap();
        for row in &out.rows {
            let s = row.output_sqnr_db.as_ref().unwrap();
            assert_eq!(s.formats().collect::<Vec<_>>(), FORMATS);
            // the recommendation is the verified mix's (tests/analyze_mix.rs), one of the formats
            assert!(s.get(&row.recommended).is_some(), "{}", row.unit);
        }
        assert!(out.mix.is_some());
        // the images: 6 training images spread evenly, validation transform
        let mut train = ImageFolder::open(fixture().join("images/train")).unwrap();
        train.subsample(6);
        let mut model = Model::load(arch, fixture().join(file)).unwrap();
        let run = |model: &mut Model| -> Vec<f32> {
            let mut logits = Vec::new();
            for b in BatchLoader::new(&train, LoaderOptions::new(4, Transform::val())) {
                logits.extend(model.forward_fm(b.unwrap().images).unwrap());
            }
            logits
        };
        let fp32 = run(&mut model);
        // a weight slot in the middle of the network and the last conv's, through the whole
        // network with nothing else quantized
        let units: Vec<String> = model.units_mut().iter().map(|u| u.name.clone()).collect();
        for unit in [&units[units.len() / 2], units.last().unwrap()] {
            let row = out
                .rows
                .iter()
                .find(|r| &r.unit == unit && r.slot == Slot::Weight)
                .unwrap();
            for f in FORMATS {
                let u = model.units_mut().into_iter().find(|u| &u.name == unit).unwrap();
                let w: Vec<f32> = u.conv.weight.flatten_all().unwrap().to_vec1().unwrap();
                let (_, manager) = weight_sqnr(&cfg.run.ptq, &u.name, f, &w, u.conv.out_channels);
                model.visit_slots(&mut |n, k, slot| {
                    slot.take();
                    if n == unit && k == SlotKind::Weight {
                        slot.set(Box::new(ManagedQuantizer::new(n, k, manager.clone()).0));
                    }
                });
                let q = run(&mut model);
                let signal: f64 = fp32.iter().map(|&v| (v as f64).powi(2)).sum();
                let noise: f64 = fp32.iter().zip(&q).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
                let want = db(signal, noise);
                let got = *row.output_sqnr_db.as_ref().unwrap().get(f).unwrap();
                assert!(
                    (got - want).abs() <= 1e-9 * want.abs(),
                    "{file} {unit} {f}: {got} vs {want}"
                );
            }
        }
    }
}
