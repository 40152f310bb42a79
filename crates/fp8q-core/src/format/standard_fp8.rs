//! The deployed 8-bit floating-point encodings (`docs/formats.md`), bit-exact with ml_dtypes.
//!
//! | encoding          | bias | max   | Inf | NaN codes            | -0 |
//! |-------------------|------|-------|-----|----------------------|----|
//! | `float8_e4m3fn`   | 7    | 448   | no  | `0x7f`, `0xff`       | yes|
//! | `float8_e5m2`     | 15   | 57344 | yes | `S.11111.{01,10,11}` | yes|
//! | `float8_e4m3fnuz` | 8    | 240   | no  | `0x80`               | no |
//! | `float8_e5m2fnuz` | 16   | 57344 | no  | `0x80`               | no |
//!
//! Codes are laid out `sign | exponent | mantissa`. Encoding rounds to nearest, ties to even,
//! handles subnormals exactly, and then applies the chosen [`Overflow`] policy.
//!
//! ```
//! use fp8q_core::format::{Overflow, StandardFp8};
//! let f = StandardFp8::E4M3FN;
//! let code = f.encode(0.3, Overflow::Saturate);
//! assert_eq!(code, 0x2a); // 0.3 -> 0.3125 = 2^-2 · 1.25
//! assert_eq!(f.decode(code), 0.3125);
//! ```

/// What a value beyond the largest finite one becomes when encoded.
///
/// ```
/// use fp8q_core::format::{Overflow, StandardFp8};
/// let f = StandardFp8::E5M2;
/// assert_eq!(f.encode(1e6, Overflow::Saturate), 0x7b); // 57344
/// assert_eq!(f.encode(1e6, Overflow::Cast), 0x7c); // +Inf
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// Clamp to ±max (what quantization simulation wants); NaN stays NaN.
    Saturate,
    /// A plain cast: ±Inf where the format has infinities, NaN otherwise.
    Cast,
}

/// One of the standard 8-bit encodings as ml_dtypes / the OCP spec define them.
///
/// ```
/// use fp8q_core::format::StandardFp8;
/// let f = StandardFp8::from_name("float8_e4m3fn").unwrap();
/// assert_eq!(f, StandardFp8::E4M3FN);
/// assert_eq!(f.max_value(), 448.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StandardFp8 {
    /// `float8_e4m3fn`: bias 7, max 448, no Inf, NaN = S.1111.111.
    E4M3FN,
    /// `float8_e5m2`: bias 15, IEEE-like with Inf and NaN, max 57344.
    E5M2,
    /// `float8_e4m3fnuz`: bias 8, max 240, single NaN 0x80, no negative zero.
    E4M3FNUZ,
    /// `float8_e5m2fnuz`: bias 16, max 57344, single NaN 0x80, no negative zero.
    E5M2FNUZ,
}

impl StandardFp8 {
    /// All four encodings.
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert_eq!(StandardFp8::ALL.len(), 4);
    /// ```
    pub const ALL: [StandardFp8; 4] = [Self::E4M3FN, Self::E5M2, Self::E4M3FNUZ, Self::E5M2FNUZ];

    /// The ml_dtypes name, e.g. `float8_e4m3fn`.
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert_eq!(StandardFp8::E5M2FNUZ.name(), "float8_e5m2fnuz");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Self::E4M3FN => "float8_e4m3fn",
            Self::E5M2 => "float8_e5m2",
            Self::E4M3FNUZ => "float8_e4m3fnuz",
            Self::E5M2FNUZ => "float8_e5m2fnuz",
        }
    }

    /// Parse an ml_dtypes name (lower case).
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert_eq!(StandardFp8::from_name("float8_e5m2"), Some(StandardFp8::E5M2));
    /// assert_eq!(StandardFp8::from_name("e4m3"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Exponent bits.
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert_eq!(StandardFp8::E4M3FNUZ.exponent_bits(), 4);
    /// ```
    pub fn exponent_bits(&self) -> u32 {
        match self {
            Self::E4M3FN | Self::E4M3FNUZ => 4,
            Self::E5M2 | Self::E5M2FNUZ => 5,
        }
    }
    /// Mantissa bits.
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert_eq!(StandardFp8::E5M2.mantissa_bits(), 2);
    /// ```
    pub fn mantissa_bits(&self) -> u32 {
        8 - 1 - self.exponent_bits()
    }
    /// Exponent bias.
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert_eq!(StandardFp8::E4M3FN.bias(), 7);
    /// assert_eq!(StandardFp8::E4M3FNUZ.bias(), 8);
    /// ```
    pub fn bias(&self) -> i64 {
        match self {
            Self::E4M3FN => 7,
            Self::E5M2 => 15,
            Self::E4M3FNUZ => 8,
            Self::E5M2FNUZ => 16,
        }
    }
    /// Largest finite value.
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert_eq!(StandardFp8::E4M3FNUZ.max_value(), 240.0);
    /// ```
    pub fn max_value(&self) -> f32 {
        match self {
            Self::E4M3FN => 448.0,
            Self::E5M2 | Self::E5M2FNUZ => 57344.0,
            Self::E4M3FNUZ => 240.0,
        }
    }

    /// Smallest positive normal value, `2^(1 - bias)`.
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert_eq!(StandardFp8::E4M3FN.min_normal(), 2f32.powi(-6));
    /// assert_eq!(StandardFp8::E5M2.min_normal(), 2f32.powi(-14));
    /// ```
    pub fn min_normal(&self) -> f32 {
        pow2(1 - self.bias() as i32)
    }

    /// Smallest positive subnormal value, `2^(1 - bias - m)`.
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert_eq!(StandardFp8::E4M3FN.min_subnormal(), 2f32.powi(-9));
    /// assert_eq!(StandardFp8::E5M2FNUZ.min_subnormal(), 2f32.powi(-17));
    /// ```
    pub fn min_subnormal(&self) -> f32 {
        pow2(1 - self.bias() as i32 - self.mantissa_bits() as i32)
    }

    /// Whether the encoding has ±Inf (only `float8_e5m2`).
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert!(StandardFp8::E5M2.has_inf());
    /// assert!(!StandardFp8::E4M3FN.has_inf());
    /// ```
    pub fn has_inf(&self) -> bool {
        matches!(self, Self::E5M2)
    }

    /// Whether `0x80` is a negative zero (`fn` and IEEE-like encodings) rather than NaN (`fnuz`).
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert!(StandardFp8::E4M3FN.has_negative_zero());
    /// assert!(!StandardFp8::E4M3FNUZ.has_negative_zero());
    /// ```
    pub fn has_negative_zero(&self) -> bool {
        matches!(self, Self::E4M3FN | Self::E5M2)
    }

    /// Whether the `fnuz` layout (single NaN `0x80`, no negative zero, no Inf) is used.
    fn is_fnuz(&self) -> bool {
        matches!(self, Self::E4M3FNUZ | Self::E5M2FNUZ)
    }

    /// The magnitude code (`code & 0x7f`) of the largest finite value.
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert_eq!(StandardFp8::E4M3FN.max_finite_code(), 0x7e);
    /// assert_eq!(StandardFp8::E5M2.max_finite_code(), 0x7b);
    /// assert_eq!(StandardFp8::E4M3FNUZ.max_finite_code(), 0x7f);
    /// ```
    pub fn max_finite_code(&self) -> u8 {
        match self {
            Self::E4M3FN => 0x7e,
            Self::E5M2 => 0x7b,
            Self::E4M3FNUZ | Self::E5M2FNUZ => 0x7f,
        }
    }

    /// The code of +Inf, if the encoding has infinities (`-Inf` is this with the sign bit set).
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert_eq!(StandardFp8::E5M2.inf_code(), Some(0x7c));
    /// assert_eq!(StandardFp8::E4M3FNUZ.inf_code(), None);
    /// ```
    pub fn inf_code(&self) -> Option<u8> {
        self.has_inf().then_some(0x7c)
    }

    /// The canonical (quiet) NaN code that encoding a positive NaN produces; a negative NaN
    /// gets the sign bit as well, except in the `fnuz` encodings whose only NaN is `0x80`.
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert_eq!(StandardFp8::E4M3FN.nan_code(), 0x7f);
    /// assert_eq!(StandardFp8::E5M2.nan_code(), 0x7e);
    /// assert_eq!(StandardFp8::E5M2FNUZ.nan_code(), 0x80);
    /// ```
    pub fn nan_code(&self) -> u8 {
        match self {
            Self::E4M3FN => 0x7f,
            Self::E5M2 => 0x7e,
            Self::E4M3FNUZ | Self::E5M2FNUZ => 0x80,
        }
    }

    /// Whether `code` decodes to NaN.
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert!(StandardFp8::E4M3FN.is_nan_code(0xff));
    /// assert!(!StandardFp8::E4M3FN.is_nan_code(0x80)); // -0
    /// assert!(StandardFp8::E4M3FNUZ.is_nan_code(0x80));
    /// ```
    pub fn is_nan_code(&self, code: u8) -> bool {
        let mag = code & 0x7f;
        match self {
            Self::E4M3FN => mag == 0x7f,
            Self::E5M2 => mag > 0x7c,
            Self::E4M3FNUZ | Self::E5M2FNUZ => code == 0x80,
        }
    }

    /// Every code that decodes to NaN, ascending.
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert_eq!(StandardFp8::E4M3FN.nan_codes(), vec![0x7f, 0xff]);
    /// assert_eq!(StandardFp8::E5M2.nan_codes(), vec![0x7d, 0x7e, 0x7f, 0xfd, 0xfe, 0xff]);
    /// assert_eq!(StandardFp8::E4M3FNUZ.nan_codes(), vec![0x80]);
    /// ```
    pub fn nan_codes(&self) -> Vec<u8> {
        (0..=255u8).filter(|&c| self.is_nan_code(c)).collect()
    }

    /// Number of distinct finite values (±0 counted once).
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// assert_eq!(StandardFp8::E4M3FN.num_finite_values(), 253);
    /// assert_eq!(StandardFp8::E5M2.num_finite_values(), 247);
    /// assert_eq!(StandardFp8::E4M3FNUZ.num_finite_values(), 255);
    /// ```
    pub fn num_finite_values(&self) -> usize {
        // per sign: all magnitude codes up to the largest finite one (zero shared by both signs)
        2 * usize::from(self.max_finite_code()) + 1
    }

    /// All distinct finite values, ascending (zero once, as `+0.0`).
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// let v = StandardFp8::E4M3FN.values();
    /// assert_eq!(v.len(), 253);
    /// assert_eq!((v[0], v[126], v[252]), (-448.0, 0.0, 448.0));
    /// ```
    pub fn values(&self) -> Vec<f32> {
        let max = self.max_finite_code();
        let mut out: Vec<f32> = (1..=max).rev().map(|c| -self.decode_magnitude(c)).collect();
        out.push(0.0);
        out.extend((1..=max).map(|c| self.decode_magnitude(c)));
        out
    }

    /// The value of a magnitude code `0..=max_finite_code` (finite, non-negative).
    fn decode_magnitude(&self, mag: u8) -> f32 {
        let m = self.mantissa_bits();
        let mant = u32::from(mag) & ((1 << m) - 1);
        let exp = i32::from(mag >> m);
        if exp == 0 {
            // subnormal: mant · 2^(1 - bias - m), exact in f32
            mant as f32 * self.min_subnormal()
        } else {
            // normal: rebias the exponent into f32's and left-align the mantissa
            let bits = (((exp - self.bias() as i32 + 127) as u32) << 23) | (mant << (23 - m));
            f32::from_bits(bits)
        }
    }

    /// The value of a code (NaN codes give NaN, the Inf codes of `float8_e5m2` give ±Inf).
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// let f = StandardFp8::E5M2;
    /// assert_eq!(f.decode(0x3c), 1.0);
    /// assert_eq!(f.decode(0x01), 2f32.powi(-16));
    /// assert_eq!(f.decode(0xfc), f32::NEG_INFINITY);
    /// assert!(f.decode(0x7f).is_nan());
    /// assert!(StandardFp8::E4M3FN.decode(0x80).is_sign_negative()); // -0
    /// ```
    pub fn decode(&self, code: u8) -> f32 {
        if self.is_nan_code(code) {
            return f32::NAN;
        }
        let mag = code & 0x7f;
        let v = if Some(mag) == self.inf_code() {
            f32::INFINITY
        } else {
            self.decode_magnitude(mag)
        };
        if code & 0x80 != 0 {
            -v
        } else {
            v
        }
    }

    /// Encode `x`: round to nearest, ties to even, then apply `overflow` to values whose rounded
    /// magnitude exceeds the largest finite value. ±Inf saturates to ±max or casts to Inf/NaN;
    /// NaN gives [`nan_code`](Self::nan_code) (with the sign bit of `x`, except in `fnuz`).
    /// `-0.0` gives `0x80` where the encoding has a negative zero, `0x00` otherwise; so do
    /// negative values that round to zero.
    ///
    /// ```
    /// use fp8q_core::format::{Overflow, StandardFp8};
    /// let f = StandardFp8::E4M3FN;
    /// assert_eq!(f.encode(1.0, Overflow::Cast), 0x38);
    /// assert_eq!(f.encode(464.0, Overflow::Cast), 0x7e); // tie between 448 and 480: even -> 448
    /// assert_eq!(f.encode(465.0, Overflow::Cast), 0x7f); // rounds to 480: NaN
    /// assert_eq!(f.encode(465.0, Overflow::Saturate), 0x7e);
    /// assert_eq!(f.encode(-f32::INFINITY, Overflow::Saturate), 0xfe);
    /// assert_eq!(StandardFp8::E4M3FNUZ.encode(-0.0, Overflow::Cast), 0x00);
    /// ```
    pub fn encode(&self, x: f32, overflow: Overflow) -> u8 {
        let bits = x.to_bits();
        let sign = ((bits >> 24) & 0x80) as u8;
        let abs = bits & 0x7fff_ffff;
        let fnuz = self.is_fnuz();
        let nan = if fnuz { 0x80 } else { self.nan_code() | sign };
        if abs > 0x7f80_0000 {
            return nan;
        }
        let max = u32::from(self.max_finite_code());
        let mag = if abs == 0x7f80_0000 {
            max + 1 // treated like any overflow below (E5M2: max + 1 is exactly the Inf code)
        } else {
            self.round_magnitude(abs)
        };
        let mag = if mag > max {
            match (overflow, self.inf_code()) {
                (Overflow::Saturate, _) => max,
                (Overflow::Cast, Some(inf)) => u32::from(inf),
                (Overflow::Cast, None) => return nan,
            }
        } else {
            mag
        };
        if mag == 0 && fnuz {
            0x00
        } else {
            mag as u8 | sign
        }
    }

    /// Round a finite non-negative f32 (given as its bits) to a magnitude code; the result may
    /// exceed the largest finite code (overflow is the caller's business).
    fn round_magnitude(&self, abs: u32) -> u32 {
        // The trick: for a non-negative float the bit pattern `exponent·2^23 + mantissa` is a
        // monotone fixed-point encoding of its value within and across binades, so rounding
        // away the low `s` bits of the *integer* — add `2^(s-1) - 1` plus the lowest kept bit,
        // then shift right by `s` — rounds the value to `23 - s` mantissa bits, ties to even,
        // and a carry out of the mantissa correctly bumps the exponent. Subnormal targets need
        // a per-value shift of the significand (with its implicit 1) instead.
        let m = self.mantissa_bits();
        let bias = self.bias() as i32;
        let f32_exp = (abs >> 23) as i32; // biased; 0 for f32 subnormals and zero
        let min_normal_exp = 1 - bias + 127; // f32 biased exponent of the format's min normal
        if f32_exp >= min_normal_exp {
            let s = 23 - m;
            let rounded = (abs + (1 << (s - 1)) - 1 + ((abs >> s) & 1)) >> s;
            // rebias: f32 exponent 127 + e becomes bias + e
            rounded - (((127 - bias) as u32) << m)
        } else {
            // value = sig · 2^(f32_exp - 150); in units of the smallest subnormal
            // 2^(1 - bias - m) that is sig >> s with s = (1 - bias - m) - (f32_exp - 150).
            // f32 subnormals (f32_exp = 0) lie far below half the smallest subnormal.
            if f32_exp == 0 {
                return 0;
            }
            let sig = (abs & 0x7f_ffff) | 0x80_0000;
            let s = (1 - bias - m as i32) - (f32_exp - 150);
            debug_assert!(s > 23 - m as i32);
            if s > 25 {
                return 0; // sig < 2^24 <= 2^(s-2): below a quarter of the smallest subnormal
            }
            let s = s as u32;
            // a carry to 2^m is exactly the code of the smallest normal
            (sig + (1 << (s - 1)) - 1 + ((sig >> s) & 1)) >> s
        }
    }

    /// Encode a slice (`out.len()` must equal `x.len()`).
    ///
    /// ```
    /// use fp8q_core::format::{Overflow, StandardFp8};
    /// let mut codes = [0u8; 3];
    /// StandardFp8::E5M2.encode_slice(&[1.0, -2.0, 1e9], &mut codes, Overflow::Saturate);
    /// assert_eq!(codes, [0x3c, 0xc0, 0x7b]);
    /// ```
    pub fn encode_slice(&self, x: &[f32], out: &mut [u8], overflow: Overflow) {
        assert_eq!(x.len(), out.len(), "input and output lengths differ");
        for (o, &v) in out.iter_mut().zip(x) {
            *o = self.encode(v, overflow);
        }
    }

    /// Decode a slice (`out.len()` must equal `codes.len()`), through a 256-entry table.
    ///
    /// ```
    /// use fp8q_core::format::StandardFp8;
    /// let mut v = [0f32; 3];
    /// StandardFp8::E4M3FN.decode_slice(&[0x38, 0xc0, 0x7e], &mut v);
    /// assert_eq!(v, [1.0, -2.0, 448.0]);
    /// ```
    pub fn decode_slice(&self, codes: &[u8], out: &mut [f32]) {
        assert_eq!(codes.len(), out.len(), "input and output lengths differ");
        let table: [f32; 256] = std::array::from_fn(|c| self.decode(c as u8));
        for (o, &c) in out.iter_mut().zip(codes) {
            *o = table[usize::from(c)];
        }
    }
}

/// `2^k` for `-126 <= k <= 127`, exactly.
fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_encode_round_trip_every_code() {
        for f in StandardFp8::ALL {
            for c in 0..=255u8 {
                let v = f.decode(c);
                if v.is_nan() {
                    assert!(f.encode(v, Overflow::Cast) == f.nan_code());
                    continue;
                }
                let back = f.encode(v, Overflow::Cast);
                let expect = if f.is_fnuz() && c == 0x80 { 0 } else { c };
                assert_eq!(back, expect, "{} code {c:#04x} value {v}", f.name());
            }
        }
    }

    #[test]
    fn value_counts_and_extremes() {
        for f in StandardFp8::ALL {
            let v = f.values();
            assert_eq!(v.len(), f.num_finite_values());
            assert!(v.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(*v.last().unwrap(), f.max_value());
            assert_eq!(v[v.len() / 2 + 1], f.min_subnormal());
            assert!(v.contains(&f.min_normal()));
            let nan = f.nan_codes().len();
            let inf = if f.has_inf() { 2 } else { 0 };
            let zeros = if f.has_negative_zero() { 1 } else { 0 };
            assert_eq!(256 - nan - inf - zeros, v.len(), "{}", f.name());
        }
    }
}
