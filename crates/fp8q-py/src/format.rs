//! `fp8q.Format`: one number format with the figures `fp8q formats` prints (same definitions:
//! default bias without a maximum; with `maxval` the flexible formats get the real-valued bias
//! that makes it their largest value, INT the step `maxval/int_max`, and the standard encodings
//! are scaled by `maxval/max`).

use crate::errors::value_error;
use fp8q_core::format::{self as core_format, IntKind};
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
        let spec = f.to_string();
        Ok(match f {
            core_format::Format::Fp(fp) => {
                let scaled = match maxval {
                    Some(a) => fp.with_maxval(a).map_err(value_error)?,
                    None => fp.with_default_bias(),
                };
                let grid = scaled.grid();
                Format {
                    name: fp.name(),
                    spec,
                    kind: "fp",
                    n_bits: fp.n_bits(),
                    exponent_bits: Some(fp.exponent_bits()),
                    mantissa_bits: Some(fp.mantissa_bits()),
                    bias: Some(scaled.bias()),
                    max: scaled.maxval,
                    min: grid[0],
                    min_normal: scaled.min_normal(),
                    min_subnormal: Some(scaled.min_subnormal()),
                    distinct_values: fp.num_distinct_values(),
                    maxval,
                    grid,
                }
            }
            core_format::Format::Int(int) => {
                let alpha = maxval.unwrap_or(((1i64 << (int.n_bits - 1)) - 1) as f64);
                let grid = match int.kind {
                    IntKind::Symmetric | IntKind::Asymmetric => int.grid_for_range(-alpha as f32, alpha as f32),
                };
                let (lo, hi) = grid.bounds();
                Format {
                    name: int.name(),
                    spec,
                    kind: "int",
                    n_bits: int.n_bits,
                    exponent_bits: None,
                    mantissa_bits: None,
                    bias: None,
                    max: hi,
                    min: lo,
                    min_normal: grid.delta as f64,
                    min_subnormal: None,
                    distinct_values: int.num_distinct_values(),
                    maxval,
                    grid: grid.values(),
                }
            }
            core_format::Format::Standard(s) => {
                let scale = maxval.map_or(1.0, |a| a / s.max_value() as f64);
                let grid: Vec<f64> = s.values().iter().map(|&v| v as f64 * scale).collect();
                Format {
                    name: s.name().to_string(),
                    spec,
                    kind: "standard",
                    n_bits: 8,
                    exponent_bits: Some(s.exponent_bits()),
                    mantissa_bits: Some(s.mantissa_bits()),
                    // a scale s shifts the bias by -log2(s)
                    bias: Some(s.bias() as f64 - scale.log2()),
                    max: s.max_value() as f64 * scale,
                    min: -(s.max_value() as f64) * scale,
                    min_normal: s.min_normal() as f64 * scale,
                    min_subnormal: Some(s.min_subnormal() as f64 * scale),
                    distinct_values: grid.len() as u64,
                    maxval,
                    grid,
                }
            }
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
