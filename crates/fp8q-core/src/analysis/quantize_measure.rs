//! Quantize a tensor with a format and a range setting and measure the SQNR of the result: the
//! one code path of `fp8q quantize` and of the per-tensor format analysis
//! ([`super::format_choice`]), so that both report the same figures for the same tensor.
//!
//! ```
//! use fp8q_core::analysis::quantize_measure::{quantize_and_measure, RangeOptions};
//! let x: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) / 8.0).collect();
//! let opts = RangeOptions::new("current_minmax".parse().unwrap(), false, false);
//! let r = quantize_and_measure(&x, 1, &"int8".parse().unwrap(), &opts).unwrap();
//! assert_eq!(r.range.max[0], 3.9375);
//! assert!(r.sqnr_db > 40.0);
//! ```

use super::{sqnr_db, AnalysisError};
use crate::format::Format;
use crate::quantizer::{QuantMethod, Quantizer};
use crate::range::{Range, RangeEstimator, RangeMethod};
use rayon::prelude::*;
use serde::Serialize;

/// How the range of a tensor is estimated: `fp8q quantize`'s `--range`, `--per-channel`,
/// `--mantissa-search` (and `--allow-unsigned`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RangeOptions {
    /// The estimator, run once on the whole tensor (one batch).
    pub method: RangeMethod,
    /// One range per index of dimension 0.
    pub per_channel: bool,
    /// With [`RangeMethod::Mse`] and a flexible-bias FP format: also search the mantissa bits.
    pub mantissa_search: bool,
    /// Flexible FP only: drop the sign bit for non-negative ranges.
    pub allow_unsigned: bool,
}

impl RangeOptions {
    /// Options with `allow_unsigned` off.
    pub fn new(method: RangeMethod, per_channel: bool, mantissa_search: bool) -> Self {
        RangeOptions {
            method,
            per_channel,
            mantissa_search,
            allow_unsigned: false,
        }
    }

    /// The quantization method and estimator for `format`, checking the combination as
    /// `fp8q quantize` does: `--mantissa-search` needs `--range mse` and a flexible-bias FP
    /// format (where it searches, the mantissa search is switched on in the returned
    /// [`RangeMethod::Mse`]); `--allow-unsigned` needs a flexible-bias FP format.
    pub fn resolve(&self, format: &Format) -> Result<(QuantMethod, RangeMethod), AnalysisError> {
        let invalid = |why: String| AnalysisError::Invalid { what: "options", why };
        let mut base = QuantMethod::from_format(*format);
        if self.allow_unsigned {
            match &mut base {
                QuantMethod::Fp { allow_unsigned, .. } => *allow_unsigned = true,
                _ => {
                    return Err(invalid(format!(
                        "--allow-unsigned applies to flexible-bias FP formats (eXmY) only, not {format}"
                    )))
                }
            }
        }
        let method = match (self.method, self.mantissa_search) {
            (RangeMethod::Mse { .. }, true) => {
                if base.mantissa_bits().is_none() {
                    return Err(invalid(format!(
                        "--mantissa-search needs a flexible-bias FP format (eXmY), not {format}"
                    )));
                }
                RangeMethod::Mse { mantissa_search: true }
            }
            (_, true) => return Err(invalid("--mantissa-search works with --range mse only".into())),
            (m, false) => m,
        };
        Ok((base, method))
    }
}

/// The outcome of quantizing one tensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measured {
    /// The method used (the mantissa search may have changed the split).
    #[serde(skip)]
    pub method: QuantMethod,
    /// The range per channel (one entry per tensor unless per channel).
    pub range: Range,
    /// `Σ x²` over the tensor.
    pub signal: f64,
    /// `Σ (q(x) - x)²` over the tensor.
    pub noise: f64,
    /// `noise / numel`.
    pub mse: f64,
    /// `10·log10(signal / noise)` (`+∞` when nothing is lost, NaN for NaN data).
    pub sqnr_db: f64,
}

/// The number of channels a range of `data` gets: `dim0` when per channel, else 1.
fn channels(per_channel: bool, dim0: usize) -> usize {
    if per_channel {
        dim0.max(1)
    } else {
        1
    }
}

/// Estimate the range of `data` (row-major, `dim0` entries along dimension 0) for `format` with
/// `opts`, as one batch. Returns the method (after any mantissa search) and the range.
pub fn estimate_range(
    data: &[f32],
    dim0: usize,
    format: &Format,
    opts: &RangeOptions,
) -> Result<(QuantMethod, Range), AnalysisError> {
    if data.is_empty() {
        return Err(AnalysisError::Invalid {
            what: "tensor",
            why: "the tensor is empty".into(),
        });
    }
    let (mut method, range_method) = opts.resolve(format)?;
    let range = RangeEstimator::new(range_method, opts.per_channel).update(
        data,
        channels(opts.per_channel, dim0),
        &mut method,
    )?;
    Ok((method, range))
}

/// `Σ (q(x) - x)²` of `data` under one quantizer per index of dimension 0 (or one for all),
/// without writing anything; parallel, and summed in a fixed order (deterministic).
pub fn sum_sq_error(quantizers: &[Quantizer], data: &[f32]) -> Result<f64, AnalysisError> {
    let c = quantizers.len();
    if c == 0 || !data.len().is_multiple_of(c) {
        return Err(AnalysisError::Invalid {
            what: "range",
            why: format!("{} channel range(s) do not divide {} elements", c, data.len()),
        });
    }
    let parts: Vec<f64> = if c == 1 {
        let q = &quantizers[0];
        data.par_chunks(1 << 16).map(|x| q.sum_sq_error(x)).collect()
    } else {
        let per = data.len() / c;
        if per == 0 {
            return Ok(0.0);
        }
        data.par_chunks(per)
            .zip(quantizers.par_iter())
            .map(|(x, q)| q.sum_sq_error(x))
            .collect()
    };
    Ok(parts.iter().sum())
}

/// `Σ x²` in `f64` (parallel, fixed summation order).
pub fn sum_sq(data: &[f32]) -> f64 {
    let parts: Vec<f64> = data
        .par_chunks(1 << 16)
        .map(|x| x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>())
        .collect();
    parts.iter().sum()
}

/// Measure the quantization error of `data` with `method` at `range` (one range per index of
/// dimension 0, or one for all). `signal` is `Σ x²` if the caller already has it.
pub fn measure_at_range(
    data: &[f32],
    method: QuantMethod,
    range: Range,
    signal: Option<f64>,
) -> Result<Measured, AnalysisError> {
    let quantizers = range.quantizers(&method)?;
    let noise = sum_sq_error(&quantizers, data)?;
    let signal = signal.unwrap_or_else(|| sum_sq(data));
    Ok(Measured {
        method,
        range,
        signal,
        noise,
        mse: noise / data.len().max(1) as f64,
        sqnr_db: sqnr_db(signal, noise),
    })
}

/// [`measure_at_range`] for several `(method, range)` cases on the same data, in one pass over
/// memory: each block (a group of channels, or 64 Ki elements) is measured by every case while
/// it is in cache. Ranges have one channel or `dim0` channels.
pub fn measure_many(
    data: &[f32],
    dim0: usize,
    cases: Vec<(QuantMethod, Range)>,
    signal: Option<f64>,
) -> Result<Vec<Measured>, AnalysisError> {
    let dim0 = dim0.max(1);
    let quantizers: Vec<Vec<Quantizer>> = cases.iter().map(|(m, r)| r.quantizers(m)).collect::<Result<_, _>>()?;
    for q in &quantizers {
        if q.len() != 1 && (q.len() != dim0 || !data.len().is_multiple_of(dim0)) {
            return Err(AnalysisError::Invalid {
                what: "range",
                why: format!(
                    "{} channel range(s) for {} elements in {dim0} rows",
                    q.len(),
                    data.len()
                ),
            });
        }
    }
    let per_channel = quantizers.iter().any(|q| q.len() > 1);
    // rows of one channel each (per channel), or blocks of 64 Ki elements
    let row = if per_channel { data.len() / dim0 } else { 1 << 16 };
    let rows_per_task = if per_channel {
        (1usize << 14).div_ceil(row.max(1))
    } else {
        1
    };
    let parts: Vec<Vec<f64>> = if row == 0 {
        Vec::new()
    } else {
        data.par_chunks(row * rows_per_task)
            .enumerate()
            .map(|(t, block)| {
                let mut acc = vec![0.0f64; quantizers.len()];
                for (k, x) in block.chunks(row).enumerate() {
                    let r = t * rows_per_task + k;
                    for (a, q) in acc.iter_mut().zip(&quantizers) {
                        let q = if q.len() == 1 { &q[0] } else { &q[r] };
                        *a += q.sum_sq_error(x);
                    }
                }
                acc
            })
            .collect()
    };
    let signal = signal.unwrap_or_else(|| sum_sq(data));
    Ok(cases
        .into_iter()
        .enumerate()
        .map(|(i, (method, range))| {
            let noise: f64 = parts.iter().map(|p| p[i]).sum();
            Measured {
                method,
                range,
                signal,
                noise,
                mse: noise / data.len().max(1) as f64,
                sqnr_db: sqnr_db(signal, noise),
            }
        })
        .collect())
}

/// Estimate the range of `data` for `format` with `opts` and measure the SQNR of the
/// quantize–dequantized tensor: what `fp8q quantize` reports for one tensor.
pub fn quantize_and_measure(
    data: &[f32],
    dim0: usize,
    format: &Format,
    opts: &RangeOptions,
) -> Result<Measured, AnalysisError> {
    let (method, range) = estimate_range(data, dim0, format, opts)?;
    measure_at_range(data, method, range, None)
}

/// The name of the format a method ends up as (`E4M3`, `INT8`, `float8_e4m3fn`).
pub fn method_name(method: &QuantMethod) -> String {
    match method {
        QuantMethod::Fp {
            n_bits, mantissa_bits, ..
        } => format!("E{}M{}", n_bits - 1 - mantissa_bits, mantissa_bits),
        QuantMethod::Int(f) => f.name(),
        QuantMethod::Standard(s) => s.name().to_string(),
        QuantMethod::Block(b) => b.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// INT8 symmetric on a tensor whose values all sit on the grid except one: the noise is known
    /// in closed form.
    #[test]
    fn int8_closed_form() {
        // absmax 127 → Δ = 1; 0.25 rounds to 0 (error 0.0625), 2.5 to 2 (ties to even: 0.25)
        let x = [127.0f32, -3.0, 0.25, 2.5, 0.0, -127.0];
        let opts = RangeOptions::new(RangeMethod::CurrentMinMax, false, false);
        let m = quantize_and_measure(&x, 1, &"int8".parse().unwrap(), &opts).unwrap();
        assert_eq!(m.noise, 0.0625 + 0.25);
        let signal = 2.0 * 127.0f64 * 127.0 + 9.0 + 0.0625 + 6.25;
        assert_eq!(m.signal, signal);
        assert!((m.sqnr_db - 10.0 * (signal / 0.3125).log10()).abs() < 1e-12);
        // per channel: rows [127, -3, 0.25] and [2.5, 0, -127]
        let opts = RangeOptions::new(RangeMethod::CurrentMinMax, true, false);
        let m = quantize_and_measure(&x, 2, &"int8".parse().unwrap(), &opts).unwrap();
        assert_eq!(m.range.num_channels(), 2);
        assert_eq!(m.noise, 0.0625 + 0.25);
    }

    /// Exact reconstruction is `+∞` dB for every format and every range method, including an
    /// all-zero tensor (0/0, which every format reproduces); NaN inputs keep the figures NaN.
    #[test]
    fn lossless_is_infinite_and_nan_stays_nan() {
        let zeros = [0.0f32; 12];
        // ±absmax and 0 are on every symmetric grid scaled to the min–max range
        let on_grid = [1.5f32, -1.5, 0.0, 1.5];
        for method in ["current_minmax", "mse", "line_search"] {
            for format in ["e4m3", "e2m5", "int8", "float8_e5m2"] {
                let opts = RangeOptions::new(method.parse().unwrap(), false, false);
                let f = format.parse().unwrap();
                let cases: &[&[f32]] = if method == "current_minmax" {
                    &[&zeros, &on_grid]
                } else {
                    &[&zeros]
                };
                for x in cases {
                    let m = quantize_and_measure(x, 1, &f, &opts).unwrap();
                    assert_eq!(m.noise, 0.0, "{method} {format} {x:?}");
                    assert_eq!(m.sqnr_db, f64::INFINITY, "{method} {format} {x:?}");
                }
            }
        }
        let range = Range {
            min: vec![-2.0],
            max: vec![2.0],
        };
        let m = measure_at_range(
            &[1.0, f32::NAN, 0.3],
            QuantMethod::from_format("e4m3".parse().unwrap()),
            range,
            None,
        )
        .unwrap();
        assert!(m.mse.is_nan() && m.sqnr_db.is_nan());
        assert!(super::super::sqnr_db(0.0, 1.0) == f64::NEG_INFINITY);
    }

    #[test]
    fn option_errors() {
        let opts = RangeOptions::new(RangeMethod::CurrentMinMax, false, true);
        assert!(opts.resolve(&"e4m3".parse().unwrap()).is_err());
        let opts = RangeOptions::new(RangeMethod::Mse { mantissa_search: false }, false, true);
        assert!(opts.resolve(&"int8".parse().unwrap()).is_err());
        let (_, m) = opts.resolve(&"e4m3".parse().unwrap()).unwrap();
        assert_eq!(m, RangeMethod::Mse { mantissa_search: true });
        assert!(quantize_and_measure(&[], 1, &"e4m3".parse().unwrap(), &opts).is_err());
    }
}
