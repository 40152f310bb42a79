//! `fp8q merge`: combine the `--json` reports of `validate-quantized --shard I/N` runs into the
//! report of the unsharded run (the library's [`fp8q_ptq::run::merge`]).

use std::path::PathBuf;

use fp8q_ptq::run::merge::{merge, ShardReport};
use fp8q_ptq::run::store::write_json_atomically;

/// Combine shard reports into one: logits in the order of the whole validation list, top-1,
/// top-5 and loss computed again from them (identical to the unsharded run's). Refuses reports
/// of different configurations, the same file or shard twice, overlapping and missing shards.
#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// The shard reports (`validate-quantized --shard I/N --json FILE`).
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
    /// The merged report.
    #[arg(short = 'o', long = "output", value_name = "OUT.json")]
    pub output: PathBuf,
}

/// Run the command.
pub fn run(args: &MergeArgs) -> anyhow::Result<()> {
    let mut reports = Vec::with_capacity(args.reports.len());
    for path in &args.reports {
        reports.push(ShardReport::read(path)?);
    }
    let merged = merge(&reports)?;
    write_json_atomically(&args.output, &merged)?;
    println!(
        "{} shard(s) merged: top-1 {:.2}%  top-5 {:.2}%  loss {:.4}  ({} images) -> {}",
        reports.len(),
        100.0 * merged["top1"].as_f64().unwrap_or(f64::NAN),
        100.0 * merged["top5"].as_f64().unwrap_or(f64::NAN),
        merged["loss"].as_f64().unwrap_or(f64::NAN),
        merged["images"],
        args.output.display()
    );
    Ok(())
}
