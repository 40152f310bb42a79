//! Sweeps of PTQ configurations (`fp8q sweep PLAN.toml`): a plan's runs, each index (run ×
//! shard) run on its own through [`crate::run::run_with`] — by a scheduler's job array, one
//! process per index, or all in one process sharing an [`fp8q_images::ImageCache`] — and the
//! results folder turned into the paper's table.
//!
//! * [`plan`]: reading a plan (base, axes, explicit runs, shards).
//! * [`tasks`]: indexes, the scheduler's index variables, result file names.
//! * [`execute`]: running one index, skipping it when its report exists.
//! * [`table`]: collecting the reports (merging shards) into Markdown and CSV.
//!
//! What a plan's options mean is not decided here: the caller resolves each run's options into
//! a [`crate::run::RunConfig`] (the CLI parses them exactly as `validate-quantized` arguments).

pub mod execute;
pub mod plan;
pub mod table;
pub mod tasks;

pub use execute::{run_task, Outcome};
pub use plan::{Axis, AxisValue, OptionValue, Plan, PlannedRun};
pub use table::{collect, csv, markdown, pivot, Pivot, RunResult, RunStatus};
pub use tasks::{index_from_env, shard_path, Task, TaskStatus, INDEX_VARIABLES};
