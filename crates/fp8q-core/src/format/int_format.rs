//! Uniform (INT) formats (`docs/formats.md`): symmetric signed/unsigned and asymmetric with a zero point.

use crate::error::{FormatError, Result};

/// Largest width of an INT format.
pub const MAX_INT_BITS: u32 = 16;

/// Symmetric or asymmetric integer quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntKind {
    /// Step `Δ = absmax / int_max`, zero point 0; signed when the range has negatives.
    Symmetric,
    /// Step `Δ = (max - min) / (2^n - 1)` and an integer zero point.
    Asymmetric,
}

/// An `n`-bit integer format (the grid comes with a range: see [`IntGrid`]).
///
/// ```
/// use fp8q_core::format::{IntFormat, IntKind};
/// let int8 = IntFormat::new(8, IntKind::Symmetric).unwrap();
/// let g = int8.grid_for_range(-1.0, 1.0);
/// assert_eq!(g.int_min, -128);
/// assert_eq!(g.int_max, 127);
/// assert_eq!(g.delta, 1.0 / 127.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct IntFormat {
    /// Width in bits.
    pub n_bits: u32,
    /// Symmetric or asymmetric.
    pub kind: IntKind,
}

/// The concrete grid `Δ·(k - z)` for `k` in `int_min ..= int_max`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct IntGrid {
    /// Step size.
    pub delta: f32,
    /// Zero point (0 for symmetric).
    pub zero_point: f32,
    /// Smallest integer.
    pub int_min: i64,
    /// Largest integer.
    pub int_max: i64,
}

impl IntFormat {
    /// An `n`-bit INT format, `2 <= n <= 16`.
    pub fn new(n_bits: u32, kind: IntKind) -> Result<Self> {
        if !(2..=MAX_INT_BITS).contains(&n_bits) {
            return Err(FormatError::BitWidth {
                what: "an integer format",
                got: n_bits,
                min: 2,
                max: MAX_INT_BITS,
            });
        }
        Ok(Self { n_bits, kind })
    }

    /// Name such as `INT8` or `INT8-asym`.
    pub fn name(&self) -> String {
        match self.kind {
            IntKind::Symmetric => format!("INT{}", self.n_bits),
            IntKind::Asymmetric => format!("INT{}-asym", self.n_bits),
        }
    }

    /// Number of distinct values, `2^n`.
    pub fn num_distinct_values(&self) -> u64 {
        1u64 << self.n_bits
    }

    /// The grid for a range, following the reference in `f32` arithmetic:
    /// the range is first widened to contain 0 (`min ← min(min, 0)`, `max ← max(max, 1e-8)`).
    /// Symmetric: `Δ = max(absmax / int_max, 1e-8)`, signed iff `min < 0`.
    /// Asymmetric: `Δ = (max - min) / (2^n - 1)` (floored at 1e-8), `z = clamp(round(-min/Δ), 0, 2^n-1)`.
    pub fn grid_for_range(&self, x_min: f32, x_max: f32) -> IntGrid {
        let x_min = x_min.min(0.0);
        let x_max = x_max.max(1e-8);
        let n = self.n_bits;
        match self.kind {
            IntKind::Symmetric => {
                let signed = x_min < 0.0;
                let (int_min, int_max) = if signed {
                    (-(1i64 << (n - 1)), (1i64 << (n - 1)) - 1)
                } else {
                    (0, (1i64 << n) - 1)
                };
                let absmax = (-x_min).max(x_max);
                let delta = (absmax / int_max as f32).max(1e-8);
                IntGrid {
                    delta,
                    zero_point: 0.0,
                    int_min,
                    int_max,
                }
            }
            IntKind::Asymmetric => {
                let levels = ((1i64 << n) - 1) as f32;
                let delta = ((x_max - x_min) / levels).max(1e-8);
                let zero_point = (-x_min / delta).round_ties_even().clamp(0.0, levels);
                IntGrid {
                    delta,
                    zero_point,
                    int_min: 0,
                    int_max: (1i64 << n) - 1,
                }
            }
        }
    }

    /// Symmetric signed grid whose largest value is `alpha` (`Δ = α / (2^(n-1) - 1)`), the form
    /// the analytical study uses for a range `[-α, α]`.
    pub fn symmetric_grid_for_maxval(&self, alpha: f64) -> Result<IntGrid> {
        crate::format::fp_format::check_maxval(alpha)?;
        Ok(self.grid_for_range(-alpha as f32, alpha as f32))
    }
}

impl IntGrid {
    /// All grid values ascending, `Δ·(k - z)`, computed in `f64`.
    pub fn values(&self) -> Vec<f64> {
        (self.int_min..=self.int_max)
            .map(|k| self.delta as f64 * (k as f64 - self.zero_point as f64))
            .collect()
    }
    /// Smallest and largest representable values.
    pub fn bounds(&self) -> (f64, f64) {
        let d = self.delta as f64;
        let z = self.zero_point as f64;
        (d * (self.int_min as f64 - z), d * (self.int_max as f64 - z))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_signed_and_unsigned() {
        let f = IntFormat::new(8, IntKind::Symmetric).unwrap();
        let g = f.grid_for_range(-0.5, 3.0);
        assert_eq!((g.int_min, g.int_max), (-128, 127));
        assert_eq!(g.delta, 3.0f32 / 127.0);
        let g = f.grid_for_range(0.0, 6.0);
        assert_eq!((g.int_min, g.int_max), (0, 255));
        assert_eq!(g.delta, 6.0f32 / 255.0);
        // a range that is all negative is widened to contain 0
        let g = f.grid_for_range(-2.0, -0.5);
        assert_eq!(g.delta, 2.0f32 / 127.0);
        // degenerate range: step floored
        assert_eq!(f.grid_for_range(0.0, 0.0).delta, 1e-8);
        assert_eq!(g.values().len(), 256);
    }

    #[test]
    fn asymmetric_zero_point() {
        let f = IntFormat::new(8, IntKind::Asymmetric).unwrap();
        let g = f.grid_for_range(-1.0, 1.0);
        assert_eq!(g.delta, 2.0f32 / 255.0);
        // -min/Δ = 127.5 in exact arithmetic but 127.49999 in f32, as in the reference
        assert_eq!(g.zero_point, (1.0f32 / (2.0f32 / 255.0)).round_ties_even());
        let g = f.grid_for_range(0.5, 3.0);
        assert_eq!(g.zero_point, 0.0);
        let (lo, hi) = g.bounds();
        assert_eq!(lo, 0.0);
        assert!((hi - 3.0).abs() < 1e-6);
    }

    #[test]
    fn widths_are_checked() {
        assert!(IntFormat::new(1, IntKind::Symmetric).is_err());
        assert!(IntFormat::new(17, IntKind::Asymmetric).is_err());
        let f = IntFormat::new(8, IntKind::Symmetric).unwrap();
        assert!(f.symmetric_grid_for_maxval(0.0).is_err());
        assert!(f.symmetric_grid_for_maxval(f64::NAN).is_err());
    }
}
