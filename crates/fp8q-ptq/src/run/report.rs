//! What a PTQ run produced: metrics, logits, quantizer states, timings — one value that the CLI
//! prints, a sweep stores and `merge` combines.

use std::path::PathBuf;

use serde_json::json;

use crate::metrics::Metrics;
use crate::UnitStates;
use fp8q_nn::models::Architecture;

use super::config::RunConfig;

/// Wall-clock seconds per stage.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Timings {
    /// Loading (and, if needed, downloading) the checkpoint.
    pub load_seconds: f64,
    /// Installing and calibrating the quantizers (or loading their states).
    pub calibration_seconds: f64,
    /// BN re-estimation.
    pub bn_reestimation_seconds: f64,
    /// Evaluation, loading of the validation images included.
    pub validation_seconds: f64,
}

/// The result of [`super::run`].
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The configuration that was run.
    pub config: RunConfig,
    /// The checkpoint file that was read.
    pub model_path: PathBuf,
    /// Classes of the network.
    pub classes: usize,
    /// Top-1, top-5 and loss over the evaluated images.
    pub metrics: Metrics,
    /// `images · classes` logits, in the order of [`RunReport::indices`].
    pub logits: Vec<f32>,
    /// The label of each evaluated image.
    pub labels: Vec<usize>,
    /// The position of each evaluated image in the whole (unsharded) sorted validation list,
    /// after `max_val_images` subsampling.
    pub indices: Vec<usize>,
    /// Images in the whole validation list (all shards).
    pub total_images: usize,
    /// The quantizer states by unit (`None`: an FP32 run).
    pub quantizers: Option<UnitStates>,
    /// Calibration batches run (0 when the states were loaded or nothing is quantized).
    pub calibration_batches: usize,
    /// BN re-estimation batches run (0: none).
    pub bn_reestimation_batches: usize,
    /// Images skipped as unreadable, with the decoder's message.
    pub skipped: Vec<(PathBuf, String)>,
    /// Seconds per stage.
    pub timings: Timings,
    /// The process's peak resident memory, where the OS reports it.
    pub peak_memory_mib: Option<f64>,
}

impl RunReport {
    /// Evaluated images per second (loading included).
    pub fn images_per_second(&self) -> f64 {
        self.labels.len() as f64 / self.timings.validation_seconds.max(1e-9)
    }

    /// The one-line summary the CLI prints, e.g. `resnet18 W8 … : top-1 69.76%  top-5 …`.
    pub fn summary(&self) -> String {
        format!(
            "{} {}: top-1 {:.2}%  top-5 {:.2}%  loss {:.4}  ({} images{}, {:.1} img/s{})",
            self.config.arch,
            self.config.describe(),
            100.0 * self.metrics.top1(),
            100.0 * self.metrics.top5(),
            self.metrics.loss(),
            self.labels.len(),
            self.config
                .shard
                .map(|s| format!(" of {}, shard {s}", self.total_images))
                .unwrap_or_default(),
            self.images_per_second(),
            self.peak_memory_mib
                .map(|m| format!(", peak memory {m:.0} MiB"))
                .unwrap_or_default()
        )
    }

    /// The report as JSON (the `--json` file): the golden runs' layout (`arch`, `name`,
    /// `config`, `top1`, `top5`, `loss`, `labels`, `logits`, `quantizers`) plus `indices`,
    /// `total_images`, timings and what was skipped.
    pub fn to_json(&self) -> serde_json::Value {
        let arch: Architecture = self.config.arch;
        let mut config = self.config.to_json();
        // the batches actually used, as in the golden runs (0: none)
        config["bn_reestimation_batches"] = self.bn_reestimation_batches.into();
        config["model_dir"] = json!(self.model_path);
        let logits: Vec<&[f32]> = self.logits.chunks(self.classes.max(1)).collect();
        json!({
            "arch": arch.name(),
            "name": if self.config.quantized() { "quantized" } else { "fp32" },
            "config": config,
            "batch_size": self.config.batch_size,
            "top1": self.metrics.top1(),
            "top5": self.metrics.top5(),
            "loss": self.metrics.loss(),
            "images": self.labels.len(),
            "total_images": self.total_images,
            "images_per_second": self.images_per_second(),
            "calibration_batches": self.calibration_batches,
            "timings": self.timings,
            "peak_memory_mib": self.peak_memory_mib,
            "labels": self.labels,
            "indices": self.indices,
            "logits": logits,
            "quantizers": self.quantizers.clone().unwrap_or_default(),
            "skipped": self.skipped.iter().map(|(p, w)| json!({"path": p, "error": w})).collect::<Vec<_>>(),
        })
    }
}

/// The process's peak resident memory (`VmHWM` of `/proc/self/status`), where the OS reports it.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
