//! The paper's flexible-bias floating-point format (`docs/formats.md`).
//!
//! A format is `n` bits split into `s` sign bits (1 or 0), `e >= 1` exponent bits and `m >= 1`
//! mantissa bits. It has no infinities and no NaN: every exponent code is a finite binade. With
//! integer bias `b` the subnormals are `2^(1-b)·0.f` and the normals `2^(c-b)·1.f`; the default
//! bias is `b0 = 2^(e-1)`.
//!
//! A real-valued bias is set from a maximum value `α`: the grid is the default grid scaled by
//! `γ = α / maxval(b0)`. Internally every scaled grid is handled relative to the *top binade
//! scale* `t = α / (2 - 2^-m)`: the values are `t · 2^(k - K) · (1.f)` for exponent codes
//! `k = 1 ..= K` with `K = 2^e - 1`, and `t · 2^(1 - K) · (0.f)` for subnormals. That form never
//! overflows, even for exponent widths whose default maximum exceeds `f64`.

use crate::error::{FormatError, Result};

/// Largest total width of a flexible-bias FP format.
pub const MAX_FP_BITS: u32 = 16;

/// A flexible-bias floating-point format: widths only; the bias comes with a maximum value
/// (see [`ScaledFpFormat`]).
///
/// ```
/// use fp8q_core::format::FpFormat;
/// let e4m3 = FpFormat::new(8, 3, true).unwrap();
/// assert_eq!(e4m3.exponent_bits(), 4);
/// assert_eq!(e4m3.default_bias(), 8);
/// assert_eq!(e4m3.max_value_default(), 240.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FpFormat {
    n_bits: u32,
    mantissa_bits: u32,
    signed: bool,
}

impl FpFormat {
    /// A format of `n_bits` in total with `mantissa_bits` mantissa bits, signed or not.
    /// Rejects widths outside `2..=16`, zero mantissa bits and zero exponent bits.
    pub fn new(n_bits: u32, mantissa_bits: u32, signed: bool) -> Result<Self> {
        let sign_bits = u32::from(signed);
        if !(2..=MAX_FP_BITS).contains(&n_bits) {
            return Err(FormatError::BitWidth {
                what: "a floating-point format",
                got: n_bits,
                min: 2,
                max: MAX_FP_BITS,
            });
        }
        if mantissa_bits == 0 {
            return Err(FormatError::NoMantissaBits(mantissa_bits));
        }
        let exponent_bits = i64::from(n_bits) - i64::from(sign_bits) - i64::from(mantissa_bits);
        if exponent_bits < 1 {
            return Err(FormatError::NoExponentBits {
                n_bits,
                sign_bits,
                mantissa_bits,
                exponent_bits,
            });
        }
        Ok(Self {
            n_bits,
            mantissa_bits,
            signed,
        })
    }

    /// The format `ExMy`: `1 + x + y` bits if signed, `x + y` if not.
    pub fn from_exponent_mantissa(exponent_bits: u32, mantissa_bits: u32, signed: bool) -> Result<Self> {
        if exponent_bits == 0 {
            return Err(FormatError::NoExponentBits {
                n_bits: u32::from(signed) + mantissa_bits,
                sign_bits: u32::from(signed),
                mantissa_bits,
                exponent_bits: 0,
            });
        }
        Self::new(u32::from(signed) + exponent_bits + mantissa_bits, mantissa_bits, signed)
    }

    /// Total number of bits `n`.
    pub fn n_bits(&self) -> u32 {
        self.n_bits
    }
    /// Mantissa bits `m`.
    pub fn mantissa_bits(&self) -> u32 {
        self.mantissa_bits
    }
    /// Exponent bits `e = n - s - m`.
    pub fn exponent_bits(&self) -> u32 {
        self.n_bits - self.sign_bits() - self.mantissa_bits
    }
    /// Whether the format has a sign bit.
    pub fn is_signed(&self) -> bool {
        self.signed
    }
    /// Sign bits `s` (1 or 0).
    pub fn sign_bits(&self) -> u32 {
        u32::from(self.signed)
    }
    /// The same widths with a different number of mantissa bits (total width kept).
    pub fn with_mantissa_bits(&self, mantissa_bits: u32) -> Result<Self> {
        Self::new(self.n_bits, mantissa_bits, self.signed)
    }
    /// The same total width and mantissa, signed or unsigned.
    pub fn with_signed(&self, signed: bool) -> Result<Self> {
        Self::new(self.n_bits, self.mantissa_bits, signed)
    }

    /// Name such as `E4M3` (unsigned formats are prefixed with `U`).
    pub fn name(&self) -> String {
        format!(
            "{}E{}M{}",
            if self.signed { "" } else { "U" },
            self.exponent_bits(),
            self.mantissa_bits
        )
    }

    /// Largest exponent code `K = 2^e - 1`.
    pub fn max_exponent_code(&self) -> i64 {
        (1i64 << self.exponent_bits()) - 1
    }
    /// The default bias `b0 = 2^(e-1)`.
    pub fn default_bias(&self) -> i64 {
        1i64 << (self.exponent_bits() - 1)
    }
    /// `2 - 2^-m`, the largest significand.
    pub fn max_significand(&self) -> f64 {
        2.0 - (-(self.mantissa_bits as f64)).exp2()
    }
    /// `log2` of the largest value with integer bias `bias`: `log2(2 - 2^-m) + 2^e - 1 - bias`.
    pub fn log2_max_value(&self, bias: f64) -> f64 {
        self.max_significand().log2() + (self.max_exponent_code() as f64) - bias
    }
    /// Largest value with the default bias, `(2 - 2^-m)·2^(2^e - 1 - b0)` (infinite beyond `f64`).
    pub fn max_value_default(&self) -> f64 {
        self.max_significand() * exp2i(self.max_exponent_code() - self.default_bias())
    }
    /// Smallest positive normal with the default bias, `2^(1 - b0)`.
    pub fn min_normal_default(&self) -> f64 {
        exp2i(1 - self.default_bias())
    }
    /// Smallest positive subnormal with the default bias, `2^(1 - b0 - m)`.
    pub fn min_subnormal_default(&self) -> f64 {
        exp2i(1 - self.default_bias() - self.mantissa_bits as i64)
    }
    /// Number of codes, `2^n`.
    pub fn num_codes(&self) -> u64 {
        1u64 << self.n_bits
    }
    /// Number of distinct values: `2^n - 1` for signed formats (±0 coincide), `2^n` unsigned.
    pub fn num_distinct_values(&self) -> u64 {
        self.num_codes() - u64::from(self.signed)
    }

    /// The real bias that makes `alpha` the largest value:
    /// `b(α) = 2^e - log2(α) + log2(2 - 2^-m) - 1`.
    pub fn bias_for_maxval(&self, alpha: f64) -> Result<f64> {
        check_maxval(alpha)?;
        Ok(self.max_exponent_code() as f64 - (alpha / self.max_significand()).log2())
    }

    /// This format with its largest value set to `alpha` (real-valued bias).
    pub fn with_maxval(&self, alpha: f64) -> Result<ScaledFpFormat> {
        check_maxval(alpha)?;
        Ok(ScaledFpFormat {
            format: *self,
            maxval: alpha,
        })
    }
    /// This format with the default bias `b0`.
    pub fn with_default_bias(&self) -> ScaledFpFormat {
        ScaledFpFormat {
            format: *self,
            maxval: self.max_value_default(),
        }
    }
    /// This format with a given (possibly non-integer) bias.
    pub fn with_bias(&self, bias: f64) -> Result<ScaledFpFormat> {
        if !bias.is_finite() {
            return Err(FormatError::Invalid {
                what: "bias",
                why: format!("must be finite (got {bias})"),
            });
        }
        self.with_maxval(self.max_significand() * (self.max_exponent_code() as f64 - bias).exp2())
    }

    /// The value of `code` under the default bias. Codes are laid out
    /// `sign | exponent | mantissa`; the sign bit exists only for signed formats.
    pub fn decode_default(&self, code: u32) -> f64 {
        let m = self.mantissa_bits;
        let e = self.exponent_bits();
        let frac = (code & ((1 << m) - 1)) as f64;
        let exp_code = ((code >> m) & ((1 << e) - 1)) as i64;
        let negative = self.signed && (code >> (m + e)) & 1 == 1;
        let scale = (-(m as f64)).exp2();
        let b0 = self.default_bias();
        let mag = if exp_code == 0 {
            exp2i(1 - b0) * frac * scale
        } else {
            exp2i(exp_code - b0) * (1.0 + frac * scale)
        };
        if negative {
            -mag
        } else {
            mag
        }
    }
}

/// A flexible-bias FP format with its maximum value `α` fixed (hence its real bias).
///
/// ```
/// use fp8q_core::format::FpFormat;
/// let f = FpFormat::new(8, 3, true).unwrap().with_maxval(1.0).unwrap();
/// let grid = f.grid();
/// assert_eq!(grid.len(), 255);
/// assert_eq!(*grid.last().unwrap(), 1.0);
/// assert_eq!(grid[0], -1.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ScaledFpFormat {
    /// Widths.
    pub format: FpFormat,
    /// Largest value `α`.
    pub maxval: f64,
}

impl ScaledFpFormat {
    /// The real bias `b(α)`.
    pub fn bias(&self) -> f64 {
        self.format.max_exponent_code() as f64 - self.top_binade_scale().log2()
    }
    /// `γ = α / maxval(b0)`: the factor by which the default grid is scaled.
    pub fn gamma(&self) -> f64 {
        let default_max = self.format.max_value_default();
        if default_max.is_finite() {
            self.maxval / default_max
        } else {
            // wide formats: maxval(b0) is beyond f64, work in the log domain
            (self.maxval.log2() - self.format.log2_max_value(self.format.default_bias() as f64)).exp2()
        }
    }
    /// Scale of the top binade, `t = α / (2 - 2^-m)`: values are `t·2^(k-K)·1.f`.
    pub fn top_binade_scale(&self) -> f64 {
        self.maxval / self.format.max_significand()
    }
    /// Smallest positive normal value.
    pub fn min_normal(&self) -> f64 {
        self.top_binade_scale() * exp2i(1 - self.format.max_exponent_code())
    }
    /// Smallest positive subnormal value.
    pub fn min_subnormal(&self) -> f64 {
        self.min_normal() * (-(self.format.mantissa_bits as f64)).exp2()
    }
    /// The non-negative values, ascending, `0` first (values that underflow `f64` are dropped).
    pub fn positive_grid(&self) -> Vec<f64> {
        let m = self.format.mantissa_bits;
        let k_max = self.format.max_exponent_code();
        let t = self.top_binade_scale();
        let per = 1usize << m;
        let ulp = (-(m as f64)).exp2();
        let mut out = Vec::with_capacity(per * (k_max as usize + 1));
        out.push(0.0);
        let base = t * exp2i(1 - k_max);
        for f in 1..per {
            out.push(base * f as f64 * ulp);
        }
        for k in 1..=k_max {
            let scale = t * exp2i(k - k_max);
            for f in 0..per {
                out.push(scale * (1.0 + f as f64 * ulp));
            }
        }
        // t·(2 - 2^-m) can differ from α in the last bit when t is not a power of two
        if let Some(last) = out.last_mut() {
            *last = self.maxval;
        }
        out.dedup();
        out
    }
    /// All distinct values, ascending (the negative half mirrored for signed formats).
    pub fn grid(&self) -> Vec<f64> {
        let pos = self.positive_grid();
        if !self.format.signed {
            return pos;
        }
        let mut out: Vec<f64> = pos.iter().skip(1).rev().map(|v| -v).collect();
        out.extend_from_slice(&pos);
        out
    }
}

/// `2^k` for an integer `k`, exact wherever `f64` can represent it (0 or ∞ beyond).
pub(crate) fn exp2i(k: i64) -> f64 {
    (k.clamp(-1100, 1100) as f64).exp2()
}

pub(crate) fn check_maxval(alpha: f64) -> Result<()> {
    if alpha.is_finite() && alpha > 0.0 {
        Ok(())
    } else {
        Err(FormatError::BadMaxval(alpha))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_figures_of_the_paper_formats() {
        // (e, m) -> (max, min normal, min subnormal) with b0 = 2^(e-1)
        let cases = [
            (5, 2, 57344.0, 2f64.powi(-15), 2f64.powi(-17)),
            (4, 3, 240.0, 2f64.powi(-7), 2f64.powi(-10)),
            (3, 4, 15.5, 2f64.powi(-3), 2f64.powi(-7)),
            (2, 5, 3.9375, 0.5, 2f64.powi(-6)),
            (1, 6, 1.984375, 1.0, 2f64.powi(-6)),
        ];
        for (e, m, max, min_n, min_s) in cases {
            let f = FpFormat::from_exponent_mantissa(e, m, true).unwrap();
            assert_eq!(f.max_value_default(), max, "E{e}M{m}");
            assert_eq!(f.min_normal_default(), min_n, "E{e}M{m}");
            assert_eq!(f.min_subnormal_default(), min_s, "E{e}M{m}");
            let s = f.with_default_bias();
            assert_eq!(s.bias(), f.default_bias() as f64);
            assert_eq!(s.gamma(), 1.0);
            assert_eq!(s.min_normal(), min_n);
            assert_eq!(s.min_subnormal(), min_s);
            let g = s.grid();
            assert_eq!(g.len() as u64, f.num_distinct_values());
            assert!(g.windows(2).all(|w| w[0] < w[1]));
            // the grid equals the decoded codes
            let mut dec: Vec<f64> = (0..f.num_codes() as u32).map(|c| f.decode_default(c)).collect();
            dec.sort_by(f64::total_cmp);
            dec.dedup();
            assert_eq!(dec, g);
        }
    }

    #[test]
    fn bias_from_maxval_matches_formula() {
        let f = FpFormat::new(8, 3, true).unwrap();
        for alpha in [0.37f64, 1.0, 3.0, 1000.0] {
            let b = f.bias_for_maxval(alpha).unwrap();
            let expect = 16.0 - alpha.log2() + (2.0 - 0.125f64).log2() - 1.0;
            assert!((b - expect).abs() < 1e-12);
            let s = f.with_maxval(alpha).unwrap();
            assert!((s.bias() - expect).abs() < 1e-12);
            assert_eq!(*s.grid().last().unwrap(), alpha);
            assert!((s.gamma() - alpha / 240.0).abs() < 1e-15 * alpha);
        }
        let s = f.with_bias(7.0).unwrap();
        assert_eq!(s.maxval, 480.0);
    }

    #[test]
    fn unsigned_formats() {
        let f = FpFormat::new(8, 4, false).unwrap();
        assert_eq!(f.exponent_bits(), 4);
        assert_eq!(f.num_distinct_values(), 256);
        let g = f.with_maxval(3.0).unwrap().grid();
        assert_eq!(g.len(), 256);
        assert_eq!(g[0], 0.0);
        assert_eq!(*g.last().unwrap(), 3.0);
    }

    #[test]
    fn impossible_formats_are_rejected() {
        assert!(matches!(
            FpFormat::new(8, 7, true),
            Err(FormatError::NoExponentBits { .. })
        ));
        assert!(matches!(FpFormat::new(8, 0, true), Err(FormatError::NoMantissaBits(0))));
        assert!(matches!(FpFormat::new(17, 3, true), Err(FormatError::BitWidth { .. })));
        assert!(matches!(FpFormat::new(1, 1, false), Err(FormatError::BitWidth { .. })));
        assert!(matches!(
            FpFormat::from_exponent_mantissa(0, 7, true),
            Err(FormatError::NoExponentBits { .. })
        ));
        let f = FpFormat::new(8, 3, true).unwrap();
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(f.with_maxval(bad), Err(FormatError::BadMaxval(_))));
        }
        let msg = FpFormat::new(8, 7, true).unwrap_err().to_string();
        assert!(msg.contains("0 exponent bits"), "{msg}");
    }

    #[test]
    fn wide_exponent_formats_do_not_overflow() {
        let f = FpFormat::new(16, 1, true).unwrap(); // E14M1
        let s = f.with_maxval(1.0).unwrap();
        assert!(s.gamma() > 0.0 || s.gamma() == 0.0);
        let g = s.positive_grid();
        assert_eq!(*g.last().unwrap(), 1.0);
        assert!(g.iter().all(|v| v.is_finite()));
    }
}
