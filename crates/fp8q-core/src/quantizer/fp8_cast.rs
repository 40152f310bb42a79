//! The scaled cast of a tensor to a deployed 8-bit encoding, as serving stacks store FP8
//! weights: `code = encode(x / scale)` rounded to nearest even and saturated at the largest
//! finite value, and what a reader gets back, `decode(code) · scale`, fused in one branch-free
//! pass that also sums `x²` and `(x − value)²` (the SQNR), compiled per CPU
//! ([`dispatch_by_cpu`]).
//!
//! It gives exactly [`StandardFp8::encode`] with [`Overflow::Saturate`](crate::format::Overflow::Saturate) and
//! [`StandardFp8::decode`] for finite inputs (the tests compare every bf16 value and random
//! `f32`s in the four encodings); the scalar pair is the specification, this is its fast form.

use crate::format::StandardFp8;
use crate::quantizer::element_kernel::dispatch_by_cpu;

/// The encoding's constants, in the form the kernel uses.
#[derive(Debug, Clone, Copy)]
pub struct Fp8Cast {
    /// `23 − m`: the f32 mantissa bits rounded away.
    shift: u32,
    /// Subtracted from a rounded f32 pattern to rebias it to the encoding's.
    rebias: u32,
    /// The bits of the smallest normal value.
    min_normal_bits: u32,
    /// `2^(bias − 1 + m)`: a subnormal's multiple of the smallest subnormal.
    sub_mul: f32,
    /// The smallest subnormal, `2^(1 − bias − m)`.
    sub_unit: f32,
    max_code: u32,
    max_value: f32,
    /// `-0` is stored as `0x00` (the `fnuz` encodings).
    fnuz: bool,
}

impl Fp8Cast {
    /// The cast to `encoding`.
    pub fn new(encoding: StandardFp8) -> Self {
        let m = encoding.mantissa_bits();
        let bias = encoding.bias() as i32;
        Fp8Cast {
            shift: 23 - m,
            rebias: ((127 - bias) as u32) << m,
            min_normal_bits: encoding.min_normal().to_bits(),
            sub_mul: 2f32.powi(bias - 1 + m as i32),
            sub_unit: 2f32.powi(1 - bias - m as i32),
            max_code: u32::from(encoding.max_finite_code()),
            max_value: encoding.max_value(),
            fnuz: encoding.decode(0x80).is_nan(),
        }
    }

    /// The code and value (on the unit grid) of one finite value.
    #[inline(always)]
    fn one(&self, y: f32) -> (u8, f32) {
        let bits = y.to_bits();
        let neg = bits >> 31;
        let abs = bits & 0x7fff_ffff;
        // normal targets: round the pattern's low bits away, ties to even (a carry bumps the
        // exponent); the pattern shifted back is the rounded value
        let s = self.shift;
        let r = (abs + (1 << (s - 1)) - 1 + ((abs >> s) & 1)) >> s;
        let normal_code = r.wrapping_sub(self.rebias);
        let normal_val = f32::from_bits(r << s);
        // subnormal targets: a multiple of the smallest subnormal (exact scaling by 2^k)
        let k = (f32::from_bits(abs) * self.sub_mul).round_ties_even();
        let is_normal = abs >= self.min_normal_bits;
        // k is a whole number below 2^23: adding 2^23 puts it in the low mantissa bits (a
        // vector-friendly form of `k as u32`)
        let k_int = (k + 8_388_608.0).to_bits() & 0x7f_ffff;
        let code = if is_normal { normal_code } else { k_int };
        let val = if is_normal { normal_val } else { k * self.sub_unit };
        let over = code > self.max_code;
        let code = if over { self.max_code } else { code };
        let val = if over { self.max_value } else { val };
        let sign = if self.fnuz && code == 0 { 0 } else { neg };
        ((code | (sign << 7)) as u8, f32::from_bits(val.to_bits() | (sign << 31)))
    }

    /// `codes[i] = encode(x[i] / scale)` (saturating) and `values[i] = decode(codes[i]) · scale`;
    /// returns `(Σ x², Σ (x − value)²)`. Every `x[i] / scale` must be finite or ±Inf (NaN has no
    /// saturated code); the slices must have one length.
    pub fn cast(&self, x: &[f32], scale: f32, codes: &mut [u8], values: &mut [f32]) -> (f64, f64) {
        assert!(
            codes.len() == x.len() && values.len() == x.len(),
            "input and output lengths differ"
        );
        cast_dispatch(self, x, scale, codes, values)
    }
}

/// Lanes of the sums (independent accumulators, so the loop vectorizes).
const LANES: usize = 8;

#[inline(always)]
fn cast_generic(c: &Fp8Cast, x: &[f32], scale: f32, codes: &mut [u8], values: &mut [f32]) -> (f64, f64) {
    let mut sig = [0f64; LANES];
    let mut err = [0f64; LANES];
    let n = x.len() / LANES * LANES;
    for ((xs, cs), vs) in x[..n]
        .chunks_exact(LANES)
        .zip(codes[..n].chunks_exact_mut(LANES))
        .zip(values[..n].chunks_exact_mut(LANES))
    {
        for l in 0..LANES {
            let (code, q) = c.one(xs[l] / scale);
            let v = q * scale;
            cs[l] = code;
            vs[l] = v;
            sig[l] += f64::from(xs[l]) * f64::from(xs[l]);
            err[l] += (f64::from(xs[l]) - f64::from(v)).powi(2);
        }
    }
    for ((&xv, cv), vv) in x[n..].iter().zip(&mut codes[n..]).zip(&mut values[n..]) {
        let (code, q) = c.one(xv / scale);
        *cv = code;
        *vv = q * scale;
        sig[0] += f64::from(xv) * f64::from(xv);
        err[0] += (f64::from(xv) - f64::from(*vv)).powi(2);
    }
    (sig.iter().sum(), err.iter().sum())
}

dispatch_by_cpu! {
    fn cast_dispatch(c: &Fp8Cast, x: &[f32], scale: f32, codes: &mut [u8], values: &mut [f32]) -> (f64, f64) => cast_generic;
}

/// The scalar specification the kernel follows (for the tests).
#[cfg(test)]
fn reference(e: StandardFp8, y: f32) -> (u8, f32) {
    let code = e.encode(y, crate::format::Overflow::Saturate);
    (code, e.decode(code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    const ENCODINGS: [StandardFp8; 4] = [
        StandardFp8::E4M3FN,
        StandardFp8::E5M2,
        StandardFp8::E4M3FNUZ,
        StandardFp8::E5M2FNUZ,
    ];

    fn check(e: StandardFp8, x: &[f32], scale: f32) {
        let c = Fp8Cast::new(e);
        let mut codes = vec![0u8; x.len()];
        let mut values = vec![0f32; x.len()];
        let (sig, err) = c.cast(x, scale, &mut codes, &mut values);
        let (mut s, mut r) = (0f64, 0f64);
        for (i, &v) in x.iter().enumerate() {
            let (code, q) = reference(e, v / scale);
            assert_eq!(codes[i], code, "{} of {v:e} / {scale:e}", e.name());
            assert_eq!(
                values[i].to_bits(),
                (q * scale).to_bits(),
                "{} value of {v:e}",
                e.name()
            );
            s += f64::from(v).powi(2);
            r += (f64::from(v) - f64::from(q * scale)).powi(2);
        }
        assert!((sig - s).abs() <= 1e-12 * s.max(1e-300), "{sig} against {s}");
        assert!((err - r).abs() <= 1e-9 * r.max(1e-300), "{err} against {r}");
    }

    /// Every finite bf16 value (and so every rounding case of every binade), unscaled and scaled.
    #[test]
    fn every_bf16_value_casts_as_the_scalar_encoder() {
        let x: Vec<f32> = (0..=u16::MAX)
            .map(|b| f32::from_bits(u32::from(b) << 16))
            .filter(|v| v.is_finite())
            .collect();
        for e in ENCODINGS {
            check(e, &x, 1.0);
            check(e, &x, 3.7e-3);
            check(e, &x, f32::EPSILON);
        }
    }

    /// Random f32 patterns near each encoding's grid (ties, subnormals, overflow).
    #[test]
    fn random_values_and_ties_cast_as_the_scalar_encoder() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for e in ENCODINGS {
            let grid = e.values();
            let mut x: Vec<f32> = (0..20_000)
                .map(|_| f32::from_bits(rng.random::<u32>()))
                .filter(|v| v.is_finite())
                .collect();
            // midpoints of neighbouring grid values (ties), and just beside them
            for w in grid.windows(2) {
                let mid = (w[0] + w[1]) / 2.0;
                x.extend([
                    mid,
                    -mid,
                    f32::from_bits(mid.to_bits() + 1),
                    f32::from_bits(mid.to_bits() - 1),
                ]);
            }
            x.extend([0.0, -0.0, e.max_value() * 1.04, -e.max_value() * 1.1, 1e38]);
            check(e, &x, 1.0);
            check(e, &x, 0.37);
        }
    }
}
