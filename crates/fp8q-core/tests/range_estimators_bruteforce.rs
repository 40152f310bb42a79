//! The MSE and line-search estimators against a brute-force search written independently here,
//! on cases the golden file does not cover: INT quantizers, per-channel data, several batches,
//! and unsigned FP ranges.

use fp8q_core::format::{FpFormat, IntFormat, IntKind};
use fp8q_core::quantizer::QuantMethod;
use fp8q_core::range::{RangeEstimator, RangeMethod};

/// Deterministic pseudo-random data with per-channel scales.
fn data(channels: usize, per: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..channels * per)
        .map(|i| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5;
            let scale = 0.5 + (i / per) as f32;
            u * u * u.signum() * 8.0 * scale
        })
        .collect()
}

/// Slow squared error of rounding onto an explicit grid (nearest value; ties either way).
fn sse_on_grid(x: &[f32], grid: &[f64]) -> f64 {
    x.iter()
        .map(|&v| {
            let v = v as f64;
            grid.iter().map(|g| (g - v).powi(2)).fold(f64::INFINITY, f64::min)
        })
        .sum()
}

fn int_grid(alpha: f32) -> Vec<f64> {
    let d = (alpha / 127.0) as f64;
    (-128..=127).map(|k| k as f64 * d).collect()
}

#[test]
fn mse_estimator_with_int8_per_channel_picks_the_best_candidate() {
    let (channels, per) = (3, 400);
    let batches = [data(channels, per, 1), data(channels, per, 2)];
    let mut method = QuantMethod::Int(IntFormat::new(8, IntKind::Symmetric).unwrap());
    let mut est = RangeEstimator::new(RangeMethod::Mse { mantissa_search: false }, true);
    let mut got = None;
    for b in &batches {
        got = Some(est.update(b, channels, &mut method).unwrap());
    }
    let got = got.unwrap();
    for c in 0..channels {
        // candidates from the first batch, errors summed over both batches (as means)
        let first = &batches[0][c * per..(c + 1) * per];
        let a = first.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        let errs: Vec<f64> = (0..111)
            .map(|i| {
                let alpha = (0.1 * a + (1.1 * a) * i as f64 / 110.0) as f32;
                let grid = int_grid(alpha);
                batches
                    .iter()
                    .map(|b| sse_on_grid(&b[c * per..(c + 1) * per], &grid) / per as f64)
                    .sum()
            })
            .collect();
        let best = errs.iter().cloned().fold(f64::INFINITY, f64::min);
        // the chosen candidate must be optimal up to float noise of the two error computations
        let chosen = got.max[c] as f64;
        let i = ((chosen - 0.1 * a) / (1.1 * a) * 110.0).round() as usize;
        assert!(
            errs[i] <= best * (1.0 + 1e-9),
            "channel {c}: chose candidate {i} with {} > best {best}",
            errs[i]
        );
        assert_eq!(got.min[c], -got.max[c]);
    }
}

#[test]
fn mse_mantissa_search_finds_the_best_split_for_every_channel_alike() {
    // identical channels: the vote is unanimous, and the chosen split must be the best one
    let per = 300;
    let one = data(1, per, 7);
    let x: Vec<f32> = one.iter().chain(&one).chain(&one).copied().collect();
    let mut method = QuantMethod::Fp {
        n_bits: 8,
        mantissa_bits: 3,
        allow_unsigned: false,
    };
    let mut est = RangeEstimator::new(RangeMethod::Mse { mantissa_search: true }, true);
    let r = est.update(&x, 3, &mut method).unwrap();
    let a = one.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
    let mut best = (f64::INFINITY, 0u32, 0.0f32);
    for m in 1..=6u32 {
        for i in 0..111 {
            let alpha = (0.1 * a + 1.1 * a * i as f64 / 110.0) as f32;
            let grid = FpFormat::new(8, m, true)
                .unwrap()
                .with_maxval(alpha as f64)
                .unwrap()
                .grid();
            let e = sse_on_grid(&one, &grid);
            if e < best.0 * (1.0 - 1e-12) {
                best = (e, m, alpha);
            }
        }
    }
    assert_eq!(method.mantissa_bits(), Some(best.1));
    assert!(r.max.iter().all(|&v| v == r.max[0]));
    assert!((r.max[0] - best.2).abs() <= 1e-6 * best.2, "{} vs {}", r.max[0], best.2);
}

#[test]
fn mse_with_unsigned_fp_searches_one_sided_ranges() {
    let x: Vec<f32> = data(1, 500, 3).iter().map(|v| v.abs()).collect();
    let mut method = QuantMethod::Fp {
        n_bits: 8,
        mantissa_bits: 4,
        allow_unsigned: true,
    };
    let mut est = RangeEstimator::new(RangeMethod::Mse { mantissa_search: true }, false);
    let r = est.update(&x, 1, &mut method).unwrap();
    assert_eq!(r.min[0], 0.0);
    // the search covers m = 1..=6 as for signed slots (the reference bounds it by the sign bit
    // the quantizer has before this first batch: signed)
    let m = method.mantissa_bits().unwrap();
    assert!((1..=6).contains(&m));
    let q = r.quantizers(&method).unwrap();
    let mut y = x.clone();
    q[0].quantize_inplace(&mut y);
    assert!(y.iter().all(|v| *v >= 0.0));
}

/// Uniform non-negative data would be best served by the unsigned E1M7 grid (256 evenly spaced
/// values), but the reference never tries m = 7 in 8 bits: its search list is built from the
/// quantizer's sign bit before the first range is set, and quantizers start signed. So the
/// search stops at m = 6 (found by `tools/reference_diff.py` on ReLU outputs with
/// `--act-quant-method MSE --fp8-allow-unsigned`), and a second batch keeps the same list.
#[test]
fn mse_with_unsigned_fp_searches_the_signed_mantissa_counts_like_the_reference() {
    let uniform = |seed: u64| -> Vec<f32> {
        let mut s = seed;
        (0..4000)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    };
    let mut method = QuantMethod::Fp {
        n_bits: 8,
        mantissa_bits: 4,
        allow_unsigned: true,
    };
    let mut est = RangeEstimator::new(RangeMethod::Mse { mantissa_search: true }, false);
    for seed in [1, 2] {
        let r = est.update(&uniform(seed), 1, &mut method).unwrap();
        assert_eq!(r.min[0], 0.0);
        assert_eq!(method.mantissa_bits(), Some(6), "batch {seed}");
    }
}

#[test]
fn line_search_per_channel_matches_brute_force() {
    let (channels, per) = (2, 300);
    let x = data(channels, per, 11);
    let mut method = QuantMethod::Int(IntFormat::new(8, IntKind::Symmetric).unwrap());
    let mut est = RangeEstimator::new(
        RangeMethod::LineSearch {
            num_candidates: 200,
            range_margin: 0.5,
        },
        true,
    );
    let r = est.update(&x, channels, &mut method).unwrap();
    let t = x.iter().fold(0.0f32, |m, v| m.max(v.abs())) + 0.5;
    let h = 10.0 * t as f64 / 200.0;
    for c in 0..channels {
        let ch = &x[c * per..(c + 1) * per];
        let errs: Vec<f64> = (1..=200)
            .map(|i| sse_on_grid(ch, &int_grid((h * i as f64) as f32)))
            .collect();
        let best = errs.iter().cloned().fold(f64::INFINITY, f64::min);
        let i = (r.max[c] as f64 / h).round() as usize;
        assert!(errs[i - 1] <= best * (1.0 + 1e-9), "channel {c}");
    }
}
