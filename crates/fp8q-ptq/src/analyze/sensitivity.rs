//! Network sensitivity of each slot: the SQNR of the logits against FP32 when only that slot is
//! quantized, per format. The FP32 network runs once over the images, keeping the input of every
//! stage ([`Model::forward_stage`]) and the output of every unit inside a block stage; each
//! (slot, format) case then re-runs only what follows the latest of those points before the
//! slot ([`Model::slot_stages`]: the slot's own unit; the unit's kept output, quantized, for its
//! output quantizer; a block's join for its shortcut and output slots), with that one quantizer
//! in place.

use fp8q_core::analysis::sqnr_db;
use fp8q_core::manager::QuantManager;

use crate::error::{PtqError, Result};
use crate::run::{Event, Observer, RunConfig, Stage, TrainingSet};
use crate::ManagedQuantizer;
use fp8q_images::{BatchLoader, ImageFolder, LoaderOptions, Transform};
use fp8q_nn::models::{Model, Resume};
use fp8q_tensors::feature_map::FeatureMap;

use super::AnalysedSlot;

/// The FP32 input of every stage, the FP32 outputs of the units of every block stage, and the
/// FP32 logits of one batch.
struct StageCache {
    inputs: Vec<FeatureMap>,
    units: Vec<Vec<FeatureMap>>,
    logits: Vec<f32>,
}

impl StageCache {
    fn new(model: &mut Model, images: FeatureMap) -> Result<Self> {
        let stages = model.num_stages();
        let (mut inputs, mut units) = (Vec::with_capacity(stages), Vec::with_capacity(stages));
        let mut y = images;
        for s in 0..stages {
            let mut keep = Vec::new();
            let next = model.forward_stage_keeping(s, &y, &mut keep)?;
            inputs.push(std::mem::replace(&mut y, next));
            units.push(keep);
        }
        Ok(StageCache {
            inputs,
            units,
            logits: y.data,
        })
    }

    /// The logits with the network run from `at` on (from the cached values there).
    fn logits_from(&self, model: &mut Model, at: Resume) -> Result<FeatureMap> {
        let x = &self.inputs[at.stage];
        let mut y = match at.step {
            0 => model.forward_stage(at.stage, x.clone())?,
            step => {
                let y = self.units[at.stage].get(step - 1).ok_or_else(|| {
                    PtqError::invalid("stage", format!("no unit output {step} cached for stage {}", at.stage))
                })?;
                model.resume_stage(at, x, y.clone())?
            }
        };
        for s in at.stage + 1..self.inputs.len() {
            y = model.forward_stage(s, y)?;
        }
        Ok(y)
    }
}

/// Put `manager` (fixed) into `slot` and empty every other slot (`None`: FP32 everywhere).
fn quantize_only(model: &mut Model, only: Option<(&AnalysedSlot, &QuantManager)>) {
    model.visit_slots(&mut |unit, kind, s| {
        s.take();
        if let Some((slot, m)) = only {
            if unit == slot.plan.unit && kind == slot.plan.kind {
                let (q, _) = ManagedQuantizer::new(unit, kind, m.clone());
                s.set(Box::new(q));
            }
        }
    });
}

/// The sensitivity images: `images` training images spread evenly over the sorted list (so that
/// the choice never sees the validation set), loaded with the validation transform.
pub(super) fn sensitivity_images(
    cfg: &RunConfig,
    train: &mut TrainingSet,
    images: usize,
) -> Result<(ImageFolder, LoaderOptions)> {
    let mut folder = train.get()?.clone();
    folder.subsample(images);
    let opts = LoaderOptions::new(
        cfg.batch_size,
        Transform::Val {
            size: 224,
            filter: cfg.interpolation,
        },
    );
    Ok((folder, opts))
}

/// Where each slot's cases start ([`Model::slot_stages`]), in the order of `slots`.
pub(super) fn resume_points(model: &mut Model, slots: &[AnalysedSlot]) -> Result<Vec<Resume>> {
    let stages = model.slot_stages();
    slots
        .iter()
        .map(|s| {
            stages
                .iter()
                .find(|(u, k, _)| *u == s.plan.unit && *k == s.plan.kind)
                .map(|&(_, _, at)| at)
                .ok_or_else(|| PtqError::Quantizer {
                    unit: s.plan.unit.clone(),
                    why: "slot not found among the network's stages".into(),
                })
        })
        .collect()
}

/// Per slot, per format (in the slots' manager order): the SQNR in dB of the logits of
/// `images` training images (validation transform, spread evenly) with only that slot quantized.
pub fn output_sqnr(
    cfg: &RunConfig,
    model: &mut Model,
    train: &mut TrainingSet,
    slots: &[AnalysedSlot],
    images: usize,
    observe: &mut Observer<'_>,
) -> Result<Vec<Vec<f64>>> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    let (folder, opts) = sensitivity_images(cfg, train, images)?;
    let resume_at = resume_points(model, slots)?;
    let cases: usize = slots.iter().map(|s| s.managers.len()).sum();
    let batches = folder.len().div_ceil(cfg.batch_size.max(1));
    observe(Event::Begin {
        stage: Stage::Sensitivity,
        total: (cases * batches) as u64,
    });
    let mut signal = 0.0f64;
    let mut noise: Vec<Vec<f64>> = slots.iter().map(|s| vec![0.0; s.managers.len()]).collect();
    let result = (|| -> Result<()> {
        for batch in BatchLoader::new(&folder, opts) {
            let batch = batch?;
            if batch.labels.is_empty() {
                continue;
            }
            quantize_only(model, None);
            let cache = StageCache::new(model, batch.images)?;
            signal += cache.logits.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
            for ((slot, &at), noise) in slots.iter().zip(&resume_at).zip(noise.iter_mut()) {
                for (m, acc) in slot.managers.iter().zip(noise.iter_mut()) {
                    quantize_only(model, Some((slot, m)));
                    let y = cache.logits_from(model, at)?;
                    *acc += y
                        .data
                        .iter()
                        .zip(&cache.logits)
                        .map(|(&q, &f)| {
                            let d = q as f64 - f as f64;
                            d * d
                        })
                        .sum::<f64>();
                    observe(Event::Advance { done: 1 });
                }
            }
        }
        Ok(())
    })();
    quantize_only(model, None);
    observe(Event::End);
    result?;
    Ok(noise
        .into_iter()
        .map(|per_format| per_format.into_iter().map(|n| sqnr_db(signal, n)).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PtqConfig, SlotPlan};
    use fp8q_core::range::Range;
    use fp8q_nn::layers::SlotKind;
    use fp8q_nn::models::Architecture;

    /// Every slot, resumed from the point [`Model::slot_stages`] gives, yields the logits of a
    /// full forward pass with that slot quantized, bit for bit (and the quantizer did act: the
    /// logits differ from FP32's), for both networks of the in-repository fixture.
    #[test]
    fn resuming_equals_a_full_forward_for_every_slot() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ptq_small");
        for (arch, file) in [
            (Architecture::Resnet18, "resnet18_narrow.pth"),
            (Architecture::MobilenetV2, "mobilenet_v2_narrow.pth.tar"),
        ] {
            let mut model = Model::load(arch, dir.join(file)).unwrap();
            let data: Vec<f32> = (0..2 * 3 * 224 * 224)
                .map(|i| ((i as f32 * 0.618).sin() * 1.7).clamp(-1.5, 1.5))
                .collect();
            let x = FeatureMap::from_vec(data, 2, 3, 224, 224).unwrap();
            quantize_only(&mut model, None);
            let cache = StageCache::new(&mut model, x.clone()).unwrap();
            assert_eq!(cache.logits, model.forward_fm(x.clone()).unwrap(), "{file}: FP32");
            // output quantizers on the units' outputs, then on their inputs (`LSQ_paper`)
            for quantize_input in [false, true] {
                model
                    .units_mut()
                    .into_iter()
                    .for_each(|u| u.quantize_input = quantize_input);
                let mut resumed_inside = 0;
                for (unit, kind, at) in model.slot_stages() {
                    let plan = SlotPlan {
                        unit: unit.clone(),
                        kind,
                        bits: 8,
                        quantize_input,
                        format: None,
                    };
                    let config = super::super::slot_config(&PtqConfig::default(), &plan, "e3m4".parse().unwrap());
                    let mut m = QuantManager::new(config.unwrap()).unwrap();
                    m.set_range(Range {
                        min: vec![-0.37],
                        max: vec![0.37],
                    })
                    .unwrap();
                    m.fix();
                    model.visit_slots(&mut |u, k, s| {
                        s.take();
                        if u == unit && k == kind {
                            s.set(Box::new(ManagedQuantizer::new(u, k, m.clone()).0));
                        }
                    });
                    let full = model.forward_fm(x.clone()).unwrap();
                    let resumed = cache.logits_from(&mut model, at).unwrap().data;
                    assert_eq!(resumed, full, "{file} {unit} {kind:?} from {at:?}");
                    assert_ne!(full, cache.logits, "{file} {unit} {kind:?}: the quantizer did not act");
                    resumed_inside += (at.step > 0) as usize;
                    assert_eq!(
                        at.quantize_kept,
                        kind == SlotKind::Output && at.step > 0 && !quantize_input && !unit.contains("downsample"),
                        "{file} {unit}"
                    );
                }
                assert!(
                    resumed_inside > 10,
                    "{file}: {resumed_inside} slots resumed inside a block"
                );
            }
        }
    }
}
