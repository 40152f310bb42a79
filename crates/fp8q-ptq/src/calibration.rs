//! The PTQ pipeline of `docs/ptq.md` after the quantizers are installed: sequential calibration
//! (every quantizer estimating, each pass quantizing with its fresh range, so later layers see
//! quantized inputs), fixing the ranges, then BN re-estimation with the quantizers fixed, then
//! evaluation ([`crate::evaluate::evaluate`]).
//!
//! ```no_run
//! use fp8q_images::{BatchLoader, ImageFolder, LoaderOptions, Transform};
//! use fp8q_nn::models::{Architecture, Model};
//! use fp8q_ptq::PtqConfig;
//! let mut model = Model::load(Architecture::Resnet18, "resnet18.pth").unwrap();
//! let installed = fp8q_ptq::install(&mut model, &PtqConfig::default()).unwrap();
//! let train = ImageFolder::open("imagenet/train").unwrap();
//! let opts = LoaderOptions::new(8, Transform::val());
//! fp8q_ptq::calibrate(&mut model, &installed, BatchLoader::new(&train, opts.clone()), 1, |_| {}).unwrap();
//! let n = fp8q_ptq::bn_reestimation_default(train.len(), 8);
//! fp8q_ptq::reestimate_bn(&mut model, BatchLoader::new(&train, opts), n, |_| {}).unwrap();
//! ```

use crate::error::{PtqError, Result};
use crate::setup::Installed;
use fp8q_images::Batch;
use fp8q_nn::models::Model;

/// Run up to `max_batches` batches with every quantizer estimating (sequential calibration),
/// then fix all ranges. Returns the number of batches run; `on_batch` is told each batch's size.
pub fn calibrate(
    model: &mut Model,
    installed: &Installed,
    batches: impl IntoIterator<Item = fp8q_images::Result<Batch>>,
    max_batches: usize,
    mut on_batch: impl FnMut(usize),
) -> Result<usize> {
    for h in &installed.slots {
        h.estimate();
    }
    let done = forward_batches(model, batches, max_batches, &mut on_batch)?;
    if done == 0 && !installed.slots.is_empty() {
        return Err(PtqError::invalid(
            "calibration",
            "no calibration batch was available (empty training folder or --num-est-batches 0)",
        ));
    }
    installed.fix_all()?;
    Ok(done)
}

/// The reference's default number of BN re-estimation batches: `int(0.02 · batches)` with
/// `batches = ⌈images / batch_size⌉`.
pub fn bn_reestimation_default(train_images: usize, batch_size: usize) -> usize {
    let batches = train_images.div_ceil(batch_size.max(1));
    (0.02 * batches as f64) as usize
}

/// Re-estimate every BN's running statistics over up to `max_batches` batches (batch
/// statistics normalize; running mean / var become the average of the batch means / unbiased
/// variances). Quantizers should be fixed. Returns the number of batches used (0: nothing
/// changed).
pub fn reestimate_bn(
    model: &mut Model,
    batches: impl IntoIterator<Item = fp8q_images::Result<Batch>>,
    max_batches: usize,
    mut on_batch: impl FnMut(usize),
) -> Result<usize> {
    if max_batches == 0 {
        return Ok(0);
    }
    model.visit_bns(&mut |bn| bn.start_reestimation());
    let result = forward_batches(model, batches, max_batches, &mut on_batch);
    // Leave re-estimation mode in any case (on error the statistics gathered so far are used).
    model.visit_bns(&mut |bn| {
        bn.finish_reestimation();
    });
    result
}

/// Run the model forward on up to `max_batches` non-empty batches; returns how many ran.
pub(crate) fn forward_batches(
    model: &mut Model,
    batches: impl IntoIterator<Item = fp8q_images::Result<Batch>>,
    max_batches: usize,
    on_batch: &mut impl FnMut(usize),
) -> Result<usize> {
    let mut done = 0;
    if max_batches == 0 {
        return Ok(0);
    }
    for batch in batches {
        let batch = batch?;
        let n = batch.labels.len();
        if n == 0 {
            continue;
        }
        model.forward_fm(batch.images)?;
        done += 1;
        on_batch(n);
        if done >= max_batches {
            break;
        }
    }
    Ok(done)
}
