//! The indexes of a sweep: run × shard, the index a scheduler hands a process, and where each
//! result goes.

use std::path::{Path, PathBuf};

use crate::error::{PtqError, Result};
use crate::run::Shard;

use super::plan::Plan;

/// Environment variables that carry a task's index, in the order they are read: Slurm job
/// arrays, then Kubernetes Indexed Jobs.
pub const INDEX_VARIABLES: &[&str] = &["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"];

/// One index of a sweep: a run of the plan and, when runs are sharded, its part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    /// The index, `0 .. plan.tasks()`.
    pub index: usize,
    /// The run, an index into `plan.runs`.
    pub run: usize,
    /// The part of the validation list (`None` when the plan has `shards = 1`).
    pub shard: Option<Shard>,
}

impl Task {
    /// Index `index` of `plan`: run `index / shards`, shard `index % shards`.
    pub fn of(plan: &Plan, index: usize) -> Result<Self> {
        if index >= plan.tasks() {
            return Err(PtqError::invalid(
                format!("index {index}"),
                format!(
                    "the plan {} has {} indexes (0..={}: {} run(s) × {} shard(s))",
                    plan.path.display(),
                    plan.tasks(),
                    plan.tasks().saturating_sub(1),
                    plan.runs.len(),
                    plan.shards
                ),
            ));
        }
        let run = index / plan.shards;
        let shard = (plan.shards > 1)
            .then(|| Shard::new(index % plan.shards, plan.shards))
            .transpose()?;
        Ok(Task { index, run, shard })
    }

    /// Every index of `plan`, in order.
    pub fn all(plan: &Plan) -> Result<Vec<Self>> {
        (0..plan.tasks()).map(|i| Task::of(plan, i)).collect()
    }

    /// The report file of this task in `out`: `NAME.json`, or `NAME.shard-I-of-N.json`.
    pub fn result_path(&self, plan: &Plan, out: &Path) -> PathBuf {
        shard_path(out, &plan.runs[self.run].name, self.shard)
    }

    /// Whether this task's report is in the results folder `out`; [`TaskStatus::Unknown`] when
    /// there is no results folder to look in (`None`).
    pub fn status(&self, plan: &Plan, out: Option<&Path>) -> TaskStatus {
        match out {
            None => TaskStatus::Unknown,
            Some(out) if self.result_path(plan, out).is_file() => TaskStatus::Done,
            Some(_) => TaskStatus::Pending,
        }
    }
}

/// Whether one index has run, as far as a results folder tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Its report is in the results folder.
    Done,
    /// Its report is not in the results folder (yet).
    Pending,
    /// No results folder was named, so nothing is known.
    Unknown,
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TaskStatus::Done => "done",
            TaskStatus::Pending => "pending",
            TaskStatus::Unknown => "unknown",
        })
    }
}

/// The report file of run `name`'s `shard` in `out`.
pub fn shard_path(out: &Path, name: &str, shard: Option<Shard>) -> PathBuf {
    match shard {
        None => out.join(format!("{name}.json")),
        Some(s) => out.join(format!("{name}.shard-{}-of-{}.json", s.index, s.count)),
    }
}

/// The index given by the scheduler: the first of [`INDEX_VARIABLES`] that is set (`lookup`
/// reads a variable; pass `|k| std::env::var(k).ok()`). `None` when none is set.
pub fn index_from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<usize>> {
    for var in INDEX_VARIABLES {
        if let Some(v) = lookup(var) {
            return v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| PtqError::invalid(format!("${var}"), format!("'{v}' is not an index (0, 1, 2, …)")));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_runs_and_shards() {
        let plan = Plan::parse(Path::new("p.toml"), "shards = 3\n[axes]\nseed = [1, 2]").unwrap();
        let t = Task::of(&plan, 4).unwrap();
        assert_eq!((t.run, t.shard), (1, Some(Shard::new(1, 3).unwrap())));
        assert_eq!(
            t.result_path(&plan, Path::new("out")),
            Path::new("out/seed=2.shard-1-of-3.json")
        );
        assert!(Task::of(&plan, 6).unwrap_err().to_string().contains("6 indexes"));
        let env = |k: &str| (k == "JOB_COMPLETION_INDEX").then(|| "5".to_string());
        assert_eq!(index_from_env(env).unwrap(), Some(5));
        let both = |k: &str| Some(if k == "SLURM_ARRAY_TASK_ID" { "2" } else { "5" }.to_string());
        assert_eq!(index_from_env(both).unwrap(), Some(2));
        assert_eq!(index_from_env(|_| None).unwrap(), None);
        assert!(index_from_env(|_| Some("x".into())).is_err());
        assert_eq!(t.status(&plan, None).to_string(), "unknown");
        assert_eq!(t.status(&plan, Some(Path::new("no/such/folder"))), TaskStatus::Pending);
    }
}
