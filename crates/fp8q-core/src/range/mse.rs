//! The MSE range estimator (`docs/range-estimators.md`).
//!
//! On the first batch, each channel (or the whole tensor) gets 111 candidate maxima
//! `linspace(0.1·A, 1.2·A, 111)` with `A = max(|min|, |max|)` of that batch; they stay fixed.
//! For every candidate mantissa count and candidate maximum `α`, the batch is quantized with the
//! range `[-α, α]` (`[0, α]` when unsigned formats are allowed and the batch has no negative
//! value) and the mean squared error per channel is *added* to an accumulator kept across
//! batches. With mantissa search the counts are `1 ..= n - 2`, for unsigned slots too (as in the
//! reference, see [`MseState::new`]). The mantissa count is the plurality vote of the channels' best counts (ties to the
//! smallest), and each channel then takes its best candidate for that count.

use super::Range;
use crate::error::{FormatError, Result};
use crate::quantizer::{FpQuantizer, QuantMethod, Quantizer};
use rayon::prelude::*;

/// Number of candidate maxima.
pub const NUM_CANDIDATES: usize = 111;

/// Accumulated state of an MSE estimator.
#[derive(Debug, Clone)]
pub struct MseState {
    channels: usize,
    /// `[channel][candidate]`
    candidates: Vec<Vec<f32>>,
    /// mantissa counts searched (one entry without mantissa search)
    mantissas: Vec<Option<u32>>,
    /// `[mantissa][candidate][channel]` accumulated mean squared errors
    mses: Vec<f64>,
}

impl MseState {
    /// Fix the candidates from the first batch.
    pub(crate) fn new(data: &[f32], channels: usize, method: &QuantMethod, mantissa_search: bool) -> Result<Self> {
        let range = super::channel_min_max(data, channels)?;
        let candidates = range
            .min
            .iter()
            .zip(&range.max)
            .map(|(lo, hi)| {
                let a = lo.abs().max(hi.abs()) as f64;
                let (start, end) = (0.1 * a, 1.2 * a);
                (0..NUM_CANDIDATES)
                    .map(|i| (start + (end - start) * i as f64 / (NUM_CANDIDATES - 1) as f64) as f32)
                    .collect()
            })
            .collect();
        let mantissas = match (method, mantissa_search) {
            // `1 ..= n - 2`, also for an unsigned slot: the reference bounds the search by the
            // quantizer's sign bit *before* this first batch sets the range, and a quantizer
            // starts signed. (On a later batch of an unsigned slot the reference would search
            // `1 ..= n - 1` and fails with an IndexError on its accumulator; the counts stay
            // those of the first batch here.)
            (QuantMethod::Fp { n_bits, .. }, true) => (1..n_bits - 1).map(Some).collect(),
            (m, _) => vec![m.mantissa_bits()],
        };
        Ok(Self {
            channels,
            candidates,
            mses: vec![0.0; mantissas.len() * NUM_CANDIDATES * channels],
            mantissas,
        })
    }

    /// Add a batch's errors and return the current choice; sets `method`'s mantissa bits. With
    /// `fixed_alpha` (an FP quantizer whose maximum the range does not set) every candidate is
    /// quantized with that maximum, as the reference's quantizer ignores the candidate: all
    /// candidates of a mantissa count score alike, the first one is returned, and only the
    /// mantissa count is really chosen.
    pub(crate) fn update(&mut self, data: &[f32], method: &mut QuantMethod, fixed_alpha: Option<f64>) -> Result<Range> {
        let channels = self.channels;
        if !data.len().is_multiple_of(channels) {
            return Err(FormatError::Shape(
                "batch does not split into the estimator's channels".into(),
            ));
        }
        let per = data.len() / channels;
        let signed = signed_batch(data, method);
        // every (mantissa, candidate, channel) cell is independent: compute them in parallel
        let methods: Vec<QuantMethod> = self
            .mantissas
            .iter()
            .map(|m| match m {
                Some(m) if method.mantissa_bits().is_some() => method.with_mantissa_bits(*m),
                _ => Ok(*method),
            })
            .collect::<Result<_>>()?;
        let candidates = &self.candidates;
        let fixed = match (fixed_alpha, &*method) {
            (Some(a), QuantMethod::Fp { .. }) => Some(a),
            _ => None,
        };
        let added: Vec<f64> = (0..self.mses.len())
            .into_par_iter()
            .map(|idx| {
                let c = idx % channels;
                let i = (idx / channels) % NUM_CANDIDATES;
                let mi = idx / (channels * NUM_CANDIDATES);
                if fixed.is_some() && i > 0 {
                    return Ok(f64::NAN); // the same as candidate 0: copied below
                }
                let chunk = &data[c * per..(c + 1) * per];
                let q = match fixed {
                    Some(a) => {
                        let lo = if signed { -1.0 } else { 0.0 };
                        let format = methods[mi].fp_format_for(lo)?.expect("an FP method");
                        Quantizer::Fp(FpQuantizer::new_allow_zero(format, a)?)
                    }
                    None => {
                        let alpha = candidates[c][i];
                        let lo = if signed { -alpha } else { 0.0 };
                        methods[mi].quantizer_for_range(lo, alpha)?
                    }
                };
                Ok(q.sum_sq_error(chunk) / per as f64)
            })
            .collect::<Result<_>>()?;
        let added: Vec<f64> = if fixed.is_some() {
            // candidate i of (mantissa, channel) scores as candidate 0
            (0..added.len())
                .map(|idx| {
                    let c = idx % channels;
                    let mi = idx / (channels * NUM_CANDIDATES);
                    added[mi * NUM_CANDIDATES * channels + c]
                })
                .collect()
        } else {
            added
        };
        for (acc, a) in self.mses.iter_mut().zip(added) {
            *acc += a;
        }

        // best mantissa per channel, then the plurality vote (ties to the smallest)
        let cell = |mi: usize, i: usize, c: usize| self.mses[(mi * NUM_CANDIDATES + i) * channels + c];
        let best_candidate = |mi: usize, c: usize| {
            (0..NUM_CANDIDATES)
                .min_by(|&a, &b| cell(mi, a, c).total_cmp(&cell(mi, b, c)).then(a.cmp(&b)))
                .expect("candidates")
        };
        let mut votes = vec![0usize; self.mantissas.len()];
        for c in 0..channels {
            let best_m = (0..self.mantissas.len())
                .min_by(|&a, &b| {
                    let ea = cell(a, best_candidate(a, c), c);
                    let eb = cell(b, best_candidate(b, c), c);
                    ea.total_cmp(&eb).then(a.cmp(&b))
                })
                .expect("mantissas");
            votes[best_m] += 1;
        }
        let winner = (0..votes.len())
            .max_by(|&a, &b| votes[a].cmp(&votes[b]).then(b.cmp(&a)))
            .expect("votes");
        if let Some(m) = self.mantissas[winner] {
            *method = method.with_mantissa_bits(m)?;
        }
        let max: Vec<f32> = (0..channels)
            .map(|c| self.candidates[c][best_candidate(winner, c)])
            .collect();
        let min = max.iter().map(|&a| if signed { -a } else { 0.0 }).collect();
        Ok(Range { min, max })
    }
}

/// Whether the candidate ranges are signed: always, unless the method allows unsigned FP
/// formats and the batch has no negative value.
fn signed_batch(data: &[f32], method: &QuantMethod) -> bool {
    match method {
        QuantMethod::Fp {
            allow_unsigned: true, ..
        } => data.iter().any(|&v| v < 0.0),
        _ => true,
    }
}
