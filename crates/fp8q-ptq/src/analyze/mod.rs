//! Which format where (`fp8q analyze` on a network): every quantizer slot that the quant setup
//! places, weights and activations, analysed in each of a list of formats.
//!
//! 1. **Capture**: the FP32 network runs the calibration batches with a [`recorder::Recorder`]
//!    in each planned slot, which keeps the slot's tensor (a weight once, an activation per
//!    batch) and changes nothing.
//! 2. **Ranges and tensor SQNR**: per slot and format, a quantizer of that format with the run's
//!    range estimator (`--weight-quant-method`, `--act-quant-method`, per channel for weights
//!    with `--per-channel`) is calibrated on the captured batches exactly as calibration does it,
//!    then fixed; [`fp8q_core::analysis::format_choice::analyze_tensor_in`] gives the statistics,
//!    the measured SQNR of the captured tensor at that range, and the analytical prediction of
//!    the fitted distribution. Every slot is calibrated on FP32 inputs (the slots are analysed one
//!    at a time, the rest of the network in FP32). FP formats use a flexible bias: the range
//!    sets the maximum value, as with `--fp8-set-maxval`. Block-scaled formats have no range:
//!    each recorded batch is quantized in blocks along its recorded reduction axis (dimension 1
//!    of a weight, the channels of an activation), with a two-level format's tensor scale from
//!    the batch's own maximum, as the PTQ pipeline does; the prediction is
//!    [`fp8q_core::analysis::fit::predict_block_sqnr_db`]'s.
//! 3. **Sensitivity** ([`sensitivity`]): on `sensitivity_images` training images (validation
//!    transform, spread evenly over the sorted list, so that the choice never sees the
//!    validation set), the SQNR of the logits against FP32 with only this slot quantized, per
//!    format. Each case runs only the stages from the slot's onward, from cached FP32 inputs.
//!
//! 4. **The mix** ([`mix`]): the per-slot winners are not trusted together. Starting from the
//!    best uniform format, a slot is switched to its own best format only when that raises the
//!    network's logit SQNR on the sensitivity images, and the result is checked against every
//!    uniform format through the PTQ pipeline itself ([`mix::MixVerification`]): the
//!    recommendation never measures below the best uniform format on those images.
//!
//! The recommendation of a slot is its format in the verified mix (without sensitivity: its
//! best tensor SQNR, unverified).

pub mod mix;
pub mod recorder;
pub mod sensitivity;

use std::sync::{Arc, Mutex};

use fp8q_core::analysis::format_choice::{
    analyze_tensor_in, summarize, AnalysisRow, PerFormat, RangeSource, Slot, Summary,
};
use fp8q_core::format::Format;
use fp8q_core::manager::{QuantConfig, QuantManager};
use fp8q_core::quantizer::BlockLayout;

use crate::error::{PtqError, Result};
use crate::run::{self, Event, Observer, RunConfig, Stage, TrainingSet};
use crate::{PtqConfig, SlotPlan};
use fp8q_images::BatchLoader;
use fp8q_nn::layers::SlotKind;
use fp8q_nn::models::Model;

use recorder::{Recorder, Recording};

/// The formats analysed when none are given.
pub const DEFAULT_FORMATS: [&str; 5] = ["e5m2", "e4m3", "e3m4", "e2m5", "int8"];

/// What to analyse.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisConfig {
    /// The network, data, calibration and range estimators (as for `validate-quantized`; the
    /// global format options are not used, each slot is analysed in every format of `formats`).
    pub run: RunConfig,
    /// The formats, by the names `fp8q formats` knows.
    pub formats: Vec<String>,
    /// Images for the network sensitivity (0: no sensitivity).
    pub sensitivity_images: usize,
}

/// The result: one row per slot, in execution order, and their summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NetworkAnalysis {
    /// One row per planned slot.
    pub rows: Vec<AnalysisRow>,
    /// Recommendations per format and how often the prediction matched.
    pub summary: Summary,
    /// Calibration batches captured.
    pub calibration_batches: usize,
    /// Images of the sensitivity runs.
    pub sensitivity_images: usize,
    /// The recommended mix against every uniform format (with sensitivity only).
    pub mix: Option<mix::MixVerification>,
}

/// The manager configuration of `slot` analysed in `format`: the PTQ pipeline's own for that
/// slot listed in `--layer-formats` as `format` (so a mixed-format run built from the
/// recommendation quantizes exactly as analysed), with flexible bias (`--fp8-set-maxval`).
pub fn slot_config(ptq: &PtqConfig, slot: &SlotPlan, format: Format) -> Result<QuantConfig> {
    let flexible = PtqConfig {
        fp8_set_maxval: true,
        fp8_maxval: None,
        layer_formats: None,
        ..ptq.clone()
    };
    flexible.slot_config(&SlotPlan {
        bits: format.n_bits(),
        format: Some(format),
        ..slot.clone()
    })
}

/// Parse format names, naming the bad one.
pub fn parse_formats(names: &[String]) -> Result<Vec<Format>> {
    if names.is_empty() {
        return Err(PtqError::invalid("--formats", "no format given"));
    }
    names
        .iter()
        .map(|n| {
            n.parse::<Format>()
                .map_err(|e| PtqError::invalid(format!("--formats '{n}'"), e.to_string()))
        })
        .collect()
}

/// One captured slot: its plan, what it saw, and a calibrated, fixed manager per format.
#[derive(Debug)]
pub struct AnalysedSlot {
    /// The slot.
    pub plan: SlotPlan,
    /// The row of the report.
    pub row: AnalysisRow,
    /// One fixed manager per format, in the order of the formats.
    pub managers: Vec<QuantManager>,
}

/// Analyse the network of `cfg.run` (see the module documentation).
pub fn analyze_network(cfg: &AnalysisConfig, observe: &mut Observer<'_>) -> Result<NetworkAnalysis> {
    cfg.run.validate()?;
    let formats = parse_formats(&cfg.formats)?;
    if let Some(n) = cfg.run.num_workers {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    // cheap checks before expensive work: the training images are listed before the checkpoint
    // is read or downloaded
    let mut train = TrainingSet::new(&cfg.run);
    train.get()?;
    let (mut model, _) = run::load_model(&cfg.run, observe)?;
    let (plan, recordings, batches) = capture(&cfg.run, &mut model, &mut train, observe)?;

    observe(Event::Begin {
        stage: Stage::SlotAnalysis,
        total: plan.len() as u64,
    });
    let mut slots = Vec::with_capacity(plan.len());
    for (p, rec) in plan.into_iter().zip(recordings) {
        let rec = Arc::try_unwrap(rec)
            .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
            .unwrap_or_else(|a| std::mem::take(&mut *a.lock().unwrap_or_else(|p| p.into_inner())));
        slots.push(analyse_slot(&cfg.run.ptq, p, rec, &formats)?);
        observe(Event::Advance { done: 1 });
    }
    observe(Event::End);

    let mut verified = None;
    if cfg.sensitivity_images > 0 {
        let outputs = sensitivity::output_sqnr(
            &cfg.run,
            &mut model,
            &mut train,
            &slots,
            cfg.sensitivity_images,
            observe,
        )?;
        for (slot, per_format) in slots.iter_mut().zip(&outputs) {
            let names: Vec<String> = slot.row.sqnr_db.formats().map(String::from).collect();
            slot.row
                .set_output_sqnr(PerFormat(names.into_iter().zip(per_format.clone()).collect()));
        }
        let (choice, verification) = mix::verify(
            &cfg.run,
            &mut model,
            &mut train,
            &slots,
            &formats,
            &outputs,
            cfg.sensitivity_images,
            observe,
        )?;
        for (slot, f) in slots.iter_mut().zip(choice) {
            if let Some(name) = slot.row.sqnr_db.formats().nth(f) {
                slot.row.recommended = name.to_string();
            }
        }
        verified = Some(verification);
    }
    let rows: Vec<AnalysisRow> = slots.into_iter().map(|s| s.row).collect();
    Ok(NetworkAnalysis {
        summary: summarize(&rows),
        rows,
        calibration_batches: batches,
        sensitivity_images: cfg.sensitivity_images,
        mix: verified,
    })
}

type Captured = (Vec<SlotPlan>, Vec<Arc<Mutex<Recording>>>, usize);

/// Run the calibration batches through the FP32 network with a recorder in every slot the quant
/// setup places; afterwards every slot is empty again (FP32).
fn capture(
    cfg: &RunConfig,
    model: &mut Model,
    train: &mut TrainingSet,
    observe: &mut Observer<'_>,
) -> Result<Captured> {
    // install() places the setup's slots (and LSQ_paper's input quantization); recorders then
    // take the quantizers' place
    let installed = crate::install(model, &cfg.ptq)?;
    let mut recordings = Vec::with_capacity(installed.plan.len());
    let mut recorders = std::collections::BTreeMap::new();
    for p in &installed.plan {
        let (r, seen) = Recorder::new(p.kind);
        recorders.insert((p.unit.clone(), p.kind), r);
        recordings.push(seen);
    }
    model.visit_slots(&mut |unit, kind, slot| {
        slot.take();
        if let Some(r) = recorders.remove(&(unit.to_string(), kind)) {
            slot.set(Box::new(r));
        }
    });
    let train = train.get()?;
    let wanted = cfg.ptq.calibration_batches(cfg.num_est_batches).max(1);
    observe(Event::Begin {
        stage: Stage::Calibration,
        total: (wanted * cfg.batch_size).min(train.len()) as u64,
    });
    let result =
        crate::calibration::forward_batches(model, BatchLoader::new(train, cfg.calib_options(0)), wanted, &mut |n| {
            observe(Event::Advance { done: n as u64 })
        });
    observe(Event::End);
    model.visit_slots(&mut |_, _, slot| {
        slot.take();
    });
    let done = result?;
    if done == 0 {
        return Err(PtqError::invalid(
            "calibration",
            "no calibration batch was available (empty training folder)",
        ));
    }
    observe(Event::Note(&format!(
        "captured {} slot(s) on {done} calibration batch(es) of {}",
        installed.plan.len(),
        cfg.batch_size
    )));
    Ok((installed.plan, recordings, done))
}

/// Calibrate one manager per format on the slot's batches, then analyse the whole captured
/// tensor at those ranges.
fn analyse_slot(ptq: &PtqConfig, plan: SlotPlan, rec: Recording, formats: &[Format]) -> Result<AnalysedSlot> {
    let name = || {
        format!(
            "{} ({})",
            plan.unit,
            if plan.kind == SlotKind::Weight { "weight" } else { "act" }
        )
    };
    let err = |e: &dyn std::fmt::Display| PtqError::Quantizer {
        unit: name(),
        why: e.to_string(),
    };
    if rec.batches.is_empty() {
        return Err(PtqError::Quantizer {
            unit: name(),
            why: "the slot saw no data during calibration".into(),
        });
    }
    let dim0 = rec.dim0.max(1);
    let mut managers = Vec::with_capacity(formats.len());
    let mut ranges = Vec::with_capacity(formats.len());
    for &format in formats {
        let mut m = QuantManager::new(slot_config(ptq, &plan, format)?).map_err(|e| err(&e))?;
        if format.as_block().is_some() {
            // no range to calibrate: each block takes its scale from its own values
            m.fix();
            managers.push(m);
            continue;
        }
        let mut scratch = Vec::new();
        for b in &rec.batches {
            scratch.clear();
            scratch.extend_from_slice(b);
            m.forward(&mut scratch, dim0).map_err(|e| err(&e))?;
        }
        m.fix();
        ranges.push(m.range().cloned().ok_or_else(|| err(&"no range was estimated"))?);
        managers.push(m);
    }
    // where each batch's reduction axis lies (the blocks of block formats, as the slot's
    // quantizer forms them)
    let layouts: Vec<BlockLayout> = if rec.layouts.len() == rec.batches.len() {
        rec.layouts.clone()
    } else {
        rec.batches.iter().map(|b| BlockLayout::flat(b.len())).collect()
    };
    let data: Vec<f32> = if rec.batches.len() == 1 {
        rec.batches.into_iter().next().unwrap_or_default()
    } else {
        rec.batches.concat()
    };
    let analysis =
        analyze_tensor_in(&data, dim0, &layouts, formats, &RangeSource::Given(ranges)).map_err(|e| err(&e))?;
    let slot = if plan.kind == SlotKind::Weight {
        Slot::Weight
    } else {
        Slot::Act
    };
    let shape = if dim0 > 1 {
        vec![dim0, data.len() / dim0]
    } else {
        vec![data.len()]
    };
    let row = AnalysisRow::new(plan.unit.clone(), slot, None, shape, analysis);
    Ok(AnalysedSlot { plan, row, managers })
}
