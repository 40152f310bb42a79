//! Statistics of a tensor: elements, mean, absolute maximum, standard deviation, excess kurtosis
//! and max/σ, in one parallel pass with `f64` accumulation.
//!
//! The data are cut into chunks of [`CHUNK`] elements (per channel when asked); each chunk's
//! mean and central moments `Σ(x-x̄)^k`, `k = 2, 3, 4`, are computed exactly by two passes over
//! the chunk while it is in cache, and chunks are merged with the pairwise update formulas of
//! Chan et al. / Pébay (2008), which stay accurate when the mean is large relative to σ (unlike
//! raw power sums). Non-finite values (NaN, ±Inf) are left out of the moments and counted.
//!
//! ```
//! use fp8q_core::analysis::tensor_stats::tensor_stats;
//! let s = tensor_stats(&[1.0, -1.0, 1.0, -1.0]);
//! assert_eq!((s.numel, s.absmax, s.std), (4, 1.0, 1.0));
//! assert_eq!(s.kurtosis, -2.0); // a two-point distribution: 1 - 3
//! ```

use rayon::prelude::*;
use serde::Serialize;

/// Elements per chunk of the parallel pass (fits in L2 cache).
pub const CHUNK: usize = 1 << 14;

/// Independent accumulators per pass of [`Moments::of`].
pub const LANES: usize = 32;

/// Mergeable moments of a set of values: count, mean, central sums `M_k = Σ(x-x̄)^k`, extremes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    /// Finite values counted.
    pub n: u64,
    /// Mean of the finite values.
    pub mean: f64,
    /// `Σ(x - mean)²`.
    pub m2: f64,
    /// `Σ(x - mean)³`.
    pub m3: f64,
    /// `Σ(x - mean)⁴`.
    pub m4: f64,
    /// Smallest finite value (`+∞` when none).
    pub min: f32,
    /// Largest finite value (`-∞` when none).
    pub max: f32,
    /// `Σ x²` (for the signal power of an SQNR).
    pub sum_sq: f64,
    /// Values left out because they are NaN or infinite.
    pub non_finite: u64,
}

impl Default for Moments {
    fn default() -> Self {
        Moments {
            n: 0,
            mean: 0.0,
            m2: 0.0,
            m3: 0.0,
            m4: 0.0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            sum_sq: 0.0,
            non_finite: 0,
        }
    }
}

impl Moments {
    /// Moments of a slice, serially (two passes over it: mean, then central sums). Each pass
    /// keeps [`LANES`] independent accumulators and selects instead of branching on
    /// non-finite values, so that the sums do not serialize on the adder's latency and the
    /// loops vectorize; the code is compiled for AVX-512 and AVX2 too and picked at run time.
    pub fn of(x: &[f32]) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
            fn avx512(x: &[f32]) -> Moments {
                moments_generic(x)
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2(x: &[f32]) -> Moments {
                moments_generic(x)
            }
            if crate::quantizer::element_kernel::has_avx512() {
                // SAFETY: the CPU supports every feature `avx512` was compiled for.
                return unsafe { avx512(x) };
            }
            if crate::quantizer::element_kernel::has_avx2() {
                // SAFETY: the CPU supports every feature `avx2` was compiled for.
                return unsafe { avx2(x) };
            }
        }
        moments_generic(x)
    }

    /// Moments of a slice, in parallel over chunks of [`CHUNK`] elements.
    pub fn of_parallel(x: &[f32]) -> Self {
        if x.len() <= CHUNK {
            return Moments::of(x);
        }
        // merge in a fixed (sequential) order so that the result does not depend on scheduling
        let parts: Vec<Moments> = x.par_chunks(CHUNK).map(Moments::of).collect();
        parts.iter().fold(Moments::default(), |a, b| a.merge(b))
    }

    /// The moments of the union of two sets (Pébay 2008, eq. 2.1 and 3.1).
    pub fn merge(&self, b: &Moments) -> Moments {
        let a = self;
        let non_finite = a.non_finite + b.non_finite;
        if b.n == 0 {
            return Moments { non_finite, ..*a };
        }
        if a.n == 0 {
            return Moments { non_finite, ..*b };
        }
        let (na, nb) = (a.n as f64, b.n as f64);
        let n = na + nb;
        let d = b.mean - a.mean;
        let d2 = d * d;
        let mean = a.mean + d * nb / n;
        let m2 = a.m2 + b.m2 + d2 * na * nb / n;
        let m3 = a.m3 + b.m3 + d2 * d * na * nb * (na - nb) / (n * n) + 3.0 * d * (na * b.m2 - nb * a.m2) / n;
        let m4 = a.m4
            + b.m4
            + d2 * d2 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n)
            + 6.0 * d2 * (na * na * b.m2 + nb * nb * a.m2) / (n * n)
            + 4.0 * d * (na * b.m3 - nb * a.m3) / n;
        Moments {
            n: a.n + b.n,
            mean,
            m2,
            m3,
            m4,
            min: a.min.min(b.min),
            max: a.max.max(b.max),
            sum_sq: a.sum_sq + b.sum_sq,
            non_finite,
        }
    }

    /// Population variance `M2 / n` (0 when empty).
    pub fn variance(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            (self.m2 / self.n as f64).max(0.0)
        }
    }

    /// Population standard deviation.
    pub fn std(&self) -> f64 {
        self.variance().sqrt()
    }

    /// Excess kurtosis `n·M4 / M2² - 3` (Fisher: 0 for a Gaussian), or `None` when the variance
    /// is zero (fewer than two distinct values).
    pub fn excess_kurtosis(&self) -> Option<f64> {
        if self.n == 0 || self.m2.is_nan() || self.m2 <= 0.0 || self.variance() <= 0.0 {
            return None;
        }
        Some(self.n as f64 * self.m4 / (self.m2 * self.m2) - 3.0)
    }

    /// Largest finite magnitude (0 when empty).
    pub fn absmax(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            (self.min.abs().max(self.max.abs())) as f64
        }
    }
}

/// The body of [`Moments::of`], inlined into each CPU-specific copy: the branch-free fast path
/// when every value is finite (checked on the way), else [`moments_filtered`].
#[inline(always)]
fn moments_generic(x: &[f32]) -> Moments {
    const L: usize = LANES;
    let mut chunks = x.chunks_exact(L);
    // pass 1: sum, extremes, and whether any value is NaN or infinite (exponent all ones)
    let mut sum = [0.0f64; L];
    let (mut lo, mut hi) = ([f32::INFINITY; L], [f32::NEG_INFINITY; L]);
    let mut special = 0u32;
    for c in &mut chunks {
        let c: &[f32; L] = c.try_into().expect("lane block");
        for i in 0..L {
            let v = c[i];
            special |= ((v.to_bits() & 0x7f80_0000) == 0x7f80_0000) as u32;
            sum[i] += v as f64;
            lo[i] = if v < lo[i] { v } else { lo[i] };
            hi[i] = if v > hi[i] { v } else { hi[i] };
        }
    }
    for &v in chunks.remainder() {
        special |= !v.is_finite() as u32;
    }
    if special != 0 || x.is_empty() {
        return moments_filtered(x);
    }
    let mut m = Moments {
        n: x.len() as u64,
        ..Moments::default()
    };
    let mut total = sum.iter().sum::<f64>();
    for &v in chunks.remainder() {
        total += v as f64;
        lo[0] = lo[0].min(v);
        hi[0] = hi[0].max(v);
    }
    m.min = lo.iter().copied().fold(f32::INFINITY, f32::min);
    m.max = hi.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    m.mean = total / m.n as f64;
    // pass 2: central sums
    let mean = m.mean;
    let (mut a2, mut a3, mut a4) = ([0.0f64; L], [0.0f64; L], [0.0f64; L]);
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        let c: &[f32; L] = c.try_into().expect("lane block");
        for i in 0..L {
            let d = c[i] as f64 - mean;
            let d2 = d * d;
            a2[i] += d2;
            a3[i] += d2 * d;
            a4[i] += d2 * d2;
        }
    }
    for &v in chunks.remainder() {
        let d = v as f64 - mean;
        let d2 = d * d;
        a2[0] += d2;
        a3[0] += d2 * d;
        a4[0] += d2 * d2;
    }
    m.m2 = a2.iter().sum();
    m.m3 = a3.iter().sum();
    m.m4 = a4.iter().sum();
    // Σx² = M2 + n·mean² (both terms non-negative: no cancellation)
    m.sum_sq = m.m2 + m.n as f64 * m.mean * m.mean;
    m
}

/// [`moments_generic`] for slices with non-finite values: the same two passes, selecting instead
/// of branching so that NaN and ±Inf are left out and counted.
#[inline(always)]
fn moments_filtered(x: &[f32]) -> Moments {
    const L: usize = LANES;
    let mut m = Moments::default();
    // pass 1: count, sum, extremes
    let (mut sum, mut cnt) = ([0.0f64; L], [0u64; L]);
    let (mut lo, mut hi) = ([f32::INFINITY; L], [f32::NEG_INFINITY; L]);
    let mut lane1 = |i: usize, v: f32| {
        let f = v.is_finite();
        sum[i] += if f { v as f64 } else { 0.0 };
        cnt[i] += f as u64;
        let l = if f { v } else { f32::INFINITY };
        let h = if f { v } else { f32::NEG_INFINITY };
        lo[i] = if l < lo[i] { l } else { lo[i] };
        hi[i] = if h > hi[i] { h } else { hi[i] };
    };
    for (j, &v) in x.iter().enumerate() {
        lane1(j % L, v);
    }
    m.n = cnt.iter().sum();
    m.non_finite = x.len() as u64 - m.n;
    m.min = lo.iter().copied().fold(f32::INFINITY, f32::min);
    m.max = hi.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if m.n == 0 {
        return m;
    }
    m.mean = sum.iter().sum::<f64>() / m.n as f64;
    // pass 2: central sums and Σx²
    let mean = m.mean;
    let (mut a2, mut a3, mut a4) = ([0.0f64; L], [0.0f64; L], [0.0f64; L]);
    for (j, &v) in x.iter().enumerate() {
        let i = j % L;
        let d = if v.is_finite() { v as f64 - mean } else { 0.0 };
        let d2 = d * d;
        a2[i] += d2;
        a3[i] += d2 * d;
        a4[i] += d2 * d2;
    }
    m.m2 = a2.iter().sum();
    m.m3 = a3.iter().sum();
    m.m4 = a4.iter().sum();
    m.sum_sq = m.m2 + m.n as f64 * m.mean * m.mean;
    m
}

/// Moments of each of `channels` equal slices along dimension 0 (in parallel over channels, each
/// channel's own chunks merged in order). `x.len()` must be a multiple of `channels` (> 0).
pub fn channel_moments(x: &[f32], channels: usize) -> Vec<Moments> {
    assert!(channels > 0 && x.len().is_multiple_of(channels), "bad channel split");
    if channels == 1 {
        return vec![Moments::of_parallel(x)];
    }
    let per = x.len() / channels;
    if per == 0 {
        return vec![Moments::default(); channels];
    }
    x.par_chunks(per)
        .map(|c| {
            c.chunks(CHUNK)
                .map(Moments::of)
                .fold(Moments::default(), |a, b| a.merge(&b))
        })
        .collect()
}

/// The statistics the format analysis reports for a tensor (all over its finite values).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TensorStats {
    /// Number of elements (all, finite or not).
    pub numel: u64,
    /// Mean.
    pub mean: f64,
    /// Largest absolute value.
    pub absmax: f64,
    /// Standard deviation (population, `ddof = 0`).
    pub std: f64,
    /// Excess kurtosis (Fisher: 0 for a Gaussian, 6/(ν-4) for Student's t with ν > 4); 0 when
    /// the standard deviation is 0.
    pub kurtosis: f64,
    /// `absmax / std`; 0 when the standard deviation is 0.
    pub max_over_sigma: f64,
    /// Elements left out because they are NaN or infinite.
    pub non_finite: u64,
}

impl TensorStats {
    /// The statistics from moments.
    pub fn from_moments(m: &Moments) -> Self {
        let std = m.std();
        let absmax = m.absmax();
        TensorStats {
            numel: m.n + m.non_finite,
            mean: m.mean,
            absmax,
            std,
            kurtosis: m.excess_kurtosis().unwrap_or(0.0),
            max_over_sigma: if std > 0.0 { absmax / std } else { 0.0 },
            non_finite: m.non_finite,
        }
    }
}

/// Statistics of `x` (parallel with rayon for large slices, `f64` accumulation). An empty slice
/// gives all zeros; a constant one zero `std`, `kurtosis` and `max_over_sigma`.
pub fn tensor_stats(x: &[f32]) -> TensorStats {
    TensorStats::from_moments(&Moments::of_parallel(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moments of `n` values straight from the definitions, in f64, for comparison.
    fn direct(x: &[f32]) -> (f64, f64, f64) {
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let c = |k: i32| x.iter().map(|&v| (v as f64 - mean).powi(k)).sum::<f64>() / n;
        (mean, c(2), c(4) / (c(2) * c(2)) - 3.0)
    }

    #[test]
    fn closed_forms() {
        // empty, constant
        let e = tensor_stats(&[]);
        assert_eq!((e.numel, e.std, e.kurtosis, e.max_over_sigma), (0, 0.0, 0.0, 0.0));
        let c = tensor_stats(&[2.5; 100]);
        assert_eq!(
            (c.numel, c.mean, c.absmax, c.std, c.kurtosis),
            (100, 2.5, 2.5, 0.0, 0.0)
        );
        // the integers 1..=n: variance (n²-1)/12, excess kurtosis -6(n²+1)/(5(n²-1))
        let n = 100_001usize;
        let x: Vec<f32> = (1..=n).map(|i| i as f32).collect();
        let s = tensor_stats(&x);
        let nf = n as f64;
        assert!((s.mean - (nf + 1.0) / 2.0).abs() < 1e-9);
        assert!((s.std / ((nf * nf - 1.0) / 12.0).sqrt() - 1.0).abs() < 1e-12);
        let k = -6.0 * (nf * nf + 1.0) / (5.0 * (nf * nf - 1.0));
        assert!((s.kurtosis - k).abs() < 1e-10, "{} vs {k}", s.kurtosis);
        assert_eq!(s.absmax, nf);
        // non-finite values are counted but left out
        let s = tensor_stats(&[1.0, f32::NAN, -1.0, f32::INFINITY]);
        assert_eq!((s.numel, s.non_finite, s.std, s.absmax), (4, 2, 1.0, 1.0));
    }

    #[test]
    fn merge_matches_direct_with_large_mean() {
        // a large offset makes raw power sums lose everything; the merged central sums do not
        let x: Vec<f32> = (0..200_003)
            .map(|i| 1000.0 + ((i as f32 * 0.7548).sin() * 3.0).powi(3))
            .collect();
        let (mean, var, kurt) = direct(&x);
        let m = Moments::of_parallel(&x);
        assert!((m.mean - mean).abs() < 1e-9);
        assert!((m.variance() / var - 1.0).abs() < 1e-9);
        assert!((m.excess_kurtosis().unwrap() - kurt).abs() < 1e-8);
        let per = channel_moments(&x[..200_000], 8);
        let whole = per.iter().fold(Moments::default(), |a, b| a.merge(b));
        let (_, var8, kurt8) = direct(&x[..200_000]);
        assert!((whole.variance() / var8 - 1.0).abs() < 1e-9);
        assert!((whole.excess_kurtosis().unwrap() - kurt8).abs() < 1e-8);
    }

    /// The all-finite fast path and the filtering path give the same moments, and a non-finite
    /// value anywhere (a full lane block or the tail) sends a slice to the filtering path,
    /// which leaves it out: the moments equal those of the finite values alone.
    #[test]
    fn fast_path_equals_filtering_path() {
        for len in [1usize, 5, LANES - 1, LANES, LANES + 3, 1000, CHUNK] {
            let x: Vec<f32> = (0..len)
                .map(|i| ((i as f32 * 0.377).sin() * 2.0).powi(3) - 0.25)
                .collect();
            let fast = Moments::of(&x);
            let filtered = moments_filtered(&x);
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1e-300);
            assert_eq!(
                (fast.n, fast.min, fast.max, fast.non_finite),
                (filtered.n, filtered.min, filtered.max, 0)
            );
            for (a, b) in [
                (fast.mean, filtered.mean),
                (fast.m2, filtered.m2),
                (fast.m4, filtered.m4),
            ] {
                assert!(close(a, b), "{len}: {a} vs {b}");
            }
            for at in [0, len / 2, len - 1] {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut y = x.clone();
                    y.insert(at, bad);
                    let m = Moments::of(&y);
                    assert_eq!((m.n, m.non_finite, m.min, m.max), (len as u64, 1, fast.min, fast.max));
                    assert!(close(m.m2, fast.m2) && close(m.mean, fast.mean), "{len} {at} {bad}");
                }
            }
        }
    }
}
