//! `fp8q sweep PLAN.toml`: the runs of a plan (`fp8q_ptq::sweep`), listed, run one index at a
//! time (`--index`, or a scheduler's `SLURM_ARRAY_TASK_ID` / `JOB_COMPLETION_INDEX`) or all in
//! one process, and their results folder as the paper's table. Each run's options are parsed as
//! `validate-quantized` arguments by the same parser, so every option means the same thing.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::{CommandFactory, FromArgMatches};
use fp8q_images::ImageCache;
use fp8q_ptq::run::RunConfig;
use fp8q_ptq::sweep::{self, OptionValue, Outcome, Plan, PlannedRun, Task};

use super::validate_quantized::{Invocation, Terminal, ValidateQuantizedArgs};

/// Run a sweep plan: `--list` its indexes, run `--index I` (default: `$SLURM_ARRAY_TASK_ID`, then
/// `$JOB_COMPLETION_INDEX`), run `--all` here one after another, or `--report` the results.
/// Reports go to `--out DIR` (else the plan's `out`), one per run and shard, written through a
/// temporary file and a rename; an index whose report exists is skipped, so a sweep resumes.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("verb").args(["list", "index", "all", "report"]))]
pub struct SweepArgs {
    /// The plan (TOML: [base], [axes], [[runs]], shards, out, [report] columns; docs/sweeps.md).
    #[arg(value_name = "PLAN.toml")]
    pub plan: PathBuf,
    /// List the indexes: run, shard, whether its report exists (`unknown` without a results
    /// folder), the quantization.
    #[arg(long)]
    pub list: bool,
    /// Run this index (0-based).
    #[arg(long, value_name = "I")]
    pub index: Option<usize>,
    /// Run every index here, one after another (decoded validation images shared, see --cache-mb).
    #[arg(long)]
    pub all: bool,
    /// Print the results folder as a table (Markdown; --csv for CSV) and draw --plot.
    #[arg(long)]
    pub report: bool,
    /// With --report: CSV instead of Markdown.
    #[arg(long, requires = "report")]
    pub csv: bool,
    /// With --report: the SVG plot of top-1 per format and architecture [default: OUT/report.svg].
    #[arg(long, value_name = "FILE", requires = "report")]
    pub plot: Option<PathBuf>,
    /// The results folder [default: the plan's `out`].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// With --all: memory for decoded and transformed validation images kept across runs (MiB; 0: none).
    #[arg(long = "cache-mb", default_value_t = 1024, value_name = "MB")]
    pub cache_mb: usize,
    /// Show progress bars on stderr [default: when stderr is a terminal].
    #[arg(long = "progress-bar")]
    pub progress_bar: bool,
}

/// Run the command.
pub fn run(args: &SweepArgs) -> anyhow::Result<()> {
    let plan = Plan::read(&args.plan)?;
    // --list works without a results folder (each index's status is then unknown)
    let out_or_none = args.out.clone().or_else(|| plan.out.clone());
    let need_out = || {
        out_or_none.clone().ok_or_else(|| {
            anyhow!(
                "no results folder: pass --out DIR or set out = \"DIR\" in {}",
                args.plan.display()
            )
        })
    };
    if args.report {
        return report(args, &plan, &need_out()?);
    }
    // every run's options are checked before anything runs
    let configs = plan
        .runs
        .iter()
        .map(|r| resolve(r).with_context(|| format!("plan {}, run '{}'", plan.path.display(), r.name)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.list {
        for task in Task::all(&plan)? {
            println!(
                "{:>4}  {}{}  [{}]  {} {}",
                task.index,
                plan.runs[task.run].name,
                task.shard.map(|s| format!("  shard {s}")).unwrap_or_default(),
                task.status(&plan, out_or_none.as_deref()),
                configs[task.run].arch,
                configs[task.run].describe()
            );
        }
        return Ok(());
    }
    let out = need_out()?;
    let shown = args.progress_bar || std::io::stderr().is_terminal();
    if args.all {
        let cache = (args.cache_mb > 0).then(|| ImageCache::with_mib(args.cache_mb));
        for task in Task::all(&plan)? {
            run_one(&plan, task, &configs[task.run], &out, cache.clone(), shown)?;
        }
        if let Some(c) = &cache {
            let (hits, misses) = c.hits_and_misses();
            eprintln!(
                "image cache: {} images, {:.0} MiB, {hits} hits, {misses} misses",
                c.len(),
                c.used_bytes() as f64 / (1 << 20) as f64
            );
        }
        return Ok(());
    }
    let index = match args.index {
        Some(i) => i,
        None => sweep::index_from_env(|k| std::env::var(k).ok())?.ok_or_else(|| {
            anyhow!(
                "say what to do: --list, --index I, --all or --report (or set {})",
                sweep::INDEX_VARIABLES.join(" or ")
            )
        })?,
    };
    let task = Task::of(&plan, index)?;
    run_one(&plan, task, &configs[task.run], &out, None, shown)
}

/// Run (or skip) one index and say so.
fn run_one(
    plan: &Plan,
    task: Task,
    cfg: &RunConfig,
    out: &Path,
    cache: Option<std::sync::Arc<ImageCache>>,
    shown: bool,
) -> anyhow::Result<()> {
    let name = &plan.runs[task.run].name;
    let shard = task.shard.map(|s| format!(" shard {s}")).unwrap_or_default();
    eprintln!("[{}/{}] {name}{shard}", task.index, plan.tasks());
    let mut terminal = Terminal::new(shown);
    let outcome = sweep::run_task(plan, task, cfg, out, cache, &mut |e| match e {
        fp8q_ptq::run::Event::Note(_) => {}
        e => terminal.show(e),
    })?;
    drop(terminal);
    match outcome {
        Outcome::Done(p) => println!("{}: done -> {}", task.index, p.display()),
        Outcome::Skipped(p) => println!("{}: skipped, {} exists", task.index, p.display()),
    }
    Ok(())
}

/// A run's options as `validate-quantized` arguments, parsed by its own parser and resolved.
pub fn resolve(run: &PlannedRun) -> anyhow::Result<RunConfig> {
    /// `validate-quantized`'s arguments as a command of their own.
    #[derive(clap::Parser, Debug)]
    #[command(name = "validate-quantized", no_binary_name = true, disable_help_flag = true)]
    struct Wrapper {
        #[command(flatten)]
        args: ValidateQuantizedArgs,
    }
    let cmd = Wrapper::command();
    let mut argv = Vec::new();
    for (key, value) in &run.options {
        let Some(arg) = cmd.get_arguments().find(|a| a.get_long() == Some(key.as_str())) else {
            let similar: Vec<String> = cmd
                .get_arguments()
                .filter_map(|a| a.get_long())
                .filter(|l| !l.starts_with("no-") && edit_distance(l, key) <= 2)
                .map(|l| format!("'{l}'"))
                .collect();
            bail!(
                "unknown option '{key}' (validate-quantized has no --{key}){}",
                if similar.is_empty() {
                    String::new()
                } else {
                    format!("; similar: {}", similar.join(", "))
                }
            );
        };
        let is_switch = !arg.get_action().takes_values();
        match (value, is_switch) {
            (OptionValue::Bool(true), true) => argv.push(format!("--{key}")),
            (OptionValue::Bool(false), true) => {
                let off = format!("no-{key}");
                if cmd.get_arguments().any(|a| a.get_long() == Some(off.as_str())) {
                    argv.push(format!("--{off}"));
                }
            }
            (v, true) => bail!("option '{key}' is a switch: write {key} = true or false, not {v}"),
            (v, false) => argv.push(format!("--{key}={v}")),
        }
    }
    let matches = cmd
        .try_get_matches_from(&argv)
        .map_err(|e| anyhow!("{}", e.render().to_string().trim_start_matches("error: ").trim()))?;
    let wrapper = Wrapper::from_arg_matches(&matches).map_err(|e| anyhow!("{e}"))?;
    Ok(Invocation::from_args(&wrapper.args)?.run)
}

/// Levenshtein distance of two option names (for "did you mean").
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// `--report`: the table on stdout, the plot beside the results.
fn report(args: &SweepArgs, plan: &Plan, out: &Path) -> anyhow::Result<()> {
    if !out.is_dir() {
        bail!("no results folder {}: nothing has run yet", out.display());
    }
    let results = sweep::collect(plan, out)?;
    if args.csv {
        print!("{}", sweep::csv(plan, &results));
    } else {
        print!("{}", sweep::markdown(plan, &results));
    }
    let path = args.plot.clone().unwrap_or_else(|| out.join("report.svg"));
    plot(plan, &results, &path)?;
    eprintln!("plot: {}", path.display());
    Ok(())
}

/// Top-1 per value of the plan's column axis (the format), one line per row of the table (the
/// architecture and the other axes); without a column axis, top-1 per run.
fn plot(plan: &Plan, results: &[sweep::RunResult], path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    type Series = Vec<(String, Vec<Option<f64>>)>;
    let (xs, series): (Vec<String>, Series) = match plan.columns.as_deref().and_then(|c| sweep::pivot(plan, results, c))
    {
        Some(p) => (
            p.columns.clone(),
            p.rows.iter().map(|r| r.join(" ")).zip(p.top1.clone()).collect(),
        ),
        None => (
            results.iter().map(|r| r.run.to_string()).collect(),
            vec![("top-1".into(), results.iter().map(|r| r.top1()).collect())],
        ),
    };
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let n = xs.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption("Top-1 per configuration", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..100f64)
        .map_err(|e| err(&e))?;
    let label_of = crate::plot::category_labels(xs.clone());
    chart
        .configure_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&label_of)
        .x_desc(plan.columns.as_deref().unwrap_or("run"))
        .y_desc("top-1 (%)")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (name, ys)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = ys
            .iter()
            .enumerate()
            .filter_map(|(k, y)| y.map(|y| (k as f64, 100.0 * y)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
