//! The recommended mix of formats, verified on the whole network.
//!
//! Each slot's own best format (the best network sensitivity with only that slot quantized)
//! does not make the best network: the errors of many quantized slots add up and interact, and
//! the per-slot winners together can measure below one format used everywhere. So the
//! recommendation is built and checked end to end, on the sensitivity images:
//!
//! 1. **Uniform formats.** Each format in every slot at once, with the analysis's fixed
//!    quantizers: the SQNR of the logits against FP32.
//! 2. **Greedy switches** ([`greedy`]). Starting from the best uniform format, each slot whose own
//!    best format differs is switched to it, one slot at a time, largest per-slot gain first; a
//!    switch is kept only when the network's logit SQNR rises. The result never measures below
//!    the best uniform format. Each trial runs the network from the switched slot's stage on,
//!    from the cached inputs of that stage under the current mix.
//! 3. **The pipeline's verdict.** The mix, the per-slot winners and every uniform format are run
//!    as `validate-quantized --layer-formats` runs them (installed, calibrated sequentially,
//!    BN re-estimated when the run asks) and measured on the same images. If the mix is below the
//!    best uniform format there, the recommendation is that uniform format in every slot.
//!
//! Every SQNR in the [`MixVerification`] comes from step 3.

use std::collections::HashMap;

use fp8q_core::analysis::sqnr_db;
use fp8q_core::format::Format;
use fp8q_images::BatchLoader;
use fp8q_nn::layers::SlotKind;
use fp8q_nn::models::Model;
use fp8q_tensors::feature_map::FeatureMap;

use crate::error::{PtqError, Result};
use crate::run::{self, Event, Observer, RunConfig, Stage, TrainingSet};
use crate::{LayerFormats, ManagedQuantizer};

use super::AnalysedSlot;

/// A format's logit SQNR on the sensitivity images.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FormatSqnr {
    /// The format.
    pub format: String,
    /// SQNR of the logits against FP32, dB.
    pub sqnr_db: f64,
}

/// How the recommended mix compares with every uniform format, end to end, on the images the
/// recommendation was chosen on (the sensitivity images). Every SQNR is of the logits against
/// FP32, with the quantizers installed and calibrated as `validate-quantized --layer-formats`
/// does it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MixVerification {
    /// Images measured on.
    pub images: usize,
    /// Every slot in one format, per format.
    pub uniform: Vec<FormatSqnr>,
    /// The best of `uniform`.
    pub best_uniform: FormatSqnr,
    /// Each slot in its own best format (the per-slot choice, not verified).
    pub per_slot_sqnr_db: f64,
    /// The recommended mix (the `recommended` of every slot).
    pub mixed_sqnr_db: f64,
    /// Switches away from the best uniform format tried (step 2).
    pub switches_tried: usize,
    /// Switches kept.
    pub switches_kept: usize,
    /// The mix measured below the best uniform format in the pipeline, so the recommendation
    /// is that uniform format.
    pub fell_back_to_uniform: bool,
}

/// Greedy switches from `start`: for each `(slot, format)` of `proposals`, in order, set that
/// slot to that format and keep it when `sqnr(choice, slot)` rises above the current value
/// (`start_sqnr`). `sqnr` is told which slot changed. Returns the choice, its SQNR and the
/// number of switches kept.
pub fn greedy(
    start: Vec<usize>,
    start_sqnr: f64,
    proposals: &[(usize, usize)],
    mut sqnr: impl FnMut(&[usize], usize) -> Result<f64>,
    mut kept: impl FnMut(usize),
) -> Result<(Vec<usize>, f64, usize)> {
    let (mut choice, mut best, mut n) = (start, start_sqnr, 0);
    for &(slot, format) in proposals {
        if choice[slot] == format {
            continue;
        }
        let previous = std::mem::replace(&mut choice[slot], format);
        let s = sqnr(&choice, slot)?;
        if s > best {
            best = s;
            n += 1;
            kept(slot);
        } else {
            choice[slot] = previous;
        }
    }
    Ok((choice, best, n))
}

/// The network with the analysis's quantizers, and the inputs of every stage under the current
/// choice, for all sensitivity batches.
struct Network<'a> {
    model: &'a mut Model,
    slots: &'a [AnalysedSlot],
    /// FP32 logits per batch.
    fp32: Vec<Vec<f32>>,
    signal: f64,
    /// Per batch, the input of every stage under the current choice (stage 0: the images).
    inputs: Vec<Vec<FeatureMap>>,
    /// The stage inputs of the last trial, for stages after its first.
    trial: Vec<Vec<FeatureMap>>,
}

impl Network<'_> {
    /// Put slot `i`'s manager of format `choice[i]` into every slot.
    fn install(&mut self, choice: &[usize]) {
        let index: HashMap<(&str, SlotKind), usize> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.plan.unit.as_str(), s.plan.kind), i))
            .collect();
        let slots = self.slots;
        self.model.visit_slots(&mut |unit, kind, s| {
            s.take();
            if let Some(&i) = index.get(&(unit, kind)) {
                let (q, _) = ManagedQuantizer::new(unit, kind, slots[i].managers[choice[i]].clone());
                s.set(Box::new(q));
            }
        });
    }

    /// The logit SQNR of `choice`, running every batch from the cached input of `stage`; the
    /// inputs of the later stages are kept in `self.trial`.
    fn sqnr_from(&mut self, choice: &[usize], stage: usize) -> Result<f64> {
        self.install(choice);
        let stages = self.model.num_stages();
        let mut noise = 0.0f64;
        self.trial.clear();
        for (b, inputs) in self.inputs.iter().enumerate() {
            let mut y = inputs[stage].clone();
            let mut kept = Vec::with_capacity(stages - stage);
            for s in stage..stages {
                if s > stage {
                    kept.push(y.clone());
                }
                y = self.model.forward_stage(s, y)?;
            }
            noise += y
                .data
                .iter()
                .zip(&self.fp32[b])
                .map(|(&q, &f)| (q as f64 - f as f64).powi(2))
                .sum::<f64>();
            self.trial.push(kept);
        }
        Ok(sqnr_db(self.signal, noise))
    }

    /// Make the last trial (run from `stage`) the current choice's cached inputs.
    fn keep_trial(&mut self, stage: usize) {
        for (inputs, kept) in self.inputs.iter_mut().zip(self.trial.drain(..)) {
            inputs.truncate(stage + 1);
            inputs.extend(kept);
        }
    }
}

/// Steps 1–3 of the module documentation. `per_slot` is each slot's own best format (index into
/// its managers); `output_sqnr` its per-format sensitivity. Returns the verified choice and the
/// verification.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    cfg: &RunConfig,
    model: &mut Model,
    train: &mut TrainingSet,
    slots: &[AnalysedSlot],
    formats: &[Format],
    output_sqnr: &[Vec<f64>],
    images: usize,
    observe: &mut Observer<'_>,
) -> Result<(Vec<usize>, MixVerification)> {
    let (folder, opts) = super::sensitivity::sensitivity_images(cfg, train, images)?;
    let mut batches = Vec::new();
    for batch in BatchLoader::new(&folder, opts) {
        let batch = batch?;
        if !batch.labels.is_empty() {
            batches.push(batch.images);
        }
    }
    let images = batches.iter().map(|b| b.n).sum::<usize>();
    model.visit_slots(&mut |_, _, s| {
        s.take();
    });
    let fp32: Vec<Vec<f32>> = batches
        .iter()
        .map(|x| model.forward_fm(x.clone()))
        .collect::<std::result::Result<_, _>>()?;
    let signal: f64 = fp32.iter().flatten().map(|&v| (v as f64).powi(2)).sum();
    let stage_of: Vec<usize> = super::sensitivity::resume_points(model, slots)?
        .into_iter()
        .map(|at| at.stage)
        .collect();
    let per_slot: Vec<usize> = output_sqnr.iter().map(|o| argmax(o)).collect();

    // 1. uniform formats with the analysis's quantizers; the best one's stage inputs are kept
    let mut net = Network {
        model,
        slots,
        fp32: fp32.clone(),
        signal,
        inputs: batches.iter().map(|x| vec![x.clone()]).collect(),
        trial: Vec::new(),
    };
    let mut best_uniform: Option<(usize, f64, Vec<Vec<FeatureMap>>)> = None;
    for f in 0..formats.len() {
        let s = net.sqnr_from(&vec![f; slots.len()], 0)?;
        if best_uniform.as_ref().is_none_or(|(_, b, _)| s > *b) {
            best_uniform = Some((f, s, std::mem::take(&mut net.trial)));
        }
    }
    let Some((start, start_sqnr, kept)) = best_uniform else {
        return Err(PtqError::invalid("--formats", "no format given"));
    };
    net.trial = kept;
    net.keep_trial(0);

    // 2. greedy switches to each slot's own best format, largest per-slot gain first
    let mut proposals: Vec<(usize, usize)> = per_slot
        .iter()
        .enumerate()
        .filter(|&(_, &f)| f != start)
        .map(|(i, &f)| (i, f))
        .collect();
    let gain = |&(i, f): &(usize, usize)| output_sqnr[i][f] - output_sqnr[i][start];
    proposals.sort_by(|a, b| gain(b).total_cmp(&gain(a)));
    observe(Event::Begin {
        stage: Stage::MixVerification,
        total: (proposals.len() + formats.len() + 2) as u64,
    });
    let net_cell = std::cell::RefCell::new(net);
    let (greedy_choice, _, switches_kept) = greedy(
        vec![start; slots.len()],
        start_sqnr,
        &proposals,
        |choice, slot| {
            observe(Event::Advance { done: 1 });
            net_cell.borrow_mut().sqnr_from(choice, stage_of[slot])
        },
        |slot| net_cell.borrow_mut().keep_trial(stage_of[slot]),
    )?;
    let net = net_cell.into_inner();
    net.model.visit_slots(&mut |_, _, s| {
        s.take();
    });

    // 3. the pipeline's verdict on the same images
    let mut pipeline = |choice: &[usize]| -> Result<f64> {
        let mut layers = LayerFormats::default();
        for (s, &f) in slots.iter().zip(choice) {
            layers.set(&s.plan.unit, s.plan.kind, formats[f]);
        }
        let r = pipeline_sqnr(cfg, train, layers, &batches, &fp32);
        observe(Event::Advance { done: 1 });
        r
    };
    let mut uniform = Vec::with_capacity(formats.len());
    for (f, format) in formats.iter().enumerate() {
        uniform.push(FormatSqnr {
            format: format.to_string(),
            sqnr_db: pipeline(&vec![f; slots.len()])?,
        });
    }
    let per_slot_sqnr_db = pipeline(&per_slot)?;
    let mixed = pipeline(&greedy_choice)?;
    observe(Event::End);
    let (best_index, best) = uniform
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.sqnr_db.total_cmp(&b.1.sqnr_db))
        .map(|(i, u)| (i, u.clone()))
        .expect("at least one format");
    let fell_back = mixed < best.sqnr_db;
    let (choice, mixed_sqnr_db) = if fell_back {
        (vec![best_index; slots.len()], best.sqnr_db)
    } else {
        (greedy_choice, mixed)
    };
    if fell_back {
        observe(Event::Note(&format!(
            "the verified mix gave {mixed:.2} dB in the pipeline, below uniform {} ({:.2} dB): recommending {} everywhere",
            best.format, best.sqnr_db, best.format
        )));
    }
    Ok((
        choice,
        MixVerification {
            images,
            uniform,
            best_uniform: best,
            per_slot_sqnr_db,
            mixed_sqnr_db,
            switches_tried: proposals.len(),
            switches_kept,
            fell_back_to_uniform: fell_back,
        },
    ))
}

/// The logit SQNR on `batches` of the PTQ pipeline run with `layers` (flexible bias, as the
/// analysis quantizes), against the FP32 logits `fp32`.
fn pipeline_sqnr(
    cfg: &RunConfig,
    train: &mut TrainingSet,
    layers: LayerFormats,
    batches: &[FeatureMap],
    fp32: &[Vec<f32>],
) -> Result<f64> {
    let mut c = cfg.clone();
    c.ptq.fp8_set_maxval = true;
    c.ptq.fp8_maxval = None;
    c.ptq.layer_formats = Some(layers);
    c.load_quant_params = None;
    c.save_quant_params = None;
    let quiet = &mut |_: Event<'_>| {};
    let (mut model, _) = run::load_model(&c, quiet)?;
    let _installed = run::quantize(&c, &mut model, train, quiet)?;
    run::reestimate_bn(&c, &mut model, train, quiet)?;
    let (mut signal, mut noise) = (0.0f64, 0.0f64);
    for (x, f) in batches.iter().zip(fp32) {
        let y = model.forward_fm(x.clone())?;
        signal += f.iter().map(|&v| (v as f64).powi(2)).sum::<f64>();
        noise += y
            .iter()
            .zip(f)
            .map(|(&q, &r)| (q as f64 - r as f64).powi(2))
            .sum::<f64>();
    }
    Ok(sqnr_db(signal, noise))
}

/// The index of the largest value (the first on ties; NaN never wins).
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || v[best].is_nan() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy network of two slots whose errors interact: each slot's own best format (1) is
    /// better alone, but the two together lose to format 0 everywhere, as the per-slot choice
    /// of the analysis did before the mix was verified. The greedy keeps only the switch that
    /// helps.
    #[test]
    fn greedy_never_ends_below_its_start_and_keeps_only_helpful_switches() {
        // SQNR of a choice: uniform 0 = 20 dB; slot 0 alone in 1 = 22 dB; slot 1 alone in
        // 1 = 21 dB; both in 1 = 15 dB (the per-slot choice)
        let table = |c: &[usize]| match (c[0], c[1]) {
            (0, 0) => 20.0,
            (1, 0) => 22.0,
            (0, 1) => 21.0,
            _ => 15.0,
        };
        let per_slot = [1, 1];
        assert!(
            table(&per_slot) < table(&[0, 0]),
            "the per-slot choice loses to uniform"
        );
        let mut calls = 0;
        let mut kept_slots = Vec::new();
        let (choice, sqnr, kept) = greedy(
            vec![0, 0],
            20.0,
            &[(0, 1), (1, 1)],
            |c, _| {
                calls += 1;
                Ok(table(c))
            },
            |s| kept_slots.push(s),
        )
        .unwrap();
        assert_eq!(choice, vec![1, 0]);
        assert_eq!(sqnr, 22.0);
        assert_eq!((kept, calls, kept_slots), (1, 2, vec![0]));
        assert!(sqnr >= table(&[0, 0]) && sqnr >= table(&[1, 1]));
    }

    #[test]
    fn greedy_skips_proposals_already_in_place_and_rejects_ties() {
        let (choice, sqnr, kept) = greedy(
            vec![2, 0],
            10.0,
            &[(0, 2), (1, 1)],
            |_, slot| {
                assert_eq!(slot, 1, "slot 0 is already in format 2");
                Ok(10.0)
            },
            |_| panic!("a tie is not an improvement"),
        )
        .unwrap();
        assert_eq!((choice, sqnr, kept), (vec![2, 0], 10.0, 0));
    }

    #[test]
    fn argmax_takes_the_first_best_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[f64::NAN, 2.0, 1.0]), 1);
        assert_eq!(argmax(&[f64::NEG_INFINITY, f64::INFINITY]), 1);
    }
}
