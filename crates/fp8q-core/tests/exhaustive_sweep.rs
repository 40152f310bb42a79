//! Exhaustive sweeps over all 2^32 `f32` bit patterns (ignored by default; run with
//! `cargo test --release -p fp8q-core --test exhaustive_sweep -- --ignored --test-threads=1`).
//!
//! * Flexible-bias E4M3 and E2M5 with the default bias: the vectorized kernel against an
//!   independent reference — a binary search of `|x|`'s bit pattern among the bit patterns of the
//!   exact midpoints between neighbouring grid values (all representable in `f32` for these
//!   formats), an exact midpoint going to the value with the even mantissa code; NaN → NaN,
//!   anything at or beyond `α` (±Inf included) → ±α; the sign of `x` is kept (also on zero).
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

/// Quantize every f32 with `q` and compare with `reference`; `accept(got, want)` decides.
fn sweep(name: &str, q: &FpQuantizer, reference: impl Fn(f32) -> f32 + Sync, accept: impl Fn(f32, f32) -> bool + Sync) {
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
                let want = reference(x);
                if !accept(got, want) {
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

/// The independent reference for a default-bias flexible format.
struct MidpointReference {
    /// non-negative grid, ascending; index = code
    pos: Vec<f32>,
    /// bit patterns of the midpoints between pos[i] and pos[i+1]
    mid_bits: Vec<u32>,
    alpha_bits: u32,
}

impl MidpointReference {
    fn new(f: FpFormat) -> Self {
        let pos: Vec<f32> = f
            .with_default_bias()
            .positive_grid()
            .into_iter()
            .map(|v| {
                assert_eq!(v as f32 as f64, v, "grid value {v} is not an f32");
                v as f32
            })
            .collect();
        assert_eq!(pos.len(), 1 << (f.n_bits() - 1));
        // the grid independently from the code layout
        for (code, &v) in pos.iter().enumerate() {
            assert_eq!(v as f64, f.decode_default(code as u32));
        }
        let mid_bits = pos
            .windows(2)
            .map(|w| {
                let mid = (w[0] as f64 + w[1] as f64) / 2.0;
                assert_eq!(mid as f32 as f64, mid, "midpoint {mid} is not an f32");
                (mid as f32).to_bits()
            })
            .collect();
        Self {
            alpha_bits: pos.last().unwrap().to_bits(),
            pos,
            mid_bits,
        }
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
            let i = self.mid_bits.partition_point(|&m| m < u);
            if i < self.mid_bits.len() && self.mid_bits[i] == u {
                // an exact tie between pos[i] and pos[i+1]: the even code wins
                self.pos[if i % 2 == 0 { i } else { i + 1 }]
            } else {
                self.pos[i]
            }
        };
        v.copysign(x)
    }
}

fn flexible(e: u32, m: u32) {
    let f = FpFormat::from_exponent_mantissa(e, m, true).unwrap();
    let q = FpQuantizer::new(f, f.max_value_default()).unwrap();
    let r = MidpointReference::new(f);
    // sanity of the reference on hand-checked E4M3 values
    if (e, m) == (4, 3) {
        assert_eq!(r.quantize(1.0625), 1.0);
        assert_eq!(r.quantize(1.1875), 1.25);
        assert_eq!(r.quantize(f32::NEG_INFINITY), -240.0);
        assert_eq!(r.quantize(-2f32.powi(-11)).to_bits(), (-0.0f32).to_bits());
    }
    sweep(&f.name(), &q, |x| r.quantize(x), bit_identical);
}

fn standard(enc: StandardFp8) {
    let q = FpQuantizer::standard(enc, 1.0).unwrap();
    let table: [f32; 256] = std::array::from_fn(|c| enc.decode(c as u8));
    let no_neg_zero = !enc.has_negative_zero();
    sweep(
        enc.name(),
        &q,
        |x| table[usize::from(enc.encode(x, Overflow::Saturate))],
        |got, want| bit_identical(got, want) || (no_neg_zero && got == 0.0 && want == 0.0),
    );
}

#[test]
#[ignore = "exhaustive: run in release with --ignored"]
fn sweep_e4m3_default_bias() {
    flexible(4, 3);
}

#[test]
#[ignore = "exhaustive: run in release with --ignored"]
fn sweep_e2m5_default_bias() {
    flexible(2, 5);
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
