//! `fp8q analyze`: which format suits each tensor — statistics, measured and analytical SQNR per
//! format, the best format and a recommendation (`docs/analyze.md`).
//!
//! * [`network`]: a network (`--architecture`, `--images-dir`, validate-quantized's options):
//!   every quantizer slot, weights and activations, with the network's sensitivity.
//! * [`weights`]: weights only, from a checkpoint (`.safetensors` or `.pth`), no architecture.
//! * [`output`]: the table, `--json`, `--csv`, `--plot` and `--write-layer-formats`, for any
//!   slice of `AnalysisRow`s (weights or network mode alike).

pub mod network;
pub mod output;
pub mod weights;

use anyhow::{bail, Context, Result};
use fp8q_core::analysis::format_choice::{check_range_options, parse_formats};
use fp8q_core::analysis::quantize_measure::RangeOptions;
use fp8q_core::format::Format;
use std::path::{Path, PathBuf};

use super::validate_quantized::RunArgs;

/// Analyse which number format suits each tensor: per tensor the statistics (elements, absmax,
/// σ, kurtosis, max/σ), per format the range it gets and the SQNR of the quantized tensor, the
/// analytical SQNR of a Gaussian or Student's t fitted to the tensor, and the best format.
///
/// Network mode (`fp8q analyze --architecture A --images-dir DIR …`, with validate-quantized's
/// options): every quantizer slot the quant setup places, weights and activations (captured on
/// the calibration batches), plus the network's sensitivity: the SQNR of the logits against FP32
/// with only that slot quantized. The recommendation is the format with the best sensitivity.
///
/// Weights mode (`fp8q analyze CHECKPOINT`): every weight tensor (two or more dimensions) of a
/// `.safetensors` (F32/F16/BF16/F64, memory-mapped) or `.pth` file; non-float tensors are
/// skipped and listed.
#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    /// Checkpoint (.safetensors or .pth) to analyse the weights of.
    pub checkpoint: Option<PathBuf>,
    /// Formats to compare (any that `fp8q formats` names), comma-separated. Block-scaled
    /// formats (mxfp8_e4m3, mxfp6_e2m3, mxfp4, mxint8, nvfp4, ELEMENT@K[/SCALE][:RULE]) have no
    /// range: the range options do not apply to them; their blocks run along the reduction
    /// dimension (dimension 1 of a weight, the channels of an activation), as in PTQ.
    #[arg(long, value_delimiter = ',', default_value = "e5m2,e4m3,e3m4,e2m5,int8")]
    pub formats: Vec<String>,
    /// Range estimator (as `fp8q quantize --range`): current_minmax, allminmax, running_minmax,
    /// mse, line_search; one batch = the whole tensor (or each channel with --per-channel)
    /// [default: current_minmax]. Network mode: overrides --weight-quant-method and
    /// --act-quant-method (`--range mse`: the MSE-optimal range everywhere).
    #[arg(long)]
    pub range: Option<String>,
    /// With --range mse: FP formats also search their mantissa bits (keeping the width); the
    /// split used is reported.
    #[arg(long)]
    pub mantissa_search: bool,
    /// Print the report as JSON (one object per slot, a summary, the skipped tensors).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print one CSV line per slot instead of the table.
    #[arg(long)]
    pub csv: bool,
    /// Draw a heat map (slots × formats, recommendation marked, kurtosis beside) to this SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Write the recommended format per unit as `{unit: {"weight": fmt, "act": fmt}}`.
    #[arg(long, value_name = "FILE.json")]
    pub write_layer_formats: Option<PathBuf>,
    /// Network mode: images (training images, validation transform, spread evenly) on which the
    /// sensitivity of each slot is measured; 0 skips it.
    #[arg(long = "sensitivity-images", value_name = "N", default_value_t = 64)]
    pub sensitivity_images: usize,
    /// Network mode: validate-quantized's options (network, images, calibration, estimators,
    /// quant setup). `--per-channel` applies to weights mode too.
    #[command(flatten)]
    pub network: RunArgs,
}

/// What `fp8q analyze` runs.
#[derive(Debug)]
pub enum Mode<'a> {
    /// Weights of a checkpoint.
    Weights(&'a Path),
    /// A network on images (`--architecture`).
    Network,
}

impl AnalyzeArgs {
    /// The mode the arguments ask for: network mode with `--architecture`, else weights mode.
    pub fn mode(&self) -> Result<Mode<'_>> {
        match (&self.checkpoint, self.network.architecture) {
            (Some(p), None) => Ok(Mode::Weights(p)),
            (None, Some(_)) => Ok(Mode::Network),
            (Some(p), Some(_)) => bail!(
                "give either a CHECKPOINT ({}) for its weights, or --architecture (with --model-dir) for a network",
                p.display()
            ),
            (None, None) => bail!(
                "give a CHECKPOINT (.safetensors or .pth) to analyse its weights, or --architecture and \
                 --images-dir to analyse a network"
            ),
        }
    }

    /// The formats, parsed, with `--block-size` and `--scale-rule` applied to the block-scaled
    /// ones, and checked for duplicates.
    pub fn parsed_formats(&self) -> Result<Vec<Format>> {
        let (size, rule) = (self.network.block_size, self.network.scale_rule);
        let formats = parse_formats(&self.formats)?;
        if (size.is_some() || rule.is_some()) && !formats.iter().any(|f| f.as_block().is_some()) {
            bail!("--block-size and --scale-rule apply to block-scaled formats (mxfp4, nvfp4, e2m1@32, ...); --formats has none");
        }
        let formats = formats
            .iter()
            .map(|f| f.with_block_options(size, rule))
            .collect::<Result<Vec<_>, _>>()
            .context("--block-size/--scale-rule")?;
        for (i, f) in formats.iter().enumerate() {
            if formats[..i].contains(f) {
                bail!("--formats: {f} is listed twice (after --block-size/--scale-rule)");
            }
        }
        Ok(formats)
    }

    /// The range options (checked against every format).
    pub fn range_options(&self, formats: &[Format]) -> Result<RangeOptions> {
        let opts = RangeOptions::new(
            self.range_name().parse().context("--range")?,
            self.per_channel(),
            self.mantissa_search,
        );
        check_range_options(&opts, formats)?;
        Ok(opts)
    }
}

impl AnalyzeArgs {
    /// `--range`, or its default `current_minmax`.
    pub fn range_name(&self) -> &str {
        self.range.as_deref().unwrap_or("current_minmax")
    }

    /// `--per-channel` (the last of `--per-channel` / `--no-per-channel`).
    pub fn per_channel(&self) -> bool {
        self.network.switches.per_channel.on
    }
}

/// Run the command.
pub fn run(args: &AnalyzeArgs) -> Result<()> {
    match args.mode()? {
        Mode::Weights(path) => weights::run(args, path),
        Mode::Network => network::run(args),
    }
}

/// Write every requested output for `rows` (shared by the modes).
pub fn emit(args: &AnalyzeArgs, report: &output::Report<'_>) -> Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else if args.csv {
        output::write_csv(report.slots, &mut std::io::stdout().lock())?;
    } else {
        output::print_table(report);
    }
    if let Some(p) = &args.plot {
        output::write_plot(report.slots, p)?;
    }
    if let Some(p) = &args.write_layer_formats {
        output::write_layer_formats(report.slots, p)?;
    }
    Ok(())
}
