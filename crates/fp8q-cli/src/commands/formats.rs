//! `fp8q formats`: a table of number formats, their grids, and the figures for a chosen maximum.

use anyhow::{Context, Result};
use fp8q_core::format::{figures, Format, FormatFigures, NAMED_BLOCK_FORMATS};
use serde::Serialize;

/// The spellings of formats, printed by `fp8q formats --help`.
pub const FORMAT_GRAMMAR: &str = r#"Format spellings, in every command that takes a format (case-insensitive):

  eXmY              signed flexible-bias FP, 1+X+Y bits (e4m3, e2m5, e5m10)
  ueXmY             unsigned flexible-bias FP, X+Y bits
  intN, intN-asym   symmetric / asymmetric INT of N bits
  float8_e4m3fn, float8_e5m2, float8_e4m3fnuz, float8_e5m2fnuz   the deployed encodings

Block-scaled formats (a block of K elements shares a scale):

  mxfp8_e4m3  = float8_e4m3fn@32    OCP MX: E8M0 power-of-two scale per 32 elements
  mxfp8_e5m2  = float8_e5m2@32
  mxfp6_e3m2  = e3m2@32             (element max 28)
  mxfp6_e2m3  = e2m3@32             (element max 7.5)
  mxfp4       = e2m1@32             (element max 6)
  mxint8      = int8@32             (elements k/64, |k| <= 127)
  nvfp4       = e2m1@16/e4m3        NVIDIA: E4M3 block scale under an FP32 tensor scale

  ELEMENT@K[/SCALE][:RULE]   any other combination:
    ELEMENT  eXmY (every code finite, OCP bias 2^(X-1)-1: e2m1 has max 6), float8_e4m3fn,
             float8_e5m2, or intN (k·2^-(N-2))
    K        block size (>= 1); blocks run along the last dimension (--block-axis elsewhere)
    SCALE    e8m0 (default; a power of two), e4m3 (under an FP32 tensor scale), f32
    RULE     E8M0 rule: floor (default, OCP v1.0: 2^(floor(log2 amax) - emax)), ceil, even,
             rceil (smallest power of two >= amax / element max)
  e.g. e3m4@32, e2m1@16/e4m3, int4@128/f32, e2m1@32:rceil

`--block-size K` and `--scale-rule R` override every block format's block size and rule."#;

/// The per-tensor formats listed by default.
const DEFAULT_FORMATS: [&str; 10] = [
    "e5m2",
    "e4m3",
    "e3m4",
    "e2m5",
    "e1m6",
    "int8",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
];

/// Print a table of formats: exponent and mantissa bits, bias, largest value, smallest normal
/// and subnormal, and the number of distinct values.
///
/// By default the 8-bit flexible-bias splits E5M2 … E1M6, INT8 and the four standard 8-bit
/// encodings are listed with their own (default) bias, then the named block-scaled formats. With
/// `--maxval A` the flexible formats are scaled so that their largest value is A (a real-valued
/// bias), INT formats get the step A/int_max, and the standard encodings are scaled by A/max
/// (block formats have no maximum: each block's scale sets its range).
#[derive(clap::Args, Debug)]
pub struct FormatsArgs {
    /// Comma-separated formats (see the spellings below) [default: the 8-bit per-tensor formats,
    /// then the named block formats].
    #[arg(long, value_delimiter = ',')]
    pub formats: Vec<String>,
    /// Block size of every block format.
    #[arg(long = "block-size", value_name = "K")]
    pub block_size: Option<usize>,
    /// E8M0 scale rule of every block format: floor, ceil, even or rceil.
    #[arg(long = "scale-rule", value_name = "RULE")]
    pub scale_rule: Option<fp8q_core::format::ScaleRule>,
    /// Scale every format so that its largest value is this maximum (must be positive).
    #[arg(long, value_name = "A")]
    pub maxval: Option<f64>,
    /// Also list every distinct value of each format (ascending).
    #[arg(long)]
    pub values: bool,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One row of the table: the format's figures, and its values with `--values`.
#[derive(Debug, Serialize)]
struct FormatRow {
    #[serde(flatten)]
    figures: FormatFigures,
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<Vec<f64>>,
}

/// Run the command.
pub fn run(args: &FormatsArgs) -> Result<()> {
    if let Some(a) = args.maxval {
        anyhow::ensure!(
            a.is_finite() && a > 0.0,
            "--maxval must be positive and finite (got {a})"
        );
    }
    let names: Vec<String> = if args.formats.is_empty() {
        let mut v: Vec<String> = DEFAULT_FORMATS.iter().map(|s| s.to_string()).collect();
        if args.maxval.is_none() {
            v.extend(NAMED_BLOCK_FORMATS.iter().map(|(n, _)| n.to_string()));
        }
        v
    } else {
        args.formats.clone()
    };
    let rows: Vec<FormatRow> = names
        .iter()
        .map(|s| {
            let f: Format = s.parse().with_context(|| format!("in --formats: '{s}'"))?;
            let f = f.with_block_options(args.block_size, args.scale_rule)?;
            row(f, args.maxval, args.values)
        })
        .collect::<Result<_>>()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    print_table(&rows, args.maxval);
    if args.values {
        for r in &rows {
            let vals = r.values.as_deref().unwrap_or_default();
            println!("\n{} ({} values):", r.figures.name, vals.len());
            let text: Vec<String> = vals.iter().map(|v| format!("{v}")).collect();
            println!("{}", text.join(" "));
        }
    }
    Ok(())
}

fn row(f: Format, maxval: Option<f64>, with_values: bool) -> Result<FormatRow> {
    let figures = figures(f, maxval)?;
    let values = with_values.then(|| figures.values.clone());
    Ok(FormatRow { figures, values })
}

fn print_table(rows: &[FormatRow], maxval: Option<f64>) {
    match maxval {
        Some(a) => println!("Formats scaled to the maximum value {a} (flexible bias; INT step = A/int_max; standard encodings scaled by A/max):"),
        None => println!("Formats with their default bias (flexible FP: b0 = 2^(e-1)):"),
    }
    println!(
        "{:<16} {:>4} {:>2} {:>2} {:>10} {:>12} {:>12} {:>12} {:>12} {:>8}",
        "format", "bits", "e", "m", "bias", "max", "min", "min normal", "min subnorm", "values"
    );
    let opt = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
    for r in rows.iter().map(|r| &r.figures).filter(|r| r.block_size.is_none()) {
        println!(
            "{:<16} {:>4} {:>2} {:>2} {:>10} {:>12} {:>12} {:>12} {:>12} {:>8}",
            r.name,
            r.n_bits,
            opt(r.exponent_bits),
            opt(r.mantissa_bits),
            r.bias.map_or("-".to_string(), |b| format!("{b:.4}")),
            num(r.max),
            num(r.min),
            num(r.min_normal),
            r.min_subnormal.map_or("-".to_string(), num),
            r.distinct_values
        );
    }
    println!("(INT rows: 'min normal' is the step; standard encodings count finite values only)");
    let blocks: Vec<&FormatFigures> = rows
        .iter()
        .map(|r| &r.figures)
        .filter(|r| r.block_size.is_some())
        .collect();
    if blocks.is_empty() {
        return;
    }
    println!("\nBlock-scaled formats (the element's figures on its unit grid; a block scale multiplies them):");
    println!(
        "{:<18} {:<18} {:>5} {:>6} {:>6} {:>9} {:>4} {:>12} {:>12} {:>8}",
        "format", "spelling", "block", "scale", "rule", "bits/elem", "elem", "elem max", "min subnorm", "values"
    );
    for r in blocks {
        println!(
            "{:<18} {:<18} {:>5} {:>6} {:>6} {:>9} {:>4} {:>12} {:>12} {:>8}",
            r.name,
            r.spec
                .parse::<Format>()
                .ok()
                .and_then(|f| f.as_block())
                .map_or(r.spec.clone(), |b| b.generic_spelling()),
            r.block_size.unwrap_or(0),
            r.scale.unwrap_or("-"),
            r.scale_rule.unwrap_or("-"),
            format!("{:.4}", r.bits_per_element)
                .trim_end_matches('0')
                .trim_end_matches('.'),
            r.n_bits,
            num(r.max),
            r.min_subnormal.map_or("-".to_string(), num),
            r.distinct_values
        );
    }
    println!("(nvfp4-style scales: an E4M3 block scale under an FP32 tensor scale, not counted in bits/elem)");
}

fn num(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.4e}")
    } else {
        format!("{v:.6}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}
