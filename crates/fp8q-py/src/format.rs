//! `fp8q.Format`: one number format with the figures `fp8q formats` prints (the same function,
//! `fp8q_core::format::figures`; definitions:
//! default bias without a maximum; with `maxval` the flexible formats get the real-valued bias
//! that makes it their largest value, INT the step `maxval/int_max`, and the standard encodings
//! are scaled by `maxval/max`).

use crate::errors::value_error;
use fp8q_core::format as core_format;
use numpy::PyArray1;
use pyo3::prelude::*;

/// A number format (see the Python docstring and `fp8q/__init__.pyi`).
#[pyclass(frozen, module = "fp8q")]
pub(crate) struct Format {
    /// Display name (`E4M3`, `INT8`, `float8_e4m3fn`).
    #[pyo3(get)]
    name: String,
    /// Parseable spelling (`e4m3`, `int8`).
    #[pyo3(get)]
    spec: String,
    /// `fp`, `int` or `standard`.
    #[pyo3(get)]
    kind: &'static str,
    /// Total bits.
    #[pyo3(get)]
    n_bits: u32,
    /// Exponent bits (None for INT).
    #[pyo3(get)]
    exponent_bits: Option<u32>,
    /// Mantissa bits (None for INT).
    #[pyo3(get)]
    mantissa_bits: Option<u32>,
    /// Bias (real-valued when a maximum is given; None for INT).
    #[pyo3(get)]
    bias: Option<f64>,
    /// Largest value.
    #[pyo3(get)]
    max: f64,
    /// Smallest (most negative) value.
    #[pyo3(get)]
    min: f64,
    /// Smallest positive normal value (FP) or the step (INT).
    #[pyo3(get)]
    min_normal: f64,
    /// Smallest positive subnormal (FP; None for INT).
    #[pyo3(get)]
    min_subnormal: Option<f64>,
    /// Number of distinct values (standard encodings: finite values).
    #[pyo3(get)]
    distinct_values: u64,
    /// The maximum the format was scaled to, if any.
    #[pyo3(get)]
    maxval: Option<f64>,
    grid: Vec<f64>,
}

#[pymethods]
impl Format {
    #[new]
    #[pyo3(signature = (name, maxval=None))]
    fn new(name: &str, maxval: Option<f64>) -> PyResult<Self> {
        if let Some(a) = maxval {
            if !(a.is_finite() && a > 0.0) {
                return Err(value_error(format!("maxval must be positive and finite (got {a})")));
            }
        }
        let f: core_format::Format = name.parse().map_err(value_error)?;
        let fig = core_format::figures(f, maxval).map_err(value_error)?;
        Ok(Format {
            name: fig.name,
            spec: fig.spec,
            kind: fig.kind,
            n_bits: fig.n_bits,
            exponent_bits: fig.exponent_bits,
            mantissa_bits: fig.mantissa_bits,
            bias: fig.bias,
            max: fig.max,
            min: fig.min,
            min_normal: fig.min_normal,
            min_subnormal: fig.min_subnormal,
            distinct_values: fig.distinct_values,
            maxval,
            grid: fig.values,
        })
    }

    /// Every distinct value of the grid, ascending, as a float64 array.
    fn values<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, &self.grid)
    }

    fn __repr__(&self) -> String {
        match self.maxval {
            Some(a) => format!("fp8q.Format('{}', maxval={a:?})", self.spec),
            None => format!("fp8q.Format('{}')", self.spec),
        }
    }
}
