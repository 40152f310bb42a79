//! A study: distributions × formats → expected MSE, SQNR and dot-product error at the optimal
//! (or a given, or a sampled-search) range, optionally with a Monte-Carlo cross-check and the
//! MSE-versus-α curve. Cases are computed in parallel with rayon.
//!
//! Block-scaled formats (MX, NVFP4, generic `ELEMENT@K`) sit in the same study: they have no
//! range to choose (`maxval` is `None`), their error is [`block_error_terms`]'s, and the
//! Monte-Carlo quantizes the samples with the real [`BlockQuantizer`] in blocks along a 1-D
//! tensor. The FP32 tensor scale of a two-level format (NVFP4) is analysed at the median
//! largest magnitude of a tensor of [`StudyConfig::tensor_elements`] elements.

use super::block_error::{block_error_terms, TensorMax};
use super::distributions::Distribution;
use super::expected_error::{dot_product_mse, error_terms, expected_mse, ErrorTerms};
use super::optimal_range::{optimal_maxval, sampled_line_search, search_interval, SearchOptions};
use super::{grid_for, quantizer_for, sqnr_db, AnalysisError};
use crate::format::{BlockFormat, Format};
use crate::quantizer::block_quantizer::{BlockLayout, BlockQuantizer};
use rayon::prelude::*;
use serde::Serialize;

/// How the range `α` of each (distribution, format) is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangeChoice {
    /// Minimize the analytical MSE.
    Optimal,
    /// A given maximum.
    Fixed(f64),
    /// The reference's sampled 1000-candidate line search on `samples` draws with `seed`.
    Sampled {
        /// Number of samples.
        samples: usize,
        /// Seed.
        seed: u64,
    },
}

impl RangeChoice {
    fn describe(&self) -> String {
        match self {
            RangeChoice::Optimal => "optimal (minimum of the analytical MSE)".into(),
            RangeChoice::Fixed(a) => format!("fixed maxval {a}"),
            RangeChoice::Sampled { samples, seed } => {
                format!("sampled line search ({samples} samples, seed {seed}, 1000 candidates)")
            }
        }
    }
}

/// Monte-Carlo settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VerifyOptions {
    /// Samples per distribution (the same samples serve every format).
    pub samples: usize,
    /// Seed.
    pub seed: u64,
}

/// What to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyConfig {
    /// Distributions (rows of tables).
    pub distributions: Vec<Distribution>,
    /// Formats.
    pub formats: Vec<Format>,
    /// Range choice.
    pub range: RangeChoice,
    /// Tuning of the optimal-range search.
    pub search: SearchOptions,
    /// Monte-Carlo cross-check.
    pub verify: Option<VerifyOptions>,
    /// Points of the MSE-versus-α curve per case (over the search interval), if wanted.
    pub curve_points: Option<usize>,
    /// Elements of the tensor whose largest magnitude sets a two-level block format's FP32
    /// scale (NVFP4); `None`: the Monte-Carlo's sample count when verifying, else
    /// [`DEFAULT_TENSOR_ELEMENTS`].
    pub tensor_elements: Option<usize>,
}

/// The tensor size of the two-level analysis without a Monte-Carlo: a 4096 × 4096 matrix.
pub const DEFAULT_TENSOR_ELEMENTS: usize = 1 << 24;

impl StudyConfig {
    /// The tensor size the two-level analysis uses (see [`StudyConfig::tensor_elements`]).
    pub fn tensor_size(&self) -> usize {
        self.tensor_elements
            .or(self.verify.map(|v| v.samples))
            .unwrap_or(DEFAULT_TENSOR_ELEMENTS)
    }
}

/// The paper's formats: E5M2, E4M3, E3M4, E2M5 (flexible bias) and INT8.
pub fn paper_formats() -> Vec<Format> {
    ["e5m2", "e4m3", "e3m4", "e2m5", "int8"]
        .iter()
        .map(|s| s.parse().expect("valid format"))
        .collect()
}

impl StudyConfig {
    /// The paper's study: three distributions × five formats at the optimal range.
    pub fn paper() -> Self {
        StudyConfig {
            distributions: Distribution::paper_defaults(),
            formats: paper_formats(),
            range: RangeChoice::Optimal,
            search: SearchOptions::default(),
            verify: None,
            curve_points: None,
            tensor_elements: None,
        }
    }
}

/// A Monte-Carlo estimate next to the analytical figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MonteCarlo {
    /// Number of samples (of X, and of Y for the product).
    pub samples: usize,
    /// Seed.
    pub seed: u64,
    /// Mean of `(q(x) - x)²`.
    pub mse: f64,
    /// Its standard error.
    pub mse_stderr: f64,
    /// `(empirical - analytical) / stderr`.
    pub mse_z: f64,
    /// Mean of `(xy - q(x)q(y))²` over independent pairs.
    pub dot_product_mse: f64,
    /// Its standard error.
    pub dot_product_stderr: f64,
    /// `(empirical - analytical) / stderr`.
    pub dot_product_z: f64,
}

/// One point of an MSE-versus-α curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Maximum.
    pub maxval: f64,
    /// Analytical MSE there.
    pub mse: f64,
}

/// The figures of one format for one distribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormatResult {
    /// Parseable spelling (`e4m3`, `int8`).
    pub format: String,
    /// Display name (`E4M3`, `INT8`).
    pub name: String,
    /// Total bits.
    pub n_bits: u32,
    /// The range `α` used (grid maximum); `None` for a block-scaled format (no range to choose).
    pub maxval: Option<f64>,
    /// Storage bits per element (a block format's scale share included).
    pub bits_per_element: f64,
    /// The tensor maximum a two-level block format's FP32 scale was analysed at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensor_amax: Option<f64>,
    /// `E[R²]`.
    pub mse: f64,
    /// `10·log10(E[X²] / MSE)`.
    pub sqnr_db: f64,
    /// `-10·log10(MSE)`, what the reference prints as "SQNR".
    pub neg_log_mse_db: f64,
    /// `E[X·R]`.
    pub xr: f64,
    /// `E[(XY - q(X)q(Y))²]` for independent X, Y of this distribution.
    pub dot_product_mse: f64,
    /// `10·log10(E[X²]² / dot-product MSE)`.
    pub dot_product_sqnr_db: f64,
    /// `-10·log10(dot-product MSE)`, the reference's figure.
    pub dot_product_neg_log_mse_db: f64,
    /// MSE evaluations spent choosing the range.
    pub evaluations: usize,
    /// Lowest MSE of this distribution.
    pub best: bool,
    /// Monte-Carlo cross-check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monte_carlo: Option<MonteCarlo>,
    /// MSE against α.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<Vec<CurvePoint>>,
}

/// All formats for one distribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistributionResult {
    /// The distribution (spec, parameters, point masses, second moment).
    pub distribution: Distribution,
    /// `E[X²]`.
    pub second_moment: f64,
    /// One entry per format, in the configured order.
    pub results: Vec<FormatResult>,
    /// Spelling of the format with the lowest MSE.
    pub best_format: String,
}

/// A whole study.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Study {
    /// How ranges were chosen.
    pub range_method: String,
    /// Search tuning (for the optimal range).
    pub search: SearchOptions,
    /// One entry per distribution.
    pub distributions: Vec<DistributionResult>,
}

/// Analytical figures of one (distribution, format) at a given α.
pub fn evaluate(dist: &Distribution, format: &Format, alpha: f64) -> Result<(ErrorTerms, f64), AnalysisError> {
    let grid = grid_for(format, alpha)?;
    let t = error_terms(dist, &grid, true);
    let m2 = dist.second_moment();
    Ok((t, dot_product_mse(t, m2, t, m2)))
}

/// Run a study.
pub fn run_study(config: &StudyConfig) -> Result<Study, AnalysisError> {
    if config.distributions.is_empty() || config.formats.is_empty() {
        return Err(AnalysisError::Invalid {
            what: "study",
            why: "needs at least one distribution and one format".into(),
        });
    }
    if let RangeChoice::Fixed(a) = config.range {
        if !(a.is_finite() && a > 0.0) {
            return Err(AnalysisError::Invalid {
                what: "maxval",
                why: format!("must be positive and finite (got {a})"),
            });
        }
    }
    // validate every format once, with a clear error (before any parallel work)
    for f in &config.formats {
        match f {
            Format::Block(_) => {
                if let Some(d) = config.distributions.iter().find(|d| !d.is_symmetric()) {
                    return Err(AnalysisError::Invalid {
                        what: "distribution",
                        why: format!(
                            "{f} is block-scaled; its analysis needs a distribution symmetric about 0 (got {d})"
                        ),
                    });
                }
            }
            _ => {
                grid_for(f, 1.0)?;
            }
        }
    }
    if config.tensor_size() == 0 {
        return Err(AnalysisError::Invalid {
            what: "tensor size",
            why: "a tensor needs at least one element".into(),
        });
    }
    // samples shared by all formats of a distribution
    let prepared: Vec<Prepared> = config.distributions.iter().map(|d| prepare(config, d)).collect();
    // every (distribution, format) case in one parallel loop, so slow cases (wide grids) overlap
    let cases: Vec<(usize, usize)> = (0..config.distributions.len())
        .flat_map(|d| (0..config.formats.len()).map(move |f| (d, f)))
        .collect();
    let mut results = cases
        .par_iter()
        .map(|&(d, f)| run_case(config, &config.distributions[d], &config.formats[f], &prepared[d]))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    let distributions = config
        .distributions
        .iter()
        .map(|dist| {
            let mut rs: Vec<FormatResult> = results.by_ref().take(config.formats.len()).collect();
            let best = (0..rs.len())
                .min_by(|&a, &b| rs[a].mse.total_cmp(&rs[b].mse))
                .expect("non-empty");
            rs[best].best = true;
            DistributionResult {
                distribution: *dist,
                second_moment: dist.second_moment(),
                best_format: rs[best].format.clone(),
                results: rs,
            }
        })
        .collect();
    Ok(Study {
        range_method: config.range.describe(),
        search: config.search,
        distributions,
    })
}

struct Prepared {
    search_samples: Option<Vec<f32>>,
    mc_samples: Option<(Vec<f32>, Vec<f32>)>,
}

fn prepare(config: &StudyConfig, dist: &Distribution) -> Prepared {
    Prepared {
        search_samples: match config.range {
            RangeChoice::Sampled { samples, seed } => Some(dist.sample_f32(samples, seed)),
            _ => None,
        },
        mc_samples: config.verify.map(|v| {
            (
                dist.sample_f32(v.samples, v.seed),
                dist.sample_f32(v.samples, v.seed.wrapping_add(0x5851_F42D_4C95_7F2D)),
            )
        }),
    }
}

fn run_case(
    config: &StudyConfig,
    dist: &Distribution,
    format: &Format,
    prepared: &Prepared,
) -> Result<FormatResult, AnalysisError> {
    if let Format::Block(b) = format {
        return run_block_case(config, dist, b, prepared);
    }
    let m2 = dist.second_moment();
    let (alpha, evaluations) = match config.range {
        RangeChoice::Optimal => {
            let o = optimal_maxval(dist, format, &config.search)?;
            (o.alpha, o.evaluations)
        }
        RangeChoice::Fixed(a) => (a, 0),
        RangeChoice::Sampled { .. } => {
            let o = sampled_line_search(prepared.search_samples.as_deref().expect("sampled"), format)?;
            (o.alpha, o.evaluations)
        }
    };
    let (t, dot) = evaluate(dist, format, alpha)?;
    let monte_carlo = match (&prepared.mc_samples, config.verify) {
        (Some((x, y)), Some(v)) => Some(monte_carlo(format, alpha, x, y, v.seed, t.mse, dot)?),
        _ => None,
    };
    let curve = match config.curve_points {
        Some(n) if n >= 2 => {
            let (lo, hi) = search_interval(dist);
            let pts = (0..n)
                .into_par_iter()
                .map(|k| {
                    let a = (lo.log2() + (hi.log2() - lo.log2()) * k as f64 / (n - 1) as f64).exp2();
                    let mse = grid_for(format, a).map(|g| expected_mse(dist, &g)).unwrap_or(f64::NAN);
                    CurvePoint { maxval: a, mse }
                })
                .collect();
            Some(pts)
        }
        _ => None,
    };
    Ok(FormatResult {
        format: format.to_string(),
        name: format.display_name(),
        n_bits: format.n_bits(),
        maxval: Some(alpha),
        bits_per_element: format.n_bits() as f64,
        tensor_amax: None,
        mse: t.mse,
        sqnr_db: sqnr_db(m2, t.mse),
        neg_log_mse_db: -10.0 * t.mse.log10(),
        xr: t.xr,
        dot_product_mse: dot,
        dot_product_sqnr_db: sqnr_db(m2 * m2, dot),
        dot_product_neg_log_mse_db: -10.0 * dot.log10(),
        evaluations,
        best: false,
        monte_carlo,
        curve,
    })
}

fn run_block_case(
    config: &StudyConfig,
    dist: &Distribution,
    format: &BlockFormat,
    prepared: &Prepared,
) -> Result<FormatResult, AnalysisError> {
    let m2 = dist.second_moment();
    let b = block_error_terms(
        dist,
        format,
        TensorMax::Median {
            elements: config.tensor_size(),
        },
    )?;
    let t = b.terms;
    let dot = dot_product_mse(t, m2, t, m2);
    let monte_carlo = match (&prepared.mc_samples, config.verify) {
        (Some((x, y)), Some(v)) => Some(block_monte_carlo(format, x, y, v.seed, t.mse, dot)?),
        _ => None,
    };
    Ok(FormatResult {
        format: format.to_string(),
        name: format.to_string(),
        n_bits: format.element().n_bits(),
        maxval: None,
        bits_per_element: format.bits_per_element(),
        tensor_amax: b.tensor_amax,
        mse: t.mse,
        sqnr_db: sqnr_db(m2, t.mse),
        neg_log_mse_db: -10.0 * t.mse.log10(),
        xr: t.xr,
        dot_product_mse: dot,
        dot_product_sqnr_db: sqnr_db(m2 * m2, dot),
        dot_product_neg_log_mse_db: -10.0 * dot.log10(),
        evaluations: 0,
        best: false,
        monte_carlo,
        curve: None,
    })
}

/// Mean of `f(i)` over `0..n` and its standard error from the sums over groups of `k`
/// consecutive indices (the groups independent, the values inside one possibly correlated: the
/// elements of a block share its scale).
fn grouped_mean_stderr<F: Fn(usize) -> f64 + Sync>(n: usize, k: usize, f: F) -> (f64, f64) {
    let groups = n.div_ceil(k);
    let sums: Vec<(f64, f64)> = (0..groups)
        .into_par_iter()
        .with_min_len(1 << 10)
        .map(|g| {
            let r = g * k..((g + 1) * k).min(n);
            let len = r.len() as f64;
            (r.map(&f).sum::<f64>(), len)
        })
        .collect();
    let nf = n as f64;
    let mean = sums.iter().map(|s| s.0).sum::<f64>() / nf;
    let gf = groups as f64;
    // the ratio estimator's variance
    let var = sums.iter().map(|(s, c)| (s - c * mean).powi(2)).sum::<f64>() / (nf * nf) * gf / (gf - 1.0).max(1.0);
    (mean, var.max(0.0).sqrt())
}

/// The Monte-Carlo check of a block format: `x` and `y` are two 1-D tensors (each with its own
/// tensor maximum), quantized in blocks with the real quantizer.
fn block_monte_carlo(
    format: &BlockFormat,
    x: &[f32],
    y: &[f32],
    seed: u64,
    mse: f64,
    dot: f64,
) -> Result<MonteCarlo, AnalysisError> {
    let layout = BlockLayout::new(&[x.len()], 0)?;
    let mut qx = vec![0f32; x.len()];
    let mut qy = vec![0f32; y.len()];
    BlockQuantizer::for_tensor(*format, x).quantize(layout, x, &mut qx)?;
    BlockQuantizer::for_tensor(*format, y).quantize(layout, y, &mut qy)?;
    let k = format.block_size();
    let (m, se) = grouped_mean_stderr(x.len(), k, |i| {
        let r = qx[i] as f64 - x[i] as f64;
        r * r
    });
    let (dm, dse) = grouped_mean_stderr(x.len(), k, |i| {
        let e = x[i] as f64 * y[i] as f64 - qx[i] as f64 * qy[i] as f64;
        e * e
    });
    Ok(MonteCarlo {
        samples: x.len(),
        seed,
        mse: m,
        mse_stderr: se,
        mse_z: (m - mse) / se,
        dot_product_mse: dm,
        dot_product_stderr: dse,
        dot_product_z: (dm - dot) / dse,
    })
}

/// Mean and standard error of the mean of `f(i)` over `0..n`, in `f64`, in parallel.
fn mean_stderr<F: Fn(usize) -> f64 + Sync>(n: usize, f: F) -> (f64, f64) {
    let (s, s2) = (0..n)
        .into_par_iter()
        .with_min_len(1 << 14)
        .map(|i| {
            let v = f(i);
            (v, v * v)
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let nf = n as f64;
    let mean = s / nf;
    let var = ((s2 - nf * mean * mean) / (nf - 1.0).max(1.0)).max(0.0);
    (mean, (var / nf).sqrt())
}

fn monte_carlo(
    format: &Format,
    alpha: f64,
    x: &[f32],
    y: &[f32],
    seed: u64,
    mse: f64,
    dot: f64,
) -> Result<MonteCarlo, AnalysisError> {
    let q = quantizer_for(format, alpha)?;
    let mut qx = vec![0f32; x.len()];
    let mut qy = vec![0f32; y.len()];
    q.quantize(x, &mut qx);
    q.quantize(y, &mut qy);
    let (m, se) = mean_stderr(x.len(), |i| {
        let r = qx[i] as f64 - x[i] as f64;
        r * r
    });
    let (dm, dse) = mean_stderr(x.len(), |i| {
        let e = x[i] as f64 * y[i] as f64 - qx[i] as f64 * qy[i] as f64;
        e * e
    });
    Ok(MonteCarlo {
        samples: x.len(),
        seed,
        mse: m,
        mse_stderr: se,
        mse_z: (m - mse) / se,
        dot_product_mse: dm,
        dot_product_stderr: dse,
        dot_product_z: (dm - dot) / dse,
    })
}
