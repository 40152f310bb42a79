//! Running one index of a sweep: the run goes through [`crate::run::run_with`], its report is
//! written through a temporary file and a rename, and an index whose report exists is skipped,
//! so a sweep that was killed resumes where it stopped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use crate::error::{PtqError, Result};
use crate::run::{run_with, Observer, RunConfig};
use fp8q_images::ImageCache;

use super::plan::Plan;
use super::tasks::Task;

/// What became of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Run now; its report is here.
    Done(PathBuf),
    /// Its report was already there: not run again.
    Skipped(PathBuf),
}

/// Run `task` of `plan` with `config` (the run's resolved configuration; the task's shard is
/// set here) unless its report already exists in `out`. The report is `validate-quantized
/// --json`'s plus a `sweep` member (plan, run name, index, axis labels).
pub fn run_task(
    plan: &Plan,
    task: Task,
    config: &RunConfig,
    out: &Path,
    cache: Option<Arc<ImageCache>>,
    observe: &mut Observer<'_>,
) -> Result<Outcome> {
    let path = task.result_path(plan, out);
    if path.is_file() {
        return Ok(Outcome::Skipped(path));
    }
    std::fs::create_dir_all(out).map_err(|err| PtqError::Io {
        path: out.to_path_buf(),
        err,
    })?;
    let mut cfg = config.clone();
    cfg.shard = task.shard;
    let report = run_with(&cfg, cache, observe)?;
    let run = &plan.runs[task.run];
    let mut value = report.to_json();
    value["sweep"] = json!({
        "plan": plan.path,
        "run": run.name,
        "index": task.index,
        "labels": run.labels.iter().map(|(a, l)| json!({"axis": a, "label": l})).collect::<Vec<_>>(),
    });
    crate::run::store::write_json_atomically(&path, &value)?;
    Ok(Outcome::Done(path))
}
