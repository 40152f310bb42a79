//! Fitting the paper's distributions to a tensor, and the analytical SQNR of a quantizer for the
//! fitted distribution at a given range.
//!
//! **The fit: method of moments on the kurtosis.** A tensor is modelled as `X = μ + s·T`, where
//! `T` is a standard Gaussian or a standard Student's t with ν degrees of freedom; `μ` is the
//! mean and `s` is chosen so that the standard deviation matches (`s = σ·√((ν-2)/ν)` for t).
//! The shape comes from the excess kurtosis `κ` (Student's t has `κ = 6/(ν-4)` for `ν > 4`):
//!
//! * `κ > 6/(NU_GAUSS - 4)`: Student's t with `ν = 4 + 6/κ` (heavier tails ⇒ smaller ν);
//! * `κ ≤` [`KURTOSIS_UNIFORM`] (-0.6, halfway between the Gaussian's 0 and the uniform's
//!   -1.2): uniform on the observed `[min, max]` — the paper's third distribution, for bounded
//!   tensors (range-matched: a moment-matched `μ ± √3·σ` would put mass beyond a min–max range
//!   whenever the sample σ comes out a little high, and that clipping would swamp the rounding
//!   error);
//! * otherwise: Gaussian. Beyond ν = [`NU_GAUSS`] the t and the Gaussian differ by less than
//!   the sampling noise of the kurtosis itself.
//!
//! Why moments rather than maximum likelihood: the paper's point is that the *tails* (outliers)
//! decide how many exponent bits a tensor needs, and the kurtosis measures exactly the tail
//! weight; it comes from one streaming pass (see [`super::tensor_stats`]), which matters for
//! billion-parameter checkpoints, whereas the t likelihood needs iterative passes (EM) over all
//! the data. The price: a kurtosis-matched t can never have `ν ≤ 4`, so extremely heavy-tailed
//! tensors are fitted with ν just above 4.
//!
//! The fitted distribution is clipped at the tensor's observed minimum and maximum (the tails
//! beyond them become point masses there, as in [`Distribution`]): no real value lies beyond.
//!
//! **What the fit is for.** The prediction of a format with a range is made from the tensor's
//! empirical law ([`super::magnitude_histogram`]), which needs no shape; the fit describes the
//! tensor (the `fit` of `fp8q analyze`'s rows) and is the model of the block-scaled formats'
//! prediction ([`predict_block_sqnr_db`]), whose engine integrates a distribution over block
//! maxima.

use super::block_error::{block_error_terms_in_units, TensorMax};
use super::distributions::Distribution;
use super::tensor_stats::Moments;
use super::{AnalysisError, MAX_GRID_BITS};
use crate::error::FormatError;
use crate::format::{BlockFormat, ScaleFormat};
use crate::quantizer::BlockLayout;
use crate::quantizer::QuantMethod;
use serde::Serialize;

/// Above this ν (excess kurtosis below `6/(NU_GAUSS - 4)` ≈ 0.031) the fit is Gaussian.
pub const NU_GAUSS: f64 = 200.0;

/// At or below this excess kurtosis the fit is uniform.
pub const KURTOSIS_UNIFORM: f64 = -0.6;

/// The family of a fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "family", rename_all = "kebab-case")]
pub enum Family {
    /// Uniform on the observed range.
    Uniform,
    /// Standard Gaussian shape.
    Gauss,
    /// Standard Student's t shape.
    StudentT {
        /// Degrees of freedom (> 4).
        nu: f64,
    },
}

/// A fitted shape: the family, and the excess kurtosis it was fitted to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fit {
    /// Family and shape parameter.
    #[serde(flatten)]
    pub family: Family,
    /// The excess kurtosis fitted (of the whole tensor, or pooled over channels: the mean of
    /// the channels' kurtosis weighted by their sizes).
    pub fitted_kurtosis: f64,
    /// Whether the fit is per channel (each channel standardized by its own mean and σ).
    pub per_channel: bool,
}

impl Fit {
    /// The method-of-moments fit to an excess kurtosis (see the module docs).
    pub fn from_kurtosis(excess_kurtosis: f64, per_channel: bool) -> Fit {
        let family = if excess_kurtosis.is_finite() && excess_kurtosis > 6.0 / (NU_GAUSS - 4.0) {
            Family::StudentT {
                nu: 4.0 + 6.0 / excess_kurtosis,
            }
        } else if excess_kurtosis <= KURTOSIS_UNIFORM {
            Family::Uniform
        } else {
            Family::Gauss
        };
        Fit {
            family,
            fitted_kurtosis: excess_kurtosis,
            per_channel,
        }
    }

    /// Fit to moments: of the whole tensor (one entry), or pooled over channels. `None` when no
    /// channel has a positive variance.
    pub fn from_moments(moments: &[Moments]) -> Option<Fit> {
        let (mut w, mut k) = (0.0f64, 0.0f64);
        for m in moments {
            if let Some(kc) = m.excess_kurtosis() {
                w += m.n as f64;
                k += m.n as f64 * kc;
            }
        }
        (w > 0.0).then(|| Fit::from_kurtosis(k / w, moments.len() > 1))
    }

    /// Standard deviation of the standard shape `T` (`√(ν/(ν-2))` for t, 1 for Gauss).
    pub fn shape_std(&self) -> f64 {
        match self.family {
            Family::Uniform | Family::Gauss => 1.0,
            Family::StudentT { nu } => (nu / (nu - 2.0)).sqrt(),
        }
    }

    /// The standard shape clipped at `[lo, hi]` (in units of `T`; the uniform is on `[lo, hi]`).
    pub fn standard(&self, lo: f64, hi: f64) -> Result<Distribution, AnalysisError> {
        match self.family {
            Family::Uniform => Distribution::uniform(lo, hi),
            Family::Gauss => Distribution::gauss(0.0, 1.0, lo, hi),
            Family::StudentT { nu } => Distribution::student_t(nu, lo, hi),
        }
    }
}

/// The values the quantizer of `method` for the range `[lo, hi]` can output, ascending and
/// distinct, as `f32` values in `f64` (what [`QuantMethod::quantizer_for_range`] builds).
pub fn quantizer_grid(method: &QuantMethod, lo: f32, hi: f32) -> Result<Vec<f64>, AnalysisError> {
    if method.n_bits() > MAX_GRID_BITS {
        return Err(AnalysisError::Invalid {
            what: "format",
            why: format!(
                "{} bits: the analytical prediction enumerates the grid and supports at most {MAX_GRID_BITS}",
                method.n_bits()
            ),
        });
    }
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(FormatError::BadRange {
            min: lo as f64,
            max: hi as f64,
            why: "bounds must be finite",
        }
        .into());
    }
    let alpha = lo.abs().max(hi.abs()) as f64;
    let mut grid = match *method {
        QuantMethod::Fp { .. } => {
            let f = method.fp_format_for(lo)?.expect("an FP method");
            if alpha == 0.0 {
                vec![0.0]
            } else {
                f.with_maxval(alpha)?.grid()
            }
        }
        QuantMethod::Int(f) => f.grid_for_range(lo, hi).values(),
        QuantMethod::Standard(s) => {
            if alpha == 0.0 {
                vec![0.0]
            } else {
                let scale = alpha / s.max_value() as f64;
                s.values().into_iter().map(|v| v as f64 * scale).collect()
            }
        }
        QuantMethod::Block(b) => {
            return Err(FormatError::Invalid {
                what: "format",
                why: format!("{b} is block-scaled: it has no single grid for a range"),
            }
            .into())
        }
    };
    // the quantizer outputs f32
    for v in &mut grid {
        *v = *v as f32 as f64;
    }
    grid.sort_by(f64::total_cmp);
    grid.dedup();
    Ok(grid)
}

/// The analytical SQNR in dB of quantizing a tensor with the block format `format` (no range:
/// every block takes its scale from its own values; `docs/analyze.md`).
///
/// The element grid is symmetric, so the error depends on the magnitudes only: the tensor is
/// modelled by the sign-symmetric law of `±|x|`, fitted as [`Fit::from_kurtosis`] fits a tensor,
/// to the moments about zero (`E[x²] = σ² + μ²` and the matching fourth moment; for a tensor of
/// zero mean this is the per-tensor fit), standardized by `s = √E[x²] / shape σ` and clipped at
/// the tensor's largest magnitude. [`block_error_terms_in_units`] gives its expected error in
/// blocks of i.i.d. elements, with the E8M0 scales on the powers of two of the data (unit `s`).
///
/// `parts` lists the parts quantized one call each (the batches of an activation; a weight is
/// one part), as their layout around the block axis and their largest magnitude: a block axis
/// shorter than the block size, or not a multiple of it, leaves shorter blocks at the end of
/// each row, predicted at their own size; a two-level (NVFP4-style) format takes its FP32
/// tensor scale from each part's own largest magnitude, which the expected error is
/// conditioned on. `None` when the tensor has no spread (all zero).
pub fn predict_block_sqnr_db(
    whole: &Moments,
    format: &BlockFormat,
    parts: &[(BlockLayout, f64)],
) -> Result<Option<f64>, AnalysisError> {
    let Some((fit, s)) = symmetric_fit(whole) else {
        return Ok(None);
    };
    let bound = whole.absmax() / s;
    if !(bound.is_finite() && bound > 0.0) {
        return Ok(None);
    }
    let dist = fit.standard(-bound, bound)?;
    let two_level = format.scale() == ScaleFormat::E4m3;
    // (block size, tensor maximum in units of s) -> MSE in data units, evaluated once each
    let mut seen: Vec<((usize, f64), f64)> = Vec::new();
    let mut mse_at = |k: usize, t: f64| -> Result<f64, AnalysisError> {
        if let Some(&(_, m)) = seen.iter().find(|(key, _)| *key == (k, t)) {
            return Ok(m);
        }
        let f = format.with_block_size(k)?;
        let m = block_error_terms_in_units(&dist, &f, TensorMax::Given(t), s)?.terms.mse * s * s;
        seen.push(((k, t), m));
        Ok(m)
    };
    let k = format.block_size();
    let mut noise = 0.0;
    for &(layout, amax) in parts {
        if layout.numel() == 0 || amax.is_nan() || amax <= 0.0 {
            continue;
        }
        let t = if two_level { (amax / s).min(bound) } else { bound };
        let rows = (layout.outer * layout.inner) as f64;
        let (full, rest) = (layout.len / k, layout.len % k);
        if full > 0 {
            noise += rows * (full * k) as f64 * mse_at(k, t)?;
        }
        if rest > 0 {
            noise += rows * rest as f64 * mse_at(rest, t)?;
        }
    }
    Ok(Some(super::sqnr_db(whole.sum_sq, noise)))
}

/// The fit of the sign-symmetric law `±|x|` of a tensor and its unit `s` (see
/// [`predict_block_sqnr_db`]); `None` without spread.
pub fn symmetric_fit(m: &Moments) -> Option<(Fit, f64)> {
    if m.n == 0 {
        return None;
    }
    let n = m.n as f64;
    let mu = m.mean;
    let m2 = m.m2 / n + mu * mu;
    let m4 = (m.m4 + 4.0 * mu * m.m3 + 6.0 * mu * mu * m.m2) / n + mu.powi(4);
    if !(m2.is_finite() && m2 > 0.0 && m4.is_finite()) {
        return None;
    }
    let fit = Fit::from_kurtosis(m4 / (m2 * m2) - 3.0, false);
    let s = m2.sqrt() / fit.shape_std();
    Some((fit, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kurtosis_fit() {
        assert_eq!(Fit::from_kurtosis(-1.2, false).family, Family::Uniform);
        assert_eq!(Fit::from_kurtosis(-0.5, false).family, Family::Gauss);
        assert_eq!(Fit::from_kurtosis(0.01, false).family, Family::Gauss);
        // t(8): κ = 6/(8-4) = 1.5
        assert_eq!(Fit::from_kurtosis(1.5, false).family, Family::StudentT { nu: 8.0 });
        assert!((Fit::from_kurtosis(1.5, false).shape_std() - (8.0f64 / 6.0).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn grids_match_the_quantizer() {
        for (f, lo, hi) in [
            ("e4m3", -0.7f32, 1.3f32),
            ("int8", -2.0, 0.5),
            ("int8-asym", -0.2, 3.0),
            ("float8_e4m3fn", -1.0, 1.0),
            ("ue4m4", 0.0, 2.0),
        ] {
            let m = QuantMethod::from_format(f.parse().unwrap());
            let q = m.quantizer_for_range(lo, hi).unwrap();
            let grid = quantizer_grid(&m, lo, hi).unwrap();
            // every grid value is a fixed point of the quantizer, and a fine sweep lands on the grid
            for &g in &grid {
                assert_eq!(q.quantize_value(g as f32) as f64, g, "{f}: {g}");
            }
            for i in 0..=10_000 {
                let x = lo - 0.5 + (hi - lo + 1.0) * i as f32 / 10_000.0;
                let y = q.quantize_value(x) as f64;
                assert!(grid.binary_search_by(|v| v.total_cmp(&y)).is_ok(), "{f}: {x} -> {y}");
            }
        }
    }
}
