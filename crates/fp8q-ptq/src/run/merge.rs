//! Combining the reports of a sharded run (`fp8q merge`): the shards' logits are put back in
//! the order of the whole validation list and top-1, top-5 and loss are computed again from
//! them with [`Metrics::update`], row after row in that order, so the result is the unsharded
//! run's, bit for bit (not a combination of the shards' rounded sums).
//!
//! The logits are read from the report's text straight into `f32` (serde_json parses a number
//! for an `f32` field with single precision, and writes an `f32` as its shortest decimal), so a
//! report's round trip through JSON keeps every bit.
//!
//! Refused, naming the files: reports of different configurations (the `config` member without
//! the shard, the output files and the worker count; and the quantizer states), the same file
//! or the same shard twice, shards that overlap, and positions of the list that no shard covers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{PtqError, Result};
use crate::metrics::Metrics;

use super::config::Shard;

/// Members of a report's `config` that may differ between the shards of one run.
pub const IGNORED_CONFIG_KEYS: &[&str] = &[
    "shard",
    "json",
    "save_logits",
    "save_quant_params",
    "load_quant_params",
    "progress_bar",
    "num_workers",
];

/// The members of a report that merging reads with their exact types.
#[derive(serde::Deserialize)]
struct Rows {
    logits: Vec<Vec<f32>>,
    labels: Vec<usize>,
    indices: Vec<usize>,
    total_images: usize,
}

/// One shard's report, read and checked on its own.
#[derive(Debug, Clone)]
pub struct ShardReport {
    /// The file it came from (named in errors).
    pub path: PathBuf,
    /// The whole report.
    pub value: Value,
    /// Which part of the list it covers (`0/1` for an unsharded report).
    pub shard: Shard,
    /// Images in the whole list.
    pub total_images: usize,
    /// Logits per evaluated image, exactly as written.
    pub logits: Vec<Vec<f32>>,
    /// Label per evaluated image.
    pub labels: Vec<usize>,
    /// Position of each evaluated image in the whole list.
    pub indices: Vec<usize>,
}

impl ShardReport {
    /// Read a report file written by `validate-quantized --json` (or by a sweep).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|err| PtqError::Io {
            path: path.to_path_buf(),
            err,
        })?;
        Self::parse(path, &text)
    }

    /// Parse the text of a report; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let bad = |why: String| PtqError::invalid(format!("report {}", path.display()), why);
        let value: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        if !value.get("config").is_some_and(Value::is_object) {
            return Err(bad("no \"config\" object: not a run report".into()));
        }
        let rows: Rows = serde_json::from_str(text).map_err(|e| bad(format!("not a run report: {e}")))?;
        let shard = match &value["config"]["shard"] {
            Value::Null => Shard::new(0, 1)?,
            Value::String(s) => s.parse().map_err(|e: PtqError| bad(e.to_string()))?,
            other => return Err(bad(format!("config.shard is {other}, not \"I/N\""))),
        };
        let n = rows.labels.len();
        if rows.logits.len() != n || rows.indices.len() != n {
            return Err(bad(format!(
                "{} logit rows, {} labels and {} indices",
                rows.logits.len(),
                n,
                rows.indices.len()
            )));
        }
        let classes = rows.logits.first().map_or(0, Vec::len);
        if let Some((i, r)) = rows.logits.iter().enumerate().find(|(_, r)| r.len() != classes) {
            return Err(bad(format!(
                "logit row {i} has {} values, row 0 has {classes}",
                r.len()
            )));
        }
        if let Some(l) = rows.labels.iter().find(|&&l| l >= classes) {
            return Err(bad(format!("label {l} but {classes} classes")));
        }
        let range = shard.bounds(rows.total_images);
        if let Some(i) = rows.indices.iter().find(|i| !range.contains(i)) {
            return Err(bad(format!(
                "image position {i} lies outside shard {shard} (positions {}..{} of {})",
                range.start, range.end, rows.total_images
            )));
        }
        if rows.indices.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("image positions are not increasing".into()));
        }
        Ok(ShardReport {
            path: path.to_path_buf(),
            value,
            shard,
            total_images: rows.total_images,
            logits: rows.logits,
            labels: rows.labels,
            indices: rows.indices,
        })
    }

    /// The configuration that must agree between shards: `config` without
    /// [`IGNORED_CONFIG_KEYS`], plus the quantizer states.
    pub fn run_identity(&self) -> Value {
        let mut config = self.value["config"].clone();
        if let Some(map) = config.as_object_mut() {
            for key in IGNORED_CONFIG_KEYS {
                map.remove(*key);
            }
        }
        json!({ "config": config, "quantizers": self.value["quantizers"], "total_images": self.total_images })
    }
}

/// The members in which two configurations differ, as `key: a vs b` (at most a few).
fn differences(a: &Value, b: &Value) -> String {
    let mut out = Vec::new();
    let (ca, cb) = (&a["config"], &b["config"]);
    let keys: std::collections::BTreeSet<&String> = ca
        .as_object()
        .into_iter()
        .chain(cb.as_object())
        .flat_map(|m| m.keys())
        .collect();
    for k in keys {
        if ca.get(k) != cb.get(k) {
            let show = |v: Option<&Value>| v.map_or("(absent)".to_string(), Value::to_string);
            out.push(format!("{k}: {} vs {}", show(ca.get(k)), show(cb.get(k))));
        }
    }
    if a["total_images"] != b["total_images"] {
        out.push(format!("total_images: {} vs {}", a["total_images"], b["total_images"]));
    }
    if out.is_empty() && a["quantizers"] != b["quantizers"] {
        out.push("the quantizer states (calibrated differently)".into());
    }
    out.truncate(5);
    out.join("; ")
}

/// Check that `reports` are the disjoint shards of one run covering its whole list, and combine
/// them into one report (the layout of `validate-quantized --json`, `config.shard` null, plus a
/// `shards` member listing the files; timings are summed over the shards).
pub fn merge(reports: &[ShardReport]) -> Result<Value> {
    let refuse = |why: String| Err(PtqError::invalid("merge", why));
    let Some(first) = reports.first() else {
        return refuse("no reports given".into());
    };
    // the same file twice
    let mut seen: BTreeMap<PathBuf, &Path> = BTreeMap::new();
    for r in reports {
        let key = std::fs::canonicalize(&r.path).unwrap_or_else(|_| r.path.clone());
        if let Some(other) = seen.insert(key, &r.path) {
            return refuse(format!(
                "duplicate: {} and {} are the same file",
                other.display(),
                r.path.display()
            ));
        }
    }
    // one configuration
    let identity = first.run_identity();
    for r in &reports[1..] {
        let id = r.run_identity();
        if id != identity {
            return refuse(format!(
                "{} and {} are reports of different configurations ({})",
                first.path.display(),
                r.path.display(),
                differences(&identity, &id)
            ));
        }
    }
    // the same shard twice, overlaps, gaps
    let total = first.total_images;
    let mut by_start: Vec<&ShardReport> = reports.iter().collect();
    by_start.sort_by_key(|r| (r.shard.bounds(total).start, r.shard.bounds(total).end));
    for (i, a) in by_start.iter().enumerate() {
        for b in &by_start[i + 1..] {
            let (ra, rb) = (a.shard.bounds(total), b.shard.bounds(total));
            if a.shard == b.shard || (ra == rb && !ra.is_empty()) {
                return refuse(format!(
                    "duplicate: {} and {} both hold shard {} (positions {}..{})",
                    a.path.display(),
                    b.path.display(),
                    b.shard,
                    rb.start,
                    rb.end
                ));
            }
            if ra.start < rb.end && rb.start < ra.end {
                return refuse(format!(
                    "overlapping shards: {} ({}, positions {}..{}) and {} ({}, positions {}..{})",
                    a.path.display(),
                    a.shard,
                    ra.start,
                    ra.end,
                    b.path.display(),
                    b.shard,
                    rb.start,
                    rb.end
                ));
            }
        }
    }
    let mut next = 0;
    let mut after: Option<&ShardReport> = None;
    let mut gaps = Vec::new();
    for r in by_start.iter().filter(|r| !r.shard.bounds(total).is_empty()) {
        let range = r.shard.bounds(total);
        if range.start > next {
            gaps.push((next, range.start, after.map(|a| a.path.clone()), Some(r.path.clone())));
        }
        next = next.max(range.end);
        after = Some(r);
    }
    if next < total {
        gaps.push((next, total, after.map(|a| a.path.clone()), None));
    }
    if !gaps.is_empty() {
        let list: Vec<String> = gaps
            .iter()
            .map(|(s, e, before, behind)| {
                let near = match (before, behind) {
                    (Some(a), Some(b)) => format!(" (between {} and {})", a.display(), b.display()),
                    (Some(a), None) => format!(" (after {})", a.display()),
                    (None, Some(b)) => format!(" (before {})", b.display()),
                    (None, None) => String::new(),
                };
                format!("positions {s}..{e}{near}")
            })
            .collect();
        return refuse(format!(
            "missing shards: {} of the {total} images are in none of the reports",
            list.join(", ")
        ));
    }

    // the rows in list order
    let mut rows: Vec<(usize, &Vec<f32>, usize)> = reports
        .iter()
        .flat_map(|r| {
            r.indices
                .iter()
                .zip(&r.logits)
                .zip(&r.labels)
                .map(|((&i, l), &y)| (i, l, y))
        })
        .collect();
    rows.sort_by_key(|&(i, _, _)| i);
    let classes = rows.first().map_or(0, |r| r.1.len());
    if let Some(r) = reports
        .iter()
        .find(|r| r.logits.first().is_some_and(|l| l.len() != classes))
    {
        return refuse(format!(
            "{} has {} classes, {} has {classes}",
            r.path.display(),
            r.logits[0].len(),
            first.path.display()
        ));
    }
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
    let labels: Vec<usize> = rows.iter().map(|r| r.2).collect();
    let mut metrics = Metrics::default();
    metrics.update(&flat, &labels, classes);

    let mut out = first.value.clone();
    out["config"]["shard"] = Value::Null;
    for key in ["json", "save_logits", "save_quant_params"] {
        if out["config"].get(key).is_some() {
            out["config"][key] = Value::Null;
        }
    }
    let seconds = |key: &str| -> f64 {
        reports
            .iter()
            .map(|r| r.value["timings"][key].as_f64().unwrap_or(0.0))
            .sum()
    };
    let validation = seconds("validation_seconds");
    out["timings"] = json!({
        "load_seconds": seconds("load_seconds"),
        "calibration_seconds": seconds("calibration_seconds"),
        "bn_reestimation_seconds": seconds("bn_reestimation_seconds"),
        "validation_seconds": validation,
    });
    out["images_per_second"] = json!(labels.len() as f64 / validation.max(1e-9));
    out["peak_memory_mib"] = reports
        .iter()
        .filter_map(|r| r.value["peak_memory_mib"].as_f64())
        .reduce(f64::max)
        .map_or(Value::Null, |m| json!(m));
    out["top1"] = json!(metrics.top1());
    out["top5"] = json!(metrics.top5());
    out["loss"] = json!(metrics.loss());
    out["images"] = json!(labels.len());
    out["total_images"] = json!(total);
    out["labels"] = json!(labels);
    out["indices"] = json!(rows.iter().map(|r| r.0).collect::<Vec<_>>());
    out["logits"] = json!(rows.iter().map(|r| r.1).collect::<Vec<_>>());
    out["skipped"] = Value::Array(
        by_start
            .iter()
            .flat_map(|r| r.value["skipped"].as_array().cloned().unwrap_or_default())
            .collect(),
    );
    out["shards"] = Value::Array(
        by_start
            .iter()
            .map(|r| {
                json!({
                    "file": r.path,
                    "shard": r.shard.to_string(),
                    "images": r.labels.len(),
                    "timings": r.value["timings"],
                })
            })
            .collect(),
    );
    Ok(out)
}
