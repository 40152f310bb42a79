//! The analysis drawn as an SVG heat map: one row per slot, one column per format; each cell
//! shows an SQNR and is coloured by how far it lies below the row's best (green at 0 dB, yellow
//! at 6, red from 12 on); the recommended cell is framed and starred, and the kurtosis is
//! written beside each row. What `fp8q analyze --plot` and `fp8q.torch.analyze(...).plot()`
//! draw.

use super::format_choice::AnalysisRow;
use super::AnalysisError;
use plotters::prelude::*;
use std::path::Path;

/// One row of the map.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatRow {
    /// The row's label (`layer1.0.conv1 [weight]`).
    pub label: String,
    /// One SQNR in dB per format (NaN: none, drawn grey).
    pub values: Vec<f64>,
    /// The format recommended for the row, by name.
    pub recommended: String,
    /// The tensor's kurtosis.
    pub kurtosis: f64,
}

impl HeatRow {
    /// The row of an analysis row: the network SQNR of each format when the row has one, else
    /// the measured tensor SQNR.
    pub fn of(r: &AnalysisRow, formats: &[String]) -> Self {
        let value = |f: &str| match &r.output_sqnr_db {
            Some(o) => o.get(f).copied().unwrap_or(f64::NAN),
            None => r.sqnr_db.get(f).copied().unwrap_or(f64::NAN),
        };
        HeatRow {
            label: format!("{} [{}]", cut(&r.unit, 54), r.slot.name()),
            values: formats.iter().map(|f| value(f)).collect(),
            recommended: r.recommended.clone(),
            kurtosis: r.stats.kurtosis,
        }
    }
}

/// The last `n` characters of `s`, marked with `…` when cut.
pub fn cut(s: &str, n: usize) -> String {
    let len = s.chars().count();
    if len <= n {
        s.to_string()
    } else {
        format!("…{}", s.chars().skip(len - (n - 1)).collect::<String>())
    }
}

/// Colour of a cell `d` dB below the row's best: green at 0, yellow at 6, red from 12 on.
fn cell_colour(d: f64) -> RGBColor {
    let t = (d / 12.0).clamp(0.0, 1.0);
    let (r, g) = if t < 0.5 {
        (60.0 + 390.0 * t, 180.0 + 40.0 * t)
    } else {
        (255.0, 200.0 - 300.0 * (t - 0.5))
    };
    RGBColor(r.min(255.0) as u8, g.clamp(0.0, 255.0) as u8, 70)
}

/// Draw `rows` (each with one value per format) to an SVG file at `path`.
pub fn write_heat_map(formats: &[String], rows: &[HeatRow], path: &Path) -> Result<(), AnalysisError> {
    if let Some(r) = rows.iter().find(|r| r.values.len() != formats.len()) {
        return Err(AnalysisError::Invalid {
            what: "heat map",
            why: format!(
                "row '{}' has {} values for {} formats",
                r.label,
                r.values.len(),
                formats.len()
            ),
        });
    }
    draw(formats, rows, path).map_err(|why| AnalysisError::Invalid {
        what: "heat map",
        why: format!("{}: {why}", path.display()),
    })
}

fn draw(formats: &[String], rows: &[HeatRow], path: &Path) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<std::io::Error>| e.to_string();
    let (cell_w, cell_h) = (90i32, 22i32);
    let label_w = 8 * rows.iter().map(|r| r.label.chars().count()).max().unwrap_or(10).min(66) as i32;
    let (top, right) = (60i32, 130i32);
    let width = (label_w + cell_w * formats.len() as i32 + right).max(400);
    let height = top + cell_h * rows.len().max(1) as i32 + 20;
    let root = SVGBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let font = ("sans-serif", 13).into_font();
    let bold = ("sans-serif", 14).into_font().style(FontStyle::Bold);
    root.draw(&Text::new(
        "SQNR (dB) per slot and format: * recommended (framed); kurtosis at the right",
        (8, 8),
        bold.clone(),
    ))
    .map_err(e)?;
    for (j, f) in formats.iter().enumerate() {
        let x = label_w + cell_w * j as i32 + 8;
        root.draw(&Text::new(f.clone(), (x, top - 22), bold.clone()))
            .map_err(e)?;
    }
    let kx = label_w + cell_w * formats.len() as i32 + 8;
    root.draw(&Text::new("kurtosis", (kx, top - 22), bold.clone()))
        .map_err(e)?;
    for (i, r) in rows.iter().enumerate() {
        let y = top + cell_h * i as i32;
        root.draw(&Text::new(r.label.clone(), (4, y + 5), font.clone()))
            .map_err(e)?;
        let best = r
            .values
            .iter()
            .copied()
            .filter(|v| !v.is_nan())
            .fold(f64::NEG_INFINITY, f64::max);
        for (j, (f, &v)) in formats.iter().zip(&r.values).enumerate() {
            let x = label_w + cell_w * j as i32;
            let colour = if v.is_nan() {
                RGBColor(200, 200, 200)
            } else {
                cell_colour(best - v)
            };
            let cell = [(x, y), (x + cell_w - 2, y + cell_h - 2)];
            root.draw(&Rectangle::new(cell, colour.filled())).map_err(e)?;
            let rec = r.recommended == *f;
            if rec {
                root.draw(&Rectangle::new(cell, BLACK.stroke_width(2))).map_err(e)?;
            }
            let text = format!("{v:.1}{}", if rec { " *" } else { "" });
            let style = if rec { bold.clone() } else { font.clone() };
            root.draw(&Text::new(text, (x + 8, y + 5), style)).map_err(e)?;
        }
        root.draw(&Text::new(format!("{:.2}", r.kurtosis), (kx, y + 5), font.clone()))
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_has_a_cell_per_value_and_frames_the_recommendation() {
        let dir = std::env::temp_dir().join(format!("fp8q-heat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("map.svg");
        let formats = vec!["e4m3".to_string(), "int8".to_string()];
        let rows = vec![
            HeatRow {
                label: "fc [weight]".into(),
                values: vec![30.5, 28.25],
                recommended: "e4m3".into(),
                kurtosis: 3.5,
            },
            HeatRow {
                label: "fc [input]".into(),
                values: vec![f64::NAN, 41.0],
                recommended: "int8".into(),
                kurtosis: 9.0,
            },
        ];
        write_heat_map(&formats, &rows, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in ["30.5 *", "28.2", "NaN", "41.0 *", "fc [input]", "9.00", "int8"] {
            assert!(svg.contains(text), "{text} missing");
        }
        // a frame per recommended cell
        assert_eq!(svg.matches("fill=\"none\" stroke=\"#000000\"").count(), 2);
        let bad = vec![HeatRow {
            values: vec![1.0],
            ..rows[0].clone()
        }];
        assert!(write_heat_map(&formats, &bad, &path).is_err());
        assert!(write_heat_map(&formats, &rows, &dir.join("no/such/dir/map.svg")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cut_keeps_the_tail() {
        assert_eq!(cut("layer1.0.conv1", 20), "layer1.0.conv1");
        assert_eq!(cut("abcdef", 4), "…def");
    }
}
