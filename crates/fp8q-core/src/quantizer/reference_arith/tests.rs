//! Tests of the reference-arithmetic kernel against independent models: fp8q's exact FP
//! quantizer where the reference's bias is an integer, a naive threshold count elsewhere, and
//! autograd's formulas written out per case.

// one tail range is a slice of one `Range`, not a mistaken range of indices
#![allow(clippy::single_range_in_vec_init)]

use super::*;
use crate::format::FpFormat;
use crate::quantizer::FpQuantizer;
use std::ops::Range;

/// Elements per parallel task in `passes.rs` (inputs longer than this cross task boundaries).
const CHUNK: usize = 1 << 15;

/// `2^e` as an `f32` (exact for every exponent an `f32` represents).
fn pow2(e: i32) -> f32 {
    2f64.powi(e) as f32
}

/// A hash of `i`: deterministic pseudo-random bits (splitmix64).
fn hash(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform value in `[0, 1)` from `hash(i)`.
fn unit(i: u64) -> f32 {
    (hash(i) >> 40) as f32 / (1u64 << 24) as f32
}

/// One channel's tables for the reference's formula with `M` mantissa bits, `E` exponent bits and
/// an integer bias `b`: `log2` is exact at the thresholds `2^(k - b)` and the scales
/// `2^(k - M - b)` are powers of two. Returns `(maxval, thresholds, scales)`.
fn integer_bias_tables(m: i32, e: i32, b: i32) -> (f32, Vec<u32>, Vec<f32>) {
    let binades = (1 << e) - 1; // k = 1 ..= 2^E - 1
    let thresholds = (2..=binades).map(|k| pow2(k - b).to_bits()).collect();
    let scales = (1..=binades).map(|k| pow2(k - m - b)).collect();
    let maxval = ((2.0 - 2f64.powi(-m)) * 2f64.powi(binades - b)) as f32;
    (maxval, thresholds, scales)
}

/// Inputs for a channel with maximum `maxval` and scales `scales`: every grid value and midpoint
/// (both signs), values beyond the range, random values in and around the range and random bit
/// patterns (subnormals, infinities, NaNs).
fn inputs(maxval: f32, scales: &[f32], m: i32, seed: u64, random: usize) -> Vec<f32> {
    let mut v = vec![0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, maxval, -maxval];
    v.extend([f32::MAX, f32::MIN_POSITIVE, 1e-45, maxval * 1.5, -maxval * 4.0]);
    for &s in scales {
        for j in 0..(2 << m) {
            for x in [j as f32 * s, (j as f32 + 0.5) * s] {
                v.extend([x, -x]);
            }
        }
    }
    for i in 0..random as u64 {
        let u = unit(seed ^ (i << 1)) * 2.4 - 1.2;
        v.push(u * maxval);
        v.push(f32::from_bits(hash(seed ^ (i << 1 | 1)) as u32));
    }
    v
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn forward_vec(x: &[f32], t: TableSlices<'_>, tails: ScalarTails<'_>) -> Vec<f32> {
    let tables = ReferenceTables::new(x.len(), t, tails).unwrap();
    let mut out = vec![f32::NAN; x.len()];
    forward(x, &mut out, &tables).unwrap();
    out
}

/// All four gradients of a backward pass.
fn backward_vecs(x: &[f32], g: &[f32], t: TableSlices<'_>, tails: ScalarTails<'_>) -> [Vec<f32>; 4] {
    let tables = ReferenceTables::new(x.len(), t, tails).unwrap();
    let mut o: [Vec<f32>; 4] = std::array::from_fn(|_| vec![f32::NAN; x.len()]);
    let [a, b, c, d] = &mut o;
    let grads = Gradients {
        x: Some(a),
        lo: Some(b),
        hi: Some(c),
        neg_exponent: Some(d),
    };
    backward(x, g, grads, &tables).unwrap();
    o
}

#[test]
fn per_tensor_integer_bias_equals_the_exact_fp_quantizer() {
    for (m, e) in [(3, 4), (2, 5), (4, 3), (1, 2), (5, 2)] {
        for b in [-100, -3, 0, 1, 7, 11, 20, 140] {
            if (1 << e) - 1 - b > 126 {
                continue; // maxval beyond f32
            }
            let (maxval, thr, scales) = integer_bias_tables(m, e, b);
            let q = FpQuantizer::new(
                FpFormat::new((1 + e + m) as u32, m as u32, true).unwrap(),
                maxval as f64,
            )
            .unwrap();
            let x = inputs(maxval, &scales, m, (m * 1000 + b) as u64, 40_000);
            let t = TableSlices {
                lo: &[-maxval],
                hi: &[maxval],
                thresholds: &thr,
                vector_scales: &scales,
                scalar_scales: &scales,
            };
            let out = forward_vec(&x, t, ScalarTails::default());
            for (&v, &o) in x.iter().zip(&out) {
                let want = q.quantize_value(v);
                assert!(
                    same(o, want),
                    "E{e}M{m} b = {b}: q({v:e}) = {o:e}, the FP quantizer gives {want:e}"
                );
            }
        }
    }
}

#[test]
fn per_channel_integer_bias_equals_the_exact_fp_quantizer() {
    let (m, e) = (3, 4);
    let biases = [-5, 0, 3, 7, 8, 11, 19];
    let per = 9_001; // channels and tasks of 2^15 elements have unaligned boundaries
    let (mut lo, mut hi, mut thr, mut sc, mut x, mut want) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (c, &b) in biases.iter().enumerate() {
        let (maxval, t, s) = integer_bias_tables(m, e, b);
        let q = FpQuantizer::new(FpFormat::new(8, 3, true).unwrap(), maxval as f64).unwrap();
        let mut xs = inputs(maxval, &s, m, c as u64, per);
        xs.truncate(per);
        want.extend(xs.iter().map(|&v| q.quantize_value(v)));
        x.extend(xs);
        lo.push(-maxval);
        hi.push(maxval);
        thr.extend(t);
        sc.extend(s);
    }
    let t = TableSlices {
        lo: &lo,
        hi: &hi,
        thresholds: &thr,
        vector_scales: &sc,
        scalar_scales: &sc,
    };
    let out = forward_vec(&x, t, ScalarTails::default());
    for (i, (&o, &w)) in out.iter().zip(&want).enumerate() {
        assert!(same(o, w), "element {i} (channel {}): {o:e} != {w:e}", i / per);
    }
}

/// The reference's formula with the binade counted naively: `k = 1 + #{thresholds <= |xc|}`.
fn naive_forward(x: f32, lo: f32, hi: f32, thr: &[u32], scales: &[f32]) -> f32 {
    let y1 = if x.is_nan() || x > lo { x } else { lo };
    let xc = if y1.is_nan() || y1 < hi { y1 } else { hi };
    if xc.is_nan() {
        return xc;
    }
    let a = xc.abs();
    let k = 1 + thr.iter().filter(|&&t| f32::from_bits(t) <= a && a > 0.0).count();
    let s = scales[k - 1];
    (xc / s).round_ties_even() * s
}

#[test]
fn binade_lookup_equals_a_naive_threshold_count() {
    let mut searched = 0;
    // random thresholds: spread over the whole f32 range (subnormal to beyond f32::MAX), or
    // crowded into a few binades (several thresholds per slot: the searched path); scales are
    // arbitrary positive values
    for case in 0..40u64 {
        let k = 1 + (hash(case) % 40) as usize;
        let crowded = case % 2 == 1;
        let mut thr: Vec<u32> = (0..k as u64 - 1)
            .map(|i| {
                let h = hash(case << 20 | i) as u32;
                if crowded {
                    1.0f32.to_bits() + (h >> 9) // within [1, 2^64)
                } else {
                    1 + h % 0x7fa0_0000 // up to beyond +inf's pattern
                }
            })
            .collect();
        thr.sort_unstable();
        let scales: Vec<f32> = (0..k as u64)
            .map(|i| pow2((hash(case ^ i << 8) % 60) as i32 - 30) * (0.6 + unit(i)))
            .collect();
        let hi = pow2((hash(case + 7) % 120) as i32 - 60) * (1.0 + unit(case));
        let lo = if case % 3 == 0 { 0.0 } else { -hi * 0.75 };
        let mut x: Vec<f32> = (0..50_000u64)
            .map(|i| {
                let h = hash(case << 32 | i);
                if i % 2 == 0 {
                    f32::from_bits(h as u32)
                } else {
                    (unit(h) * 2.4 - 1.2) * hi
                }
            })
            .collect();
        x.extend(
            thr.iter()
                .flat_map(|&t| [f32::from_bits(t), f32::from_bits(t.saturating_sub(1))]),
        );
        let t = TableSlices {
            lo: &[lo],
            hi: &[hi],
            thresholds: &thr,
            vector_scales: &scales,
            scalar_scales: &scales,
        };
        searched += usize::from(!channel::Channel::new(lo, hi, &thr, &scales, &scales).simple);
        let out = forward_vec(&x, t, ScalarTails::default());
        for (&v, &o) in x.iter().zip(&out) {
            let want = naive_forward(v, lo, hi, &thr, &scales);
            assert!(same(o, want), "case {case}: q({v:e}) = {o:e}, want {want:e}");
        }
    }
    assert!(searched >= 10, "only {searched} cases take the searched path");
}

/// Two channels of 3 binades; the scalar scales differ from the vector ones.
const LO: [f32; 2] = [-6.0, -12.0];
const HI: [f32; 2] = [6.0, 12.0];
const THR: [u32; 4] = [0x4000_0000, 0x4080_0000, 0x4080_0000, 0x4100_0000]; // [2, 4], [4, 8]
const VECTOR: [f32; 6] = [0.5, 1.0, 2.0, 1.0, 2.0, 4.0];
const SCALAR: [f32; 6] = [0.375, 0.75, 1.5, 0.75, 1.5, 3.0];

fn slices<'a>(vector: &'a [f32], scalar: &'a [f32]) -> TableSlices<'a> {
    TableSlices {
        lo: &LO,
        hi: &HI,
        thresholds: &THR,
        vector_scales: vector,
        scalar_scales: scalar,
    }
}

fn in_ranges(i: usize, r: &[Range<usize>]) -> bool {
    r.iter().any(|r| r.contains(&i))
}

#[test]
fn pow_tails_use_the_scalar_scales_exactly_there() {
    let n = 2 * (CHUNK + 4321);
    let x: Vec<f32> = (0..n as u64).map(|i| (unit(i) * 2.0 - 1.0) * 13.0).collect();
    let g: Vec<f32> = (0..n as u64).map(|i| unit(i + n as u64) * 4.0 - 2.0).collect();
    // overlapping, unsorted, empty and channel-crossing ranges
    let pow = [n - 9..n, 0..3, 40..40, CHUNK + 4316..CHUNK + 4330, 1..5, 1000..1001];
    let tails = ScalarTails {
        pow: &pow,
        maximum: &[],
    };
    let mixed = forward_vec(&x, slices(&VECTOR, &SCALAR), tails);
    let vector = forward_vec(&x, slices(&VECTOR, &VECTOR), ScalarTails::default());
    let scalar = forward_vec(&x, slices(&SCALAR, &SCALAR), ScalarTails::default());
    let mut differ = 0;
    for i in 0..n {
        let want = if in_ranges(i, &pow) { scalar[i] } else { vector[i] };
        assert!(same(mixed[i], want), "forward, element {i}");
        differ += usize::from(!same(scalar[i], vector[i]) && in_ranges(i, &pow));
    }
    assert!(
        differ > 10,
        "the two tables must differ on the tails for this test to mean anything"
    );

    let mixed = backward_vecs(&x, &g, slices(&VECTOR, &SCALAR), tails);
    let vector = backward_vecs(&x, &g, slices(&VECTOR, &VECTOR), ScalarTails::default());
    let scalar = backward_vecs(&x, &g, slices(&SCALAR, &SCALAR), ScalarTails::default());
    for o in 0..4 {
        for i in 0..n {
            let want = if in_ranges(i, &pow) { scalar[o][i] } else { vector[o][i] };
            assert!(same(mixed[o][i], want), "gradient {o}, element {i}");
        }
    }
}

#[test]
fn max_tails_let_a_negative_zero_through_exactly_there() {
    // maximum(-0.0, +0.0): torch's vector loop gives lo = +0.0, its scalar loop x = -0.0
    let n = CHUNK + 100;
    let x = vec![-0.0f32; n];
    let maximum = [7..9, CHUNK - 1..CHUNK + 2];
    let tails = ScalarTails {
        pow: &[],
        maximum: &maximum,
    };
    let t = TableSlices {
        lo: &[0.0],
        hi: &[6.0],
        thresholds: &[0x4000_0000, 0x4080_0000],
        vector_scales: &[0.5, 1.0, 2.0],
        scalar_scales: &[0.5, 1.0, 2.0],
    };
    let out = forward_vec(&x, t, tails);
    for (i, o) in out.iter().enumerate() {
        assert_eq!(
            o.to_bits(),
            if in_ranges(i, &maximum) { 0x8000_0000 } else { 0 },
            "element {i}"
        );
    }
}

/// One channel clamped to `[lo, hi]` with the single scale `s` (no thresholds).
fn one_scale<'a>(lo: &'a [f32], hi: &'a [f32], s: &'a [f32]) -> TableSlices<'a> {
    TableSlices {
        lo,
        hi,
        thresholds: &[],
        vector_scales: s,
        scalar_scales: s,
    }
}

#[test]
fn the_x_gradient_is_g_times_s_over_s() {
    // g * s rounds (underflow into the subnormals) or overflows, so (g * s) / s != g
    for (s, gs) in [
        (pow2(-140), [1.2345e-3f32, -7.77e-5, 3.0]),
        (pow2(100), [1e10, -3e9, 0.5]),
    ] {
        let x = [0.5f32, -0.25, 0.125];
        let [gx, ..] = backward_vecs(&x, &gs, one_scale(&[-1.0], &[1.0], &[s]), ScalarTails::default());
        for i in 0..3 {
            let want = (gs[i] * s) / s;
            assert!(same(gx[i], want), "s = {s:e}, g = {:e}: {:e} != {want:e}", gs[i], gx[i]);
        }
        assert!(
            gx[0] != gs[0] && gx[1] != gs[1],
            "the case must tell (g * s) / s from g"
        );
    }
}

#[test]
fn ties_of_minimum_and_maximum_split_the_gradient_in_half() {
    let x = [4.0f32, -4.0, 5.0, -5.0, 1.3, f32::NAN];
    let g = [3.0f32; 6];
    let [gx, glo, ghi, ngt] = backward_vecs(&x, &g, one_scale(&[-4.0], &[4.0], &[1.0]), ScalarTails::default());
    assert_eq!(gx[..5], [1.5, 1.5, 0.0, 0.0, 3.0]);
    assert_eq!(glo[..5], [0.0, 1.5, 0.0, 3.0, 0.0]);
    assert_eq!(ghi[..5], [1.5, 0.0, 3.0, 0.0, 0.0]);
    // pow's exponent: d s = g * r - g * s * (q / s) with r = round(q), q = xc / s; d t = d s * s * ln 2
    let ln2 = std::f64::consts::LN_2 as f32;
    let ds = 3.0f32 * 1.0 + (-3.0f32) * 1.3;
    assert_eq!(ngt[4], -(ds * ln2));
    assert_eq!(ngt[2], -((3.0f32 * 4.0 + (-3.0f32) * 4.0) * ln2)); // clamped: r = q
    assert!(
        gx[5].is_nan() && ngt[5].is_nan(),
        "a NaN input has a NaN scale, so NaN gradients"
    );
}

#[test]
fn outputs_left_out_do_not_change_the_others() {
    let n = 3 * CHUNK + 18;
    let x: Vec<f32> = (0..n as u64).map(|i| (unit(i) * 2.0 - 1.0) * 13.0).collect();
    let g: Vec<f32> = (0..n as u64).map(|i| unit(i + 99) - 0.5).collect();
    let pow = [5..70, n - 3..n];
    let tails = ScalarTails {
        pow: &pow,
        maximum: &pow,
    };
    let all = backward_vecs(&x, &g, slices(&VECTOR, &SCALAR), tails);
    let tables = ReferenceTables::new(n, slices(&VECTOR, &SCALAR), tails).unwrap();
    for keep in 0..4 {
        let mut out = vec![f32::NAN; n];
        let mut grads = Gradients::default();
        *[&mut grads.x, &mut grads.lo, &mut grads.hi, &mut grads.neg_exponent][keep] = Some(&mut out);
        backward(&x, &g, grads, &tables).unwrap();
        assert!(
            out.iter().zip(&all[keep]).all(|(a, b)| same(*a, *b)),
            "output {keep} alone"
        );
    }
    backward(&x, &g, Gradients::default(), &tables).unwrap();
}

#[test]
fn inconsistent_tables_and_buffers_are_errors() {
    use ReferenceArithError as E;
    let ok = slices(&VECTOR, &SCALAR);
    let none = ScalarTails::default();
    let err = |t: TableSlices<'_>, n: usize, tails: ScalarTails<'_>| ReferenceTables::new(n, t, tails).unwrap_err();
    assert_eq!(
        err(TableSlices { lo: &[], hi: &[], ..ok }, 10, none),
        E::InconsistentChannels
    );
    assert_eq!(err(TableSlices { hi: &[1.0], ..ok }, 10, none), E::InconsistentChannels);
    assert_eq!(
        err(
            TableSlices {
                thresholds: &THR[..3],
                ..ok
            },
            10,
            none
        ),
        E::InconsistentChannels
    );
    assert_eq!(
        err(
            TableSlices {
                vector_scales: &VECTOR[..5],
                ..ok
            },
            10,
            none
        ),
        E::InconsistentChannels
    );
    assert_eq!(
        err(
            TableSlices {
                scalar_scales: &SCALAR[..4],
                ..ok
            },
            10,
            none
        ),
        E::InconsistentChannels
    );
    assert_eq!(err(TableSlices { thresholds: &[], ..ok }, 10, none), E::ScaleCount);
    assert_eq!(
        err(
            TableSlices {
                vector_scales: &VECTOR[..4],
                scalar_scales: &SCALAR[..4],
                ..ok
            },
            10,
            none
        ),
        E::ScaleCount
    );
    assert_eq!(
        err(ok, 11, none),
        E::ChannelSplit {
            elements: 11,
            channels: 2
        }
    );
    let down = [THR[0], THR[1], THR[3], THR[2]];
    assert_eq!(
        err(
            TableSlices {
                thresholds: &down,
                ..ok
            },
            10,
            none
        ),
        E::DecreasingThresholds { channel: 1 }
    );
    let tail_err = |pow: &[Range<usize>], maximum: &[Range<usize>]| err(ok, 10, ScalarTails { pow, maximum });
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 6..5;
    assert_eq!(
        tail_err(&[0..2, backwards], &[]),
        E::TailOutOfRange {
            which: "pow tails",
            start: 6,
            end: 5,
            elements: 10
        }
    );
    assert_eq!(
        tail_err(&[], &[9..11]),
        E::TailOutOfRange {
            which: "max tails",
            start: 9,
            end: 11,
            elements: 10
        }
    );
    assert!(ReferenceTables::new(
        10,
        ok,
        ScalarTails {
            pow: &[0..10],
            maximum: &[10..10]
        }
    )
    .is_ok());

    // the messages fp8q.torch shows
    assert_eq!(
        E::InconsistentChannels.to_string(),
        "reference tables: inconsistent channel counts"
    );
    assert_eq!(
        err(ok, 11, none).to_string(),
        "reference tables: 11 elements do not split into 2 channels"
    );
    assert_eq!(
        tail_err(&[], &[9..11]).to_string(),
        "max tails: range 9..11 is outside 0..10"
    );

    let tables = ReferenceTables::new(10, ok, none).unwrap();
    let (x, mut out) = ([1.0f32; 10], [0.0f32; 11]);
    assert_eq!(
        forward(&x[..9], &mut out[..9], &tables),
        Err(E::ElementCount { got: 9, expected: 10 })
    );
    assert_eq!(forward(&x, &mut out, &tables), Err(E::Length { what: "out" }));
    assert_eq!(
        backward(&x, &x[..9], Gradients::default(), &tables),
        Err(E::Length { what: "g" })
    );
    let grads = Gradients {
        hi: Some(&mut out),
        ..Default::default()
    };
    let e = backward(&x, &x, grads, &tables).unwrap_err();
    assert_eq!(e.to_string(), "outputs must have as many elements as x");
}
