//! `fp8q formats`: a table of number formats, their grids, and the figures for a chosen maximum.

use anyhow::{Context, Result};
use fp8q_core::format::{figures, Format, FormatFigures};
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
    for r in rows.iter().map(|r| &r.figures) {
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
