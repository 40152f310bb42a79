//! `fp8q validate-quantized`: load an FP32 checkpoint, calibrate quantizers, (re-estimate batch
//! norm,) evaluate on an ImageNet-layout folder, report top-1, top-5 and loss.
//!
//! The command line is the reference's (`image_net.py validate-quantized`), verbatim:
//! [`args`] declares it, [`config`] resolves it into the library's
//! [`fp8q_ptq::run::RunConfig`], and [`run`] hands that to [`fp8q_ptq::run::run`] — install the
//! quantizers of `--quant-setup`, calibrate them sequentially on `--num-est-batches` training
//! batches (or load them with `--load-quant-params`), fix the ranges, re-estimate BN statistics
//! with the quantizers fixed, evaluate — then prints the report.
//! `--no-weight-quant --no-act-quant` is the FP32 baseline.

mod args;
mod config;
mod reference_options;
mod report;
mod switches;

use anyhow::Context;
use fp8q_ptq::run::RunReport;

pub use crate::terminal::Terminal;
pub use args::{RunArgs, ValidateQuantizedArgs};
pub use config::{run_config, Invocation};
use report::write_npy;

/// Run the command: resolve the options, print the notes on options without effect, then
/// print the configuration (`--print-config`) or run the pipeline and write its report.
pub fn run(args: &ValidateQuantizedArgs) -> anyhow::Result<()> {
    let inv = Invocation::from_args(args)?;
    for note in &inv.notes {
        eprintln!("note: {note}");
    }
    if args.print_config {
        println!("{}", serde_json::to_string_pretty(&inv.to_json())?);
        return Ok(());
    }
    let mut terminal = Terminal::new(inv.progress_bar);
    let report = fp8q_ptq::run::run(&inv.run, &mut |e| terminal.show(e))?;
    drop(terminal);
    write_outputs(&inv, &report)
}

/// Print the summary line and write `--save-logits` and `--json`.
fn write_outputs(inv: &Invocation, report: &RunReport) -> anyhow::Result<()> {
    for (path, why) in &report.skipped {
        eprintln!("skipped {}: {why}", path.display());
    }
    println!("{}", report.summary());
    if let Some(path) = &inv.save_logits {
        write_npy(path, &report.logits, report.labels.len(), report.classes)?;
    }
    if let Some(path) = &inv.json {
        let mut json = report.to_json();
        json["config"]["progress_bar"] = inv.progress_bar.into();
        json["config"]["json"] = serde_json::json!(inv.json);
        json["config"]["save_logits"] = serde_json::json!(inv.save_logits);
        let text = serde_json::to_string_pretty(&json)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
