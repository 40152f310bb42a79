//! `fp8q sqnr --splits`: the best exponent/mantissa split of 4-, 6- and 8-bit elements under
//! E8M0 block scaling (block sizes 1, 16, 32, 64, 128) and per tensor, for each distribution
//! (`fp8q_core::analysis::block_splits`, `docs/analysis.md`).

use super::sqnr::SqnrArgs;
use anyhow::{anyhow, Context, Result};
use fp8q_core::analysis::block_splits::{run_splits, Scaling, SplitConfig, SplitStudy};
use fp8q_core::analysis::distributions::Distribution;
use fp8q_core::analysis::optimal_range::SearchOptions;
use fp8q_core::format::ScaleRule;
use std::fmt::Write as _;
use std::time::Instant;

/// Run the split table.
pub fn run(args: &SqnrArgs) -> Result<()> {
    let config = SplitConfig {
        distributions: if args.dist.is_empty() {
            Distribution::paper_defaults()
        } else {
            args.dist.clone()
        },
        rule: args.scale_rule.unwrap_or(ScaleRule::Floor),
        search: SearchOptions {
            points_per_octave: args.points_per_octave as usize,
            ..SearchOptions::default()
        },
        ..SplitConfig::paper()
    };
    let start = Instant::now();
    let study = run_splits(&config).context("the split table failed")?;
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(path) = &args.plot {
        plot(&study, path).with_context(|| format!("cannot write the plot {}", path.display()))?;
    }
    let out = if args.json {
        serde_json::to_string_pretty(&study)? + "\n"
    } else if args.csv {
        csv(&study)
    } else {
        let mut t = table(&study);
        writeln!(t, "({} rows in {elapsed:.2} s)", study.rows.len())?;
        if let Some(p) = &args.plot {
            writeln!(t, "plot written to {}", p.display())?;
        }
        t
    };
    print!("{out}");
    Ok(())
}

fn block_label(s: Scaling) -> String {
    match s {
        Scaling::Block(k) => format!("K={k}"),
        Scaling::PerTensor => "per tensor".into(),
    }
}

fn table(study: &SplitStudy) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "SQNR (dB) of each exponent/mantissa split: E8M0 block scale ({} rule) per block of K, or one\n\
         per-tensor range at the MSE-optimal value (flexible bias, the paper's setting); * = best split.",
        study.scale_rule
    );
    for dist in &study.distributions {
        let spec = dist.to_string();
        let _ = writeln!(s);
        let _ = writeln!(s, "{}   ({spec})", dist.label());
        for width in study
            .rows
            .iter()
            .filter(|r| r.distribution == spec)
            .map(|r| r.width)
            .fold(Vec::new(), |mut v, w| {
                if !v.contains(&w) {
                    v.push(w);
                }
                v
            })
        {
            let rows: Vec<_> = study
                .rows
                .iter()
                .filter(|r| r.distribution == spec && r.width == width)
                .collect();
            let mut header = format!("  {:<12}", format!("{width} bits"));
            for e in &rows[0].results {
                let _ = write!(header, " {:>9}", e.element);
            }
            let _ = writeln!(s, "{header}   best");
            for r in rows {
                let mut line = format!("  {:<12}", block_label(r.block_size));
                for e in &r.results {
                    let cell = format!("{:.2}{}", e.sqnr_db, if e.best { "*" } else { " " });
                    let _ = write!(line, " {cell:>9}");
                }
                let _ = writeln!(s, "{line}   {}", r.best);
            }
        }
    }
    s
}

fn csv(study: &SplitStudy) -> String {
    let mut s = String::from("distribution,width,block_size,element,format,bits_per_element,mse,sqnr_db,maxval,best\n");
    for r in &study.rows {
        for e in &r.results {
            let _ = writeln!(
                s,
                "\"{}\",{},{},{},{},{},{},{},{},{}",
                r.distribution,
                r.width,
                r.block_size.label(),
                e.element,
                e.format,
                e.bits_per_element,
                e.mse,
                e.sqnr_db,
                e.maxval.map_or_else(String::new, |a| a.to_string()),
                e.best
            );
        }
    }
    s
}

/// One panel per (distribution, width): SQNR against block size, one line per split.
fn plot(study: &SplitStudy, path: &std::path::Path) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| anyhow!("{e}");
    let dists: Vec<&Distribution> = study.distributions.iter().collect();
    let mut widths: Vec<u32> = study.rows.iter().map(|r| r.width).collect();
    widths.dedup();
    widths.sort_unstable();
    widths.dedup();
    let (nr, nc) = (dists.len(), widths.len());
    let root = SVGBackend::new(path, (440 * nc as u32, 360 * nr as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let areas = root.split_evenly((nr, nc));
    for (i, dist) in dists.iter().enumerate() {
        let spec = dist.to_string();
        for (j, &w) in widths.iter().enumerate() {
            let rows: Vec<_> = study
                .rows
                .iter()
                .filter(|r| r.distribution == spec && r.width == w)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let labels: Vec<String> = rows
                .iter()
                .map(|r| match r.block_size {
                    Scaling::Block(k) => k.to_string(),
                    Scaling::PerTensor => "tensor".into(),
                })
                .collect();
            let vals = rows
                .iter()
                .flat_map(|r| r.results.iter().map(|e| e.sqnr_db))
                .filter(|v| v.is_finite());
            let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            let pad = ((hi - lo) * 0.08).max(0.5);
            let n = rows.len();
            let mut chart = ChartBuilder::on(&areas[i * nc + j])
                .caption(format!("{} — {w} bits", dist.family()), ("sans-serif", 17))
                .margin(10)
                .x_label_area_size(34)
                .y_label_area_size(46)
                .build_cartesian_2d(-0.4f64..(n as f64 - 0.6), (lo - pad)..(hi + pad))
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_labels(2 * n + 1)
                .x_label_formatter(&crate::plot::category_labels(labels))
                .x_desc("block size")
                .y_desc("SQNR (dB)")
                .draw()
                .map_err(|e| err(&e))?;
            for (k, e) in rows[0].results.iter().enumerate() {
                let color = Palette99::pick(k).to_rgba();
                let pts: Vec<(f64, f64)> = rows
                    .iter()
                    .enumerate()
                    .map(|(x, r)| (x as f64, r.results[k].sqnr_db))
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(e.element.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
                // the winner of each block size, filled
                chart
                    .draw_series(rows.iter().zip(&pts).map(|(r, &p)| {
                        if r.results[k].best {
                            Circle::new(p, 5, color.filled())
                        } else {
                            Circle::new(p, 3, color.stroke_width(1))
                        }
                    }))
                    .map_err(|e| err(&e))?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
