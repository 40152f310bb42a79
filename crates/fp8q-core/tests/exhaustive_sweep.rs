//! Exhaustive sweeps over all 2^32 `f32` bit patterns (ignored by default; run with
//! `cargo test --release -p fp8q-core --test exhaustive_sweep -- --ignored --test-threads=1`).
//!
//! * Flexible-bias E4M3 and E2M5 with the default bias (power-of-two scale: exact ties occur),
//!   and E4M3 and E3M4 with maxima whose scale `t` is not an `f32` (the kernel's two-`f32` path):
//!   the vectorized kernel against an independent reference — a binary search of `|x|`'s bit
//!   pattern among the smallest `f32`s that round up past each midpoint, found by exact
//!   comparisons with `mid·t`, an exact tie going to the value with the even mantissa code;
//!   NaN → NaN, anything at or beyond `α` (±Inf included) → ±α; the sign of `x` is kept (also on
//!   zero).
//! * The four standard encodings: `FpQuantizer::standard(enc, 1.0)` against
//!   `decode(encode(x, Overflow::Saturate))` (in the `fnuz` encodings, which have no -0, a
//!   kernel -0 is accepted for a decoded +0).

use fp8q_core::format::{FpFormat, Overflow, StandardFp8};
use fp8q_core::quantizer::FpQuantizer;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

const CHUNK: usize = 1 << 16;

/// Quantize every f32 with `q`; `check(x, got)` returns the expected value when `got` is wrong.
fn sweep(name: &str, q: &FpQuantizer, check: impl Fn(f32, f32) -> Option<f32> + Sync) {
    let start = Instant::now();
    let mismatches = AtomicU64::new(0);
    let examples = Mutex::new(Vec::new());
    let chunks = (1u64 << 32) / CHUNK as u64;
    (0..chunks).into_par_iter().for_each_init(
        || vec![0f32; CHUNK],
        |buf, c| {
            let base = (c * CHUNK as u64) as u32;
            for (i, v) in buf.iter_mut().enumerate() {
                *v = f32::from_bits(base + i as u32);
            }
            q.quantize_inplace_serial(buf);
            let mut bad = 0;
            for (i, &got) in buf.iter().enumerate() {
                let x = f32::from_bits(base + i as u32);
                if let Some(want) = check(x, got) {
                    bad += 1;
                    let mut ex = examples.lock().unwrap();
                    if ex.len() < 20 {
                        ex.push(format!(
                            "x = {x:e} ({:#010x}): kernel {got:e} ({:#010x}), reference {want:e} ({:#010x})",
                            x.to_bits(),
                            got.to_bits(),
                            want.to_bits()
                        ));
                    }
                }
            }
            if bad > 0 {
                mismatches.fetch_add(bad, Ordering::Relaxed);
            }
        },
    );
    let secs = start.elapsed().as_secs_f64();
    let bad = mismatches.load(Ordering::Relaxed);
    println!("{name}: swept 2^32 inputs in {secs:.1} s, {bad} mismatches");
    assert_eq!(
        bad,
        0,
        "{name}: {bad} mismatches, e.g.\n{}",
        examples.lock().unwrap().join("\n")
    );
}

fn bit_identical(got: f32, want: f32) -> bool {
    (got.is_nan() && want.is_nan()) || got.to_bits() == want.to_bits()
}

/// The independent reference for a flexible format with maximum `α`: each grid value's `f32`
/// rendering, and for each midpoint between neighbours the smallest `f32` that rounds up to the
/// upper one, found by exact comparisons with the real midpoint `α·N/D` (`N` dyadic,
/// `D = 2^(m+1) - 1`) as `x·D` against `α·N`, both exact in `f64`. An exact tie goes to the value
/// with the even code when the scale `t = α·2^m/D` is an `f32`; otherwise `t` is not even an `f64`,
/// the kernel can only approximate the tie, and either neighbour is accepted there.
struct MidpointReference {
    /// non-negative grid, ascending; index = code
    pos: Vec<f32>,
    /// bit patterns of the smallest non-negative f32 rounding up past each midpoint
    up_bits: Vec<u32>,
    /// exact ties that may go either way: bit pattern and the lower neighbour's code
    either: Vec<(u32, usize)>,
    alpha_bits: u32,
    /// whether `t` is an `f32`
    short_scale: bool,
}

impl MidpointReference {
    fn new(f: FpFormat, alpha: f32) -> Self {
        let s = f.with_maxval(alpha as f64).unwrap();
        let t = s.top_binade_scale();
        let (m, k_max) = (f.mantissa_bits() as i32, f.max_exponent_code() as i32);
        // the grid of x/t, exact dyadic numbers
        let y: Vec<f64> = (0..1i32 << (f.n_bits() - 1))
            .map(|code| {
                let (k, fr) = (code >> m, (code & ((1 << m) - 1)) as f64);
                if k == 0 {
                    fr * 2f64.powi(1 - k_max - m)
                } else {
                    ((1 << m) as f64 + fr) * 2f64.powi(k - k_max - m)
                }
            })
            .collect();
        let pos: Vec<f32> = y.iter().map(|&g| (g * t) as f32).collect();
        if alpha as f64 == f.max_value_default() {
            // the default grid independently from the code layout
            for (code, &v) in pos.iter().enumerate() {
                assert_eq!(v as f64, f.decode_default(code as u32));
            }
        }
        let d = ((1u64 << (m + 1)) - 1) as f64;
        let short_scale = t as f32 as f64 == t;
        let mut either = Vec::new();
        let up_bits = y
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                // the real midpoint is α·n/d
                let n = (w[0] + w[1]) / 2.0 * (1u64 << m) as f64;
                let rounds_up = |x: f32| {
                    let (lhs, rhs) = (x as f64 * d, alpha as f64 * n);
                    lhs > rhs || (lhs == rhs && (i + 1) % 2 == 0)
                };
                let mut c = (alpha as f64 * n / d) as f32;
                while rounds_up(f32::from_bits(c.to_bits() - 1)) {
                    c = f32::from_bits(c.to_bits() - 1);
                }
                while !rounds_up(c) {
                    c = f32::from_bits(c.to_bits() + 1);
                }
                for cand in [c.to_bits() - 1, c.to_bits()] {
                    if !short_scale && f32::from_bits(cand) as f64 * d == alpha as f64 * n {
                        either.push((cand, i));
                    }
                }
                c.to_bits()
            })
            .collect();
        Self {
            alpha_bits: alpha.to_bits(),
            pos,
            up_bits,
            either,
            short_scale,
        }
    }

    /// `Some(want)` when `got` is not an acceptable result for `x`.
    fn check(&self, x: f32, got: f32) -> Option<f32> {
        let want = self.quantize(x);
        if bit_identical(got, want) {
            return None;
        }
        let u = x.to_bits() & 0x7fff_ffff;
        if let Some(&(_, i)) = self.either.iter().find(|&&(b, _)| b == u) {
            if bit_identical(got, self.pos[i].copysign(x)) || bit_identical(got, self.pos[i + 1].copysign(x)) {
                return None;
            }
        }
        Some(want)
    }

    fn quantize(&self, x: f32) -> f32 {
        if x.is_nan() {
            return x;
        }
        // non-negative floats order like their bit patterns
        let u = x.to_bits() & 0x7fff_ffff;
        let v = if u >= self.alpha_bits {
            *self.pos.last().unwrap()
        } else {
            self.pos[self.up_bits.partition_point(|&b| b <= u)]
        };
        v.copysign(x)
    }
}

/// `alpha = None`: the default bias (a power-of-two scale, so every midpoint is an `f32` and
/// exact ties occur); otherwise a maximum whose top-binade scale is not an `f32`.
fn flexible(e: u32, m: u32, alpha_given: Option<f32>) {
    let f = FpFormat::from_exponent_mantissa(e, m, true).unwrap();
    let alpha = alpha_given.unwrap_or(f.max_value_default() as f32);
    let q = FpQuantizer::new(f, alpha as f64).unwrap();
    let r = MidpointReference::new(f, alpha);
    assert_eq!(
        r.short_scale,
        alpha_given.is_none(),
        "the sweep meant for this scale covers the other kernel path"
    );
    let path = if r.short_scale { "f32" } else { "f32, two-f32 scale" };
    assert_eq!(q.arithmetic(), path);
    // sanity of the reference on hand-checked E4M3 values
    if (e, m) == (4, 3) && alpha == 240.0 {
        assert_eq!(r.quantize(1.0625), 1.0);
        assert_eq!(r.quantize(1.1875), 1.25);
        assert_eq!(r.quantize(f32::NEG_INFINITY), -240.0);
        assert_eq!(r.quantize(-2f32.powi(-11)).to_bits(), (-0.0f32).to_bits());
    }
    println!(
        "{} maxval {alpha}: {} exact ties with a non-f32 scale",
        f.name(),
        r.either.len()
    );
    sweep(&format!("{} maxval {alpha}", f.name()), &q, |x, got| r.check(x, got));
}

fn standard(enc: StandardFp8) {
    let q = FpQuantizer::standard(enc, 1.0).unwrap();
    let table: [f32; 256] = std::array::from_fn(|c| enc.decode(c as u8));
    let no_neg_zero = !enc.has_negative_zero();
    sweep(enc.name(), &q, |x, got| {
        let want = table[usize::from(enc.encode(x, Overflow::Saturate))];
        let ok = bit_identical(got, want) || (no_neg_zero && got == 0.0 && want == 0.0);
        (!ok).then_some(want)
    });
}

#[test]
#[ignore = "exhaustive: run in release with --ignored"]
fn sweep_e4m3_default_bias() {
    flexible(4, 3, None);
}

#[test]
#[ignore = "exhaustive: run in release with --ignored"]
fn sweep_e4m3_long_scale() {
    flexible(4, 3, Some(5.3));
}

#[test]
#[ignore = "exhaustive: run in release with --ignored"]
fn sweep_e3m4_long_scale() {
    flexible(3, 4, Some(0.0123));
}

#[test]
#[ignore = "exhaustive: run in release with --ignored"]
fn sweep_e2m5_default_bias() {
    flexible(2, 5, None);
}

#[test]
#[ignore = "exhaustive: run in release with --ignored"]
fn sweep_float8_e4m3fn() {
    standard(StandardFp8::E4M3FN);
}

#[test]
#[ignore = "exhaustive: run in release with --ignored"]
fn sweep_float8_e5m2() {
    standard(StandardFp8::E5M2);
}

#[test]
#[ignore = "exhaustive: run in release with --ignored"]
fn sweep_float8_e4m3fnuz() {
    standard(StandardFp8::E4M3FNUZ);
}

#[test]
#[ignore = "exhaustive: run in release with --ignored"]
fn sweep_float8_e5m2fnuz() {
    standard(StandardFp8::E5M2FNUZ);
}
