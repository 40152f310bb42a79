//! `quantize` and `estimate_range`: the library path of `fp8q quantize` (format, fixed range or
//! range estimator, per tensor or per channel along axis 0) on NumPy arrays; block-scaled
//! formats through `quantize_blocks` (blocks along one axis, each with its own scale).

use crate::arrays::{check_out, FloatArray};
use crate::blocks::BlockOptions;
use crate::errors::value_error;
use fp8q_core::format::{BlockFormat, Format};
use fp8q_core::quantizer::block_quantizer::{quantize_blocks, quantize_blocks_inplace};
use fp8q_core::quantizer::{quantize_channels, quantize_channels_into, QuantMethod};
use fp8q_core::range::{Range, RangeEstimator, RangeMethod};
use fp8q_core::FormatError;
use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A range estimator's name: `minmax` (the Python name of `current_minmax`) or any name the
/// CLI's `--range` takes.
pub(crate) fn parse_range(name: &str) -> PyResult<RangeMethod> {
    match name.trim().to_ascii_lowercase().as_str() {
        "minmax" => Ok(RangeMethod::CurrentMinMax),
        _ => name.parse::<RangeMethod>().map_err(value_error),
    }
}

/// Everything that decides the quantizers, checked before any data is read.
#[derive(Debug, Clone)]
struct Settings {
    format: Format,
    method: QuantMethod,
    /// Fixed maxima (one, or one per channel), already rounded to `f32` as the CLI does.
    fixed: Option<Vec<f32>>,
    range: RangeMethod,
    per_channel: bool,
}

impl Settings {
    fn new(
        fmt: &str,
        maxval: Option<Vec<f64>>,
        per_channel: bool,
        range: &str,
        mantissa_search: bool,
    ) -> PyResult<Self> {
        let format: Format = fmt.parse().map_err(value_error)?;
        if let Some(block) = format.as_block() {
            return Err(value_error(format!(
                "{block} is a block-scaled format: it has no range (each block of {} values takes its scale from its own largest magnitude)",
                block.block_size()
            )));
        }
        let method = QuantMethod::from_format(format);
        let parsed = parse_range(range)?;
        let range = match (parsed, mantissa_search) {
            (RangeMethod::Mse { .. }, true) => {
                if method.mantissa_bits().is_none() {
                    return Err(value_error(format!(
                        "mantissa_search needs a flexible-bias FP format (eXmY), not {format}"
                    )));
                }
                RangeMethod::Mse { mantissa_search: true }
            }
            (_, true) => return Err(value_error("mantissa_search works with range='mse' only")),
            (m, false) => m,
        };
        let fixed = match maxval {
            None => None,
            Some(v) => {
                if range != RangeMethod::CurrentMinMax {
                    return Err(value_error(format!(
                        "maxval fixes the range: range='{range}' cannot be used with it"
                    )));
                }
                if v.is_empty() {
                    return Err(value_error("maxval is empty: give one value, or one per channel"));
                }
                for &a in &v {
                    if !(a.is_finite() && a > 0.0) {
                        return Err(value_error(format!("maxval must be positive and finite (got {a})")));
                    }
                }
                Some(v.iter().map(|&a| a as f32).collect())
            }
        };
        Ok(Self {
            format,
            method,
            fixed,
            range,
            per_channel,
        })
    }

    /// Channels along axis 0 for an array of `shape` (1 per tensor).
    fn channels(&self, shape: &[usize]) -> Result<usize, FormatError> {
        let dim0 = || {
            shape.first().copied().ok_or_else(|| {
                FormatError::Shape("per-channel quantization needs an array with at least one dimension".into())
            })
        };
        match &self.fixed {
            Some(v) if v.len() > 1 => {
                let c = dim0()?;
                if c != v.len() {
                    return Err(FormatError::Shape(format!(
                        "maxval has {} values but x has {c} channel(s) along axis 0 (give one maxval per channel, or a single one)",
                        v.len()
                    )));
                }
                Ok(c)
            }
            Some(_) => Ok(1),
            None if self.per_channel => dim0(),
            None => Ok(1),
        }
    }

    /// The range (fixed or estimated from `data`) and the method after a mantissa search.
    fn range_for(&self, data: &[f32], shape: &[usize]) -> Result<(Range, QuantMethod), FormatError> {
        let channels = self.channels(shape)?;
        let mut method = self.method;
        let range = match &self.fixed {
            Some(v) => {
                // an unsigned FP format takes [0, α], everything else [-α, α]
                let unsigned = matches!(self.format, Format::Fp(f) if !f.is_signed());
                Range {
                    min: v.iter().map(|&a| if unsigned { 0.0 } else { -a }).collect(),
                    max: v.clone(),
                }
            }
            None => {
                RangeEstimator::new(self.range, channels > 1 || self.per_channel).update(data, channels, &mut method)?
            }
        };
        Ok((range, method))
    }
}

/// What `quantize` does: ranges (fixed or estimated, per tensor or per channel), or blocks.
#[derive(Debug, Clone)]
enum Plan {
    Ranges(Settings),
    Blocks { format: BlockFormat, axis: isize },
}

impl Plan {
    fn new(
        fmt: &str,
        maxval: Option<Vec<f64>>,
        per_channel: bool,
        range: Option<&str>,
        mantissa_search: bool,
        blocks: BlockOptions<'_>,
    ) -> PyResult<Self> {
        let format: Format = fmt.parse().map_err(value_error)?;
        let Some(block) = blocks.resolve(format)? else {
            return Settings::new(fmt, maxval, per_channel, range.unwrap_or("minmax"), mantissa_search)
                .map(Plan::Ranges);
        };
        // a block takes its scale from its own values: no range to give or estimate
        let why = format!(
            "{block} is a block-scaled format: each block of {} values along block_axis gets its scale from its own largest magnitude",
            block.block_size()
        );
        let given = if maxval.is_some() {
            Some("maxval".to_string())
        } else if per_channel {
            Some("per_channel".to_string())
        } else if let Some(r) = range {
            Some(format!("range='{r}'"))
        } else if mantissa_search {
            Some("mantissa_search".to_string())
        } else {
            None
        };
        if let Some(what) = given {
            return Err(value_error(format!(
                "{what} does not apply to block-scaled formats: {why}"
            )));
        }
        Ok(Plan::Blocks {
            format: block,
            axis: blocks.axis(),
        })
    }

    fn run_inplace(&self, data: &mut [f32], shape: &[usize]) -> Result<(), FormatError> {
        match self {
            Plan::Ranges(settings) => {
                let (range, method) = settings.range_for(data, shape)?;
                quantize_channels(&range.quantizers(&method)?, data)
            }
            Plan::Blocks { format, axis } => quantize_blocks_inplace(*format, data, shape, *axis),
        }
    }

    fn run_into(&self, src: &[f32], dst: &mut [f32], shape: &[usize]) -> Result<(), FormatError> {
        match self {
            Plan::Ranges(settings) => {
                let (range, method) = settings.range_for(src, shape)?;
                quantize_channels_into(&range.quantizers(&method)?, src, dst)
            }
            Plan::Blocks { format, axis } => quantize_blocks(*format, src, shape, *axis, dst),
        }
    }
}

/// Quantize `x` (see the Python docstring of `fp8q.quantize`).
#[pyfunction]
#[pyo3(signature = (x, fmt, maxval=None, per_channel=false, range=None, mantissa_search=false, out=None, block_size=None, block_axis=None, scale_rule=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn quantize<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    fmt: &str,
    maxval: Option<Vec<f64>>,
    per_channel: bool,
    range: Option<&str>,
    mantissa_search: bool,
    out: Option<&Bound<'py, PyAny>>,
    block_size: Option<i64>,
    block_axis: Option<isize>,
    scale_rule: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    let blocks = BlockOptions {
        block_size,
        block_axis,
        scale_rule,
    };
    let plan = Plan::new(fmt, maxval, per_channel, range, mantissa_search, blocks)?;
    let xa = FloatArray::new(x, "x")?;
    let shape = xa.shape();
    let out_array = match out {
        Some(o) => {
            let oa = FloatArray::new(o, "out")?;
            check_out(&xa, &oa)?;
            Some(oa)
        }
        None => None,
    };
    let in_place = out_array.as_ref().is_some_and(|o| o.data_ptr() == xa.data_ptr());

    // float32 in C order: straight on the buffers
    if let FloatArray::F32(xf) = &xa {
        if xa.untyped().is_c_contiguous() {
            if in_place {
                let mut w = xf.try_readwrite().map_err(value_error)?;
                let data = w.as_slice_mut().map_err(value_error)?;
                py.detach(|| plan.run_inplace(data, &shape)).map_err(value_error)?;
                return Ok(x.clone());
            }
            let target = match out_array {
                Some(o) => o,
                None => xa.zeros_like(py),
            };
            let FloatArray::F32(tf) = &target else {
                unreachable!("out was checked to be float32")
            };
            let r = xf.try_readonly().map_err(value_error)?;
            let mut w = tf.try_readwrite().map_err(|e| {
                value_error(format!(
                    "out cannot be written: {e} (pass out=x itself to work in place)"
                ))
            })?;
            let src = r.as_slice().map_err(value_error)?;
            let dst = w.as_slice_mut().map_err(value_error)?;
            py.detach(|| plan.run_into(src, dst, &shape)).map_err(value_error)?;
            drop(w);
            return Ok(target.into_any());
        }
    }

    // other dtypes and layouts: through an f32 copy
    let mut data = xa.to_f32_vec(py)?;
    py.detach(|| plan.run_inplace(&mut data, &shape)).map_err(value_error)?;
    let target = match out_array {
        Some(o) => o,
        None => xa.zeros_like(py),
    };
    target.write_f32(py, &data)?;
    Ok(target.into_any())
}

/// Estimate the range of `x` (see the Python docstring of `fp8q.estimate_range`).
#[pyfunction]
#[pyo3(signature = (x, fmt, method="minmax", per_channel=false, mantissa_search=false))]
pub(crate) fn estimate_range<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    fmt: &str,
    method: &str,
    per_channel: bool,
    mantissa_search: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let settings = Settings::new(fmt, None, per_channel, method, mantissa_search)?;
    let xa = FloatArray::new(x, "x")?;
    let shape = xa.shape();
    let (range, qmethod) = match xa.f32_view()? {
        Some(view) => {
            let data = view.as_slice().map_err(value_error)?;
            py.detach(|| settings.range_for(data, &shape))
        }
        None => {
            let data = xa.to_f32_vec(py)?;
            py.detach(|| settings.range_for(&data, &shape))
        }
    }
    .map_err(value_error)?;
    let maxval: Vec<f32> = range
        .min
        .iter()
        .zip(&range.max)
        .map(|(lo, hi)| lo.abs().max(hi.abs()))
        .collect();
    let d = PyDict::new(py);
    let put = |key: &str, v: Vec<f32>| -> PyResult<()> {
        if per_channel {
            d.set_item(key, PyArray1::from_vec(py, v))
        } else {
            d.set_item(key, v[0])
        }
    };
    // the format actually used (a mantissa search may change the split; FP drops the sign for
    // a non-negative range when the named format is unsigned)
    let name = match qmethod {
        QuantMethod::Fp { .. } => {
            let lo = range.min.iter().copied().fold(f32::INFINITY, f32::min);
            match qmethod.fp_format_for(lo).map_err(value_error)? {
                Some(f) => Format::Fp(f).to_string(),
                None => settings.format.to_string(),
            }
        }
        _ => settings.format.to_string(),
    };
    put("min", range.min.clone())?;
    put("max", range.max.clone())?;
    put("maxval", maxval)?;
    d.set_item("format", name)?;
    d.set_item("mantissa_bits", qmethod.mantissa_bits())?;
    d.set_item("method", settings.range.name())?;
    Ok(d)
}
