//! Range estimators (`docs/range-estimators.md`): they see batches of a tensor and return `(x_min, x_max)`, per
//! tensor or per channel (dimension 0).
//!
//! * [`RangeMethod::CurrentMinMax`], [`RangeMethod::AllMinMax`], [`RangeMethod::RunningMinMax`]:
//!   statistics of the batches (NaNs are ignored; a batch without a finite value is an error).
//! * [`RangeMethod::Mse`]: grid search over 111 candidate maxima fixed on the first batch,
//!   accumulating the mean squared quantization error across batches; optionally also over the
//!   mantissa bits of an FP quantizer (plurality vote over channels). See [`mse`].
//! * [`RangeMethod::LineSearch`]: the 1000-candidate symmetric search of the analytical study.
//!   See [`line_search`].
//!
//! ```
//! use fp8q_core::range::{RangeEstimator, RangeMethod};
//! use fp8q_core::quantizer::QuantMethod;
//! let mut method: QuantMethod = QuantMethod::from_format("e4m3".parse().unwrap());
//! let mut est = RangeEstimator::new(RangeMethod::AllMinMax, false);
//! est.update(&[1.0, -3.0, 2.0], 1, &mut method).unwrap();
//! let r = est.update(&[5.0, -1.0], 1, &mut method).unwrap();
//! assert_eq!((r.min[0], r.max[0]), (-3.0, 5.0));
//! ```

pub mod line_search;
pub mod mse;

use crate::error::{FormatError, Result};
use crate::format::IntKind;
use crate::quantizer::{QuantMethod, Quantizer};
use rayon::prelude::*;
use std::fmt;
use std::str::FromStr;

/// How a range is estimated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangeMethod {
    /// Min and max of the latest batch only.
    CurrentMinMax,
    /// Running min of mins and max of maxes over all batches.
    AllMinMax,
    /// First batch sets it; then `r ← (1-μ)·current + μ·r`.
    RunningMinMax {
        /// `μ`, default 0.9.
        momentum: f32,
    },
    /// MSE grid search (111 candidates in `[0.1·A, 1.2·A]`), optionally over mantissa bits.
    Mse {
        /// Also search the FP quantizer's mantissa bits (`1 ..= n - 2`, unsigned slots too).
        mantissa_search: bool,
    },
    /// Symmetric 1-D grid search over `num_candidates` ranges up to `10·(absmax + margin)`.
    LineSearch {
        /// Number of candidates (1000).
        num_candidates: usize,
        /// Added to the absolute maximum before expanding (0.5).
        range_margin: f32,
    },
}

impl RangeMethod {
    /// Default momentum of `running_minmax`.
    pub const DEFAULT_MOMENTUM: f32 = 0.9;

    /// The CLI name.
    pub fn name(&self) -> &'static str {
        match self {
            RangeMethod::CurrentMinMax => "current_minmax",
            RangeMethod::AllMinMax => "allminmax",
            RangeMethod::RunningMinMax { .. } => "running_minmax",
            RangeMethod::Mse { .. } => "MSE",
            RangeMethod::LineSearch { .. } => "line_search",
        }
    }
}

impl fmt::Display for RangeMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RangeMethod {
    type Err = FormatError;
    /// `current_minmax`, `allminmax`, `running_minmax` (momentum 0.9), `mse`/`MSE` (no mantissa
    /// search), `line_search` (1000 candidates, margin 0.5).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "current_minmax" => Ok(RangeMethod::CurrentMinMax),
            "allminmax" | "all_minmax" => Ok(RangeMethod::AllMinMax),
            "running_minmax" => Ok(RangeMethod::RunningMinMax {
                momentum: Self::DEFAULT_MOMENTUM,
            }),
            "mse" => Ok(RangeMethod::Mse { mantissa_search: false }),
            "line_search" => Ok(RangeMethod::LineSearch {
                num_candidates: 1000,
                range_margin: 0.5,
            }),
            _ => Err(FormatError::Invalid {
                what: "range method",
                why: format!("'{s}' is not one of current_minmax, allminmax, running_minmax, mse, line_search"),
            }),
        }
    }
}

/// A range per channel (or a single one for the whole tensor).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Range {
    /// Lower bounds.
    pub min: Vec<f32>,
    /// Upper bounds.
    pub max: Vec<f32>,
}

impl Range {
    /// A single range.
    pub fn per_tensor(min: f32, max: f32) -> Self {
        Self {
            min: vec![min],
            max: vec![max],
        }
    }
    /// Number of channels (1 per tensor).
    pub fn num_channels(&self) -> usize {
        self.min.len()
    }
    /// One quantizer per channel for `method`.
    ///
    /// Symmetric INT per channel follows the reference, which picks signed vs unsigned once for
    /// the whole tensor (signed when any channel's minimum is negative): a channel whose own
    /// minimum is ≥ 0 then gets the signed grid of its absolute maximum.
    pub fn quantizers(&self, method: &QuantMethod) -> Result<Vec<Quantizer>> {
        self.channel_bounds(method)
            .into_iter()
            .map(|(lo, hi)| method.quantizer_for_range(lo, hi))
            .collect()
    }

    /// The bounds each channel's quantizer of `method` is built from: the channel's own, except
    /// that a symmetric INT method over several channels is signed for all of them when any
    /// channel has a negative minimum (a channel whose minimum is not negative gets
    /// `-f32::MIN_POSITIVE`, which decides the sign without changing the absolute maximum).
    pub fn channel_bounds(&self, method: &QuantMethod) -> Vec<(f32, f32)> {
        let whole_tensor_signed = matches!(method, QuantMethod::Int(f) if f.kind == IntKind::Symmetric)
            && self.min.len() > 1
            && self.min.iter().any(|&m| m < 0.0);
        self.min
            .iter()
            .zip(&self.max)
            .map(|(&lo, &hi)| {
                let lo = if whole_tensor_signed && lo >= 0.0 {
                    -f32::MIN_POSITIVE
                } else {
                    lo
                };
                (lo, hi)
            })
            .collect()
    }
}

/// A stateful range estimator for one tensor.
#[derive(Debug, Clone)]
pub struct RangeEstimator {
    method: RangeMethod,
    per_channel: bool,
    range: Option<Range>,
    mse: Option<mse::MseState>,
    line: Option<line_search::LineSearchState>,
    fixed_fp_maxval: Option<f64>,
}

impl RangeEstimator {
    /// A fresh estimator.
    pub fn new(method: RangeMethod, per_channel: bool) -> Self {
        Self {
            method,
            per_channel,
            range: None,
            mse: None,
            line: None,
            fixed_fp_maxval: None,
        }
    }
    /// The maximum an FP quantizer keeps whatever the range (set-maxval off): the MSE
    /// estimator then scores every candidate at this maximum, as the reference's quantizer
    /// ignores the candidate ranges (only the mantissa count, and the sign, are then chosen).
    pub fn set_fixed_fp_maxval(&mut self, alpha: Option<f64>) {
        self.fixed_fp_maxval = alpha;
    }
    /// The method.
    pub fn method(&self) -> RangeMethod {
        self.method
    }
    /// Whether ranges are per channel.
    pub fn per_channel(&self) -> bool {
        self.per_channel
    }
    /// The latest estimate, if a batch has been seen.
    pub fn range(&self) -> Option<&Range> {
        self.range.as_ref()
    }
    /// Forget everything seen.
    pub fn reset(&mut self) {
        *self = Self {
            fixed_fp_maxval: self.fixed_fp_maxval,
            ..Self::new(self.method, self.per_channel)
        };
    }

    /// Observe a batch: `data` is row-major with `dim0` entries along dimension 0 (the channels
    /// when per channel; ignored otherwise). Returns the updated range. The MSE estimator with
    /// mantissa search may change `method`'s mantissa bits.
    pub fn update(&mut self, data: &[f32], dim0: usize, method: &mut QuantMethod) -> Result<Range> {
        let channels = if self.per_channel { dim0 } else { 1 };
        if data.is_empty() || channels == 0 || !data.len().is_multiple_of(channels) {
            return Err(FormatError::Shape(format!(
                "cannot estimate a range of {} elements over {channels} channel(s)",
                data.len()
            )));
        }
        let range = match self.method {
            RangeMethod::CurrentMinMax => channel_min_max(data, channels)?,
            RangeMethod::AllMinMax => {
                let cur = channel_min_max(data, channels)?;
                match self.range.take() {
                    Some(prev) if prev.num_channels() == channels => Range {
                        min: prev.min.iter().zip(&cur.min).map(|(a, b)| a.min(*b)).collect(),
                        max: prev.max.iter().zip(&cur.max).map(|(a, b)| a.max(*b)).collect(),
                    },
                    Some(_) => return Err(channel_change()),
                    None => cur,
                }
            }
            RangeMethod::RunningMinMax { momentum } => {
                let cur = channel_min_max(data, channels)?;
                let mix = |r: f32, c: f32| (1.0 - momentum) * c + momentum * r;
                match self.range.take() {
                    Some(prev) if prev.num_channels() == channels => Range {
                        min: prev.min.iter().zip(&cur.min).map(|(r, c)| mix(*r, *c)).collect(),
                        max: prev.max.iter().zip(&cur.max).map(|(r, c)| mix(*r, *c)).collect(),
                    },
                    Some(_) => return Err(channel_change()),
                    None => cur,
                }
            }
            RangeMethod::Mse { mantissa_search } => {
                let state = match self.mse.take() {
                    Some(s) => s,
                    None => mse::MseState::new(data, channels, method, mantissa_search)?,
                };
                let state = self.mse.insert(state);
                state.update(data, method, self.fixed_fp_maxval)?
            }
            RangeMethod::LineSearch {
                num_candidates,
                range_margin,
            } => {
                let state = match self.line.take() {
                    Some(s) => s,
                    None => line_search::LineSearchState::new(data, channels, num_candidates, range_margin)?,
                };
                let state = self.line.insert(state);
                state.update(data, method)?
            }
        };
        self.range = Some(range.clone());
        Ok(range)
    }
}

fn channel_change() -> FormatError {
    FormatError::Shape("the number of channels changed between batches".into())
}

/// Per-channel minimum and maximum (NaNs ignored).
pub fn channel_min_max(data: &[f32], channels: usize) -> Result<Range> {
    let per = data.len() / channels;
    let (min, max): (Vec<f32>, Vec<f32>) = if channels == 1 {
        let (lo, hi) = data.par_chunks(1 << 16).map(min_max).reduce(
            || (f32::INFINITY, f32::NEG_INFINITY),
            |a, b| (a.0.min(b.0), a.1.max(b.1)),
        );
        (vec![lo], vec![hi])
    } else {
        data.par_chunks(per).map(min_max).unzip()
    };
    if min.iter().chain(&max).any(|v| !v.is_finite()) {
        return Err(FormatError::BadRange {
            min: min.iter().copied().fold(f32::INFINITY, f32::min) as f64,
            max: max.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64,
            why: "the data hold no finite values in some channel (or contain ±Inf)",
        });
    }
    Ok(Range { min, max })
}

fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    })
}
