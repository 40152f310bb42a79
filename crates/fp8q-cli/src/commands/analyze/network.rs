//! `fp8q analyze --architecture …`: the library's network analysis
//! ([`fp8q_ptq::analyze::analyze_network`]) from validate-quantized's options, shown with the
//! same outputs as weights mode.

use anyhow::{bail, Result};
use fp8q_ptq::analyze::{analyze_network, AnalysisConfig};
use fp8q_ptq::PtqConfig;

use super::output::Report;
use super::AnalyzeArgs;
use crate::commands::validate_quantized::run_config;
use crate::terminal::Terminal;

/// Run network mode.
pub fn run(args: &AnalyzeArgs) -> Result<()> {
    let (mut run, notes) = run_config(&args.network)?;
    for note in notes {
        eprintln!("note: {note}");
    }
    for (given, what) in [
        (run.shard.is_some(), "--shard"),
        (run.load_quant_params.is_some(), "--load-quant-params"),
        (run.save_quant_params.is_some(), "--save-quant-params"),
        (args.mantissa_search, "--mantissa-search (weights mode only)"),
    ] {
        if given {
            bail!("{what} does not apply to fp8q analyze on a network");
        }
    }
    if let Some(name) = &args.range {
        let m = PtqConfig::range_method(name)?;
        run.ptq.weight_quant_method = m;
        run.ptq.act_quant_method = m;
    }
    let formats = args.parsed_formats()?;
    let range = format!(
        "weights {}, activations {}",
        run.ptq.weight_quant_method.name(),
        run.ptq.act_quant_method.name()
    );
    let per_channel = run.ptq.per_channel;
    let source = match &run.model_dir {
        Some(p) => format!("{} ({})", run.arch, p.display()),
        None => format!("{} (torchvision weights)", run.arch),
    };
    let cfg = AnalysisConfig {
        run,
        formats: formats.iter().map(|f| f.to_string()).collect(),
        sensitivity_images: args.sensitivity_images,
    };
    let mut terminal = Terminal::new(args.network.switches.progress_bar.on);
    let analysis = analyze_network(&cfg, &mut |e| terminal.show(e))?;
    drop(terminal);
    let report = Report {
        source,
        mode: "network",
        formats: cfg.formats.clone(),
        range,
        per_channel,
        mantissa_search: false,
        slots: &analysis.rows,
        summary: analysis.summary.clone(),
        mix: analysis.mix.clone(),
        skipped: Vec::new(),
        not_weights: 0,
    };
    super::emit(args, &report)
}
