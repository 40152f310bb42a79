//! `encode` and `decode`: the standard 8-bit encodings (float8_e4m3fn, float8_e5m2, and the
//! fnuz pair), bit-exact with ml_dtypes, between float arrays and `uint8` codes.

use crate::arrays::FloatArray;
use crate::errors::{type_error, value_error};
use fp8q_core::format::{Format, Overflow, StandardFp8};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
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
