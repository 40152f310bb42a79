//! `analyze`: which format suits each tensor, `fp8q analyze`'s per-tensor analysis on NumPy
//! arrays. The same library entry points as the CLI's weights mode
//! ([`AnalysisRow::of_tensor`], [`summarize`]), and the same report, converted to Python objects
//! field by field as the CLI serializes it to JSON (infinite SQNRs stay `inf` here).

use crate::arrays::FloatArray;
use crate::blocks::BlockOptions;
use crate::errors::value_error;
use crate::quantize::parse_range;
use fp8q_core::analysis::format_choice::{
    check_range_options, parse_formats, summarize, AnalysisRow, RangeSource, Skipped, Slot, Summary,
};
use fp8q_core::analysis::quantize_measure::RangeOptions;
use fp8q_core::format::{Format, ScaleFormat};
use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use serde::Serialize;

/// What `fp8q.analyze` returns: the fields of `fp8q analyze --json` that do not describe a file.
#[derive(Serialize)]
struct Report<'a> {
    formats: Vec<String>,
    range: String,
    per_channel: bool,
    mantissa_search: bool,
    slots: &'a [AnalysisRow],
    summary: Summary,
    skipped: Vec<Skipped>,
}

/// Analyse named arrays (see the Python docstring of `fp8q.analyze`).
#[pyfunction]
#[pyo3(signature = (names, arrays, formats, range="minmax", per_channel=false, mantissa_search=false, slot="weight", block_size=None, scale_rule=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn analyze<'py>(
    py: Python<'py>,
    names: Vec<String>,
    arrays: Vec<Bound<'py, PyAny>>,
    formats: Vec<String>,
    range: &str,
    per_channel: bool,
    mantissa_search: bool,
    slot: &str,
    block_size: Option<i64>,
    scale_rule: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    if names.len() != arrays.len() {
        return Err(value_error(format!(
            "{} names for {} arrays",
            names.len(),
            arrays.len()
        )));
    }
    let formats = parse_formats(&formats).map_err(value_error)?;
    // block_size and scale_rule apply to the block-scaled formats (at least one must be listed);
    // a rule leaves E4M3 and F32 block scales alone, as on the command line
    let formats = if block_size.is_some() || scale_rule.is_some() {
        if !formats.iter().any(|f| f.as_block().is_some()) {
            return Err(value_error(
                "block_size and scale_rule apply to block-scaled formats (mxfp4, nvfp4, e2m1@32, ...); formats has none",
            ));
        }
        let mut out: Vec<Format> = Vec::with_capacity(formats.len());
        for f in formats {
            let g = match f.as_block() {
                None => f,
                Some(b) => {
                    let opts = BlockOptions {
                        block_size,
                        block_axis: None,
                        scale_rule: scale_rule.filter(|_| b.scale() == ScaleFormat::E8m0),
                    };
                    opts.resolve(f)?.map(Format::Block).unwrap_or(f)
                }
            };
            if out.contains(&g) {
                return Err(value_error(format!(
                    "{g} is listed twice (after block_size/scale_rule)"
                )));
            }
            out.push(g);
        }
        out
    } else {
        formats
    };
    let method = parse_range(range)?;
    let opts = RangeOptions::new(method, per_channel, mantissa_search);
    check_range_options(&opts, &formats).map_err(value_error)?;
    let slot = match slot {
        "weight" => Slot::Weight,
        "act" => Slot::Act,
        other => return Err(value_error(format!("slot must be 'weight' or 'act' (got '{other}')"))),
    };
    let source = RangeSource::Estimate(opts);
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for (name, obj) in names.iter().zip(&arrays) {
        let what = format!("tensors['{name}']");
        // arrays of other element types are listed, as the CLI lists a checkpoint's integer tensors
        if let Ok(a) = obj.cast::<PyUntypedArray>() {
            if a.dtype().kind() != b'f' {
                skipped.push(Skipped {
                    name: name.clone(),
                    dtype: a.dtype().to_string(),
                    shape: a.shape().to_vec(),
                    reason: "not a floating-point tensor".into(),
                });
                continue;
            }
        }
        let xa = FloatArray::new(obj, &what)?;
        let shape = xa.shape();
        if shape.contains(&0) {
            skipped.push(Skipped {
                name: name.clone(),
                dtype: xa.dtype_name(),
                shape,
                reason: "empty".into(),
            });
            continue;
        }
        let row = match xa.f32_view()? {
            Some(view) => {
                let data = view.as_slice().map_err(value_error)?;
                py.detach(|| AnalysisRow::of_tensor(name, slot, &shape, data, &formats, &source))
            }
            None => {
                let data = xa.to_f32_vec(py)?;
                py.detach(|| AnalysisRow::of_tensor(name, slot, &shape, &data, &formats, &source))
            }
        }
        .map_err(|e| value_error(format!("tensor '{name}': {e}")))?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(value_error(if skipped.is_empty() {
            "no tensor given".to_string()
        } else {
            format!(
                "no floating-point tensor with elements to analyse (skipped: {})",
                skipped.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            )
        }));
    }
    let report = Report {
        formats: formats.iter().map(|f| f.to_string()).collect(),
        // as the CLI reports `--range`: the name given (`minmax` is `current_minmax` there)
        range: if range.trim().eq_ignore_ascii_case("minmax") {
            "current_minmax".to_string()
        } else {
            range.trim().to_string()
        },
        per_channel,
        mantissa_search,
        summary: summarize(&rows),
        slots: &rows,
        skipped,
    };
    pythonize::pythonize(py, &report).map_err(value_error)
}
