//! Quantize–dequantize onto a flexible-bias FP grid (SPEC §2.1).
//!
//! `q(x) = γ · Q0(clamp(x, -α, α) / γ)` where `Q0` rounds to nearest-even on the default grid.
//! The kernel works relative to the top-binade scale `t = α / (2 - 2^-m)`: `y = x_c / t` lies in
//! `[0, 2)` in magnitude, and its binade is read off the bits of `y` (exactly, no `log2`).
//!
//! Rounding to the binade's step `2^(E-m)` (with `E` clamped below at the smallest normal
//! exponent, which gives the subnormals) uses the classic trick `(y + M) - M` with
//! `M = 1.5 · 2^(E - m + 52)`: the `f64` addition itself rounds `y` to a multiple of the
//! step, ties to even, because `M`'s ulp is exactly that step. Everything is branch-free so the
//! loop vectorizes. Computing in `f64` keeps the scaling by `t` from adding a second rounding.
//!
//! Special values: NaN stays NaN; ±Inf (and anything beyond the range) saturates to ±α
//! (to 0 or α for unsigned formats).

use super::element_kernel::{self, ElementKernel};
use crate::error::Result;
use crate::format::fp_format::check_maxval;
use crate::format::{FpFormat, ScaledFpFormat, StandardFp8};

/// A ready-to-run FP quantizer: a format with its maximum value.
///
/// ```
/// use fp8q_core::format::FpFormat;
/// use fp8q_core::quantizer::FpQuantizer;
/// let q = FpQuantizer::new(FpFormat::new(8, 3, true).unwrap(), 240.0).unwrap(); // E4M3, bias 8
/// assert_eq!(q.quantize_value(100.0), 96.0);
/// assert_eq!(q.quantize_value(1000.0), 240.0);
/// assert_eq!(q.quantize_value(-0.001), -0.0009765625); // a subnormal, 2^-10
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FpQuantizer {
    format: FpFormat,
    maxval: f64,
    kernel: FpKernel,
}

/// Precomputed constants of the kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FpKernel {
    lo: f64,
    hi: f64,
    /// top-binade scale t and its correctly rounded reciprocal
    t: f64,
    inv_t: f64,
    /// biased f64 exponent of the smallest normal binade of y (at least 1)
    emin_biased: i64,
    /// 52 - m: added to the biased exponent to place the magic number's ulp at the step
    magic_shift: i64,
    /// α = 0: everything (but NaN) quantizes to 0
    zero: bool,
}

impl FpQuantizer {
    /// A quantizer for `format` with largest value `maxval` (`α > 0`, finite).
    pub fn new(format: FpFormat, maxval: f64) -> Result<Self> {
        check_maxval(maxval)?;
        Ok(Self::new_unchecked(format, maxval))
    }

    /// Like [`FpQuantizer::new`], but `maxval = 0` gives a quantizer that maps every finite value
    /// to 0 (an all-zero channel's estimated range). Negative or non-finite values are rejected.
    pub fn new_allow_zero(format: FpFormat, maxval: f64) -> Result<Self> {
        if maxval == 0.0 {
            let mut q = Self::new_unchecked(format, 1.0);
            q.maxval = 0.0;
            q.kernel.zero = true;
            q.kernel.lo = 0.0;
            q.kernel.hi = 0.0;
            return Ok(q);
        }
        Self::new(format, maxval)
    }

    /// A saturating quantizer onto the finite values of a standard 8-bit encoding, scaled by
    /// `scale` (the values are `scale·v` for the encoding's values `v`; `scale = 1` is a plain
    /// saturating cast, `scale = 0` maps everything to 0). Round-to-nearest-even; NaN stays NaN.
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// use fp8q_core::quantizer::FpQuantizer;
    /// let q = FpQuantizer::standard(StandardFp8::E4M3FN, 1.0).unwrap();
    /// assert_eq!(q.quantize_value(1000.0), 448.0);
    /// assert_eq!(q.quantize_value(464.0), 448.0); // would be 480 in the flexible E4M3 with bias 7
    /// ```
    pub fn standard(encoding: StandardFp8, scale: f64) -> Result<Self> {
        let format = FpFormat::from_exponent_mantissa(encoding.exponent_bits(), encoding.mantissa_bits(), true)?;
        if scale == 0.0 {
            return Self::new_allow_zero(format, 0.0);
        }
        if !(scale.is_finite() && scale > 0.0) {
            return Err(crate::error::FormatError::Invalid {
                what: "scale",
                why: format!("must be positive and finite (got {scale})"),
            });
        }
        // The finite values are the flexible grid with the encoding's integer bias, cut at the
        // largest finite value (E4M3FN and E5M2 lose their top code(s) to NaN/Inf).
        let top = scale * ((format.max_exponent_code() - encoding.bias()) as f64).exp2();
        let clamp = scale * encoding.max_value() as f64;
        Ok(Self::from_parts(format, clamp, top, clamp))
    }

    fn new_unchecked(format: FpFormat, maxval: f64) -> Self {
        let t = ScaledFpFormat { format, maxval }.top_binade_scale();
        Self::from_parts(format, maxval, t, maxval)
    }

    fn from_parts(format: FpFormat, maxval: f64, t: f64, clamp: f64) -> Self {
        let k_max = format.max_exponent_code();
        // smallest normal of y = x/t is 2^(1-K); below f64's normal range nothing can land anyway
        // (|y| >= 2^-277 for any non-zero f32 input and t <= f32::MAX).
        let emin = (1 - k_max).max(-1022);
        let (lo, hi) = if format.is_signed() {
            (-clamp, clamp)
        } else {
            (0.0, clamp)
        };
        Self {
            format,
            maxval,
            kernel: FpKernel {
                lo,
                hi,
                t,
                inv_t: 1.0 / t,
                emin_biased: emin + 1023,
                magic_shift: 52 - format.mantissa_bits() as i64,
                zero: false,
            },
        }
    }

    /// The format.
    pub fn format(&self) -> FpFormat {
        self.format
    }
    /// The largest value `α`.
    pub fn maxval(&self) -> f64 {
        self.maxval
    }

    /// Quantize one value.
    #[inline]
    pub fn quantize_value(&self, x: f32) -> f32 {
        self.kernel.qdq(x)
    }
    /// Quantize `x` into `out` (same length), in parallel for large inputs.
    pub fn quantize(&self, x: &[f32], out: &mut [f32]) {
        element_kernel::map(x, out, &self.kernel);
    }
    /// Quantize in place, in parallel for large inputs.
    pub fn quantize_inplace(&self, x: &mut [f32]) {
        element_kernel::map_inplace(x, &self.kernel);
    }
    /// Quantize `x` into `out` on the calling thread (for callers that parallelize themselves).
    pub fn quantize_serial(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), out.len(), "input and output lengths differ");
        element_kernel::map_serial(x, out, &self.kernel);
    }
    /// Quantize in place on the calling thread (for callers that parallelize themselves).
    pub fn quantize_inplace_serial(&self, x: &mut [f32]) {
        element_kernel::map_inplace_serial(x, &self.kernel);
    }
    /// `Σ (q(x) - x)²` over `x`, accumulated in `f64`, without writing anything (calling thread).
    pub fn sum_sq_error(&self, x: &[f32]) -> f64 {
        element_kernel::sum_sq_error(x, &self.kernel)
    }
}

impl ElementKernel for FpKernel {
    #[inline(always)]
    fn qdq(&self, x: f32) -> f32 {
        let k = self;
        let xd = x as f64;
        // comparisons are false for NaN, which therefore passes through
        let xc = if xd < k.lo {
            k.lo
        } else if xd > k.hi {
            k.hi
        } else {
            xd
        };
        // y = x_c / t, exact whenever the quotient is representable (an input exactly half-way
        // between two grid values must give exactly the midpoint so that the tie goes to the even
        // code; x·fl(1/t) alone can land an ulp or so to either side when t is not a power of
        // two). A division costs ~2 cycles per element even in AVX-512, so the product is
        // corrected with FMAs instead: the residual r = x - t·y0 is exact in an FMA, and
        // y0 + r·fl(1/t) differs from x/t by about |x/t - y0|·2^-53, far below half an ulp, so a
        // representable quotient (every midpoint of the grid is one) comes out exactly.
        let y0 = xc * k.inv_t;
        let y = (-k.t).mul_add(y0, xc).mul_add(k.inv_t, y0);
        let exp = ((y.to_bits() >> 52) & 0x7ff) as i64;
        let e = if exp > k.emin_biased { exp } else { k.emin_biased };
        let magic = f64::from_bits((((e + k.magic_shift) as u64) << 52) | (1u64 << 51));
        // `(y + magic) - magic` turns a negative y that rounds to zero into +0; copy the sign back so
        // that q(-x) = -q(x) holds bit for bit (the reference yields -0.0 there).
        let q = ((y + magic) - magic).copysign(xc) * k.t;
        if k.zero {
            if x.is_nan() {
                x
            } else {
                0.0
            }
        } else {
            q as f32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e4m3() -> FpFormat {
        FpFormat::new(8, 3, true).unwrap()
    }

    #[test]
    fn default_bias_values() {
        let q = FpQuantizer::new(e4m3(), 240.0).unwrap();
        assert_eq!(q.quantize_value(0.0), 0.0);
        assert_eq!(q.quantize_value(1.0), 1.0);
        assert_eq!(q.quantize_value(1.0625), 1.0); // tie -> even
        assert_eq!(q.quantize_value(1.1875), 1.25); // tie -> even (1.25 has even mantissa 010)
        assert_eq!(q.quantize_value(239.0), 240.0);
        assert_eq!(q.quantize_value(-1e9), -240.0);
        assert_eq!(q.quantize_value(2f32.powi(-11)), 0.0); // half the smallest subnormal: tie to 0
        assert_eq!(q.quantize_value(-2f32.powi(-11)).to_bits(), (-0.0f32).to_bits()); // sign kept
        assert_eq!(q.quantize_value(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(q.quantize_value(1.5 * 2f32.powi(-10)), 2f32.powi(-9)); // tie to even
        assert!(q.quantize_value(f32::NAN).is_nan());
        assert_eq!(q.quantize_value(f32::INFINITY), 240.0);
        assert_eq!(q.quantize_value(f32::NEG_INFINITY), -240.0);
    }

    #[test]
    fn unsigned_clamps_negatives_to_zero() {
        let q = FpQuantizer::new(FpFormat::new(8, 4, false).unwrap(), 3.0).unwrap();
        assert_eq!(q.quantize_value(-5.0), 0.0);
        assert_eq!(q.quantize_value(f32::NEG_INFINITY), 0.0);
        assert_eq!(q.quantize_value(100.0), 3.0);
    }

    #[test]
    fn zero_range() {
        let q = FpQuantizer::new_allow_zero(e4m3(), 0.0).unwrap();
        assert_eq!(q.quantize_value(3.0), 0.0);
        assert!(q.quantize_value(f32::NAN).is_nan());
        assert!(FpQuantizer::new_allow_zero(e4m3(), -1.0).is_err());
    }

    #[test]
    fn sse_matches_quantize() {
        let q = FpQuantizer::new(e4m3(), 2.5).unwrap();
        let x: Vec<f32> = (0..1001).map(|i| ((i as f32) * 0.7351).sin() * 3.0).collect();
        let mut y = vec![0.0; x.len()];
        q.quantize(&x, &mut y);
        let expect: f64 = x.iter().zip(&y).map(|(a, b)| ((b - a) as f64).powi(2)).sum();
        assert!((q.sum_sq_error(&x) - expect).abs() <= 1e-12 * expect);
    }
}
