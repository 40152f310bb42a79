//! `fp8q formats`: a table of number formats, their grids, and the figures for a chosen maximum.

use anyhow::{Context, Result};
use fp8q_core::format::{Format, FpFormat, IntKind, StandardFp8};
use serde::Serialize;

/// Print a table of formats: exponent and mantissa bits, bias, largest value, smallest normal
/// and subnormal, and the number of distinct values.
///
/// By default the 8-bit flexible-bias splits E5M2 … E1M6, INT8 and the four standard 8-bit
/// encodings are listed with their own (default) bias. With `--maxval A` the flexible formats are
/// scaled so that their largest value is A (a real-valued bias), INT formats get the step A/int_max,
/// and the standard encodings are scaled by A/max.
#[derive(clap::Args, Debug)]
pub struct FormatsArgs {
    /// Comma-separated formats: eXmY (signed flexible-bias FP of 1+X+Y bits), ueXmY (unsigned),
    /// intN, intN-asym, float8_e4m3fn, float8_e5m2, float8_e4m3fnuz, float8_e5m2fnuz.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "e5m2,e4m3,e3m4,e2m5,e1m6,int8,float8_e4m3fn,float8_e5m2,float8_e4m3fnuz,float8_e5m2fnuz"
    )]
    pub formats: Vec<String>,
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

/// One row of the table.
#[derive(Debug, Serialize)]
struct FormatRow {
    name: String,
    spec: String,
    kind: &'static str,
    n_bits: u32,
    exponent_bits: Option<u32>,
    mantissa_bits: Option<u32>,
    /// bias (real-valued when a maximum is given)
    bias: Option<f64>,
    max: f64,
    /// smallest value (most negative)
    min: f64,
    /// smallest positive normal value (FP) or the step (INT)
    min_normal: f64,
    /// smallest positive subnormal (FP)
    min_subnormal: Option<f64>,
    distinct_values: u64,
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
    let rows: Vec<FormatRow> = args
        .formats
        .iter()
        .map(|s| {
            let f: Format = s.parse().with_context(|| format!("in --formats: '{s}'"))?;
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
            println!("\n{} ({} values):", r.name, vals.len());
            let text: Vec<String> = vals.iter().map(|v| format!("{v}")).collect();
            println!("{}", text.join(" "));
        }
    }
    Ok(())
}

fn row(f: Format, maxval: Option<f64>, with_values: bool) -> Result<FormatRow> {
    let spec = f.to_string();
    Ok(match f {
        Format::Fp(fp) => fp_row(fp, spec, maxval, with_values)?,
        Format::Int(int) => {
            let alpha = maxval.unwrap_or(((1i64 << (int.n_bits - 1)) - 1) as f64);
            let grid = match int.kind {
                IntKind::Symmetric => int.grid_for_range(-alpha as f32, alpha as f32),
                IntKind::Asymmetric => int.grid_for_range(-alpha as f32, alpha as f32),
            };
            let values = grid.values();
            let (lo, hi) = grid.bounds();
            FormatRow {
                name: int.name(),
                spec,
                kind: "int",
                n_bits: int.n_bits,
                exponent_bits: None,
                mantissa_bits: None,
                bias: None,
                max: hi,
                min: lo,
                min_normal: grid.delta as f64,
                min_subnormal: None,
                distinct_values: int.num_distinct_values(),
                values: with_values.then_some(values),
            }
        }
        Format::Standard(s) => std_row(s, spec, maxval, with_values),
    })
}

fn fp_row(fp: FpFormat, spec: String, maxval: Option<f64>, with_values: bool) -> Result<FormatRow> {
    let scaled = match maxval {
        Some(a) => fp.with_maxval(a)?,
        None => fp.with_default_bias(),
    };
    let values = scaled.grid();
    Ok(FormatRow {
        name: fp.name(),
        spec,
        kind: "fp",
        n_bits: fp.n_bits(),
        exponent_bits: Some(fp.exponent_bits()),
        mantissa_bits: Some(fp.mantissa_bits()),
        bias: Some(scaled.bias()),
        max: scaled.maxval,
        min: values[0],
        min_normal: scaled.min_normal(),
        min_subnormal: Some(scaled.min_subnormal()),
        distinct_values: fp.num_distinct_values(),
        values: with_values.then_some(values),
    })
}

fn std_row(s: StandardFp8, spec: String, maxval: Option<f64>, with_values: bool) -> FormatRow {
    let scale = maxval.map_or(1.0, |a| a / s.max_value() as f64);
    let values: Vec<f64> = s.values().iter().map(|&v| v as f64 * scale).collect();
    FormatRow {
        name: s.name().to_string(),
        spec,
        kind: "standard",
        n_bits: 8,
        exponent_bits: Some(s.exponent_bits()),
        mantissa_bits: Some(s.mantissa_bits()),
        // a scale s shifts the bias by -log2(s)
        bias: Some(s.bias() as f64 - scale.log2()),
        max: s.max_value() as f64 * scale,
        min: -(s.max_value() as f64) * scale,
        min_normal: s.min_normal() as f64 * scale,
        min_subnormal: Some(s.min_subnormal() as f64 * scale),
        distinct_values: values.len() as u64,
        values: with_values.then_some(values),
    }
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
    for r in rows {
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
