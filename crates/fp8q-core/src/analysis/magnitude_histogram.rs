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
use crate::format::IntKind;
use crate::quantizer::QuantMethod;
use crate::range::Range;
use rayon::prelude::*;

/// Bits of the `f32` mantissa in a bin's key: `2^4 = 16` bins per octave.
pub const SUB_OCTAVE_BITS: u32 = 4;

/// Octaves of bins kept below the largest magnitude.
pub const SPAN_OCTAVES: u32 = 40;

/// Distinct values of largest magnitude kept exactly, per tensor (in a small tensor they carry
/// most of a float format's error, which grows with the magnitude).
pub const TOP: usize = 256;

/// Distinct values of largest magnitude kept exactly per channel (the channel's maximum and its
/// nearest outliers; a checkpoint has hundreds of thousands of channels).
pub const CHANNEL_TOP: usize = 32;

const SPAN_BINS: u32 = SPAN_OCTAVES << SUB_OCTAVE_BITS;

/// The bin key of a finite non-zero magnitude's bits.
#[inline]
fn key_of(abs_bits: u32) -> u32 {
    abs_bits >> (23 - SUB_OCTAVE_BITS)
}

/// Two top lists (ascending by magnitude, then bits) as one: equal values' counts added, the
/// [`TOP`] largest distinct kept.
fn merge_top(a: &[(f32, u64)], b: &[(f32, u64)]) -> Vec<(f32, u64)> {
    let order = |v: f32| (mag(v), v.to_bits());
    let mut out: Vec<(f32, u64)> = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let take_a = j == b.len() || (i < a.len() && order(a[i].0) <= order(b[j].0));
        let (v, n) = if take_a {
            i += 1;
            a[i - 1]
        } else {
            j += 1;
            b[j - 1]
        };
        match out.last_mut() {
            Some((t, c)) if t.to_bits() == v.to_bits() => *c += n,
            _ => out.push((v, n)),
        }
    }
    let drop = out.len().saturating_sub(TOP);
    out.drain(..drop);
    out
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

/// Keys of a sign: the 8 exponent bits and [`SUB_OCTAVE_BITS`] mantissa bits of an `f32`.
const KEYS: usize = 1 << (8 + SUB_OCTAVE_BITS);

/// The counting tables of [`MagnitudeHistogram::of_with`], all zero between calls.
#[derive(Debug, Default)]
pub struct Scratch {
    even: Vec<u32>,
    odd: Vec<u32>,
}

thread_local! {
    /// Each thread's counting table (all zero between calls).
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
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
    /// The distinct values of largest magnitude (at most [`TOP`]) and how often each occurs
    /// (every occurrence is also counted in the bins).
    top: Vec<(f32, u64)>,
    /// Finite values summarized.
    n: u64,
}

impl MagnitudeHistogram {
    /// The histogram of `x` (NaN and ±Inf are left out), serially.
    pub fn of(x: &[f32]) -> Self {
        SCRATCH.with(|s| Self::of_with(x, &mut s.borrow_mut(), TOP))
    }

    /// [`MagnitudeHistogram::of`] keeping the `top` (at most [`TOP`]) largest distinct values
    /// exactly, with a counting table that is reused from call to call (only the keys seen are
    /// read and cleared, so a short row costs its length, not the table's).
    pub fn of_with(x: &[f32], scratch: &mut Scratch, top: usize) -> Self {
        let Scratch { even, odd } = scratch;
        if even.is_empty() {
            (*even, *odd) = (vec![0u32; 2 * KEYS], vec![0u32; 2 * KEYS]);
        }
        let mut h = MagnitudeHistogram::default();
        let slot = |v: f32| {
            let bits = v.to_bits();
            ((bits >> 31) as usize) * KEYS + key_of(bits & 0x7fff_ffff) as usize
        };
        let mut pos: Vec<u64> = Vec::new();
        let mut neg: Vec<u64> = Vec::new();
        // keys seen over all pieces (pieces of 2^30 values keep the u32 counts from overflowing)
        let mut span: Option<(usize, usize)> = None;
        for piece in x.chunks(1 << 30) {
            // two tables alternating between elements, so that a run of values in one bin does
            // not chain every increment on the last
            let pairs = piece.chunks_exact(2);
            for &v in pairs.remainder() {
                even[slot(v)] += 1;
            }
            let (kmin, kmax) = if piece.len() >= 2 * KEYS {
                // a long piece: count, then find the keys seen in the table
                for p in pairs {
                    even[slot(p[0])] += 1;
                    odd[slot(p[1])] += 1;
                }
                let seen = |k: &usize| (even[*k] | odd[*k] | even[KEYS + *k] | odd[KEYS + *k]) != 0;
                match ((0..KEYS).find(seen), (0..KEYS).rev().find(seen)) {
                    (Some(a), Some(b)) => (a, b),
                    _ => continue,
                }
            } else {
                // a short one (a channel): track the keys seen, so that only they are read
                let (mut kmin, mut kmax) = (KEYS, 0usize);
                for &v in pairs.remainder() {
                    let k = key_of(mag(v)) as usize;
                    (kmin, kmax) = (k, k);
                }
                for p in pairs {
                    even[slot(p[0])] += 1;
                    odd[slot(p[1])] += 1;
                    let (k0, k1) = (key_of(mag(p[0])) as usize, key_of(mag(p[1])) as usize);
                    (kmin, kmax) = (kmin.min(k0.min(k1)), kmax.max(k0.max(k1)));
                }
                if kmin > kmax {
                    continue;
                }
                (kmin, kmax)
            };
            // into u64 counts over the keys seen so far, clearing the tables behind
            let (lo, hi) = span.map_or((kmin, kmax), |(a, b)| (a.min(kmin), b.max(kmax)));
            let grown = |v: &mut Vec<u64>| {
                let (a, _) = span.unwrap_or((lo, hi));
                let mut w = vec![0u64; hi - lo + 1];
                w[a - lo..a - lo + v.len()].copy_from_slice(v);
                *v = w;
            };
            grown(&mut pos);
            grown(&mut neg);
            span = Some((lo, hi));
            for k in kmin..=kmax {
                for (sign, out) in [(0, &mut pos), (1, &mut neg)] {
                    let i = sign * KEYS + k;
                    out[k - lo] += u64::from(even[i]) + u64::from(odd[i]);
                    (even[i], odd[i]) = (0, 0);
                }
            }
        }
        let Some((klo, _)) = span else { return h };
        // the top values: the bins say above which key the TOP largest lie; those values are
        // gathered, sorted and counted
        let finite = key_of(0x7f80_0000) as usize;
        let kend = klo + pos.len(); // one past the last key seen
        let mut above = 0u64;
        let mut kt = klo.max(1);
        for k in (klo.max(1)..kend.min(finite)).rev() {
            above += pos[k - klo] + neg[k - klo];
            if above >= top as u64 {
                kt = k;
                break;
            }
        }
        // finite magnitudes of key kt or more, in one unsigned comparison
        let from = (kt as u32) << (23 - SUB_OCTAVE_BITS);
        let mut cand: Vec<f32> = x
            .iter()
            .copied()
            .filter(|&v| mag(v).wrapping_sub(from) < 0x7f80_0000 - from)
            .collect();
        cand.sort_unstable_by_key(|v| std::cmp::Reverse((mag(*v), v.to_bits())));
        for v in cand {
            let full = h.top.len() == top.min(TOP);
            match h.top.last_mut() {
                Some((t, n)) if t.to_bits() == v.to_bits() => *n += 1,
                _ if full => break,
                _ => h.top.push((v, 1)),
            }
        }
        h.top.reverse();
        let count = |k: usize| pos[k - klo] + neg[k - klo];
        let live = |k: usize| k > 0 && count(k) > 0;
        if klo == 0 {
            h.zeros = count(0);
        }
        h.n = h.zeros;
        if let Some(kmax) = (klo.max(1)..kend.min(finite)).rev().find(|&k| live(k)) {
            let kmin = (klo.max(1)..=kmax).find(|&k| live(k)).expect("kmax is live");
            let lo = kmin.max(kmax.saturating_sub(SPAN_BINS as usize - 1));
            for k in kmin..lo {
                h.zeros += count(k);
            }
            h.lo = lo as u32;
            h.pos = pos[lo - klo..=kmax - klo].to_vec();
            h.neg = neg[lo - klo..=kmax - klo].to_vec();
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
        x.par_chunks(len)
            .map(|row| SCRATCH.with(|s| MagnitudeHistogram::of_with(row, &mut s.borrow_mut(), CHANNEL_TOP)))
            .collect()
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
        m.top = merge_top(&self.top, &other.top);
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
        let law = PooledLaw::from_histogram(self, 1.0);
        law.error_on(grid, &mids)
    }
}

/// Histograms of several channels pooled with weights: the law of the normalized values
/// `x / a_c` of every channel `c`, each weighted by `a_c²`. When every channel's grid is its
/// largest magnitude `a_c` times one grid `G` (symmetric formats at min–max ranges), the sum of
/// the channels' squared errors is this law's error on `G`: one evaluation per format instead of
/// one per channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PooledLaw {
    zeros: f64,
    /// The key of the first bin.
    lo: u32,
    pos: Vec<f64>,
    neg: Vec<f64>,
    /// Values held exactly (the channels' top values), with their weights.
    points: Vec<(f32, f64)>,
}

impl PooledLaw {
    /// The law of one histogram's values, each weighted by `weight` (its top values as points).
    pub fn from_histogram(h: &MagnitudeHistogram, weight: f64) -> Self {
        let mut law = PooledLaw {
            zeros: h.zeros as f64 * weight,
            lo: h.lo,
            pos: h.pos.iter().map(|&c| c as f64 * weight).collect(),
            neg: h.neg.iter().map(|&c| c as f64 * weight).collect(),
            points: Vec::with_capacity(h.top.len()),
        };
        for &(t, n) in &h.top {
            let i = (key_of(mag(t)) - h.lo) as usize;
            let bin = if t.is_sign_negative() {
                &mut law.neg[i]
            } else {
                &mut law.pos[i]
            };
            *bin = (*bin - n as f64 * weight).max(0.0);
            law.points.push((t, n as f64 * weight));
        }
        law
    }

    /// Add a histogram's values, each weighted by `weight`.
    pub fn add(&mut self, h: &MagnitudeHistogram, weight: f64) {
        if h.pos.is_empty() || self.pos.is_empty() {
            self.add_law(PooledLaw::from_histogram(h, weight));
            return;
        }
        // in place when the histogram's bins lie within this law's span (no allocation)
        let (lo, hi) = (self.lo, self.lo + self.pos.len() as u32 - 1);
        let (hlo, hhi) = (h.lo, h.lo + h.pos.len() as u32 - 1);
        if hlo < lo || hhi > hi {
            self.add_law(PooledLaw::from_histogram(h, weight));
            return;
        }
        self.zeros += h.zeros as f64 * weight;
        let at = (hlo - lo) as usize;
        for (i, (&p, &n)) in h.pos.iter().zip(&h.neg).enumerate() {
            self.pos[at + i] += p as f64 * weight;
            self.neg[at + i] += n as f64 * weight;
        }
        for &(t, n) in &h.top {
            let i = (key_of(mag(t)) - lo) as usize;
            let bin = if t.is_sign_negative() {
                &mut self.neg[i]
            } else {
                &mut self.pos[i]
            };
            *bin = (*bin - n as f64 * weight).max(0.0);
            self.points.push((t, n as f64 * weight));
        }
    }

    /// The points in ascending order (so that [`PooledLaw::sum_sq_error`] walks them in one
    /// pass instead of searching the grid for each).
    pub fn sorted(mut self) -> Self {
        self.points.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        self
    }

    /// Add another pooled law.
    pub fn add_law(&mut self, mut other: PooledLaw) {
        self.zeros += other.zeros;
        self.points.append(&mut other.points);
        if other.pos.is_empty() {
            return;
        }
        if self.pos.is_empty() {
            (self.lo, self.pos, self.neg) = (other.lo, other.pos, other.neg);
            return;
        }
        let hi = (self.lo + self.pos.len() as u32).max(other.lo + other.pos.len() as u32) - 1;
        let lo = self.lo.min(other.lo).max(hi.saturating_sub(SPAN_BINS - 1));
        let (mut pos, mut neg) = (vec![0.0; (hi - lo + 1) as usize], vec![0.0; (hi - lo + 1) as usize]);
        let mut below = 0.0;
        for law in [&*self, &other] {
            for (i, (&p, &n)) in law.pos.iter().zip(&law.neg).enumerate() {
                let k = law.lo + i as u32;
                if k < lo {
                    below += p + n;
                } else {
                    pos[(k - lo) as usize] += p;
                    neg[(k - lo) as usize] += n;
                }
            }
        }
        self.zeros += below;
        (self.lo, self.pos, self.neg) = (lo, pos, neg);
    }

    /// The channels of `x` (`channels` rows) pooled: each row divided by its largest magnitude
    /// `amax[c]` and weighted by `amax[c]²` (rows of zeros, or whose `amax` is not a positive
    /// finite number, are left out).
    pub fn of_channels(x: &[f32], channels: usize, amax: &[f32]) -> Self {
        let len = x.len() / channels.max(1);
        if len == 0 {
            return PooledLaw::default();
        }
        x.par_chunks(len)
            .zip(amax.par_iter())
            .filter(|(_, a)| a.is_finite() && **a > 0.0)
            .fold(
                || (Vec::new(), PooledLaw::default()),
                |(mut u, mut law), (row, &a)| {
                    u.resize(row.len(), 0.0);
                    divide_into(row, a, &mut u);
                    let h = SCRATCH.with(|s| MagnitudeHistogram::of_with(&u, &mut s.borrow_mut(), CHANNEL_TOP));
                    law.add(&h, f64::from(a) * f64::from(a));
                    (u, law)
                },
            )
            .map(|(_, law)| law)
            .reduce(PooledLaw::default, |mut a, b| {
                a.add_law(b);
                a
            })
            .sorted()
    }

    /// `Σ weight · (q(x) − x)²` for rounding to the nearest point of `grid` (as
    /// [`MagnitudeHistogram::sum_sq_error`]).
    pub fn sum_sq_error(&self, grid: &[f64]) -> f64 {
        assert!(!grid.is_empty(), "a grid has at least one point");
        let mids: Vec<f64> = grid.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect();
        self.error_on(grid, &mids)
    }

    fn error_on(&self, grid: &[f64], mids: &[f64]) -> f64 {
        let q = |x: f64| grid[mids.partition_point(|&m| m < x)];
        let r0 = q(0.0);
        let mut total = self.zeros * r0 * r0;
        // the points: ascending ones share a moving cell, others search the grid
        let mut j = 0;
        let mut last = f32::NEG_INFINITY;
        for &(t, w) in &self.points {
            let x = t as f64;
            let r = if t >= last {
                while j < mids.len() && mids[j] < x {
                    j += 1;
                }
                grid[j] - x
            } else {
                j = 0;
                q(x) - x
            };
            last = t;
            total += w * r * r;
        }
        // negative values from the most negative up, then positive ones: x ascending, so the
        // rounding cell only moves up
        let mut j = 0;
        for (i, &n) in self.neg.iter().enumerate().rev() {
            if n > 0.0 {
                let (a, b) = bin_bounds(self.lo + i as u32);
                total += n * integral_sq_error(grid, mids, &mut j, -b, -a) / (b - a);
            }
        }
        for (i, &p) in self.pos.iter().enumerate() {
            if p > 0.0 {
                let (a, b) = bin_bounds(self.lo + i as u32);
                total += p * integral_sq_error(grid, mids, &mut j, a, b) / (b - a);
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

/// The expected SQNR in dB of quantizing a tensor per channel with `method` at `range` from its
/// [`PooledLaw`] (`amax[c]`: each channel's largest magnitude), when that is exact: every
/// channel's quantizer is its `amax` times one grid (a symmetric method whose range per channel
/// reaches exactly `amax`, with one sign for all channels). `None` otherwise (then predict from
/// the channels' own histograms).
pub fn predict_pooled_sqnr_db(
    law: &PooledLaw,
    amax: &[f32],
    signal: f64,
    method: &QuantMethod,
    range: &Range,
) -> Result<Option<Option<f64>>, AnalysisError> {
    if matches!(method, QuantMethod::Int(f) if f.kind == IntKind::Asymmetric) || amax.len() != range.num_channels() {
        return Ok(None);
    }
    let mut signed = None;
    for (&(lo, hi), &a) in range.channel_bounds(method).iter().zip(amax) {
        if !(a.is_finite() && a > 0.0) {
            continue;
        }
        if lo.abs().max(hi.abs()) != a || *signed.get_or_insert(lo < 0.0) != (lo < 0.0) {
            return Ok(None);
        }
    }
    if signal.is_nan() || signal <= 0.0 {
        return Ok(Some(None));
    }
    let lo = if signed.unwrap_or(true) { -1.0 } else { 0.0 };
    let grid = quantizer_grid(method, lo, 1.0)?;
    Ok(Some(Some(super::sqnr_db(signal, law.sum_sq_error(&grid)))))
}

#[inline(always)]
fn divide_generic(x: &[f32], a: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v / a;
    }
}

crate::quantizer::element_kernel::dispatch_by_cpu! {
    /// `out[i] = x[i] / a` (a division, so that a channel's largest value becomes exactly ±1).
    fn divide_into(x: &[f32], a: f32, out: &mut [f32]) => divide_generic;
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

    /// Channels of fewer than [`CHANNEL_TOP`] values are held exactly, so the prediction is the measured
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

    /// Pooled over channels, the prediction is the channels' own (symmetric formats at min–max
    /// ranges), for signed and all-positive tensors.
    #[test]
    fn the_pooled_law_predicts_as_the_channels_do() {
        let rows = 24;
        let d = Distribution::student_t(5.0, -60.0, 60.0).unwrap();
        let base = d.sample_f32(rows * 300, 9);
        for positive in [false, true] {
            let x: Vec<f32> = base
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let v = v * (0.1 + (i / 300) as f32 * 0.37);
                    if positive {
                        v.abs()
                    } else {
                        v
                    }
                })
                .collect();
            let mins: Vec<f32> = x
                .chunks(300)
                .map(|r| r.iter().copied().fold(f32::INFINITY, f32::min))
                .collect();
            let maxs: Vec<f32> = x
                .chunks(300)
                .map(|r| r.iter().copied().fold(f32::NEG_INFINITY, f32::max))
                .collect();
            let amax: Vec<f32> = mins.iter().zip(&maxs).map(|(a, b)| a.abs().max(b.abs())).collect();
            let range = Range { min: mins, max: maxs };
            let hists = MagnitudeHistogram::of_channels(&x, rows);
            let law = PooledLaw::of_channels(&x, rows, &amax);
            let signal: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum();
            for f in ["int8", "e4m3", "e2m5", "e5m2", "float8_e4m3fn"] {
                let method = QuantMethod::from_format(f.parse().unwrap());
                let each = predict_sqnr_db(&hists, signal, &method, &range).unwrap().unwrap();
                let pooled = predict_pooled_sqnr_db(&law, &amax, signal, &method, &range)
                    .unwrap()
                    .expect("symmetric at min-max: poolable")
                    .unwrap();
                // the bins of x / a_c are not those of x: the two agree to the bins' resolution
                assert!(
                    (each - pooled).abs() < 0.05,
                    "{f} positive={positive}: {each} against {pooled}"
                );
            }
            let asym = QuantMethod::from_format("int8-asym".parse().unwrap());
            assert!(predict_pooled_sqnr_db(&law, &amax, signal, &asym, &range)
                .unwrap()
                .is_none());
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
        // a reused counting table is left clear: each call sees only its own values
        let mut scratch = Scratch::default();
        for part in [&a[..], &b[..], &whole[..], &b[..7]] {
            assert_eq!(
                MagnitudeHistogram::of_with(part, &mut scratch, TOP),
                MagnitudeHistogram::of(part)
            );
        }
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
