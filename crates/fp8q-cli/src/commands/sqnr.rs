//! `fp8q sqnr`: the analytical SQNR study (`docs/analysis.md`).
//!
//! With no options it prints the paper's study: uniform on [-1, 1], N(0, 1) clipped at ±10 and
//! Student's t (ν = 8) clipped at ±100, each with E5M2, E4M3, E3M4, E2M5 (flexible bias) and INT8
//! at the range that minimizes the expected MSE.

use anyhow::{anyhow, bail, Context, Result};
use fp8q_core::analysis::distributions::Distribution;
use fp8q_core::analysis::optimal_range::SearchOptions;
use fp8q_core::analysis::study::{paper_formats, run_study, RangeChoice, Study, StudyConfig, VerifyOptions};
use fp8q_core::format::block::MAX_BLOCK_SIZE;
use fp8q_core::format::{Format, ScaleFormat, ScaleRule};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// How the range of each format is chosen.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSearch {
    /// Minimize the analytical MSE (log-scan bracket + Brent refinement).
    Analytic,
    /// The reference's line search: 1000 candidates on sampled data (see --samples, --seed).
    Samples,
}

/// Options of `fp8q sqnr`.
///
/// Expected quantization MSE, SQNR = 10·log10(E[X²]/MSE) and the error of a product of two
/// independent quantized values, for each distribution × format, at the optimal range.
#[derive(clap::Args, Debug)]
pub struct SqnrArgs {
    /// A distribution (repeatable): `uniform:min=-1,max=1`, `gauss:mu=0,sigma=1,min=-10,max=10`,
    /// `student-t:nu=8,min=-100,max=100`; `clip=C` is short for `min=-C,max=C`. Missing keys take
    /// these defaults (Gaussian bounds default to μ ± 10σ). Default: the paper's three.
    #[arg(long = "dist", value_name = "DIST", value_parser = parse_distribution)]
    pub dist: Vec<Distribution>,
    /// Comma-separated formats: `eXmY` (signed FP of 1+X+Y bits with flexible bias), `intN`
    /// (symmetric INT); also `ueXmY`, `intN-asym` and the float8_* encodings; and block-scaled
    /// formats: mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, mxint8, nvfp4 or
    /// ELEMENT@K[/SCALE][:RULE] (e.g. e3m4@32, int4@128/f32), which have no range to choose.
    /// Default: e5m2,e4m3,e3m4,e2m5,int8.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_format)]
    pub formats: Vec<Format>,
    /// Give every block-scaled format in --formats this block size.
    #[arg(long, value_name = "K", value_parser = parse_block_size)]
    pub block_size: Option<usize>,
    /// The scale rule of every E8M0-scaled block format in --formats: floor (OCP), ceil, even
    /// or rceil (formats with another scale keep theirs).
    #[arg(long, value_name = "RULE", value_parser = parse_scale_rule)]
    pub scale_rule: Option<ScaleRule>,
    /// Elements of the tensor whose largest magnitude sets NVFP4's FP32 tensor scale: the
    /// analysis takes the median largest magnitude of that many samples. Default: the
    /// --verify sample count, else 16777216 (a 4096 × 4096 matrix).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub tensor_size: Option<usize>,
    /// Evaluate at this maximum α (range [-α, α]) instead of the optimal one.
    #[arg(long, value_name = "A", value_parser = parse_positive)]
    pub maxval: Option<f64>,
    /// How to find the range when --maxval is not given.
    #[arg(long, value_enum, default_value_t = RangeSearch::Analytic)]
    pub range_search: RangeSearch,
    /// Samples per distribution for `--range-search samples` (the reference used 5000000).
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = parse_count)]
    pub samples: usize,
    /// Seed of the sampled range search and of the Monte-Carlo check.
    #[arg(long, default_value_t = 10)]
    pub seed: u64,
    /// Monte-Carlo cross-check: draw N samples per distribution, quantize them with the real
    /// quantizer at the chosen range and print the empirical MSE with its standard error.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub verify: Option<usize>,
    /// Print the whole result as one JSON document.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV (one row per distribution × format).
    #[arg(long)]
    pub csv: bool,
    /// Draw the SQNR of each format for each distribution into an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// With --plot: also draw the MSE against α for each distribution (log-log).
    #[arg(long, requires = "plot")]
    pub curves: bool,
    /// The split table instead of the study: for 4-, 6- and 8-bit elements, the SQNR of every
    /// exponent/mantissa split eXmY and of INT under an E8M0 block scale (block sizes 1, 16, 32,
    /// 64, 128; --scale-rule, default floor) and per tensor at the optimal range, for each
    /// --dist, and which split wins (table, --csv, --json, --plot).
    #[arg(long, conflicts_with_all = ["formats", "block_size", "maxval", "verify", "curves", "tensor_size"])]
    pub splits: bool,
    /// Scan density of the optimal-range search (points per octave of α).
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(4..=4096))]
    pub points_per_octave: u32,
}

fn parse_distribution(s: &str) -> Result<Distribution, String> {
    s.parse::<Distribution>().map_err(|e| e.to_string())
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse::<Format>().map_err(|e| e.to_string())
}

fn parse_block_size(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(k) if (1..=MAX_BLOCK_SIZE).contains(&k) => Ok(k),
        _ => Err(format!(
            "'{s}' is not a block size (a whole number from 1 to {MAX_BLOCK_SIZE})"
        )),
    }
}

fn parse_scale_rule(s: &str) -> Result<ScaleRule, String> {
    s.parse::<ScaleRule>().map_err(|e| e.to_string())
}

/// The formats with `--block-size` and `--scale-rule` applied to the block-scaled ones.
pub fn with_block_overrides(
    formats: &[Format],
    block_size: Option<usize>,
    rule: Option<ScaleRule>,
) -> Result<Vec<Format>> {
    formats
        .iter()
        .map(|f| match f {
            Format::Block(b) => {
                let mut b = *b;
                if let Some(k) = block_size {
                    b = b.with_block_size(k)?;
                }
                if let (Some(r), ScaleFormat::E8m0) = (rule, b.scale()) {
                    b = b.with_rule(r);
                }
                Ok(Format::Block(b))
            }
            other => Ok(*other),
        })
        .collect()
}

fn parse_positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a positive finite number")),
    }
}

fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().replace('_', "").parse::<usize>() {
        Ok(v) if v >= 2 => Ok(v),
        _ => Err(format!("'{s}' is not a whole number of at least 2")),
    }
}

/// Run the command.
pub fn run(args: &SqnrArgs) -> Result<()> {
    if args.splits {
        return super::sqnr_splits::run(args);
    }
    if (args.block_size.is_some() || args.scale_rule.is_some()) && !args.formats.iter().any(|f| f.as_block().is_some())
    {
        bail!("--block-size and --scale-rule apply to block-scaled formats, and --formats names none (e.g. --formats mxfp4,nvfp4)");
    }
    let config = StudyConfig {
        distributions: if args.dist.is_empty() {
            Distribution::paper_defaults()
        } else {
            args.dist.clone()
        },
        formats: if args.formats.is_empty() {
            paper_formats()
        } else {
            with_block_overrides(&args.formats, args.block_size, args.scale_rule)?
        },
        range: match (args.maxval, args.range_search) {
            (Some(a), _) => RangeChoice::Fixed(a),
            (None, RangeSearch::Analytic) => RangeChoice::Optimal,
            (None, RangeSearch::Samples) => RangeChoice::Sampled {
                samples: args.samples,
                seed: args.seed,
            },
        },
        search: SearchOptions {
            points_per_octave: args.points_per_octave as usize,
            ..SearchOptions::default()
        },
        verify: args.verify.map(|n| VerifyOptions {
            samples: n,
            seed: args.seed,
        }),
        curve_points: if args.curves { Some(241) } else { None },
        tensor_elements: args.tensor_size,
    };
    let start = Instant::now();
    let study = run_study(&config).context("the SQNR study failed")?;
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(path) = &args.plot {
        plot(&study, path, args.curves).with_context(|| format!("cannot write the plot {}", path.display()))?;
    }
    let out = if args.json {
        serde_json::to_string_pretty(&study)? + "\n"
    } else if args.csv {
        csv(&study)
    } else {
        let mut t = table(&study);
        writeln!(
            t,
            "({} distribution(s) × {} format(s) in {elapsed:.2} s)",
            config.distributions.len(),
            config.formats.len()
        )?;
        if let Some(p) = &args.plot {
            writeln!(t, "plot written to {}", p.display())?;
        }
        t
    };
    print!("{out}");
    Ok(())
}

fn sci(v: f64) -> String {
    format!("{v:.4e}")
}

/// Fixed-point for moderate magnitudes, scientific otherwise.
fn num(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e7) {
        format!("{v:.5e}")
    } else {
        format!("{v:.6}")
    }
}

fn table(study: &Study) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Analytical SQNR study — range: {}", study.range_method);
    let _ = writeln!(
        s,
        "SQNR = 10·log10(E[X²]/MSE); \"-10·log10 MSE\" is the figure the reference prints as SQNR;"
    );
    let _ = writeln!(
        s,
        "dot = E[(XY - q(X)q(Y))²] for independent X, Y, dot SQNR = 10·log10(E[X²]²/dot MSE)."
    );
    for dr in &study.distributions {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{}   E[X²] = {:.6}   ({})",
            dr.distribution.label(),
            dr.second_moment,
            dr.distribution
        );
        let mc = dr.results.iter().any(|r| r.monte_carlo.is_some());
        let mut header = format!(
            "  {:<16} {:>12} {:>11} {:>9} {:>13} {:>11} {:>12} {:>13}",
            "format", "maxval", "MSE", "SQNR dB", "-10log10 MSE", "dot MSE", "dot SQNR dB", "-10log10 dot"
        );
        if mc {
            let _ = write!(
                header,
                "  {:>11} {:>9} {:>6} {:>11} {:>6}",
                "MC MSE", "±stderr", "z", "MC dot", "z"
            );
        }
        let _ = writeln!(s, "{header}");
        for r in &dr.results {
            let name = if r.best {
                format!("{} *", r.name)
            } else {
                r.name.clone()
            };
            let _ = write!(
                s,
                "  {:<16} {:>12} {:>11} {:>9.3} {:>13.3} {:>11} {:>12.3} {:>13.3}",
                name,
                r.maxval.map_or_else(|| "-".to_string(), num),
                sci(r.mse),
                r.sqnr_db,
                r.neg_log_mse_db,
                sci(r.dot_product_mse),
                r.dot_product_sqnr_db,
                r.dot_product_neg_log_mse_db
            );
            if let Some(m) = r.monte_carlo {
                let _ = write!(
                    s,
                    "  {:>11} {:>9.1e} {:>+6.2} {:>11} {:>+6.2}",
                    sci(m.mse),
                    m.mse_stderr,
                    m.mse_z,
                    sci(m.dot_product_mse),
                    m.dot_product_z
                );
            }
            let _ = writeln!(s);
        }
        let best = dr.results.iter().find(|r| r.best).expect("a best format");
        let _ = writeln!(s, "  * best: {} ({:.3} dB)", best.name, best.sqnr_db);
    }
    s
}

fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(study: &Study) -> String {
    let mut s = String::from(
        "distribution,format,maxval,second_moment,mse,sqnr_db,neg_log_mse_db,e_xr,dot_product_mse,dot_product_sqnr_db,dot_product_neg_log_mse_db,best,mc_samples,mc_mse,mc_mse_stderr,mc_dot_product_mse,mc_dot_product_stderr\n",
    );
    for dr in &study.distributions {
        for r in &dr.results {
            let _ = write!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{}",
                csv_quote(&dr.distribution.to_string()),
                r.format,
                r.maxval.map_or_else(String::new, |a| a.to_string()),
                dr.second_moment,
                r.mse,
                r.sqnr_db,
                r.neg_log_mse_db,
                r.xr,
                r.dot_product_mse,
                r.dot_product_sqnr_db,
                r.dot_product_neg_log_mse_db,
                r.best
            );
            match r.monte_carlo {
                Some(m) => {
                    let _ = writeln!(
                        s,
                        ",{},{},{},{},{}",
                        m.samples, m.mse, m.mse_stderr, m.dot_product_mse, m.dot_product_stderr
                    );
                }
                None => s.push_str(",,,,,\n"),
            }
        }
    }
    s
}

fn plot(study: &Study, path: &std::path::Path, curves: bool) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| anyhow!("{e}");
    let nd = study.distributions.len();
    let formats: Vec<String> = study.distributions[0].results.iter().map(|r| r.name.clone()).collect();
    let nf = formats.len();
    let rows = if curves { 1 + nd } else { 1 };
    let root = SVGBackend::new(path, (960, 480 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let areas = root.split_evenly((rows, 1));

    // SQNR per format, one series per distribution
    let all: Vec<f64> = study
        .distributions
        .iter()
        .flat_map(|d| d.results.iter().map(|r| r.sqnr_db))
        .filter(|v| v.is_finite())
        .collect();
    let (mut ymin, mut ymax) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if !ymin.is_finite() {
        (ymin, ymax) = (0.0, 1.0);
    }
    let pad = ((ymax - ymin) * 0.1).max(1.0);
    let mut chart = ChartBuilder::on(&areas[0])
        .caption("SQNR at the chosen range, per format", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(nf as f64 - 0.5), (ymin - pad)..(ymax + pad))
        .map_err(|e| err(&e))?;
    let label_of = crate::plot::category_labels(formats.clone());
    chart
        .configure_mesh()
        .x_labels(nf.max(2) * 2 + 1)
        .x_label_formatter(&label_of)
        .x_desc("format")
        .y_desc("SQNR (dB)")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, dr) in study.distributions.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = dr
            .results
            .iter()
            .enumerate()
            .map(|(k, r)| (k as f64, r.sqnr_db))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(dr.distribution.label())
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

    if curves {
        for (d, dr) in study.distributions.iter().enumerate() {
            let pts: Vec<Vec<(f64, f64)>> = dr
                .results
                .iter()
                .map(|r| {
                    r.curve
                        .as_deref()
                        .unwrap_or(&[])
                        .iter()
                        .filter(|p| p.mse.is_finite() && p.mse > 0.0)
                        .map(|p| (p.maxval, p.mse))
                        .collect()
                })
                .collect();
            let xs = pts.iter().flatten().map(|p| p.0);
            let ys = pts.iter().flatten().map(|p| p.1);
            let (x0, x1) = xs.fold((f64::INFINITY, 0f64), |(a, b), v| (a.min(v), b.max(v)));
            let (y0, y1) = ys.fold((f64::INFINITY, 0f64), |(a, b), v| (a.min(v), b.max(v)));
            if !(x0.is_finite() && y0.is_finite() && x1 > x0 && y1 > y0) {
                continue;
            }
            let mut c = ChartBuilder::on(&areas[1 + d])
                .caption(
                    format!("MSE against α — {}", dr.distribution.label()),
                    ("sans-serif", 18),
                )
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d((x0..x1).log_scale(), (y0 * 0.8..y1 * 1.25).log_scale())
                .map_err(|e| err(&e))?;
            c.configure_mesh()
                .x_desc("maxval α")
                .y_desc("expected MSE")
                .x_label_formatter(&|v| format!("{v:.3}"))
                .y_label_formatter(&|v| format!("{v:.0e}"))
                .draw()
                .map_err(|e| err(&e))?;
            for (k, (r, p)) in dr.results.iter().zip(&pts).enumerate() {
                let color = Palette99::pick(k).to_rgba();
                c.draw_series(LineSeries::new(p.clone(), color.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(r.name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                if let Some(a) = r.maxval.filter(|&a| r.mse > 0.0 && a >= x0 && a <= x1) {
                    c.draw_series(std::iter::once(Circle::new((a, r.mse), 5, color.filled())))
                        .map_err(|e| err(&e))?;
                }
            }
            c.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
