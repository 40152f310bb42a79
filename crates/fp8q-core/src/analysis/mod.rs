//! The analytical error study (`docs/analysis.md`): for a distribution and a format scaled to a maximum `α`,
//! the expected quantization MSE, the SQNR, and the error of a product of two quantized values;
//! the `α` minimizing the MSE; and a study over distributions × formats.
//!
//! * [`block_error`]: the exact per-element error of a block-scaled format (MX, NVFP4, generic)
//!   on i.i.d. data.
//! * [`block_splits`]: the best exponent/mantissa split of each width under block scaling.
//! * [`distributions`]: uniform, clipped Gaussian and clipped Student's t (pdf, point masses,
//!   second moment, sampling, the `--dist` spelling).
//! * [`expected_error`]: `E[R²]`, `E[X·R]` and the dot-product MSE for any sorted grid.
//! * [`optimal_range`]: the `α` minimizing the analytical MSE (log-scan bracket + Brent), and the
//!   reference's sampled 1000-candidate line search.
//! * [`study`]: distributions × formats → results, in parallel.
//! * [`tensor_stats`]: elements, mean, absmax, σ, kurtosis, max/σ of a tensor in one pass.
//! * [`fit`]: a Gaussian or Student's t fitted to a tensor (kurtosis), and the analytical SQNR
//!   of a quantizer at a given range for it.
//! * [`magnitude_histogram`]: a tensor's values summarized in one pass (zeros, magnitudes in
//!   1/16-octave bins, the largest values exactly), and the expected error of any grid for them:
//!   the prediction on real, heavy-tailed tensors.
//! * [`quantize_measure`]: estimate a range and measure the SQNR of a quantized tensor (what
//!   `fp8q quantize` reports).
//! * [`format_choice`]: one tensor × many formats (measured and predicted SQNR, best format),
//!   report rows and summaries (`fp8q analyze`).
//! * [`heat_map`]: the analysis as an SVG heat map (slots × formats).
//! * [`streamed`]: the same analysis of a tensor that arrives in parts (the batches of an
//!   activation), keeping only statistics (`fp8q.torch.analyze`).
//!
//! ```
//! use fp8q_core::analysis::{distributions::Distribution, expected_error::expected_mse, grid_for};
//! let d = Distribution::uniform(-1.0, 1.0).unwrap();
//! let grid = grid_for(&"int8".parse().unwrap(), 1.0).unwrap();
//! let mse = expected_mse(&d, &grid);
//! let step = 1.0 / 127.0;
//! assert!((mse / (step * step / 12.0) - 1.0).abs() < 1e-9);
//! ```

pub mod block_error;
pub mod block_measure;
pub mod block_splits;
pub mod distributions;
pub mod expected_error;
pub mod fit;
pub mod format_choice;
pub mod heat_map;
pub mod magnitude_histogram;
pub mod optimal_range;
pub(crate) mod quadrature;
pub mod quantize_measure;
pub mod streamed;
pub mod study;
pub mod tensor_stats;

use crate::error::FormatError;
use crate::format::{Format, IntKind};
use crate::quantizer::{QuantMethod, Quantizer};
use thiserror::Error;

/// Errors of the analytical study.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AnalysisError {
    /// An invalid distribution specification or parameter.
    #[error("{0}")]
    Distribution(String),
    /// An invalid format or range.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Any other invalid setting.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The parameter.
        what: &'static str,
        /// Why.
        why: String,
    },
}

impl AnalysisError {
    pub(crate) fn inner_message(&self) -> String {
        match self {
            AnalysisError::Distribution(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// Signal-to-quantization-noise ratio in dB, `10·log10(signal / noise)`, with one convention
/// for every report: `+∞` when nothing is lost (`noise == 0`, also for an all-zero signal, which
/// every format reproduces exactly), NaN when either sum is NaN (NaN inputs stay NaN).
pub fn sqnr_db(signal: f64, noise: f64) -> f64 {
    if noise == 0.0 && !signal.is_nan() {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

/// Widest format whose grid the study enumerates (2^22 values).
pub const MAX_GRID_BITS: u32 = 22;

/// The real (f32) quantizer of `format` for the range `[-α, α]` (`[0, α]` for unsigned FP), the
/// counterpart of [`grid_for`] used by the Monte-Carlo check and the sampled line search.
pub fn quantizer_for(format: &Format, alpha: f64) -> Result<Quantizer, AnalysisError> {
    let method = QuantMethod::from_format(*format);
    match format {
        Format::Fp(f) if !f.is_signed() => Ok(method.quantizer_for_range(0.0, alpha as f32)?),
        _ => Ok(method.quantizer_for_maxval(alpha)?),
    }
}

/// The grid of `format` for the symmetric range `[-α, α]`, ascending and distinct, in `f64`:
///
/// * flexible-bias FP (`eXmY`, `ueXmY`): the default grid scaled so that its largest value is `α`;
/// * symmetric INT: `Δ·k` for the format's integers `-2^(n-1) ..= 2^(n-1)-1`, with
///   `Δ = α / (2^(n-1) - 1)` — the reference's grid, which reaches `-α - Δ` on the negative side.
///   Like the quantizer (and the reference), `Δ` and the values `Δ·k` are `f32`;
/// * asymmetric INT: the (f32) grid the quantizer builds for `[-α, α]`;
/// * standard 8-bit encodings: their finite values scaled by `α / max`.
pub fn grid_for(format: &Format, alpha: f64) -> Result<Vec<f64>, AnalysisError> {
    build_grid(format, alpha, true)
}

/// [`grid_for`] with INT values computed exactly in `f64` (`Δ = α/int_max`, `Δ·k`): a smooth
/// function of `α`, which the range search minimizes (the `f32` rounding of the quantizer's grid
/// adds ~1e-8 relative jitter to the MSE that would mislead a 1-D minimizer).
pub fn ideal_grid_for(format: &Format, alpha: f64) -> Result<Vec<f64>, AnalysisError> {
    build_grid(format, alpha, false)
}

fn build_grid(format: &Format, alpha: f64, as_quantizer: bool) -> Result<Vec<f64>, AnalysisError> {
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(FormatError::BadMaxval(alpha).into());
    }
    if format.n_bits() > MAX_GRID_BITS {
        return Err(AnalysisError::Invalid {
            what: "format",
            why: format!(
                "{format} has {} bits; the analytical study enumerates the grid and supports at most {MAX_GRID_BITS}",
                format.n_bits()
            ),
        });
    }
    if let Format::Int(f) = format {
        if f.n_bits < 2 {
            return Err(AnalysisError::Invalid {
                what: "format",
                why: format!("{format} needs at least 2 bits"),
            });
        }
    }
    let mut grid = match format {
        Format::Fp(f) => f.with_maxval(alpha)?.grid(),
        Format::Int(f) => match f.kind {
            IntKind::Symmetric if !as_quantizer => {
                let half = 1i64 << (f.n_bits - 1);
                let delta = alpha / (half - 1) as f64;
                (-half..half).map(|k| k as f64 * delta).collect()
            }
            IntKind::Asymmetric if !as_quantizer => {
                let levels = ((1i64 << f.n_bits) - 1) as f64;
                let delta = 2.0 * alpha / levels;
                let z = (alpha / delta).round_ties_even();
                (0..=(1i64 << f.n_bits) - 1).map(|k| (k as f64 - z) * delta).collect()
            }
            // the values the quantizer outputs: Δ and Δ·k in f32
            _ => f
                .grid_for_range(-alpha as f32, alpha as f32)
                .values()
                .into_iter()
                .map(|v| v as f32 as f64)
                .collect(),
        },
        Format::Standard(s) => {
            let scale = alpha / s.max_value() as f64;
            s.values().into_iter().map(|v| v as f64 * scale).collect()
        }
        Format::Block(b) => {
            return Err(AnalysisError::Invalid {
                what: "format",
                why: format!("{b} is block-scaled: it has no single grid for a range"),
            })
        }
    };
    grid.dedup();
    if grid.iter().any(|v| !v.is_finite()) {
        return Err(AnalysisError::Invalid {
            what: "range",
            why: format!("the grid of {format} at maxval {alpha:e} is not finite"),
        });
    }
    Ok(grid)
}
