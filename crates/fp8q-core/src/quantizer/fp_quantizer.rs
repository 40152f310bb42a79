//! Quantize–dequantize onto a flexible-bias FP grid (`docs/quantizers.md`).
//!
//! `q(x) = γ · Q0(clamp(x, -α, α) / γ)` where `Q0` rounds to nearest-even on the default grid.
//! The kernel works relative to the top-binade scale `t = α / (2 - 2^-m)`: `y = x_c / t` lies in
//! `[0, 2)` in magnitude, and its binade is read off the bits of `y` (exactly, no `log2`).
//!
//! Rounding to the binade's step `2^(E-m)` (with `E` clamped below at the smallest normal
//! exponent, which gives the subnormals) uses the classic trick `(y + M) - M` with
//! `M = 1.5 · 2^(E - m + p)` (`p` the float's fraction bits): the addition itself rounds `y` to a
//! multiple of the step, ties to even, because `M`'s ulp is exactly that step. Everything is
//! branch-free so the loop vectorizes.
//!
//! Two arithmetics give the same results:
//! * **`f32`** (16 lanes in AVX-512), for every format whose grid of `y` lies well inside `f32`
//!   (`K + m <= 100`, all 8-bit formats) and scales `2^-60 <= t <= 2^60`. `y` is computed to about
//!   2^-46 from `x·fl(1/t)` and an FMA residual, then *rounded to odd* with the sign of the exact
//!   residual `x - t·y`, so the grid rounding afterwards equals rounding the exact quotient: an
//!   exact midpoint (possible only when `t` is an `f32`) ties to even, and an input just beside
//!   one is not mistaken for a tie. When `t` needs more than 24 bits it is carried as two `f32`s;
//!   real ties then cannot occur (`t` would have to be a short dyadic), only approximated to
//!   2^-48. The output `g·t` is the `f64` kernel's value: exact-then-rounded when `t` is an
//!   `f32`, from the two-`f32` product where that was checked on every grid value at
//!   construction, from an `f64` product otherwise.
//! * **`f64`** for the rest (wide exponents, extreme scales, the all-zero quantizer), where the
//!   quotient comes out exact at midpoints from one FMA correction.
//!
//! Both are proved against exact references: a property test over random formats, scales and
//! boundary inputs, a unit test of the `f32` against the `f64` kernel, and exhaustive sweeps of
//! all 2^32 inputs for both scale kinds.
//!
//! Special values: NaN stays NaN; ±Inf (and anything beyond the range) saturates to ±α
//! (to 0 or α for unsigned formats).

use super::element_kernel::{self, ElementKernel};
use crate::error::Result;
use crate::format::fp_format::{check_maxval, exp2i};
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

/// The kernel variants: `f32` arithmetic (16 lanes in AVX-512) wherever the format and scale let
/// it be exact, `f64` otherwise (wide exponents, extreme scales, the all-zero quantizer).
#[derive(Debug, Clone, Copy, PartialEq)]
enum FpKernel {
    /// `t` is an `f32`: the output `g·t` is one exact-then-rounded `f32` product.
    ShortScale(SingleKernel<SHORT>),
    /// `t` needs more than 24 bits: `y` uses a two-`f32` scale, and so does the output (checked
    /// against the `f64` rendering for every grid value when the kernel is built).
    LongScale(SingleKernel<LONG>),
    /// As `LongScale`, but some grid value's two-`f32` product rounds differently from the `f64`
    /// one (or the grid is too large to check): the output is an `f64` product.
    LongScaleWideOutput(SingleKernel<LONG_WIDE_OUTPUT>),
    Wide(WideKernel),
}

/// Runs `$body` with `$k` bound to the concrete kernel.
macro_rules! with_kernel {
    ($kernel:expr, $k:ident => $body:expr) => {
        match &$kernel {
            FpKernel::ShortScale($k) => $body,
            FpKernel::LongScale($k) => $body,
            FpKernel::LongScaleWideOutput($k) => $body,
            FpKernel::Wide($k) => $body,
        }
    };
}

/// Precomputed constants of the `f64` kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
struct WideKernel {
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

/// How the `f32` kernel handles the scale `t` (see [`FpKernel`]).
const SHORT: u8 = 0;
const LONG: u8 = 1;
const LONG_WIDE_OUTPUT: u8 = 2;

/// Largest positive grid (in values) whose two-`f32` outputs are checked one by one at
/// construction (only for scales so small that outputs reach `f32`'s subnormals).
const MAX_CHECKED_GRID: i64 = 1 << 12;

/// Precomputed constants of the `f32` kernel; `SCALE` is one of [`SHORT`], [`LONG`] and
/// [`LONG_WIDE_OUTPUT`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct SingleKernel<const SCALE: u8> {
    lo: f32,
    hi: f32,
    /// `t = t_hi + t_lo` and `1/t = inv_hi + inv_lo`, to 48 bits
    t_hi: f32,
    t_lo: f32,
    inv_hi: f32,
    inv_lo: f32,
    t: f64,
    /// biased f32 exponent of the smallest normal binade of y (well above 1)
    emin_biased: u32,
    /// 23 - m
    magic_shift: u32,
}

/// The `f32` kernel needs the grid of `y` (down to its smallest step `2^(1-K-m)`) and the scale
/// well inside `f32`'s normal range.
const SINGLE_MAX_DEPTH: i64 = 100;
const SINGLE_MAX_SCALE_EXP: i32 = 60;

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
            let mut wide = Self::wide_kernel(format, 1.0, 1.0);
            wide.zero = true;
            wide.lo = 0.0;
            wide.hi = 0.0;
            q.maxval = 0.0;
            q.kernel = FpKernel::Wide(wide);
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
        let depth = format.max_exponent_code() + format.mantissa_bits() as i64;
        let scale_ok = t >= (-SINGLE_MAX_SCALE_EXP as f64).exp2() && t <= (SINGLE_MAX_SCALE_EXP as f64).exp2();
        let kernel = if depth <= SINGLE_MAX_DEPTH && scale_ok {
            Self::single_kernel(format, t, clamp)
        } else {
            FpKernel::Wide(Self::wide_kernel(format, t, clamp))
        };
        Self { format, maxval, kernel }
    }

    fn single_kernel(format: FpFormat, t: f64, clamp: f64) -> FpKernel {
        let (lo, hi) = if format.is_signed() {
            (-clamp, clamp)
        } else {
            (0.0, clamp)
        };
        if t as f32 as f64 == t {
            return FpKernel::ShortScale(SingleKernel::new(format, lo, hi, t));
        }
        let long: SingleKernel<LONG> = SingleKernel::new(format, lo, hi, t);
        let m = format.mantissa_bits() as i64;
        let k_max = format.max_exponent_code();
        let same = |g: f32| long.scale_output(g).to_bits() == ((g as f64 * t) as f32).to_bits();
        // Every grid value of y is s·2^k with s one of the 2^m significands 1 + f/2^m, and both
        // renderings of g·t scale exactly by 2^k while every product (down to the two-f32
        // product's low part, about 2^-24 of the output) stays a normal f32: then checking the
        // significands checks the whole grid. This runs for every candidate range of the MSE
        // estimator, so it must be cheap.
        let smallest_output = t * exp2i(1 - k_max - m);
        let pair_output_exact = if smallest_output >= exp2i(-100) {
            (0..1i64 << m).all(|f| same(1.0 + f as f32 * exp2i(-m) as f32))
        } else {
            // tiny scales: outputs reach f32's subnormals; check value by value (small grids)
            ((k_max + 1) << m) <= MAX_CHECKED_GRID
                && (1..(k_max + 1) << m).all(|code| {
                    // the grid of y: subnormals f·2^(1-K-m), then (2^m + f)·2^(k-K-m)
                    let (k, f) = (code >> m, code & ((1 << m) - 1));
                    same(if k == 0 {
                        f as f32 * exp2i(1 - k_max - m) as f32
                    } else {
                        ((1 << m) + f) as f32 * exp2i(k - k_max - m) as f32
                    })
                })
        };
        if pair_output_exact {
            FpKernel::LongScale(long)
        } else {
            FpKernel::LongScaleWideOutput(SingleKernel::new(format, lo, hi, t))
        }
    }

    fn wide_kernel(format: FpFormat, t: f64, clamp: f64) -> WideKernel {
        let k_max = format.max_exponent_code();
        // smallest normal of y = x/t is 2^(1-K); below f64's normal range nothing can land anyway
        // (|y| >= 2^-277 for any non-zero f32 input and t <= f32::MAX).
        let emin = (1 - k_max).max(-1022);
        let (lo, hi) = if format.is_signed() {
            (-clamp, clamp)
        } else {
            (0.0, clamp)
        };
        WideKernel {
            lo,
            hi,
            t,
            inv_t: 1.0 / t,
            emin_biased: emin + 1023,
            magic_shift: 52 - format.mantissa_bits() as i64,
            zero: false,
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
    /// Which kernel runs: `"f32"` (the scale `t = α/(2-2^-m)` is an `f32`), `"f32, two-f32 scale"`,
    /// `"f32, two-f32 scale, f64 output"` (see the module docs), or `"f64"` (exponent range or
    /// scale too wide for `f32`, or α = 0). All give the same results; they differ in speed.
    pub fn arithmetic(&self) -> &'static str {
        match self.kernel {
            FpKernel::ShortScale(_) => "f32",
            FpKernel::LongScale(_) => "f32, two-f32 scale",
            FpKernel::LongScaleWideOutput(_) => "f32, two-f32 scale, f64 output",
            FpKernel::Wide(_) => "f64",
        }
    }

    /// Quantize one value.
    #[inline]
    pub fn quantize_value(&self, x: f32) -> f32 {
        with_kernel!(self.kernel, k => k.qdq(x))
    }
    /// Quantize `x` into `out` (same length), in parallel for large inputs.
    pub fn quantize(&self, x: &[f32], out: &mut [f32]) {
        with_kernel!(self.kernel, k => element_kernel::map(x, out, k))
    }
    /// Quantize in place, in parallel for large inputs.
    pub fn quantize_inplace(&self, x: &mut [f32]) {
        with_kernel!(self.kernel, k => element_kernel::map_inplace(x, k))
    }
    /// Quantize `x` into `out` on the calling thread (for callers that parallelize themselves).
    pub fn quantize_serial(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), out.len(), "input and output lengths differ");
        with_kernel!(self.kernel, k => element_kernel::map_serial(x, out, k))
    }
    /// Quantize in place on the calling thread (for callers that parallelize themselves).
    pub fn quantize_inplace_serial(&self, x: &mut [f32]) {
        with_kernel!(self.kernel, k => element_kernel::map_inplace_serial(x, k))
    }
    /// A block pass: `q(scale(x)) · back` per block of `k` (see [`super::block_quantizer`]).
    pub(crate) fn map_blocks(
        &self,
        scaling: element_kernel::BlockScaling,
        x: &[f32],
        out: &mut [f32],
        k: usize,
        into: &[f32],
        back: &[f32],
    ) {
        with_kernel!(self.kernel, kern => element_kernel::map_blocks(scaling, x, out, k, into, back, kern))
    }
    /// A fused E8M0 block pass (see [`super::block_quantizer`]).
    pub(crate) fn map_blocks_e8m0(&self, x: &[f32], out: &mut [f32], k: usize, p: &super::block_quantizer::E8m0Params) {
        with_kernel!(self.kernel, kern => super::block_quantizer::blocks_e8m0(x, out, k, p, kern))
    }
    /// `Σ (q(x) - x)²` over `x`, accumulated in `f64`, without writing anything (calling thread).
    pub fn sum_sq_error(&self, x: &[f32]) -> f64 {
        with_kernel!(self.kernel, k => element_kernel::sum_sq_error(x, k))
    }
}

impl ElementKernel for WideKernel {
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
        // e ≤ 2047 and the shift is small: the add cannot overflow. Written wrapping so that a
        // build with overflow checks (the test profile) keeps the loop free of branches and
        // vectorized.
        let magic = f64::from_bits(((e.wrapping_add(k.magic_shift) as u64) << 52) | (1u64 << 51));
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

impl<const SCALE: u8> SingleKernel<SCALE> {
    /// Clamp bounds `[lo, hi]`, top-binade scale `t`.
    fn new(format: FpFormat, lo: f64, hi: f64, t: f64) -> Self {
        let t_hi = t as f32;
        let emin = 1 - format.max_exponent_code(); // >= 1 - SINGLE_MAX_DEPTH
        Self {
            lo: lo as f32,
            hi: hi as f32,
            t_hi,
            t_lo: if SCALE == SHORT { 0.0 } else { (t - t_hi as f64) as f32 },
            inv_hi: (1.0 / t) as f32,
            inv_lo: (1.0 / t - (1.0 / t) as f32 as f64) as f32,
            t,
            emin_biased: (emin + 127) as u32,
            magic_shift: 23 - format.mantissa_bits(),
        }
    }

    /// `g·t` rounded to `f32`, for `g` on the grid of `y`.
    #[inline(always)]
    fn scale_output(&self, g: f32) -> f32 {
        match SCALE {
            SHORT => g * self.t_hi,
            LONG => g.mul_add(self.t_hi, g * self.t_lo),
            _ => (g as f64 * self.t) as f32,
        }
    }
}

impl<const SCALE: u8> ElementKernel for SingleKernel<SCALE> {
    /// The `f64` kernel's steps in `f32`. `y = x_c / t` comes from a two-`f32` reciprocal, then
    /// is rounded to odd with the sign of the residual `x_c - t·y` (below); when `x_c / t` is a
    /// representable midpoint (only possible when `t` is short), `y` is exactly the midpoint, so
    /// ties go to even. The
    /// output `g·t` is rounded once: exactly in `f32` when `t` is an `f32`, otherwise from the
    /// two-`f32` scale where that was checked to give the `f64` kernel's value on every grid
    /// point, or via the exact `f64` product.
    #[inline(always)]
    fn qdq(&self, x: f32) -> f32 {
        let k = self;
        // max/min in the operand order of the x86 instructions: NaN passes through
        let xc = if k.lo > x { k.lo } else { x };
        let xc = if k.hi < xc { k.hi } else { xc };
        // x_c·(inv_hi + inv_lo) is x_c/t to about 2^-47, so `y` is within 0.5 ulp + 2^-24 ulp of
        // the quotient: one of its two neighbours, and the quotient itself when representable.
        let y = xc.mul_add(k.inv_hi, xc * k.inv_lo);
        // Round to odd: when `y` is not the exact quotient and its last bit is even, step to the
        // other neighbour (the odd one). Rounding the round-to-odd value to the grid (at least 2
        // bits coarser) then equals rounding the exact quotient, so a value just beside a
        // representable midpoint is not taken for a tie. The residual's sign is exact when `t` is
        // short (the FMA residual of a faithful quotient is representable) and right to about
        // 2^-48 otherwise (where exact ties cannot occur).
        let r2 = (-k.t_hi).mul_add(y, xc);
        let r2 = if SCALE == SHORT { r2 } else { (-k.t_lo).mul_add(y, r2) };
        let yb = y.to_bits();
        let inexact_even = r2 != 0.0 && (yb & 1) == 0 && (yb & 0x7fff_ffff) != 0;
        let away_from_zero = (r2.to_bits() ^ yb) >> 31 == 0;
        let step = if away_from_zero { 1u32 } else { u32::MAX };
        let y = f32::from_bits(if inexact_even { yb.wrapping_add(step) } else { yb });
        let exp = (y.to_bits() >> 23) & 0xff;
        let e = if exp > k.emin_biased { exp } else { k.emin_biased };
        // NaN has exp = 255: the magic number comes out negative and finite, and NaN stays NaN
        // (e ≤ 255, shift ≤ 23: no overflow; wrapping keeps checked builds vectorized)
        let magic = f32::from_bits((e.wrapping_add(k.magic_shift) << 23) | (1 << 22));
        // `(y + magic) - magic` (and the two-`f32` product) can turn a negative zero positive:
        // copy the sign back so that q(-x) = -q(x) holds bit for bit
        k.scale_output((y + magic) - magic).copysign(xc)
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

    #[test]
    fn kernel_path_by_format_and_scale() {
        let kind = |n, m, alpha: f64| {
            FpQuantizer::new(FpFormat::new(n, m, true).unwrap(), alpha)
                .unwrap()
                .arithmetic()
        };
        assert_eq!(kind(8, 3, 240.0), "f32");
        assert_eq!(kind(8, 3, 3.75), "f32"); // t = 2
        assert_eq!(kind(8, 3, 3.7), "f32, two-f32 scale");
        assert_eq!(kind(8, 1, 1.0), "f32, two-f32 scale"); // E6M1: K + m = 64
        assert_eq!(kind(14, 7, 1.0), "f32, two-f32 scale"); // E6M7: 2^7 significands checked
                                                            // E6M7 at a tiny scale: outputs reach below 2^-100, and 2^13 grid values are too many to
                                                            // check one by one
        assert_eq!(kind(14, 7, 1e-10), "f32, two-f32 scale, f64 output");
        assert_eq!(kind(8, 1, 1e-11), "f32, two-f32 scale"); // E6M1 there: 128 values checked
        assert_eq!(kind(10, 1, 1.0), "f64"); // E8M1: K + m = 256
        assert_eq!(kind(8, 3, 1e30), "f64"); // scale beyond 2^60
        assert_eq!(kind(8, 3, 1e-30), "f64");
        assert_eq!(FpQuantizer::new_allow_zero(e4m3(), 0.0).unwrap().arithmetic(), "f64");
    }

    /// The `f32` kernels against the `f64` one on random inputs and on the `f32`s around each
    /// midpoint of the grid (as rendered in `f64`). The two may only differ on an exact real tie,
    /// which the `f64` kernel decides relative to its rounded `t`.
    #[test]
    fn single_precision_kernels_equal_wide_kernel() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (n, m) in [(8, 3), (8, 2), (8, 1), (8, 5), (8, 6), (6, 2), (12, 7), (14, 7)] {
            let f = FpFormat::new(n, m, true).unwrap();
            for alpha in [
                f.max_value_default(),
                3.7,
                0.1234,
                448.0,
                57.0,
                1e-5,
                2.9e7,
                1e-10,
                1e-11,
            ] {
                let q = FpQuantizer::new(f, alpha).unwrap();
                assert!(!matches!(q.kernel, FpKernel::Wide(_)));
                let t = ScaledFpFormat {
                    format: f,
                    maxval: alpha,
                }
                .top_binade_scale();
                let wide = FpQuantizer::wide_kernel(f, t, alpha);
                let grid = ScaledFpFormat {
                    format: f,
                    maxval: alpha,
                }
                .positive_grid();
                let mut xs: Vec<f32> = (0..20_000)
                    .map(|_| (rng.random::<f64>() * 2.4 - 1.2) as f32 * alpha as f32)
                    .collect();
                for w in grid.windows(2) {
                    let mid = ((w[0] + w[1]) / 2.0) as f32;
                    for d in -2i32..=2 {
                        let v = f32::from_bits(mid.to_bits().wrapping_add_signed(d));
                        xs.extend([v, -v]);
                    }
                }
                let d = ((1u64 << (m + 1)) - 1) as f64;
                for &x in &xs {
                    let (got, want) = (q.quantize_value(x), wide.qdq(x));
                    if got.to_bits() == want.to_bits() {
                        continue;
                    }
                    // allowed only on a real tie: x = α·N/D for a midpoint N of the default grid
                    let n_mid = x.abs() as f64 * d / alpha;
                    let short = n_mid.to_bits().trailing_zeros() >= 52 - (m + 2);
                    let is_tie = short && x.abs() as f64 * d == alpha * n_mid;
                    assert!(
                        is_tie,
                        "{} α = {alpha}: x = {x:e}: f32 kernel {got:e}, f64 kernel {want:e}",
                        f.name()
                    );
                }
            }
        }
    }
}
