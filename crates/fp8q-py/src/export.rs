//! `export` and `write_tensors`: `fp8q export` (`fp8q_export::export`) from Python, and the
//! `.safetensors` writer that turns an in-memory state dict into the checkpoint it reads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::errors::value_error;
use fp8q_export::{ExportConfig, Layout};
use fp8q_tensors::tensor_files::{self, NamedTensor};
use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// Run an export (see the Python docstring of `fp8q.export`); returns the report.
#[pyfunction]
#[pyo3(signature = (input, out_dir, format=None, per_channel=false, layer_formats=None, tensors=vec![], scale_rule=None, layout="compressed-tensors", force=false))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn export<'py>(
    py: Python<'py>,
    input: PathBuf,
    out_dir: PathBuf,
    format: Option<String>,
    per_channel: bool,
    layer_formats: Option<BTreeMap<String, BTreeMap<String, Option<String>>>>,
    tensors: Vec<String>,
    scale_rule: Option<String>,
    layout: &str,
    force: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let cfg = ExportConfig {
        per_channel,
        layer_formats,
        tensors,
        scale_rule,
        layout: layout.parse::<Layout>().map_err(value_error)?,
        force,
        ..ExportConfig::new(input, out_dir, format.as_deref())
    };
    let report = py.detach(|| fp8q_export::export(&cfg)).map_err(value_error)?;
    pythonize::pythonize(py, &report).map_err(value_error)
}

/// Write float32 arrays (and raw tensors: name, safetensors dtype name, shape, bytes) to a
/// `.safetensors` file.
#[pyfunction]
pub(crate) fn write_tensors(
    path: PathBuf,
    names: Vec<String>,
    arrays: Vec<PyReadonlyArrayDyn<'_, f32>>,
    raw: Vec<(String, String, Vec<usize>, Vec<u8>)>,
) -> PyResult<()> {
    if names.len() != arrays.len() {
        return Err(value_error(format!(
            "{} names for {} arrays",
            names.len(),
            arrays.len()
        )));
    }
    let mut tensors = Vec::with_capacity(names.len());
    for (name, a) in names.into_iter().zip(&arrays) {
        let data = a
            .as_slice()
            .map(<[f32]>::to_vec)
            .unwrap_or_else(|_| a.as_array().iter().copied().collect());
        tensors.push(NamedTensor {
            name,
            shape: a.shape().to_vec(),
            data,
            stored_dtype: "f32",
        });
    }
    let mut passthrough = Vec::with_capacity(raw.len());
    for (name, dtype, shape, bytes) in raw {
        let d: safetensors::Dtype = serde_json::from_value(serde_json::Value::String(dtype.clone()))
            .map_err(|_| value_error(format!("tensor '{name}': unknown safetensors dtype '{dtype}'")))?;
        passthrough.push((name, d, shape, bytes));
    }
    tensor_files::write(&path, &tensors, &passthrough).map_err(value_error)
}
