//! The paper's question under block scaling (`docs/analysis.md`): for a total width `w`, which
//! split of the `w - 1` non-sign bits between exponent and mantissa — or a plain integer —
//! gives the best SQNR, and how does the answer move with the block size?
//!
//! For each width, block size and distribution this tabulates the SQNR of every element
//! `eXmY` with `X + Y = w - 1`, `X ≥ 1`, `Y ≥ 1`, and of `int{w}`:
//!
//! * **a block size `K`**: the block format `ELEMENT@K` with an E8M0 scale (the given rule, OCP's
//!   `floor` by default), its error from [`block_error_terms`] (exact up to quadrature);
//! * **per tensor**: the paper's setting, the per-tensor study's flexible-bias `eXmY` and
//!   symmetric `int{w}` at the range that minimizes the expected MSE ([`run_study`]).
//!
//! The element is named the same way in both (`e2m3`, `int6`), so a column of the table is one
//! element across block sizes.

use super::block_error::{block_error_terms, TensorMax};
use super::distributions::Distribution;
use super::optimal_range::SearchOptions;
use super::study::{run_study, RangeChoice, StudyConfig};
use super::{sqnr_db, AnalysisError};
use crate::format::{BlockElement, BlockFormat, Format, FpFormat, ScaleFormat, ScaleRule};
use rayon::prelude::*;
use serde::Serialize;

/// Where the scale lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaling {
    /// One E8M0 scale per block of this many elements.
    Block(usize),
    /// One scale per tensor (flexible bias / INT step at the optimal range).
    PerTensor,
}

impl Scaling {
    /// The block sizes of the table: 1, 16, 32, 64, 128 and per tensor.
    pub const DEFAULT: [Scaling; 6] = [
        Scaling::Block(1),
        Scaling::Block(16),
        Scaling::Block(32),
        Scaling::Block(64),
        Scaling::Block(128),
        Scaling::PerTensor,
    ];

    /// `16`, or `per-tensor`.
    pub fn label(&self) -> String {
        match self {
            Scaling::Block(k) => k.to_string(),
            Scaling::PerTensor => "per-tensor".into(),
        }
    }
}

impl Serialize for Scaling {
    /// A block size as a number, per tensor as `null`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scaling::Block(k) => s.serialize_some(k),
            Scaling::PerTensor => s.serialize_none(),
        }
    }
}

/// What to tabulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitConfig {
    /// Total widths in bits (each at least 3).
    pub widths: Vec<u32>,
    /// Block sizes (and/or per tensor).
    pub scalings: Vec<Scaling>,
    /// Distributions (symmetric about 0).
    pub distributions: Vec<Distribution>,
    /// The E8M0 scale rule of the block formats.
    pub rule: ScaleRule,
    /// Tuning of the per-tensor range search.
    pub search: SearchOptions,
}

impl SplitConfig {
    /// Widths 4, 6, 8; block sizes 1, 16, 32, 64, 128 and per tensor; the paper's three
    /// distributions; OCP's floor rule.
    pub fn paper() -> Self {
        SplitConfig {
            widths: vec![4, 6, 8],
            scalings: Scaling::DEFAULT.to_vec(),
            distributions: Distribution::paper_defaults(),
            rule: ScaleRule::Floor,
            search: SearchOptions::default(),
        }
    }
}

/// The elements of width `w`: `e1m(w-2)` … `e(w-2)m1`, then `int{w}`.
pub fn split_elements(w: u32) -> Result<Vec<String>, AnalysisError> {
    if !(3..=16).contains(&w) {
        return Err(AnalysisError::Invalid {
            what: "width",
            why: format!("{w} bits: the splits need 3 to 16 bits (a sign, at least one exponent and one mantissa bit)"),
        });
    }
    let mut out: Vec<String> = (1..=w - 2).map(|x| format!("e{x}m{}", w - 1 - x)).collect();
    out.push(format!("int{w}"));
    Ok(out)
}

/// One element at one width, scaling and distribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitEntry {
    /// The element (`e2m3`, `int6`), the same name in every row.
    pub element: String,
    /// The format evaluated (`e2m3@32`, or `e2m3` per tensor).
    pub format: String,
    /// Expected MSE per element.
    pub mse: f64,
    /// `10·log10(E[X²] / MSE)`.
    pub sqnr_db: f64,
    /// The per-tensor range (`None` for block formats).
    pub maxval: Option<f64>,
    /// Storage bits per element, the E8M0 scale's share included.
    pub bits_per_element: f64,
    /// Highest SQNR of its row.
    pub best: bool,
}

/// One row: a distribution, a width and a scaling, every split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitRow {
    /// The distribution's spelling.
    pub distribution: String,
    /// Total width in bits.
    pub width: u32,
    /// Block size, `null` per tensor.
    pub block_size: Scaling,
    /// The splits, `e1m…` first, `int{w}` last.
    pub results: Vec<SplitEntry>,
    /// The element with the highest SQNR.
    pub best: String,
}

/// The whole table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitStudy {
    /// The E8M0 rule of the block formats.
    pub scale_rule: String,
    /// The distributions, in order.
    pub distributions: Vec<Distribution>,
    /// Rows by distribution, then width, then scaling.
    pub rows: Vec<SplitRow>,
}

/// Tabulate the splits.
pub fn run_splits(config: &SplitConfig) -> Result<SplitStudy, AnalysisError> {
    if config.widths.is_empty() || config.scalings.is_empty() || config.distributions.is_empty() {
        return Err(AnalysisError::Invalid {
            what: "split table",
            why: "needs at least one width, one block size and one distribution".into(),
        });
    }
    if let Some(d) = config.distributions.iter().find(|d| !d.is_symmetric()) {
        return Err(AnalysisError::Invalid {
            what: "distribution",
            why: format!("the split table needs distributions symmetric about 0 (got {d})"),
        });
    }
    let elements: Vec<(u32, Vec<String>)> = config
        .widths
        .iter()
        .map(|&w| split_elements(w).map(|e| (w, e)))
        .collect::<Result<_, _>>()?;
    for s in &config.scalings {
        if let Scaling::Block(k) = s {
            BlockFormat::new(BlockElement::Int(4), *k, ScaleFormat::E8m0, config.rule)?;
        }
    }
    // per tensor: one study over every element of every width
    let per_tensor = if config.scalings.contains(&Scaling::PerTensor) {
        let formats: Vec<Format> = elements
            .iter()
            .flat_map(|(_, es)| es.iter().map(|e| e.parse::<Format>()))
            .collect::<Result<_, _>>()?;
        Some(run_study(&StudyConfig {
            distributions: config.distributions.clone(),
            formats,
            range: RangeChoice::Optimal,
            search: config.search,
            verify: None,
            curve_points: None,
            tensor_elements: None,
        })?)
    } else {
        None
    };
    // the block cases, in parallel
    let mut cases = Vec::new();
    for (d, _) in config.distributions.iter().enumerate() {
        for (w, es) in &elements {
            for s in &config.scalings {
                if let Scaling::Block(k) = s {
                    for e in es {
                        cases.push((d, *w, *k, e.clone()));
                    }
                }
            }
        }
    }
    let block: Vec<SplitEntry> = cases
        .par_iter()
        .map(|(d, _, k, e)| {
            let dist = &config.distributions[*d];
            let f = BlockFormat::new(block_element(e)?, *k, ScaleFormat::E8m0, config.rule)?;
            let t = block_error_terms(dist, &f, TensorMax::Median { elements: 1 })?.terms;
            Ok(SplitEntry {
                element: e.clone(),
                format: f.to_string(),
                mse: t.mse,
                sqnr_db: sqnr_db(dist.second_moment(), t.mse),
                maxval: None,
                bits_per_element: f.bits_per_element(),
                best: false,
            })
        })
        .collect::<Result<_, AnalysisError>>()?;
    let mut block = block.into_iter();
    let mut rows = Vec::new();
    for (d, dist) in config.distributions.iter().enumerate() {
        for (w, es) in &elements {
            for s in &config.scalings {
                let mut results: Vec<SplitEntry> = match s {
                    Scaling::Block(_) => block.by_ref().take(es.len()).collect(),
                    Scaling::PerTensor => {
                        let dr = &per_tensor.as_ref().expect("per-tensor study").distributions[d];
                        es.iter()
                            .map(|e| {
                                let r = dr
                                    .results
                                    .iter()
                                    .find(|r| r.format == *e)
                                    .expect("every element in the per-tensor study");
                                SplitEntry {
                                    element: e.clone(),
                                    format: r.format.clone(),
                                    mse: r.mse,
                                    sqnr_db: r.sqnr_db,
                                    maxval: r.maxval,
                                    bits_per_element: r.bits_per_element,
                                    best: false,
                                }
                            })
                            .collect()
                    }
                };
                let best = (0..results.len())
                    .max_by(|&a, &b| results[a].sqnr_db.total_cmp(&results[b].sqnr_db))
                    .expect("at least two splits");
                results[best].best = true;
                rows.push(SplitRow {
                    distribution: dist.to_string(),
                    width: *w,
                    block_size: *s,
                    best: results[best].element.clone(),
                    results,
                });
            }
        }
    }
    Ok(SplitStudy {
        scale_rule: config.rule.name().into(),
        distributions: config.distributions.clone(),
        rows,
    })
}

/// The block element of a split's name (`e2m3` → signed FP element, `int6`).
fn block_element(name: &str) -> Result<BlockElement, AnalysisError> {
    if let Some(n) = name.strip_prefix("int") {
        return Ok(BlockElement::Int(n.parse().expect("int width")));
    }
    let (x, y) = name.strip_prefix('e').and_then(|r| r.split_once('m')).expect("eXmY");
    let f = FpFormat::from_exponent_mantissa(x.parse().expect("X"), y.parse().expect("Y"), true)?;
    if f.exponent_bits() > 7 {
        return Err(AnalysisError::Invalid {
            what: "width",
            why: format!("{name}: a block element has at most 7 exponent bits"),
        });
    }
    Ok(BlockElement::Fp(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_of_a_width() {
        assert_eq!(split_elements(4).unwrap(), ["e1m2", "e2m1", "int4"]);
        assert_eq!(split_elements(6).unwrap(), ["e1m4", "e2m3", "e3m2", "e4m1", "int6"]);
        assert!(split_elements(2).unwrap_err().to_string().contains("2 bits"));
    }

    #[test]
    fn a_small_table() {
        let cfg = SplitConfig {
            widths: vec![4],
            scalings: vec![Scaling::Block(1), Scaling::Block(32), Scaling::PerTensor],
            distributions: vec![Distribution::gauss(0.0, 1.0, -10.0, 10.0).unwrap()],
            ..SplitConfig::paper()
        };
        let t = run_splits(&cfg).unwrap();
        assert_eq!(t.rows.len(), 3);
        let r32 = &t.rows[1];
        assert_eq!(r32.block_size, Scaling::Block(32));
        let names: Vec<&str> = r32.results.iter().map(|r| r.format.as_str()).collect();
        assert_eq!(names, ["e1m2@32", "mxfp4", "int4@32"]);
        // the block study's figure is block_error_terms'
        let f: BlockFormat = "mxfp4".parse().unwrap();
        let want = block_error_terms(&cfg.distributions[0], &f, TensorMax::Median { elements: 1 })
            .unwrap()
            .terms
            .mse;
        assert_eq!(r32.results[1].mse, want);
        // per tensor: flexible-bias formats with a range
        assert!(t.rows[2].results.iter().all(|r| r.maxval.is_some()));
        // a block of one: every element keeps only its top binade, so the split with the most
        // mantissa bits (e1m2, or int4 with the same 2 fraction bits) wins
        assert!(["e1m2", "int4"].contains(&t.rows[0].best.as_str()), "{:?}", t.rows[0]);
        let bad = SplitConfig {
            widths: vec![2],
            ..cfg.clone()
        };
        assert!(run_splits(&bad).is_err());
        let bad = SplitConfig {
            scalings: vec![Scaling::Block(0)],
            ..cfg
        };
        assert!(run_splits(&bad).unwrap_err().to_string().contains("block size"));
    }
}
