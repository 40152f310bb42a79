//! The 1000-candidate line search of the analytical study (`docs/range-estimators.md`).
//!
//! `T = max(|min|, |max|) + margin` of the first batch (whole tensor); candidate `i` in
//! `1 ..= N` is the range `[-i·h, i·h]` (`[0, i·h]` when the first batch has no negative value)
//! with `h = 10·T / N`. The loss, the sum of squared quantization errors per channel, is added up
//! over batches; each channel takes its argmin (the first on ties).

use super::Range;
use crate::error::{FormatError, Result};
use crate::quantizer::QuantMethod;
use rayon::prelude::*;

/// How far past the data's range the candidates reach (a factor on `T`).
pub const EXPAND_RANGE: f64 = 10.0;

/// Accumulated state of a line search.
#[derive(Debug, Clone)]
pub struct LineSearchState {
    channels: usize,
    num_candidates: usize,
    step: f64,
    one_sided: bool,
    /// `[candidate][channel]`, candidate index 0 ↔ i = 1
    loss: Vec<f64>,
}

impl LineSearchState {
    pub(crate) fn new(data: &[f32], channels: usize, num_candidates: usize, margin: f32) -> Result<Self> {
        if num_candidates == 0 {
            return Err(FormatError::Invalid {
                what: "number of candidates",
                why: "must be at least 1".into(),
            });
        }
        let r = super::channel_min_max(data, 1)?;
        let t = (r.min[0].abs().max(r.max[0]) + margin) as f64;
        Ok(Self {
            channels,
            num_candidates,
            step: t * EXPAND_RANGE / num_candidates as f64,
            one_sided: r.min[0] >= 0.0,
            loss: vec![0.0; num_candidates * channels],
        })
    }

    pub(crate) fn update(&mut self, data: &[f32], method: &QuantMethod) -> Result<Range> {
        let channels = self.channels;
        let per = data.len() / channels;
        let (step, one_sided) = (self.step, self.one_sided);
        let bounds = |i: usize| {
            let hi = (step * (i + 1) as f64) as f32;
            (if one_sided { 0.0 } else { -hi }, hi)
        };
        let added: Vec<f64> = (0..self.loss.len())
            .into_par_iter()
            .map(|idx| {
                let (i, c) = (idx / channels, idx % channels);
                let (lo, hi) = bounds(i);
                let q = method.quantizer_for_range(lo, hi)?;
                Ok(q.sum_sq_error(&data[c * per..(c + 1) * per]))
            })
            .collect::<Result<_>>()?;
        for (acc, a) in self.loss.iter_mut().zip(added) {
            *acc += a;
        }
        let (mut min, mut max) = (Vec::with_capacity(channels), Vec::with_capacity(channels));
        for c in 0..channels {
            let best = (0..self.num_candidates)
                .min_by(|&a, &b| {
                    self.loss[a * channels + c]
                        .total_cmp(&self.loss[b * channels + c])
                        .then(a.cmp(&b))
                })
                .expect("candidates");
            let (lo, hi) = bounds(best);
            min.push(lo);
            max.push(hi);
        }
        Ok(Range { min, max })
    }
}
