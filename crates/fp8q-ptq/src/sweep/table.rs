//! The results folder of a sweep as a table: each run's top-1, top-5 and loss read from its
//! report (its shards merged first, see [`crate::run::merge`]), as Markdown — the paper's layout
//! when the plan names a column axis — and as CSV (one row per run, numbers in full).

use std::fmt::Write as _;
use std::path::Path;

use crate::error::Result;
use crate::run::merge::{merge, ShardReport};
use crate::run::store::write_json_atomically;
use crate::run::Shard;

use super::plan::Plan;
use super::tasks::shard_path;

/// What the results folder holds for one run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunStatus {
    /// The run is complete (all its shards merged).
    Done {
        /// Top-1 accuracy in [0, 1].
        top1: f64,
        /// Top-5 accuracy in [0, 1].
        top5: f64,
        /// Mean cross-entropy.
        loss: f64,
        /// Images evaluated.
        images: usize,
    },
    /// Some of its shards are done.
    Partial {
        /// Shards with a report.
        done: usize,
        /// Shards in all.
        shards: usize,
    },
    /// Nothing yet.
    Pending,
}

/// One run's row.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// Its index in `plan.runs`.
    pub run: usize,
    /// Its name.
    pub name: String,
    /// Its axis labels.
    pub labels: Vec<(String, String)>,
    /// What is there.
    pub status: RunStatus,
}

impl RunResult {
    /// Top-1 when done.
    pub fn top1(&self) -> Option<f64> {
        match self.status {
            RunStatus::Done { top1, .. } => Some(top1),
            _ => None,
        }
    }

    fn label(&self, axis: &str) -> &str {
        self.labels
            .iter()
            .find(|(a, _)| a == axis)
            .map_or("", |(_, l)| l.as_str())
    }
}

/// Read every run's reports from `out`. A run whose shards are all there is merged, and the
/// merged report is written as `NAME.json` beside them (once).
pub fn collect(plan: &Plan, out: &Path) -> Result<Vec<RunResult>> {
    let mut results = Vec::new();
    for (i, run) in plan.runs.iter().enumerate() {
        let whole = shard_path(out, &run.name, None);
        let status = if whole.is_file() {
            done(&ShardReport::read(&whole)?.value)
        } else if plan.shards > 1 {
            let paths: Vec<_> = (0..plan.shards)
                .map(|s| Shard::new(s, plan.shards).map(|s| shard_path(out, &run.name, Some(s))))
                .collect::<Result<_>>()?;
            let present: Vec<_> = paths.iter().filter(|p| p.is_file()).collect();
            if present.len() == plan.shards {
                let reports = present
                    .iter()
                    .map(|p| ShardReport::read(p))
                    .collect::<Result<Vec<_>>>()?;
                let merged = merge(&reports)?;
                write_json_atomically(&whole, &merged)?;
                done(&merged)
            } else if present.is_empty() {
                RunStatus::Pending
            } else {
                RunStatus::Partial {
                    done: present.len(),
                    shards: plan.shards,
                }
            }
        } else {
            RunStatus::Pending
        };
        results.push(RunResult {
            run: i,
            name: run.name.clone(),
            labels: run.labels.clone(),
            status,
        });
    }
    Ok(results)
}

fn done(v: &serde_json::Value) -> RunStatus {
    let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    RunStatus::Done {
        top1: num("top1"),
        top5: num("top5"),
        loss: num("loss"),
        images: v["images"].as_u64().unwrap_or(0) as usize,
    }
}

/// The runs as CSV: `index,run,<axes…>,status,images,top1,top5,loss`, the numbers as written in
/// the reports (shortest round-trip decimals; top-1 and top-5 as fractions).
pub fn csv(plan: &Plan, results: &[RunResult]) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::from("index,run");
    for a in &plan.axes {
        out.push(',');
        out.push_str(&field(&a.name));
    }
    out.push_str(",status,images,top1,top5,loss\n");
    for r in results {
        let _ = write!(out, "{},{}", r.run, field(&r.name));
        for a in &plan.axes {
            let _ = write!(out, ",{}", field(r.label(&a.name)));
        }
        let _ = match &r.status {
            RunStatus::Done {
                top1,
                top5,
                loss,
                images,
            } => writeln!(out, ",done,{images},{top1},{top5},{loss}"),
            RunStatus::Partial { done, shards } => writeln!(out, ",{done}/{shards} shards,,,,"),
            RunStatus::Pending => writeln!(out, ",pending,,,,"),
        };
    }
    out
}

/// Top-1 laid out with one axis as columns: a row per combination of the other axes' labels
/// (explicit runs are left out).
#[derive(Debug, Clone, PartialEq)]
pub struct Pivot {
    /// The other axes' names (the row header).
    pub row_axes: Vec<String>,
    /// Each row's labels of those axes.
    pub rows: Vec<Vec<String>>,
    /// The column axis's labels.
    pub columns: Vec<String>,
    /// Top-1 per row and column (`None`: not done).
    pub top1: Vec<Vec<Option<f64>>>,
}

/// The results pivoted on `column` (an axis of the plan), `None` when it is not one.
pub fn pivot(plan: &Plan, results: &[RunResult], column: &str) -> Option<Pivot> {
    let axis = plan.axes.iter().find(|a| a.name == column)?;
    let columns: Vec<String> = axis.values.iter().map(|v| v.label.clone()).collect();
    let row_axes: Vec<String> = plan
        .axes
        .iter()
        .filter(|a| a.name != column)
        .map(|a| a.name.clone())
        .collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut top1: Vec<Vec<Option<f64>>> = Vec::new();
    for r in results.iter().filter(|r| !r.labels.is_empty()) {
        let key: Vec<String> = row_axes.iter().map(|a| r.label(a).to_string()).collect();
        let row = match rows.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                rows.push(key);
                top1.push(vec![None; columns.len()]);
                rows.len() - 1
            }
        };
        if let Some(c) = columns.iter().position(|c| c == r.label(column)) {
            top1[row][c] = r.top1();
        }
    }
    Some(Pivot {
        row_axes,
        rows,
        columns,
        top1,
    })
}

fn percent(x: Option<f64>) -> String {
    x.map_or("—".into(), |v| format!("{:.2}", 100.0 * v))
}

/// The results as Markdown: the paper's layout (top-1 %, the plan's `[report] columns` axis as
/// columns) when the plan names one, then one row per run with top-1, top-5, loss and images.
pub fn markdown(plan: &Plan, results: &[RunResult]) -> String {
    let mut out = String::new();
    if let Some(p) = plan.columns.as_deref().and_then(|c| pivot(plan, results, c)) {
        let _ = writeln!(out, "Top-1 (%) by {}:\n", plan.columns.as_deref().unwrap_or(""));
        let head: Vec<String> = p.row_axes.iter().chain(&p.columns).cloned().collect();
        let _ = writeln!(out, "| {} |", head.join(" | "));
        let _ = writeln!(out, "|{}", " --- |".repeat(head.len()));
        for (labels, cells) in p.rows.iter().zip(&p.top1) {
            let cells: Vec<String> = cells.iter().map(|&c| percent(c)).collect();
            let _ = writeln!(
                out,
                "| {} |",
                labels.iter().chain(&cells).cloned().collect::<Vec<_>>().join(" | ")
            );
        }
        out.push('\n');
    }
    let mut head = vec!["#".to_string(), "run".to_string()];
    head.extend(plan.axes.iter().map(|a| a.name.clone()));
    head.extend(["top-1 (%)", "top-5 (%)", "loss", "images"].map(String::from));
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(out, "|{}", " --- |".repeat(head.len()));
    for r in results {
        let mut row = vec![r.run.to_string(), format!("`{}`", r.name)];
        row.extend(plan.axes.iter().map(|a| r.label(&a.name).to_string()));
        match &r.status {
            RunStatus::Done {
                top1,
                top5,
                loss,
                images,
            } => row.extend([
                percent(Some(*top1)),
                percent(Some(*top5)),
                format!("{loss:.4}"),
                images.to_string(),
            ]),
            RunStatus::Partial { done, shards } => {
                row.extend([format!("{done}/{shards} shards"), "—".into(), "—".into(), "—".into()])
            }
            RunStatus::Pending => row.extend(["pending".into(), "—".into(), "—".into(), "—".into()]),
        }
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}
