//! `StreamedAnalysis`: one tensor analysed batch by batch as a calibration loop produces it
//! (`fp8q.torch.analyze`'s activations and operands), on the library's
//! [`fp8q_core::analysis::streamed::StreamedAnalysis`]; and `write_heat_map`, the analysis's
//! SVG heat map ([`fp8q_core::analysis::heat_map`]).

use crate::arrays::FloatArray;
use crate::errors::value_error;
use fp8q_core::analysis::format_choice::{parse_formats, AnalysisRow, Slot};
use fp8q_core::analysis::heat_map::{write_heat_map as draw, HeatRow};
use fp8q_core::analysis::streamed;
use fp8q_core::format::Format;
use fp8q_core::quantizer::BlockLayout;
use fp8q_core::range::Range;
use pyo3::prelude::*;

/// The running analysis of one tensor (see the Python layer, `fp8q/_torch_analyze.py`).
#[pyclass(module = "fp8q._native")]
pub(crate) struct StreamedAnalysis {
    inner: streamed::StreamedAnalysis,
}

#[pymethods]
impl StreamedAnalysis {
    /// `formats` analysed; the formats with a range take `[-maxval, maxval]` (`[0, maxval]` for
    /// an unsigned FP format), as `fp8q.quantize(x, fmt, maxval=maxval)` does.
    #[new]
    #[pyo3(signature = (formats, maxval=None))]
    fn new(formats: Vec<String>, maxval: Option<f64>) -> PyResult<Self> {
        let formats = parse_formats(&formats).map_err(value_error)?;
        let ranged = formats.iter().filter(|f| f.as_block().is_none());
        let mut ranges = Vec::new();
        for f in ranged {
            let a = match maxval {
                Some(a) if a.is_finite() && a > 0.0 => a as f32,
                Some(a) => return Err(value_error(format!("maxval must be positive and finite (got {a})"))),
                None => return Err(value_error(format!("{f} needs a range: give maxval"))),
            };
            let unsigned = matches!(f, Format::Fp(p) if !p.is_signed());
            ranges.push(Range {
                min: vec![if unsigned { 0.0 } else { -a }],
                max: vec![a],
            });
        }
        let inner = streamed::StreamedAnalysis::new(&formats, ranges).map_err(value_error)?;
        Ok(Self { inner })
    }

    /// Measure one batch `x`, its block axis at `len` of `(outer, len, inner)`.
    fn add(&mut self, py: Python<'_>, x: Bound<'_, PyAny>, outer: usize, len: usize, inner: usize) -> PyResult<()> {
        let xa = FloatArray::new(&x, "x")?;
        let layout = BlockLayout { outer, len, inner };
        let r = match xa.f32_view()? {
            Some(view) => {
                let data = view.as_slice().map_err(value_error)?;
                let inner = &mut self.inner;
                py.detach(|| inner.add(data, layout))
            }
            None => {
                let data = xa.to_f32_vec(py)?;
                let inner = &mut self.inner;
                py.detach(|| inner.add(&data, layout))
            }
        };
        r.map_err(value_error)
    }

    /// Elements seen.
    #[getter]
    fn numel(&self) -> u64 {
        self.inner.numel()
    }

    /// The report row (the shape of an `fp8q analyze --json` slot) of unit `unit`, with the
    /// shape of one batch.
    fn finish<'py>(&self, py: Python<'py>, unit: String, shape: Vec<usize>) -> PyResult<Bound<'py, PyAny>> {
        let a = self.inner.finish().map_err(value_error)?;
        let row = AnalysisRow::new(unit, Slot::Act, None, shape, a);
        pythonize::pythonize(py, &row).map_err(value_error)
    }
}

/// Draw a heat map to `path`: one row per label, one value per format.
#[pyfunction]
pub(crate) fn write_heat_map(
    path: std::path::PathBuf,
    formats: Vec<String>,
    labels: Vec<String>,
    values: Vec<Vec<f64>>,
    recommended: Vec<String>,
    kurtosis: Vec<f64>,
) -> PyResult<()> {
    let n = labels.len();
    if values.len() != n || recommended.len() != n || kurtosis.len() != n {
        return Err(value_error(
            "labels, values, recommended and kurtosis must have one entry per row",
        ));
    }
    let rows: Vec<HeatRow> = (0..n)
        .map(|i| HeatRow {
            label: labels[i].clone(),
            values: values[i].clone(),
            recommended: recommended[i].clone(),
            kurtosis: kurtosis[i],
        })
        .collect();
    draw(&formats, &rows, &path).map_err(value_error)
}
