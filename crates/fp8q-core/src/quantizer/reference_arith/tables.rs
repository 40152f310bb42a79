//! The validated per-channel tables of one call: thresholds, scales and the tails (the index
//! ranges torch evaluates in a scalar loop).

use super::channel::Channel;
use super::error::ReferenceArithError;
use std::ops::Range;

/// The tables of every channel as row-major slices (one row per channel, channels along
/// dimension 0 of the tensor), as `fp8q.torch` computes them with torch itself.
#[derive(Debug, Clone, Copy)]
pub struct TableSlices<'a> {
    /// The clamp's lower bound per channel (the reference's `minval`).
    pub lo: &'a [f32],
    /// The clamp's upper bound per channel (`maxval`; positive).
    pub hi: &'a [f32],
    /// Per channel, the bit patterns of the `f32` thresholds of the binades `k = 2, 3, …`: the
    /// smallest `|xc|` with that `k`, non-decreasing. A pattern above `f32::MAX`'s (`+∞` or
    /// beyond) marks a binade no finite value reaches.
    pub thresholds: &'a [u32],
    /// Per channel, `s_k` for `k = 1, 2, …` (one more than the thresholds) as torch's
    /// vectorized `pow` gives them.
    pub vector_scales: &'a [f32],
    /// The same scales as torch's scalar `pow` loop gives them (used in the pow tails).
    pub scalar_scales: &'a [f32],
}

/// The elements torch evaluates in a scalar loop rather than a vector one (the last few of each
/// inner loop), as index ranges into the flattened tensor.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScalarTails<'t> {
    /// Where `pow` runs its scalar loop: these elements take their scale from
    /// [`TableSlices::scalar_scales`].
    pub pow: &'t [Range<usize>],
    /// Where `maximum` runs its scalar loop: there `maximum(x, lo)` returns `x`, not `lo`, on a
    /// tie (zeros of opposite signs).
    pub maximum: &'t [Range<usize>],
}

/// Index ranges `[start, end)` of the elements torch evaluates in a scalar loop, sorted.
#[derive(Debug)]
struct Tails(Vec<(usize, usize)>);

impl Tails {
    fn new(ranges: &[Range<usize>], n: usize, which: &'static str) -> Result<Self, ReferenceArithError> {
        let mut v: Vec<(usize, usize)> = ranges.iter().map(|r| (r.start, r.end)).collect();
        v.sort_unstable();
        for &(start, end) in &v {
            if start > end || end > n {
                return Err(ReferenceArithError::TailOutOfRange {
                    which,
                    start,
                    end,
                    elements: n,
                });
            }
        }
        Ok(Self(v))
    }

    fn contains(&self, i: usize) -> bool {
        let p = self.0.partition_point(|&(a, _)| a <= i);
        p > 0 && i < self.0[p - 1].1
    }

    fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().flat_map(|&(a, b)| a..b)
    }
}

/// The tables of one call of [`forward`](super::forward) or [`backward`](super::backward),
/// checked against each other and against the tensor's number of elements, with each channel's
/// binade lookup built.
#[derive(Debug)]
pub struct ReferenceTables<'a> {
    channels: Vec<Channel<'a>>,
    /// Elements of the tensor.
    elements: usize,
    /// Elements per channel.
    len: usize,
    pow_tails: Tails,
    max_tails: Tails,
}

impl<'a> ReferenceTables<'a> {
    /// Checks the tables of a tensor of `elements` elements and builds each channel's lookup.
    ///
    /// The number of channels is `tables.lo.len()`; `hi` has one value per channel, `thresholds`
    /// `K - 1` per channel and both scale tables `K` per channel, for some `K >= 1`; `elements`
    /// must split evenly into the channels, each channel's thresholds must not decrease and the
    /// tails must lie in `0..elements`.
    pub fn new(elements: usize, tables: TableSlices<'a>, tails: ScalarTails<'_>) -> Result<Self, ReferenceArithError> {
        let TableSlices {
            lo,
            hi,
            thresholds,
            vector_scales,
            scalar_scales,
        } = tables;
        let c = lo.len();
        if c == 0
            || hi.len() != c
            || !thresholds.len().is_multiple_of(c)
            || !vector_scales.len().is_multiple_of(c)
            || scalar_scales.len() != vector_scales.len()
        {
            return Err(ReferenceArithError::InconsistentChannels);
        }
        let (k_thr, k_scales) = (thresholds.len() / c, vector_scales.len() / c);
        if k_scales != k_thr + 1 {
            return Err(ReferenceArithError::ScaleCount);
        }
        if !elements.is_multiple_of(c) {
            return Err(ReferenceArithError::ChannelSplit { elements, channels: c });
        }
        let mut channels = Vec::with_capacity(c);
        for i in 0..c {
            let t = &thresholds[i * k_thr..(i + 1) * k_thr];
            if t.windows(2).any(|w| w[0] > w[1]) {
                return Err(ReferenceArithError::DecreasingThresholds { channel: i });
            }
            let v = &vector_scales[i * k_scales..(i + 1) * k_scales];
            let s = &scalar_scales[i * k_scales..(i + 1) * k_scales];
            channels.push(Channel::new(lo[i], hi[i], t, v, s));
        }
        Ok(Self {
            channels,
            elements,
            len: elements / c,
            pow_tails: Tails::new(tails.pow, elements, "pow tails")?,
            max_tails: Tails::new(tails.maximum, elements, "max tails")?,
        })
    }

    /// Elements of the tensor the tables were built for.
    pub fn elements(&self) -> usize {
        self.elements
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    /// The channel of element `i`.
    pub(super) fn channel(&self, i: usize) -> &Channel<'a> {
        &self.channels[i / self.len]
    }

    /// Calls `f(channel, start, end)` for the pieces of `[start, end)` that lie in one channel.
    pub(super) fn segments(&self, start: usize, end: usize, mut f: impl FnMut(&Channel<'a>, usize, usize)) {
        let mut s = start;
        while s < end {
            let c = s / self.len;
            let e = end.min((c + 1) * self.len);
            f(&self.channels[c], s, e);
            s = e;
        }
    }

    /// Elements of a tail (either kind) with both of their path flags `(i, pow_scalar,
    /// max_scalar)`, in index order.
    pub(super) fn tail_elements(&self) -> Vec<(usize, bool, bool)> {
        let mut v: Vec<(usize, bool, bool)> = self
            .pow_tails
            .indices()
            .map(|i| (i, true, self.max_tails.contains(i)))
            .chain(self.max_tails.indices().map(|i| (i, self.pow_tails.contains(i), true)))
            .collect();
        v.sort_unstable_by_key(|e| e.0);
        v.dedup_by_key(|e| e.0);
        v
    }
}
