//! The empirical law of a tensor's values, summarized in one streaming pass so that the
//! expected rounding error of *any* grid can be computed afterwards (`docs/analyze.md`, "The
//! prediction"):
//!
//! * exact zeros (and values more than [`SPAN_OCTAVES`] octaves below the largest magnitude,
//!   which every grid here rounds to zero with an error below `2^-80` of the range squared);
//! * the counts of the magnitudes of each sign in bins of `1/16` octave (the bin of `|x|` is its
//!   `f32` exponent and top four mantissa bits, so the bins are exact `f32` intervals);
//! * the [`TOP`] distinct values of largest magnitude, exactly, with how often each occurs: in a
//!   heavy-tailed tensor these few values sit alone in their bins, a min–max range puts the
//!   largest of them on the grid, and a clipped activation (ReLU6) holds its bound many times.
//!
//! The expected squared error of rounding to a grid ([`MagnitudeHistogram::sum_sq_error`]) is
//! exact for the zeros and the top values, and, for the rest, the error of values spread
//! uniformly over their bin: the bins are narrow (4.4% of a magnitude), so where a grid's cells
//! are finer than a bin each cell sees a locally flat density (the error is the cells' own), and
//! where they are coarser the bins resolve the density. Unlike a fitted shape (the kurtosis fit
//! of [`super::fit`]), nothing is assumed about the tails: a Gaussian bulk with a handful of
//! values at 100 σ is described as it is.
//!
//! Memory is bounded: at most `2 · 16 · SPAN_OCTAVES` counts and [`TOP`] values per histogram,
//! whatever the tensor's size; histograms merge, so batches and chunks are summarized apart.

use super::fit::quantizer_grid;
use super::AnalysisError;
use crate::quantizer::QuantMethod;
use crate::range::Range;
use rayon::prelude::*;

/// Bits of the `f32` mantissa in a bin's key: `2^4 = 16` bins per octave.
pub const SUB_OCTAVE_BITS: u32 = 4;

/// Octaves of bins kept below the largest magnitude.
pub const SPAN_OCTAVES: u32 = 40;

/// Distinct values of largest magnitude kept exactly.
pub const TOP: usize = 32;

const SPAN_BINS: u32 = SPAN_OCTAVES << SUB_OCTAVE_BITS;

/// The bin key of a finite non-zero magnitude's bits.
#[inline]
fn key_of(abs_bits: u32) -> u32 {
    abs_bits >> (23 - SUB_OCTAVE_BITS)
}

/// The bits of `|v|`.
#[inline]
fn mag(v: f32) -> u32 {
    v.to_bits() & 0x7fff_ffff
}

/// The magnitudes `[a, b)` of a bin.
fn bin_bounds(key: u32) -> (f64, f64) {
    let shift = 23 - SUB_OCTAVE_BITS;
    let a = f32::from_bits(key << shift) as f64;
    // the last key's upper bound is +Inf's pattern: the largest finite f32 is below it
    let b = if key + 1 >= (0x7f80_0000 >> shift) {
        f32::MAX as f64
    } else {
        f32::from_bits((key + 1) << shift) as f64
    };
    (a, b)
}

/// A tensor's (or a channel's) values summarized (see the module's documentation).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MagnitudeHistogram {
    /// Exact zeros, and magnitudes too small for the span.
    zeros: u64,
    /// The key of the first bin (`counts[0]`).
    lo: u32,
    /// Counts of positive values, per bin from `lo`.
    pos: Vec<u64>,
    /// Counts of negative values, per bin from `lo`.
    neg: Vec<u64>,
    /// The distinct values of largest magnitude (at most [`TOP`]) and how often each was seen
    /// since it became one of them (every occurrence is also counted in the bins).
    top: Vec<(f32, u64)>,
    /// Finite values summarized.
    n: u64,
}

impl MagnitudeHistogram {
    /// The histogram of `x` (NaN and ±Inf are left out), serially.
    pub fn of(x: &[f32]) -> Self {
        // count every value by sign and key (key 0 holds the zeros and the smallest f32
        // subnormals; the non-finite keys are dropped), then keep the span below the largest
        const KEYS: usize = 1 << (8 + SUB_OCTAVE_BITS);
        let mut counts = vec![0u64; 2 * KEYS];
        let mut h = MagnitudeHistogram::default();
        // two tables of u32 counts, alternating between elements so that a run of values in one
        // bin does not chain every increment on the last (added up per piece of 2^30 values)
        let mut even = vec![0u32; 2 * KEYS];
        let mut odd = vec![0u32; 2 * KEYS];
        let slot = |v: f32| {
            let bits = v.to_bits();
            ((bits >> 31) as usize) * KEYS + key_of(bits & 0x7fff_ffff) as usize
        };
        for piece in x.chunks(1 << 30) {
            let pairs = piece.chunks_exact(2);
            if let [v] = pairs.remainder() {
                even[slot(*v)] += 1;
            }
            for p in pairs {
                even[slot(p[0])] += 1;
                odd[slot(p[1])] += 1;
            }
            for ((c, e), o) in counts.iter_mut().zip(&mut even).zip(&mut odd) {
                *c += u64::from(*e) + u64::from(*o);
                (*e, *o) = (0, 0);
            }
        }
        let mut top_min = 0u32; // the smallest magnitude (bits) in a full `top`
        for &v in x {
            let a = v.to_bits() & 0x7fff_ffff;
            if a >= top_min && a < 0x7f80_0000 && a != 0 {
                h.push_top(v, 1);
                if h.top.len() == TOP {
                    top_min = mag(h.top[0].0);
                }
            }
        }
        let finite = key_of(0x7f80_0000) as usize;
        let (pos, neg) = counts.split_at(KEYS);
        let live = |k: usize| k > 0 && (pos[k] > 0 || neg[k] > 0);
        h.zeros = pos[0] + neg[0];
        h.n = h.zeros;
        if let Some(kmax) = (1..finite).rev().find(|&k| live(k)) {
            let kmin = (1..=kmax).find(|&k| live(k)).expect("kmax is live");
            let lo = kmin.max(kmax.saturating_sub(SPAN_BINS as usize - 1));
            for k in kmin..lo {
                h.zeros += pos[k] + neg[k];
            }
            h.lo = lo as u32;
            h.pos = pos[lo..=kmax].to_vec();
            h.neg = neg[lo..=kmax].to_vec();
            h.n = h.zeros + h.pos.iter().chain(&h.neg).sum::<u64>();
        }
        // a value in key 0 (or below the span) is a zero, not a top value
        let lo = h.lo;
        h.top.retain(|(t, _)| {
            let k = key_of(mag(*t));
            k > 0 && k >= lo
        });
        h
    }

    /// The histogram of `x`, in parallel chunks merged.
    pub fn of_parallel(x: &[f32]) -> Self {
        x.par_chunks(1 << 16)
            .map(MagnitudeHistogram::of)
            .reduce(MagnitudeHistogram::default, |a, b| a.merge(&b))
    }

    /// One histogram per index of dimension 0 of `x` (`channels` rows, row-major).
    pub fn of_channels(x: &[f32], channels: usize) -> Vec<Self> {
        let len = x.len() / channels.max(1);
        if len == 0 {
            return vec![MagnitudeHistogram::default(); channels];
        }
        x.par_chunks(len).map(MagnitudeHistogram::of).collect()
    }

    /// Count `n` occurrences of `v` in `top` (kept sorted by magnitude, smallest first, at most
    /// [`TOP`] distinct values).
    fn push_top(&mut self, v: f32, n: u64) {
        let at = self.top.partition_point(|(t, _)| mag(*t) < mag(v));
        if let Some((_, c)) = self.top[at..]
            .iter_mut()
            .take_while(|(t, _)| mag(*t) == mag(v))
            .find(|(t, _)| t.to_bits() == v.to_bits())
        {
            *c += n;
            return;
        }
        self.top.insert(at, (v, n));
        if self.top.len() > TOP {
            self.top.remove(0);
        }
    }

    /// Finite values summarized.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// The values of `self` and `other` together.
    pub fn merge(&self, other: &MagnitudeHistogram) -> MagnitudeHistogram {
        if self.pos.is_empty() {
            let mut m = other.clone();
            m.zeros += self.zeros;
            m.n += self.n;
            return m;
        }
        if other.pos.is_empty() {
            return other.merge(self);
        }
        let hi = (self.lo + self.pos.len() as u32 - 1).max(other.lo + other.pos.len() as u32 - 1);
        let lo = self.lo.min(other.lo).max(hi.saturating_sub(SPAN_BINS - 1));
        let mut m = MagnitudeHistogram {
            zeros: self.zeros + other.zeros,
            lo,
            pos: vec![0; (hi - lo + 1) as usize],
            neg: vec![0; (hi - lo + 1) as usize],
            top: Vec::new(),
            n: self.n + other.n,
        };
        for h in [self, other] {
            for (i, (&p, &q)) in h.pos.iter().zip(&h.neg).enumerate() {
                let k = h.lo + i as u32;
                if k < lo {
                    m.zeros += p + q;
                } else {
                    m.pos[(k - lo) as usize] += p;
                    m.neg[(k - lo) as usize] += q;
                }
            }
        }
        for &(v, n) in self.top.iter().chain(&other.top) {
            m.push_top(v, n);
        }
        // a top value whose bin fell below the span is a zero now (and no longer exact)
        m.top.retain(|(t, _)| key_of(mag(*t)) >= lo);
        m
    }

    /// `Σ (q(x) − x)²` over the summarized values, for rounding to the nearest point of `grid`
    /// (ascending, distinct, finite, non-empty; values beyond the ends round to them): exact for
    /// the zeros and the top values, and for the others the error of values spread uniformly
    /// over their bin.
    pub fn sum_sq_error(&self, grid: &[f64]) -> f64 {
        assert!(!grid.is_empty(), "a grid has at least one point");
        // rounding cells: cell j is [mids[j-1], mids[j]) around grid[j]
        let mids: Vec<f64> = grid.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect();
        let q = |x: f64| grid[mids.partition_point(|&m| m < x)];
        let mut total = 0.0;
        let r0 = q(0.0);
        total += self.zeros as f64 * r0 * r0;
        // the top values exactly, taken out of their bins
        let mut pos = self.pos.clone();
        let mut neg = self.neg.clone();
        for &(t, n) in &self.top {
            let x = t as f64;
            let r = q(x) - x;
            total += n as f64 * r * r;
            let i = (key_of(mag(t)) - self.lo) as usize;
            let bin = if t.is_sign_negative() { &mut neg[i] } else { &mut pos[i] };
            *bin = bin.saturating_sub(n);
        }
        // negative values from the most negative up, then positive ones: x ascending, so the
        // rounding cell only moves up
        let mut j = 0;
        for (i, &n) in neg.iter().enumerate().rev() {
            if n > 0 {
                let (a, b) = bin_bounds(self.lo + i as u32);
                total += n as f64 * integral_sq_error(grid, &mids, &mut j, -b, -a) / (b - a);
            }
        }
        for (i, &p) in pos.iter().enumerate() {
            if p > 0 {
                let (a, b) = bin_bounds(self.lo + i as u32);
                total += p as f64 * integral_sq_error(grid, &mids, &mut j, a, b) / (b - a);
            }
        }
        total
    }
}

/// The expected SQNR in dB of quantizing the summarized values with `method` at `range`:
/// `histograms` per channel when `range` is (one per range channel), else one for the whole
/// tensor; `signal` is `Σ x²`. `None` when there is no signal.
pub fn predict_sqnr_db(
    histograms: &[MagnitudeHistogram],
    signal: f64,
    method: &QuantMethod,
    range: &Range,
) -> Result<Option<f64>, AnalysisError> {
    if histograms.len() != range.num_channels() {
        return Err(AnalysisError::Invalid {
            what: "range",
            why: format!(
                "{} channel range(s) for {} histogram(s)",
                range.num_channels(),
                histograms.len()
            ),
        });
    }
    if signal.is_nan() || signal <= 0.0 {
        return Ok(None);
    }
    let bounds = range.channel_bounds(method);
    let noise: Vec<f64> = histograms
        .par_iter()
        .zip(&bounds)
        .map(|(h, &(lo, hi))| {
            if h.count() == 0 {
                return Ok(0.0);
            }
            let grid = quantizer_grid(method, lo, hi)?;
            Ok(h.sum_sq_error(&grid))
        })
        .collect::<Result<_, AnalysisError>>()?;
    Ok(Some(super::sqnr_db(signal, noise.iter().sum())))
}

/// `∫_u^v (q(x) − x)² dx` for rounding to the nearest point of `grid`, cell by cell; `j` is a
/// cell at or below the one holding `u` (calls with ascending `u` pass it along).
fn integral_sq_error(grid: &[f64], mids: &[f64], j: &mut usize, u: f64, v: f64) -> f64 {
    while *j < mids.len() && mids[*j] <= u {
        *j += 1;
    }
    let mut j = *j;
    let mut s = u;
    let mut total = 0.0;
    while s < v {
        let end = mids.get(j).map_or(v, |&m| m.min(v));
        let g = grid[j];
        let (a, b) = (s - g, end - g);
        // ∫_s^end (x − g)² dx, in a form without cancellation
        total += (end - s) * (a * a + a * b + b * b) / 3.0;
        s = end;
        j += 1;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::distributions::Distribution;

    fn direct(x: &[f32], grid: &[f64]) -> f64 {
        x.iter()
            .filter(|v| v.is_finite())
            .map(|&v| {
                let v = v as f64;
                let q = grid
                    .iter()
                    .copied()
                    .min_by(|a, b| (a - v).abs().total_cmp(&(b - v).abs()))
                    .unwrap();
                (q - v) * (q - v)
            })
            .sum()
    }

    /// A coarse grid (cells much wider than the bins): the histogram's error is the data's own,
    /// up to where values sit inside their bins.
    #[test]
    fn expected_error_matches_the_data_on_coarse_and_fine_grids() {
        let x = Distribution::gauss(0.0, 1.0, -9.0, 9.0).unwrap().sample_f32(200_000, 3);
        let h = MagnitudeHistogram::of_parallel(&x);
        assert_eq!(h.count(), 200_000);
        for step in [0.5f64, 0.05, 0.003] {
            let grid: Vec<f64> = (-400..=400).map(|i| i as f64 * step).collect();
            let (d, e) = (direct(&x, &grid), h.sum_sq_error(&grid));
            assert!((e / d - 1.0).abs() < 0.01, "step {step}: {e} against {d}");
        }
    }

    /// The top values and zeros are exact: a grid that holds them exactly gives no error there.
    #[test]
    fn zeros_and_outliers_are_exact() {
        let mut x = vec![0f32; 1000];
        x.extend([130.0f32, -97.5, 64.25]);
        let h = MagnitudeHistogram::of(&x);
        let grid = [-97.5, 0.0, 64.25, 130.0];
        assert_eq!(h.sum_sq_error(&grid), 0.0);
        let grid = [-100.0, 0.0, 64.0, 128.0];
        assert!((h.sum_sq_error(&grid) - (2.5f64.powi(2) + 0.25f64.powi(2) + 4.0)).abs() < 1e-12);
    }

    /// A clipped activation holds its bound many times: every copy of it is exact.
    #[test]
    fn repeated_bounds_are_exact() {
        let mut x: Vec<f32> = (0..10_000).map(|i| (i % 997) as f32 / 997.0 * 6.0).collect();
        x.extend(std::iter::repeat_n(6.0f32, 5_000));
        let h = MagnitudeHistogram::of(&x);
        let grid: Vec<f64> = (0..=255).map(|i| i as f64 * 6.0 / 255.0).collect();
        let (d, e) = (direct(&x, &grid), h.sum_sq_error(&grid));
        assert!((e / d - 1.0).abs() < 0.05, "{e} against {d}");
        // merged from halves, the counts of the bound add up
        let (a, b) = x.split_at(7_000);
        let m = MagnitudeHistogram::of(a).merge(&MagnitudeHistogram::of(b));
        assert!((m.sum_sq_error(&grid) / d - 1.0).abs() < 0.05);
    }

    /// Channels of fewer than [`TOP`] values are held exactly, so the prediction is the measured
    /// error itself, with the quantizers' own bounds: symmetric INT per channel is signed for
    /// every channel once one is (an all-positive channel does not get the unsigned grid).
    #[test]
    fn small_channels_predict_their_exact_error() {
        let rows = 12;
        let x: Vec<f32> = (0..rows * 9)
            .map(|i| {
                let (c, v) = (i / 9, ((i * 37 % 23) as f32 - 11.0) / 7.0);
                if c % 3 == 0 {
                    v.abs() + 0.01
                } else {
                    v * (1.0 + c as f32)
                }
            })
            .collect();
        let hists = MagnitudeHistogram::of_channels(&x, rows);
        let range = Range {
            min: x
                .chunks(9)
                .map(|r| r.iter().copied().fold(f32::INFINITY, f32::min))
                .collect(),
            max: x
                .chunks(9)
                .map(|r| r.iter().copied().fold(f32::NEG_INFINITY, f32::max))
                .collect(),
        };
        let signal: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum();
        for f in ["int8", "e4m3", "int4"] {
            let method = QuantMethod::from_format(f.parse().unwrap());
            let qs = range.quantizers(&method).unwrap();
            let noise: f64 = x
                .chunks(9)
                .zip(&qs)
                .flat_map(|(r, q)| r.iter().map(move |&v| f64::from(q.quantize_value(v) - v).powi(2)))
                .sum();
            let measured = crate::analysis::sqnr_db(signal, noise);
            let predicted = predict_sqnr_db(&hists, signal, &method, &range).unwrap().unwrap();
            assert!(
                (predicted - measured).abs() < 1e-9,
                "{f}: {predicted} against {measured}"
            );
        }
    }

    #[test]
    fn merging_is_summarizing_the_concatenation() {
        let a = Distribution::student_t(4.5, -200.0, 200.0)
            .unwrap()
            .sample_f32(50_000, 1);
        let mut b = Distribution::gauss(0.0, 1e-6, -1e-5, 1e-5)
            .unwrap()
            .sample_f32(30_000, 2);
        b.extend([f32::NAN, f32::INFINITY, 0.0, -0.0]);
        let whole: Vec<f32> = a.iter().chain(&b).copied().collect();
        let m = MagnitudeHistogram::of(&a).merge(&MagnitudeHistogram::of(&b));
        assert_eq!(m, MagnitudeHistogram::of(&whole));
        assert_eq!(MagnitudeHistogram::of_parallel(&whole), m);
        assert_eq!(m.count(), 80_002);
    }

    /// Values more than the span below the largest count as zeros; memory stays bounded.
    #[test]
    fn the_span_is_bounded() {
        let x = [1e30f32, 1.0, 1e-30, -3e-38, 2.0];
        let h = MagnitudeHistogram::of(&x);
        assert!(h.pos.len() <= SPAN_BINS as usize);
        assert_eq!(h.zeros, 4);
        let grid = [-1.0, 0.0, 1.0, 2.0, 1e30f32 as f64];
        assert_eq!(h.sum_sq_error(&grid), 0.0);
    }
}
