//! Evaluation over a loader: logits, top-1/top-5/loss, throughput.
//!
//! ```no_run
//! use fp8q_images::{BatchLoader, ImageFolder, LoaderOptions, Transform};
//! use fp8q_nn::models::{Architecture, Model};
//! let mut model = Model::load(Architecture::Resnet18, "resnet18.pth").unwrap();
//! let ds = ImageFolder::open("imagenet/val").unwrap();
//! let out = fp8q_ptq::evaluate::evaluate(&mut model, BatchLoader::new(&ds, LoaderOptions::new(32, Transform::val())), |_| {}).unwrap();
//! println!("top-1 {:.2}%", 100.0 * out.metrics.top1());
//! ```

use std::path::PathBuf;
use std::time::Instant;

use crate::error::Result;
use crate::metrics::Metrics;
use fp8q_images::BatchLoader;
use fp8q_nn::models::Model;

/// What an evaluation produced.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Top-1, top-5, loss.
    pub metrics: Metrics,
    /// `images · classes` logits in dataset order (of the loader).
    pub logits: Vec<f32>,
    /// Label per image.
    pub labels: Vec<usize>,
    /// Dataset index per image.
    pub indices: Vec<usize>,
    /// Images skipped as unreadable (`--skip-bad-images`).
    pub skipped: Vec<(PathBuf, String)>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl Evaluation {
    /// Images per second over the whole run (loading included).
    pub fn images_per_second(&self) -> f64 {
        self.labels.len() as f64 / self.seconds.max(1e-9)
    }
}

/// Run `model` over every batch of `loader`; `on_batch` is told the number of images in each
/// finished batch (for a progress bar).
pub fn evaluate(model: &mut Model, loader: BatchLoader, mut on_batch: impl FnMut(usize)) -> Result<Evaluation> {
    let start = Instant::now();
    let classes = model.num_classes();
    let mut out = Evaluation {
        metrics: Metrics::default(),
        logits: Vec::new(),
        labels: Vec::new(),
        indices: Vec::new(),
        skipped: Vec::new(),
        seconds: 0.0,
    };
    for batch in loader {
        let batch = batch?;
        out.skipped.extend(batch.skipped);
        let n = batch.labels.len();
        if n == 0 {
            continue;
        }
        let logits = model.forward_fm(batch.images)?;
        out.metrics.update(&logits, &batch.labels, classes);
        out.logits.extend(logits);
        out.labels.extend(batch.labels);
        out.indices.extend(batch.indices);
        on_batch(n);
    }
    out.seconds = start.elapsed().as_secs_f64();
    Ok(out)
}
