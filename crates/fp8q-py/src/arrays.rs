//! NumPy arrays in and out: float32/float64/float16 of any shape, read as `f32` in row-major
//! order. A C-contiguous float32 array is used in place (no copy); other layouts are copied and
//! other float widths converted to `f32` (float64 rounded to nearest, see [`narrow`]).

use crate::errors::{type_error, value_error};
use half::f16;
use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use rayon::prelude::*;

/// Elements per parallel task of the conversions.
const CHUNK: usize = 1 << 16;

/// The message for an array of a dtype fp8q does not take (the CLI's wording).
pub(crate) fn unsupported_dtype(obj: &Bound<'_, PyAny>) -> PyErr {
    let name = match obj.cast::<PyUntypedArray>() {
        Ok(a) => a.dtype().to_string(),
        Err(_) => obj
            .get_type()
            .name()
            .map_or_else(|_| "?".to_string(), |n| n.to_string()),
    };
    type_error(format!(
        "unsupported dtype '{name}': expected float32, float64 or float16"
    ))
}

/// A float array received from Python.
pub(crate) enum FloatArray<'py> {
    /// float32
    F32(Bound<'py, PyArrayDyn<f32>>),
    /// float64
    F64(Bound<'py, PyArrayDyn<f64>>),
    /// float16
    F16(Bound<'py, PyArrayDyn<f16>>),
}

impl<'py> FloatArray<'py> {
    /// Type-check `obj` (named `what` in errors).
    pub(crate) fn new(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Self> {
        if obj.cast::<PyUntypedArray>().is_err() {
            let ty = obj
                .get_type()
                .name()
                .map_or_else(|_| "?".to_string(), |n| n.to_string());
            return Err(type_error(format!("{what} must be a NumPy array (got {ty})")));
        }
        if let Ok(a) = obj.cast::<PyArrayDyn<f32>>() {
            Ok(Self::F32(a.clone()))
        } else if let Ok(a) = obj.cast::<PyArrayDyn<f64>>() {
            Ok(Self::F64(a.clone()))
        } else if let Ok(a) = obj.cast::<PyArrayDyn<f16>>() {
            Ok(Self::F16(a.clone()))
        } else {
            Err(unsupported_dtype(obj))
        }
    }

    /// The array as an untyped NumPy array.
    pub(crate) fn untyped(&self) -> &Bound<'py, PyUntypedArray> {
        match self {
            Self::F32(a) => a.as_untyped(),
            Self::F64(a) => a.as_untyped(),
            Self::F16(a) => a.as_untyped(),
        }
    }

    /// The shape.
    pub(crate) fn shape(&self) -> Vec<usize> {
        self.untyped().shape().to_vec()
    }

    /// NumPy's name of the dtype.
    pub(crate) fn dtype_name(&self) -> String {
        self.untyped().dtype().to_string()
    }

    /// Whether both arrays have the same dtype.
    pub(crate) fn same_dtype(&self, other: &FloatArray<'_>) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    /// Address of the first element (for telling whether two arrays are one buffer).
    pub(crate) fn data_ptr(&self) -> usize {
        match self {
            Self::F32(a) => a.data() as usize,
            Self::F64(a) => a.data() as usize,
            Self::F16(a) => a.data() as usize,
        }
    }

    /// A C-contiguous float32 view, if that is what the array is.
    pub(crate) fn f32_view(&self) -> PyResult<Option<PyReadonlyArrayDyn<'py, f32>>> {
        match self {
            Self::F32(a) if self.untyped().is_c_contiguous() => Ok(Some(a.try_readonly().map_err(value_error)?)),
            _ => Ok(None),
        }
    }

    /// The values as `f32` in row-major order (a copy; float64 through [`narrow`]).
    pub(crate) fn to_f32_vec(&self, py: Python<'_>) -> PyResult<Vec<f32>> {
        let contiguous = self.untyped().is_c_contiguous();
        Ok(match self {
            Self::F32(a) => {
                let r = a.try_readonly().map_err(value_error)?;
                match r.as_slice() {
                    Ok(s) if contiguous => py.detach(|| s.to_vec()),
                    _ => r.as_array().iter().copied().collect(),
                }
            }
            Self::F64(a) => {
                let r = a.try_readonly().map_err(value_error)?;
                match r.as_slice() {
                    Ok(s) if contiguous => py.detach(|| convert(s, narrow)),
                    _ => r.as_array().iter().map(|&v| narrow(v)).collect(),
                }
            }
            Self::F16(a) => {
                let r = a.try_readonly().map_err(value_error)?;
                match r.as_slice() {
                    Ok(s) if contiguous => py.detach(|| convert(s, f16::to_f32)),
                    _ => r.as_array().iter().map(|v| v.to_f32()).collect(),
                }
            }
        })
    }

    /// A new zero-filled C-order array of the same shape and dtype (calloc'd: large arrays cost
    /// no pass over memory before they are written).
    pub(crate) fn zeros_like(&self, py: Python<'py>) -> FloatArray<'py> {
        let shape = self.shape();
        match self {
            Self::F32(_) => Self::F32(PyArrayDyn::zeros(py, shape, false)),
            Self::F64(_) => Self::F64(PyArrayDyn::zeros(py, shape, false)),
            Self::F16(_) => Self::F16(PyArrayDyn::zeros(py, shape, false)),
        }
    }

    /// Write `values` (row-major, `f32`) into this C-contiguous, writeable array, converting to
    /// its dtype (float64 exactly, float16 rounded to nearest even).
    pub(crate) fn write_f32(&self, py: Python<'_>, values: &[f32]) -> PyResult<()> {
        match self {
            Self::F32(a) => {
                let mut w = a.try_readwrite().map_err(value_error)?;
                let dst = w.as_slice_mut().map_err(value_error)?;
                py.detach(|| copy_into(values, dst, |v| v));
            }
            Self::F64(a) => {
                let mut w = a.try_readwrite().map_err(value_error)?;
                let dst = w.as_slice_mut().map_err(value_error)?;
                py.detach(|| copy_into(values, dst, f64::from));
            }
            Self::F16(a) => {
                let mut w = a.try_readwrite().map_err(value_error)?;
                let dst = w.as_slice_mut().map_err(value_error)?;
                py.detach(|| copy_into(values, dst, f16::from_f32));
            }
        }
        Ok(())
    }

    /// The array as a Python object.
    pub(crate) fn into_any(self) -> Bound<'py, PyAny> {
        match self {
            Self::F32(a) => a.into_any(),
            Self::F64(a) => a.into_any(),
            Self::F16(a) => a.into_any(),
        }
    }
}

/// Check that `out` can receive the result for `x`: same shape and dtype, C-contiguous,
/// writeable.
pub(crate) fn check_out(x: &FloatArray<'_>, out: &FloatArray<'_>) -> PyResult<()> {
    if !out.same_dtype(x) {
        return Err(type_error(format!(
            "out has dtype '{}' but x has '{}'; they must agree",
            out.dtype_name(),
            x.dtype_name()
        )));
    }
    if out.shape() != x.shape() {
        return Err(value_error(format!(
            "shape mismatch: out has shape {:?} but x has {:?}",
            out.shape(),
            x.shape()
        )));
    }
    if !out.untyped().is_c_contiguous() {
        return Err(value_error(
            "out must be C-contiguous (np.ascontiguousarray makes a copy that is)",
        ));
    }
    Ok(())
}

/// `f64 -> f32`, rounded to nearest even: what the CLI does with float64 files and what ml_dtypes
/// does before it casts float64 to a float8 type (so encodings stay bit-exact with it).
pub(crate) fn narrow(x: f64) -> f32 {
    x as f32
}

/// Map a slice in parallel.
pub(crate) fn convert<S: Copy + Sync, T: Send>(src: &[S], f: impl Fn(S) -> T + Sync) -> Vec<T> {
    src.par_iter().with_min_len(CHUNK).map(|&v| f(v)).collect()
}

/// `dst[i] = f(src[i])` in parallel.
fn copy_into<S: Copy + Sync, T: Send>(src: &[S], dst: &mut [T], f: impl Fn(S) -> T + Sync) {
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, &s)| *d = f(s)));
}
