//! A sweep plan (`fp8q sweep PLAN.toml`): a base configuration, axes whose Cartesian product
//! gives the runs, an optional explicit list of runs, and how many shards each run is cut into.
//!
//! ```toml
//! out = "results"                 # the results folder (relative to the plan's folder)
//! shards = 1                      # parts of the validation list per run
//! [base]                          # validate-quantized's options, by their long names
//! architecture = "resnet18"
//! images-dir = "/data/imagenet"
//! per-channel = true
//! [axes]                          # each a list; the runs are every combination, in order
//! fp8-mantissa-bits = [2, 3, 4, 5]
//! reestimate-bn-stats = [true, false]
//! format = [{ name = "INT8", qmethod = "symmetric_uniform" }]   # a value may set several options
//! [[runs]]                        # extra runs: the base plus these options
//! name = "fp32"
//! weight-quant = false
//! act-quant = false
//! [report]
//! columns = "fp8-mantissa-bits"   # the axis that becomes the table's columns
//! ```
//!
//! A run is named by its axis values: a string value by itself, a number as `key=value`, a
//! switch as `key` or `no-key`, a table by its `name` (else its `key=value` pairs), joined by
//! `__`. Relative paths of `images-dir`, `model-dir` and `load-quant-params` are taken from the
//! plan's folder. This module only reads the plan; what each option means is decided by the
//! caller's resolver (the CLI parses them as `validate-quantized` arguments).

use std::path::{Path, PathBuf};

use crate::error::{PtqError, Result};

/// A value of one option in a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// `true` / `false` (a switch).
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string (a choice, a path).
    Text(String),
}

impl std::fmt::Display for OptionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionValue::Bool(b) => write!(f, "{b}"),
            OptionValue::Int(i) => write!(f, "{i}"),
            OptionValue::Float(x) => write!(f, "{x}"),
            OptionValue::Text(s) => f.write_str(s),
        }
    }
}

impl OptionValue {
    /// The label of this value of option `key` in a run name.
    fn label(&self, key: &str) -> String {
        match self {
            OptionValue::Bool(true) => key.to_string(),
            OptionValue::Bool(false) => format!("no-{key}"),
            OptionValue::Text(s) => s.clone(),
            other => format!("{key}={other}"),
        }
    }
}

/// Options of `validate-quantized` that a plan may not set, and why.
pub const REFUSED_OPTIONS: &[(&str, &str)] = &[
    ("json", "the sweep writes each run's report into its --out folder"),
    ("save-logits", "the logits are in each run's report"),
    ("save-quant-params", "the quantizer states are in each run's report"),
    ("print-config", "use `fp8q sweep --list`"),
    ("shard", "set `shards = N` at the top of the plan"),
    ("help", "not an option of a run"),
];

/// Options whose relative paths are taken from the plan's folder.
pub const PATH_OPTIONS: &[&str] = &["images-dir", "model-dir", "load-quant-params"];

/// One value of an axis: its label in run names and the options it sets.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisValue {
    /// The label (in run names and table headers).
    pub label: String,
    /// The options it sets.
    pub options: Vec<(String, OptionValue)>,
}

/// An axis: a name and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The option name, or a free name when the values are tables.
    pub name: String,
    /// The values, in the plan's order.
    pub values: Vec<AxisValue>,
}

/// One run of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// The run's name (also its report's file name).
    pub name: String,
    /// The label of each axis's value (empty for an explicit run).
    pub labels: Vec<(String, String)>,
    /// The options: the base's, then the run's own (a later one wins).
    pub options: Vec<(String, OptionValue)>,
}

/// A parsed plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The plan file.
    pub path: PathBuf,
    /// The axes, in the plan's order.
    pub axes: Vec<Axis>,
    /// Every run: the axes' product, then the explicit runs.
    pub runs: Vec<PlannedRun>,
    /// Shards per run (1: unsharded).
    pub shards: usize,
    /// The results folder named in the plan (resolved against the plan's folder).
    pub out: Option<PathBuf>,
    /// The axis that becomes the table's columns (`[report] columns`).
    pub columns: Option<String>,
}

/// The most runs × shards a plan may have.
pub const MAX_TASKS: usize = 100_000;

impl Plan {
    /// Read and check a plan file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|err| PtqError::Io {
            path: path.to_path_buf(),
            err,
        })?;
        Self::parse(path, &text)
    }

    /// Parse the text of a plan; `path` names it in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let bad = |why: String| PtqError::invalid(format!("plan {}", path.display()), why);
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| bad(e.to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        for key in doc.keys() {
            if !["base", "axes", "runs", "shards", "out", "report"].contains(&key.as_str()) {
                return Err(bad(format!(
                    "unknown top-level key '{key}' (expected base, axes, runs, shards, out, report; options go under [base])"
                )));
            }
        }
        let table = |key: &str| -> Result<toml::Table> {
            match doc.get(key) {
                None => Ok(toml::Table::new()),
                Some(toml::Value::Table(t)) => Ok(t.clone()),
                Some(other) => Err(bad(format!("'{key}' must be a table, not {}", other.type_str()))),
            }
        };
        let options_of = |t: &toml::Table, skip_name: bool, at: &str| -> Result<Vec<(String, OptionValue)>> {
            t.iter()
                .filter(|(k, _)| !(skip_name && k.as_str() == "name"))
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        option_value(&dir, k, v).map_err(|why| bad(format!("{at}: {why}")))?,
                    ))
                })
                .collect()
        };
        let base = options_of(&table("base")?, false, "[base]")?;

        let mut axes = Vec::new();
        for (name, v) in &table("axes")? {
            let toml::Value::Array(values) = v else {
                return Err(bad(format!("axis '{name}' must be a list of values")));
            };
            if values.is_empty() {
                return Err(bad(format!("axis '{name}' is empty: it would give no runs")));
            }
            let mut out = Vec::new();
            for (i, v) in values.iter().enumerate() {
                let at = format!("axis '{name}', value {}", i + 1);
                let value = match v {
                    toml::Value::Table(t) => {
                        let options = options_of(t, true, &at)?;
                        let label = match t.get("name") {
                            Some(toml::Value::String(s)) => s.clone(),
                            Some(other) => {
                                return Err(bad(format!("{at}: name must be a string, not {}", show(other))))
                            }
                            None => options
                                .iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(","),
                        };
                        AxisValue { label, options }
                    }
                    _ => {
                        let value = option_value(&dir, name, v).map_err(|why| bad(format!("{at}: {why}")))?;
                        AxisValue {
                            label: value.label(name),
                            options: vec![(name.clone(), value)],
                        }
                    }
                };
                if out.iter().any(|o: &AxisValue| o.label == value.label) {
                    return Err(bad(format!("axis '{name}' has the value '{}' twice", value.label)));
                }
                out.push(value);
            }
            axes.push(Axis {
                name: name.clone(),
                values: out,
            });
        }
        let product: usize = axes
            .iter()
            .map(|a| a.values.len())
            .try_fold(1usize, |p, n| p.checked_mul(n))
            .unwrap_or(usize::MAX);

        let explicit = match doc.get("runs") {
            None => Vec::new(),
            Some(toml::Value::Array(list)) => list.clone(),
            Some(_) => return Err(bad("'runs' must be a list of tables ([[runs]])".into())),
        };
        let shards = match doc.get("shards") {
            None => 1,
            Some(toml::Value::Integer(n)) if *n >= 1 => *n as usize,
            Some(other) => return Err(bad(format!("shards must be an integer ≥ 1, not {}", show(other)))),
        };
        let count = if axes.is_empty() && !explicit.is_empty() {
            0
        } else {
            product
        };
        if count.saturating_add(explicit.len()).saturating_mul(shards) > MAX_TASKS {
            return Err(bad(format!("more than {MAX_TASKS} runs × shards")));
        }

        let mut runs = Vec::new();
        for k in 0..count {
            // the last axis varies fastest
            let mut rest = k;
            let mut picks = vec![0; axes.len()];
            for (a, axis) in axes.iter().enumerate().rev() {
                picks[a] = rest % axis.values.len();
                rest /= axis.values.len();
            }
            let mut options = base.clone();
            let mut labels = Vec::new();
            for (axis, &p) in axes.iter().zip(&picks) {
                let v = &axis.values[p];
                options.extend(v.options.iter().cloned());
                labels.push((axis.name.clone(), v.label.clone()));
            }
            let name = if labels.is_empty() {
                "base".to_string()
            } else {
                labels.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("__")
            };
            runs.push(PlannedRun {
                name: file_name(&name),
                labels,
                options,
            });
        }
        for (i, r) in explicit.iter().enumerate() {
            let at = format!("[[runs]] number {}", i + 1);
            let toml::Value::Table(t) = r else {
                return Err(bad(format!("{at} must be a table")));
            };
            let own = options_of(t, true, &at)?;
            let name = match t.get("name") {
                Some(toml::Value::String(s)) => s.clone(),
                Some(other) => return Err(bad(format!("{at}: name must be a string, not {}", show(other)))),
                None => own
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            };
            let mut options = base.clone();
            options.extend(own);
            runs.push(PlannedRun {
                name: file_name(&name),
                labels: Vec::new(),
                options,
            });
        }
        for (i, r) in runs.iter().enumerate() {
            if let Some(j) = runs[..i].iter().position(|o| o.name == r.name) {
                return Err(bad(format!("runs {j} and {i} have the same name '{}'", r.name)));
            }
        }
        let out = match doc.get("out") {
            None => None,
            Some(toml::Value::String(s)) => Some(dir.join(s)),
            Some(other) => return Err(bad(format!("out must be a string (a folder), not {}", show(other)))),
        };
        let report = table("report")?;
        let columns = match report.get("columns") {
            None => None,
            Some(toml::Value::String(s)) if axes.iter().any(|a| &a.name == s) => Some(s.clone()),
            Some(other) => {
                return Err(bad(format!(
                    "[report] columns = {} is not one of the axes",
                    show(other)
                )))
            }
        };
        if let Some(k) = report.keys().find(|k| k.as_str() != "columns") {
            return Err(bad(format!("unknown key '{k}' in [report] (expected columns)")));
        }
        Ok(Plan {
            path: path.to_path_buf(),
            axes,
            runs,
            shards,
            out,
            columns,
        })
    }

    /// Runs × shards: the number of indexes.
    pub fn tasks(&self) -> usize {
        self.runs.len() * self.shards
    }
}

/// A plan value as an option value (nested lists and tables, dates refused), with relative paths
/// of [`PATH_OPTIONS`] taken from `dir`.
fn option_value(dir: &Path, key: &str, v: &toml::Value) -> std::result::Result<OptionValue, String> {
    if let Some((_, why)) = REFUSED_OPTIONS.iter().find(|(k, _)| *k == key) {
        return Err(format!("option '{key}' cannot be set in a plan: {why}"));
    }
    Ok(match v {
        toml::Value::Boolean(b) => OptionValue::Bool(*b),
        toml::Value::Integer(i) => OptionValue::Int(*i),
        toml::Value::Float(x) => OptionValue::Float(*x),
        toml::Value::String(s) if PATH_OPTIONS.contains(&key) => {
            OptionValue::Text(dir.join(s).to_string_lossy().into_owned())
        }
        toml::Value::String(s) => OptionValue::Text(s.clone()),
        other => {
            return Err(format!(
                "option '{key}' = {}: expected a boolean, number or string",
                show(other)
            ))
        }
    })
}

/// A plan value in an error message.
fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => format!("the date {d}"),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

/// `name` with every character outside `[A-Za-z0-9._=,+-]` replaced by `-`.
fn file_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._=,+-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.starts_with('.') {
        format!("-{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Plan> {
        Plan::parse(Path::new("/plans/p.toml"), text)
    }

    #[test]
    fn product_names_and_explicit_runs() {
        let p = parse(
            r#"
            shards = 2
            [base]
            architecture = "resnet18"
            images-dir = "imgs"
            [axes]
            fp8-mantissa-bits = [3, 4]
            reestimate-bn-stats = [true, false]
            [[runs]]
            name = "INT8"
            qmethod = "symmetric_uniform"
            "#,
        )
        .unwrap();
        let names: Vec<&str> = p.runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "fp8-mantissa-bits=3__reestimate-bn-stats",
                "fp8-mantissa-bits=3__no-reestimate-bn-stats",
                "fp8-mantissa-bits=4__reestimate-bn-stats",
                "fp8-mantissa-bits=4__no-reestimate-bn-stats",
                "INT8"
            ]
        );
        assert_eq!(p.tasks(), 10);
        assert_eq!(
            p.runs[1].options[1],
            ("images-dir".into(), OptionValue::Text("/plans/imgs".into()))
        );
        assert_eq!(
            p.runs[1].options[3],
            ("reestimate-bn-stats".into(), OptionValue::Bool(false))
        );
        assert_eq!(
            p.runs[4].options[2],
            ("qmethod".into(), OptionValue::Text("symmetric_uniform".into()))
        );
    }

    #[test]
    fn table_values_and_refusals() {
        let p = parse("[axes]\nformat = [{name = \"E4M3\", fp8-mantissa-bits = 3}, {qmethod = \"x\"}]").unwrap();
        assert_eq!(p.runs[0].name, "E4M3");
        assert_eq!(p.runs[1].name, "qmethod=x");
        for (text, needle) in [
            ("[axes]\nfp8-mantissa-bits = []", "empty"),
            ("[base]\njson = \"r.json\"", "cannot be set in a plan"),
            ("[base]\nseed = [1]", "expected a boolean"),
            ("[axes]\nseed = 1", "must be a list"),
            ("[axes]\nseed = [1, 1]", "twice"),
            ("shards = 0", "shards"),
            ("sweep = 1", "unknown top-level key"),
            ("[report]\ncolumns = \"seed\"", "not one of the axes"),
            ("[[runs]]\nname = \"a\"\n[[runs]]\nname = \"a\"", "same name"),
            ("[base\n", "p.toml"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("/plans/p.toml"), "{text}: {e}");
        }
    }
}
