//! `encode` and `decode`: the standard 8-bit encodings (float8_e4m3fn, float8_e5m2, and the
//! fnuz pair), bit-exact with ml_dtypes, between float arrays and `uint8` codes; block-scaled
//! formats (`encode_blocks`, `decode_blocks`) as element codes, block scales and a tensor scale
//! laid out as torchao lays them out (`fp8q_core::quantizer::block_codes`).

use crate::arrays::FloatArray;
use crate::blocks::{codes_shape, normalize_axis, parse_block, tensor_shape_of_codes, BlockOptions};
use crate::errors::{type_error, value_error};
use fp8q_core::format::{Format, Overflow, ScaleFormat, StandardFp8};
use fp8q_core::quantizer::block_codes::{
    decode_blocks as decode_blocks_core, encode_blocks as encode_blocks_core, scale_shape, BlockEncoding, BlockScales,
};
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use rayon::prelude::*;

/// Codes per parallel task.
const CHUNK: usize = 1 << 16;

/// The standard encoding named `fmt`.
fn standard(fmt: &str) -> PyResult<StandardFp8> {
    match fmt.parse::<Format>().map_err(value_error)? {
        Format::Standard(s) => Ok(s),
        other => Err(value_error(format!(
            "'{other}' has no fixed 8-bit encoding: encode/decode take float8_e4m3fn, float8_e5m2, float8_e4m3fnuz or float8_e5m2fnuz (use quantize for {other})"
        ))),
    }
}

/// Encode `x` into `uint8` codes (see the Python docstring of `fp8q.encode`).
#[pyfunction]
#[pyo3(signature = (x, fmt, saturate=true))]
pub(crate) fn encode<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    fmt: &str,
    saturate: bool,
) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
    let enc = standard(fmt)?;
    let overflow = if saturate { Overflow::Saturate } else { Overflow::Cast };
    let xa = FloatArray::new(x, "x")?;
    let codes = PyArrayDyn::<u8>::zeros(py, xa.shape(), false);
    {
        let mut w = codes.try_readwrite().map_err(value_error)?;
        let dst = w.as_slice_mut().map_err(value_error)?;
        let run = |src: &[f32], dst: &mut [u8]| {
            dst.par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(d, s)| enc.encode_slice(s, d, overflow));
        };
        match xa.f32_view()? {
            Some(view) => {
                let src = view.as_slice().map_err(value_error)?;
                py.detach(|| run(src, dst));
            }
            None => {
                let src = xa.to_f32_vec(py)?;
                py.detach(|| run(&src, dst));
            }
        }
    }
    Ok(codes)
}

/// Decode `uint8` codes to float32 (see the Python docstring of `fp8q.decode`).
#[pyfunction]
pub(crate) fn decode<'py>(
    py: Python<'py>,
    codes: &Bound<'py, PyAny>,
    fmt: &str,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let enc = standard(fmt)?;
    let untyped = codes
        .cast::<PyUntypedArray>()
        .map_err(|_| type_error("codes must be a NumPy array of uint8 (or an ml_dtypes float8 array)"))?;
    let arr = codes.cast::<PyArrayDyn<u8>>().map_err(|_| {
        type_error(format!(
            "unsupported dtype '{}' for codes: expected uint8 (or an ml_dtypes float8 array)",
            untyped.dtype()
        ))
    })?;
    let out = PyArrayDyn::<f32>::zeros(py, untyped.shape(), false);
    {
        let r = arr.try_readonly().map_err(value_error)?;
        let owned;
        let src: &[u8] = match r.as_slice() {
            Ok(s) if untyped.is_c_contiguous() => s,
            _ => {
                owned = r.as_array().iter().copied().collect::<Vec<u8>>();
                &owned
            }
        };
        let mut w = out.try_readwrite().map_err(value_error)?;
        let dst = w.as_slice_mut().map_err(value_error)?;
        py.detach(|| {
            dst.par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(d, s)| enc.decode_slice(s, d));
        });
    }
    Ok(out)
}

/// The spelling of block format `fmt` with the block keywords applied (block size and E8M0
/// rule), or `None` when `fmt` is not block-scaled (block keywords are then an error).
#[pyfunction]
#[pyo3(signature = (fmt, block_size=None, block_axis=None, scale_rule=None))]
pub(crate) fn block_format(
    fmt: &str,
    block_size: Option<i64>,
    block_axis: Option<isize>,
    scale_rule: Option<&str>,
) -> PyResult<Option<String>> {
    let opts = BlockOptions {
        block_size,
        block_axis,
        scale_rule,
    };
    Ok(parse_block(fmt, opts)?.map(|b| b.to_string()))
}

/// What `encode_blocks` returns: codes, scales, tensor scale, the format's spelling, the axis.
type Encoded<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>, Option<f32>, String, usize);

/// Encode `x` in a block-scaled format (see the Python docstring of `fp8q.encode`).
#[pyfunction]
#[pyo3(signature = (x, fmt, block_size=None, block_axis=None, scale_rule=None))]
pub(crate) fn encode_blocks<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    fmt: &str,
    block_size: Option<i64>,
    block_axis: Option<isize>,
    scale_rule: Option<&str>,
) -> PyResult<Encoded<'py>> {
    let opts = BlockOptions {
        block_size,
        block_axis,
        scale_rule,
    };
    let format = parse_block(fmt, opts)?.ok_or_else(|| value_error(format!("'{fmt}' is not a block-scaled format")))?;
    let xa = FloatArray::new(x, "x")?;
    let shape = xa.shape();
    let axis = normalize_axis(&shape, opts.axis())?;
    let enc = match xa.f32_view()? {
        Some(view) => {
            let src = view.as_slice().map_err(value_error)?;
            py.detach(|| encode_blocks_core(format, src, &shape, opts.axis()))
        }
        None => {
            let src = xa.to_f32_vec(py)?;
            py.detach(|| encode_blocks_core(format, &src, &shape, opts.axis()))
        }
    }
    .map_err(value_error)?;
    let codes = PyArray1::from_vec(py, enc.codes)
        .reshape(codes_shape(format, &shape))?
        .into_any();
    let scale_shape = enc.scale_shape;
    let scales = match enc.scales {
        BlockScales::E8m0(v) | BlockScales::E4m3(v) => PyArray1::from_vec(py, v).reshape(scale_shape)?.into_any(),
        BlockScales::F32(v) => PyArray1::from_vec(py, v).reshape(scale_shape)?.into_any(),
    };
    Ok((codes, scales, enc.tensor_scale, format.to_string(), axis))
}

/// The values of `arr` in C order, if it is a NumPy array of `T` (else a `TypeError` naming
/// `what` and `expected`).
fn c_order<T: numpy::Element + Copy>(
    arr: &Bound<'_, PyAny>,
    what: &str,
    expected: &str,
) -> PyResult<(Vec<T>, Vec<usize>)> {
    let untyped = arr
        .cast::<PyUntypedArray>()
        .map_err(|_| type_error(format!("{what} must be a NumPy array of {expected}")))?;
    let typed = arr.cast::<PyArrayDyn<T>>().map_err(|_| {
        type_error(format!(
            "unsupported dtype '{}' for {what}: expected {expected}",
            untyped.dtype()
        ))
    })?;
    let r = typed.try_readonly().map_err(value_error)?;
    let values = match r.as_slice() {
        Ok(s) if untyped.is_c_contiguous() => s.to_vec(),
        _ => r.as_array().iter().copied().collect(),
    };
    Ok((values, untyped.shape().to_vec()))
}

/// Decode block-scaled codes (see the Python docstring of `fp8q.decode`).
#[pyfunction]
#[pyo3(signature = (codes, scales, fmt, tensor_scale=None, shape=None, block_size=None, block_axis=None, scale_rule=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode_blocks<'py>(
    py: Python<'py>,
    codes: &Bound<'py, PyAny>,
    scales: &Bound<'py, PyAny>,
    fmt: &str,
    tensor_scale: Option<f32>,
    shape: Option<Vec<usize>>,
    block_size: Option<i64>,
    block_axis: Option<isize>,
    scale_rule: Option<&str>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let opts = BlockOptions {
        block_size,
        block_axis,
        scale_rule,
    };
    let format = parse_block(fmt, opts)?.ok_or_else(|| value_error(format!("'{fmt}' is not a block-scaled format")))?;
    let (code_bytes, code_shape) = c_order::<u8>(codes, "codes", "uint8")?;
    let shape = match shape {
        Some(s) => s,
        None => tensor_shape_of_codes(format, &code_shape)?,
    };
    normalize_axis(&shape, opts.axis())?;
    let two_level = format.scale() == ScaleFormat::E4m3;
    if tensor_scale.is_some() && !two_level {
        return Err(value_error(format!(
            "tensor_scale applies to two-level formats (E4M3 block scales under an FP32 tensor scale) only; {format} has {} block scales",
            format.scale().spelling()
        )));
    }
    let scales = match format.scale() {
        ScaleFormat::E8m0 => BlockScales::E8m0(c_order::<u8>(scales, "scales", "uint8 (E8M0 bytes)")?.0),
        ScaleFormat::E4m3 => BlockScales::E4m3(c_order::<u8>(scales, "scales", "uint8 (float8_e4m3fn bytes)")?.0),
        ScaleFormat::F32 => BlockScales::F32(c_order::<f32>(scales, "scales", "float32")?.0),
    };
    let enc = BlockEncoding {
        codes: code_bytes,
        scales,
        tensor_scale,
        scale_shape: scale_shape(format, &shape, opts.axis()).map_err(value_error)?,
    };
    let values = py
        .detach(|| decode_blocks_core(format, &enc, &shape, opts.axis()))
        .map_err(value_error)?;
    PyArray1::from_vec(py, values).reshape(shape)
}
