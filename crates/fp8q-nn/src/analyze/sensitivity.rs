//! Network sensitivity of each slot: the SQNR of the logits against FP32 when only that slot is
//! quantized, per format. The FP32 network runs once over the images, keeping the input of every
//! stage ([`Model::forward_stage`]); each (slot, format) case then re-runs only the stages from
//! the slot's own onward, from the cached input, with that one quantizer in place.

use fp8q_core::manager::QuantManager;

use crate::data::{BatchLoader, LoaderOptions, Transform};
use crate::error::{NnError, Result};
use crate::feature_map::FeatureMap;
use crate::models::Model;
use crate::ptq::ManagedQuantizer;
use crate::run::{Event, Observer, RunConfig, Stage, TrainingSet};

use super::AnalysedSlot;

/// `10·log10(signal / noise)` (`+∞` when nothing is lost).
fn db(signal: f64, noise: f64) -> f64 {
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

/// The FP32 input of every stage and the FP32 logits of one batch.
struct StageCache {
    inputs: Vec<FeatureMap>,
    logits: Vec<f32>,
}

fn cache_stages(model: &mut Model, images: FeatureMap) -> Result<StageCache> {
    let stages = model.num_stages();
    let mut inputs = Vec::with_capacity(stages);
    let mut y = images;
    for s in 0..stages {
        inputs.push(y.clone());
        y = model.forward_stage(s, y)?;
    }
    Ok(StageCache { inputs, logits: y.data })
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
    let mut folder = train.get()?.clone();
    folder.subsample(images);
    let stage_of: Vec<usize> = {
        let stages = model.slot_stages();
        slots
            .iter()
            .map(|s| {
                stages
                    .iter()
                    .find(|(u, k, _)| *u == s.plan.unit && *k == s.plan.kind)
                    .map(|&(_, _, st)| st)
                    .ok_or_else(|| NnError::Quantizer {
                        unit: s.plan.unit.clone(),
                        why: "slot not found among the network's stages".into(),
                    })
            })
            .collect::<Result<_>>()?
    };
    let cases: usize = slots.iter().map(|s| s.managers.len()).sum();
    let batches = folder.len().div_ceil(cfg.batch_size.max(1));
    observe(Event::Begin {
        stage: Stage::Sensitivity,
        total: (cases * batches) as u64,
    });
    let mut signal = 0.0f64;
    let mut noise: Vec<Vec<f64>> = slots.iter().map(|s| vec![0.0; s.managers.len()]).collect();
    let opts = LoaderOptions::new(
        cfg.batch_size,
        Transform::Val {
            size: 224,
            filter: cfg.interpolation,
        },
    );
    let result = (|| -> Result<()> {
        for batch in BatchLoader::new(&folder, opts) {
            let batch = batch?;
            if batch.labels.is_empty() {
                continue;
            }
            quantize_only(model, None);
            let cache = cache_stages(model, batch.images)?;
            signal += cache.logits.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
            for ((slot, &stage), noise) in slots.iter().zip(&stage_of).zip(noise.iter_mut()) {
                for (m, acc) in slot.managers.iter().zip(noise.iter_mut()) {
                    quantize_only(model, Some((slot, m)));
                    let mut y = cache.inputs[stage].clone();
                    for s in stage..cache.inputs.len() {
                        y = model.forward_stage(s, y)?;
                    }
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
        .map(|per_format| per_format.into_iter().map(|n| db(signal, n)).collect())
        .collect())
}
