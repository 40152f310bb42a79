//! The outputs of `fp8q analyze`, for any slice of [`AnalysisRow`]s: a readable table with the
//! best format marked, the JSON report, CSV, an SVG heat map, and the layer-formats file.

use anyhow::{anyhow, Context, Result};
use fp8q_core::analysis::fit::Family;
use fp8q_core::analysis::format_choice::{AnalysisRow, Skipped, Summary};
use fp8q_core::analysis::heat_map::{cut, write_heat_map, HeatRow};
use fp8q_core::format::Format;
use fp8q_ptq::analyze::mix::MixVerification;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Everything `--json` prints: how the analysis was run, one object per slot, the summary, and
/// the tensors skipped.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// What was analysed (the checkpoint path, or the model).
    pub source: String,
    /// `weights` or `network`.
    pub mode: &'static str,
    /// The formats, in order.
    pub formats: Vec<String>,
    /// The range estimator.
    pub range: String,
    /// Ranges per channel.
    pub per_channel: bool,
    /// Mantissa search (with `mse`).
    pub mantissa_search: bool,
    /// One row per slot.
    pub slots: &'a [AnalysisRow],
    /// The summary of `slots`.
    pub summary: Summary,
    /// Network mode with sensitivity: the recommended mix against every uniform format, end to
    /// end on the sensitivity images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mix: Option<MixVerification>,
    /// Tensors not analysed (non-float dtypes).
    pub skipped: Vec<Skipped>,
    /// Float tensors with fewer than two dimensions (biases, norms), not analysed.
    pub not_weights: usize,
}

fn family(r: &AnalysisRow) -> String {
    match r.fit.map(|f| f.family) {
        Some(Family::Uniform) => "uniform".into(),
        Some(Family::Gauss) => "gauss".into(),
        Some(Family::StudentT { nu }) => format!("t({nu:.1})"),
        None => "-".into(),
    }
}

/// Print the table: one row per slot with each format's measured / predicted SQNR, `*` on the
/// recommended format and `^` on the predicted best; then the summary and skipped tensors.
pub fn print_table(report: &Report<'_>) {
    let rows = report.slots;
    println!(
        "{} — {} mode, range {}{}{}",
        report.source,
        report.mode,
        report.range,
        if report.per_channel { ", per channel" } else { "" },
        if report.mantissa_search {
            ", mantissa search"
        } else {
            ""
        }
    );
    println!("SQNR in dB, measured/predicted; * recommended, ^ predicted best");
    let formats = &report.formats;
    let blocks: Vec<&str> = formats
        .iter()
        .filter(|f| f.parse::<Format>().is_ok_and(|f| f.as_block().is_some()))
        .map(String::as_str)
        .collect();
    if !blocks.is_empty() {
        println!(
            "block-scaled ({}): no range, each block scaled by its own values along the reduction \
             axis; the range options do not apply to them",
            blocks.join(", ")
        );
    }
    let uw = rows
        .iter()
        .map(|r| r.unit.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    let mut head = format!(
        "{:<uw$} {:<6} {:>11} {:>8} {:>7} {:<8}",
        "unit", "slot", "numel", "kurt", "max/σ", "fit"
    );
    for f in formats {
        head.push_str(&format!(" {:>13}", f));
    }
    println!("{head}");
    for r in rows {
        let mut line = format!(
            "{:<uw$} {:<6} {:>11} {:>8.2} {:>7.1} {:<8}",
            cut(&r.unit, uw),
            r.slot.name(),
            r.numel,
            r.stats.kurtosis,
            r.stats.max_over_sigma,
            family(r)
        );
        for f in formats {
            let m = r.sqnr_db.get(f).copied().unwrap_or(f64::NAN);
            let p = r.predicted_sqnr_db.get(f).copied().flatten();
            let mark = match (r.recommended == *f, r.predicted_best.as_deref() == Some(f.as_str())) {
                (true, true) => "*^",
                (true, false) => "* ",
                (false, true) => " ^",
                _ => "  ",
            };
            let cell = match p {
                Some(p) => format!("{m:.1}/{p:.1}{mark}"),
                None => format!("{m:.1}/-{mark}"),
            };
            line.push_str(&format!(" {cell:>13}"));
        }
        if let Some(out) = &r.output_sqnr_db {
            let cells: Vec<String> = out.iter().map(|(f, v)| format!("{f}:{v:.1}")).collect();
            line.push_str(&format!("  output {}", cells.join(" ")));
        }
        println!("{line}");
    }
    print_summary(report);
}

fn print_summary(report: &Report<'_>) {
    let s = &report.summary;
    println!();
    println!("{} slots, {} parameters", s.tensors, s.parameters);
    println!(
        "{:<16} {:>8} {:>14} {:>10} {:>22} {:>22}",
        "format", "slots", "parameters", "share", "weighted SQNR dB", "weighted predicted dB"
    );
    for f in &s.formats {
        let share = if s.parameters > 0 {
            100.0 * f.parameters as f64 / s.parameters as f64
        } else {
            0.0
        };
        let pred = f
            .weighted_predicted_sqnr_db
            .map(|v| format!("{v:.2}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<16} {:>8} {:>14} {:>9.1}% {:>22.2} {:>22}",
            f.format, f.tensors, f.parameters, share, f.weighted_sqnr_db, pred
        );
    }
    println!(
        "prediction = measured best format: {}/{} slots",
        s.prediction_matches, s.predictions
    );
    if let Some(m) = &report.mix {
        print_mix(m);
    }
    if report.not_weights > 0 {
        println!(
            "{} float tensors with fewer than two dimensions (biases, norms) not analysed",
            report.not_weights
        );
    }
    if !report.skipped.is_empty() {
        println!("skipped {} tensors:", report.skipped.len());
        for k in &report.skipped {
            println!("  {} ({}, {:?}): {}", k.name, k.dtype, k.shape, k.reason);
        }
    }
}

/// The verified mix against every uniform format.
fn print_mix(m: &MixVerification) {
    println!();
    println!(
        "logit SQNR on the {} sensitivity images (validate-quantized --layer-formats):",
        m.images
    );
    for u in &m.uniform {
        println!("  uniform {:<16} {:>8.2} dB", u.format, u.sqnr_db);
    }
    println!(
        "  per-slot best formats   {:>8.2} dB (not verified)",
        m.per_slot_sqnr_db
    );
    println!(
        "  recommended mix         {:>8.2} dB, best uniform {} {:.2} dB ({} of {} switches from it kept{})",
        m.mixed_sqnr_db,
        m.best_uniform.format,
        m.best_uniform.sqnr_db,
        m.switches_kept,
        m.switches_tried,
        if m.fell_back_to_uniform {
            "; the mix measured below it, so it is recommended everywhere"
        } else {
            ""
        }
    );
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v}"),
        Some(v) if v.is_nan() => "nan".into(),
        Some(v) => (if v > 0.0 { "inf" } else { "-inf" }).into(),
        None => String::new(),
    }
}

/// Write one CSV line per slot: the statistics and fit, then per format the range maximum, the
/// measured, predicted and (network mode) output SQNR, then the best formats.
pub fn write_csv(rows: &[AnalysisRow], out: &mut dyn Write) -> Result<()> {
    let formats: Vec<String> = rows
        .first()
        .map(|r| r.sqnr_db.formats().map(String::from).collect())
        .unwrap_or_default();
    let mut head: Vec<String> = [
        "unit",
        "slot",
        "tensor",
        "numel",
        "mean",
        "absmax",
        "std",
        "kurtosis",
        "max_over_sigma",
        "fit",
        "nu",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for f in &formats {
        for k in [
            "range_min",
            "range_max",
            "sqnr_db",
            "predicted_sqnr_db",
            "output_sqnr_db",
        ] {
            head.push(format!("{k}_{f}"));
        }
    }
    head.extend(["predicted_best", "measured_best", "recommended"].map(String::from));
    writeln!(out, "{}", head.join(","))?;
    for r in rows {
        let (fam, nu) = match r.fit.map(|f| f.family) {
            Some(Family::Uniform) => ("uniform", None),
            Some(Family::Gauss) => ("gauss", None),
            Some(Family::StudentT { nu }) => ("student-t", Some(nu)),
            None => ("", None),
        };
        let mut f: Vec<String> = vec![
            csv_field(&r.unit),
            r.slot.name().into(),
            csv_field(r.tensor.as_deref().unwrap_or("")),
            r.numel.to_string(),
            num(Some(r.stats.mean)),
            num(Some(r.stats.absmax)),
            num(Some(r.stats.std)),
            num(Some(r.stats.kurtosis)),
            num(Some(r.stats.max_over_sigma)),
            fam.into(),
            num(nu),
        ];
        for fmt in &formats {
            // block formats have no range: empty fields
            let range = r.range.get(fmt).copied().flatten();
            f.push(num(range.map(|x| x.min as f64)));
            f.push(num(range.map(|x| x.max as f64)));
            f.push(num(r.sqnr_db.get(fmt).copied()));
            f.push(num(r.predicted_sqnr_db.get(fmt).copied().flatten()));
            f.push(num(r.output_sqnr_db.as_ref().and_then(|o| o.get(fmt).copied())));
        }
        f.push(r.predicted_best.clone().unwrap_or_default());
        f.push(r.measured_best.clone());
        f.push(r.recommended.clone());
        writeln!(out, "{}", f.join(","))?;
    }
    Ok(())
}

/// `{unit: {"weight": fmt, "act": fmt}}` with each slot's recommended format (only the slots
/// present), units in sorted order.
pub fn layer_formats(rows: &[AnalysisRow]) -> BTreeMap<String, BTreeMap<&'static str, String>> {
    let mut map: BTreeMap<String, BTreeMap<&'static str, String>> = BTreeMap::new();
    for r in rows {
        map.entry(r.unit.clone())
            .or_default()
            .insert(r.slot.name(), r.recommended.clone());
    }
    map
}

/// Write [`layer_formats`] as pretty JSON.
pub fn write_layer_formats(rows: &[AnalysisRow], path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(&layer_formats(rows))?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

/// The SVG heat map of the rows ([`write_heat_map`]): the network SQNR of each format when a
/// row has one, else the measured tensor SQNR.
pub fn write_plot(rows: &[AnalysisRow], path: &Path) -> Result<()> {
    let formats: Vec<String> = rows
        .first()
        .map(|r| r.sqnr_db.formats().map(String::from).collect())
        .unwrap_or_default();
    let heat: Vec<HeatRow> = rows.iter().map(|r| HeatRow::of(r, &formats)).collect();
    write_heat_map(&formats, &heat, path).map_err(|e| anyhow!("{e}"))
}
