//! `fp8q quantize`: quantize–dequantize the tensors of a file and report range and SQNR.

use anyhow::{bail, Context, Result};
use fp8q_core::analysis::block_measure::measure_blocks;
use fp8q_core::analysis::quantize_measure::{measure_at_range, method_name, quantize_and_measure, RangeOptions};
use fp8q_core::format::Format;
use fp8q_core::quantizer::{quantize_channels, QuantMethod};
use fp8q_core::range::Range;
use fp8q_tensors::tensor_files::{self, NamedTensor};
use serde::Serialize;
use std::path::PathBuf;

/// Quantize–dequantize every float tensor of a `.npy` (f32/f64/f16) or `.safetensors` file with a
/// format and range setting, print per tensor the range used and the SQNR of the result against
/// the input, and optionally write the result (as f32, same container) with `--output`.
///
/// The range is either fixed (`--maxval A`: [-A, A]) or estimated from the tensor itself with
/// `--range`. For FP formats the range sets the maximum value α = max(|min|, |max|), i.e. the
/// flexible bias; for INT it sets the step (and zero point when asymmetric); a standard encoding
/// is scaled so that its largest finite value is α.
#[derive(clap::Args, Debug)]
pub struct QuantizeArgs {
    /// Input tensor file (.npy or .safetensors).
    pub input: PathBuf,
    /// Format: eXmY (signed flexible-bias FP, 1+X+Y bits), ueXmY (unsigned), intN (symmetric),
    /// intN-asym, a standard encoding (float8_e4m3fn, float8_e5m2, float8_e4m3fnuz,
    /// float8_e5m2fnuz), or a block format (mxfp8_e4m3, mxfp4, nvfp4, e3m4@32, ...; see
    /// `fp8q formats --help`), which takes its scales from each block and has no range.
    #[arg(long, default_value = "e4m3")]
    pub format: String,
    /// Use the fixed range [-A, A] instead of estimating one.
    #[arg(long, value_name = "A", conflicts_with_all = ["range", "mantissa_search"])]
    pub maxval: Option<f64>,
    /// Range estimator: current_minmax, allminmax, running_minmax, mse, line_search (one batch:
    /// the whole tensor, or each channel with --per-channel).
    #[arg(long, default_value = "current_minmax")]
    pub range: String,
    /// With --range mse and an FP format: also search the mantissa bits (1 ..= n-2), keeping the
    /// total width; the chosen split is printed.
    #[arg(long)]
    pub mantissa_search: bool,
    /// One range per index of dimension 0 (output channel of a conv/linear weight).
    #[arg(long)]
    pub per_channel: bool,
    /// FP only: drop the sign bit for tensors (or channels) whose range has no negative value.
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Only these tensors (comma-separated names; safetensors). Others are written unchanged.
    #[arg(long, value_delimiter = ',')]
    pub tensors: Vec<String>,
    /// Write the quantized tensors here (same container as the input; values stored as f32).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Block formats: the dimension the blocks run along (negative counts from the end).
    #[arg(long = "block-axis", value_name = "D", default_value_t = -1, allow_negative_numbers = true)]
    pub block_axis: isize,
    /// Block size of a block format.
    #[arg(long = "block-size", value_name = "K")]
    pub block_size: Option<usize>,
    /// E8M0 scale rule of a block format: floor (OCP v1.0), ceil, even or rceil.
    #[arg(long = "scale-rule", value_name = "RULE")]
    pub scale_rule: Option<fp8q_core::format::ScaleRule>,
}

/// What happened to one tensor.
#[derive(Debug, Serialize)]
struct TensorReport {
    name: String,
    shape: Vec<usize>,
    stored_dtype: &'static str,
    format: String,
    mantissa_bits: Option<u32>,
    /// `None` (null) for block formats.
    range: Option<Range>,
    mse: f64,
    sqnr_db: f64,
}

/// Run the command.
pub fn run(args: &QuantizeArgs) -> Result<()> {
    let format: Format = args.format.parse().context("--format")?;
    let format = format.with_block_options(args.block_size, args.scale_rule)?;
    if format.as_block().is_some() {
        for (given, flag) in [
            (args.maxval.is_some(), "--maxval"),
            (args.range != "current_minmax", "--range"),
            (args.per_channel, "--per-channel"),
            (args.mantissa_search, "--mantissa-search"),
            (args.allow_unsigned, "--allow-unsigned"),
        ] {
            if given {
                bail!("{flag} does not apply to the block format {format}: each block takes its scale from its own values");
            }
        }
    }
    let opts = RangeOptions {
        method: args.range.parse().context("--range")?,
        per_channel: args.per_channel,
        mantissa_search: args.mantissa_search,
        allow_unsigned: args.allow_unsigned,
    };
    let base = match format {
        Format::Block(_) => QuantMethod::from_format(format),
        _ => opts.resolve(&format)?.0,
    };
    if let Some(a) = args.maxval {
        anyhow::ensure!(
            a.is_finite() && a > 0.0,
            "--maxval must be positive and finite (got {a})"
        );
    }

    let mut file = tensor_files::read(&args.input)?;
    for wanted in &args.tensors {
        if !file.tensors.iter().any(|t| &t.name == wanted) {
            bail!("{}: no float tensor named '{wanted}'", args.input.display());
        }
    }
    let mut reports = Vec::new();
    let mut empty = Vec::new();
    for t in &mut file.tensors {
        if !args.tensors.is_empty() && !args.tensors.contains(&t.name) {
            continue;
        }
        if t.data.is_empty() {
            // nothing to quantize, and no range to estimate: kept as it is
            empty.push(t.name.clone());
            continue;
        }
        let report = quantize_tensor(t, &format, base, &opts, args).with_context(|| format!("tensor '{}'", t.name))?;
        reports.push(report);
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print_table(&reports, args);
    }
    if !empty.is_empty() {
        let note = format!(
            "{} empty tensor(s) not quantized (written unchanged): {}",
            empty.len(),
            empty.join(", ")
        );
        // the JSON on stdout stays a list of reports
        if args.json {
            eprintln!("note: {note}");
        } else {
            println!("{note}");
        }
    }
    if let Some(out) = &args.output {
        tensor_files::write(out, &file.tensors, &file.passthrough)?;
        if !args.json {
            println!("wrote {}", out.display());
        }
    }
    Ok(())
}

/// Estimate the range and measure the SQNR with the library's shared path
/// ([`fp8q_core::analysis::quantize_measure`], also behind `fp8q analyze`), then quantize the
/// tensor in place for `--output`.
fn quantize_tensor(
    t: &mut NamedTensor,
    format: &Format,
    base: QuantMethod,
    opts: &RangeOptions,
    args: &QuantizeArgs,
) -> Result<TensorReport> {
    if let Format::Block(b) = format {
        let mut q = vec![0f32; t.data.len()];
        let shape = if t.shape.is_empty() {
            vec![t.data.len()]
        } else {
            t.shape.clone()
        };
        let m = measure_blocks(&t.data, &shape, args.block_axis, *b, Some(&mut q))?;
        if args.output.is_some() {
            t.data = q;
        }
        return Ok(TensorReport {
            name: t.name.clone(),
            shape: t.shape.clone(),
            stored_dtype: t.stored_dtype,
            format: b.to_string(),
            mantissa_bits: None,
            range: None,
            mse: m.mse,
            sqnr_db: m.sqnr_db,
        });
    }
    let dim0 = t.shape.first().copied().unwrap_or(1).max(1);
    let m = match args.maxval {
        Some(a) => {
            let channels = if args.per_channel { dim0 } else { 1 };
            let range = Range {
                min: vec![-a as f32; channels],
                max: vec![a as f32; channels],
            };
            measure_at_range(&t.data, base, range, None)?
        }
        None => quantize_and_measure(&t.data, dim0, format, opts)?,
    };
    if args.output.is_some() {
        quantize_channels(&m.range.quantizers(&m.method)?, &mut t.data)?;
    }
    Ok(TensorReport {
        name: t.name.clone(),
        shape: t.shape.clone(),
        stored_dtype: t.stored_dtype,
        format: method_name(&m.method),
        mantissa_bits: m.method.mantissa_bits(),
        range: Some(m.range),
        mse: m.mse,
        sqnr_db: m.sqnr_db,
    })
}

fn print_table(reports: &[TensorReport], args: &QuantizeArgs) {
    let block = args.format.parse::<Format>().ok().and_then(|f| f.as_block()).is_some();
    let how = match args.maxval {
        _ if block => format!("a scale per block along axis {}", args.block_axis),
        Some(a) => format!("fixed range [-{a}, {a}]"),
        None => format!(
            "range {}{}",
            args.range,
            if args.per_channel { ", per channel" } else { "" }
        ),
    };
    println!("{} — format {}, {how}", args.input.display(), args.format);
    println!(
        "{:<32} {:<16} {:<6} {:<7} {:>26} {:>12} {:>10}",
        "tensor", "shape", "dtype", "format", "range", "MSE", "SQNR dB"
    );
    for r in reports {
        let range = match &r.range {
            None => "per block".to_string(),
            Some(range) if range.num_channels() == 1 => format!("[{:.6}, {:.6}]", range.min[0], range.max[0]),
            Some(range) => {
                let lo = range.min.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = range.max.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                format!("{} ch in [{lo:.4}, {hi:.4}]", range.num_channels())
            }
        };
        println!(
            "{:<32} {:<16} {:<6} {:<7} {:>26} {:>12.4e} {:>10.3}",
            r.name,
            format!("{:?}", r.shape),
            r.stored_dtype,
            r.format,
            range,
            r.mse,
            r.sqnr_db
        );
    }
}
