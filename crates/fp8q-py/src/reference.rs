//! `reference_forward` / `reference_backward`: NumPy glue around
//! [`fp8q_core::quantizer::reference_arith`], the elementwise part of the paper reference's
//! `quantize_to_fp8_ste_MM` in PyTorch's `float32` arithmetic (the "reference arithmetic" of
//! `fp8q.torch`, which computes the tables with torch itself).

use crate::errors::value_error;
use fp8q_core::quantizer::reference_arith::{
    self, Gradients, ReferenceArithError, ReferenceTables, ScalarTails, TableSlices,
};
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;
use std::ops::Range;

/// The arrays Python passes to both passes: `lo`, `hi` (one per channel), the thresholds and the
/// vector and scalar scales (one row per channel).
type TableArgs<'py> = (
    PyReadonlyArray1<'py, f32>,
    PyReadonlyArray1<'py, f32>,
    PyReadonlyArray2<'py, u32>,
    PyReadonlyArray2<'py, f32>,
    PyReadonlyArray2<'py, f32>,
);

fn slice<'a, T: numpy::Element>(a: &'a PyReadonlyArray1<'_, T>, what: &str) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| value_error(format!("{what} must be C-contiguous")))
}

/// A 2-D table as one row-major slice.
fn table<'a, T: numpy::Element>(a: &'a PyReadonlyArray2<'_, T>) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| value_error("reference tables must be C-contiguous"))
}

/// The checked tables of a tensor of `n` elements.
fn tables<'a>(
    n: usize,
    arrays: &'a TableArgs<'_>,
    pow_tails: &[(usize, usize)],
    max_tails: &[(usize, usize)],
) -> PyResult<ReferenceTables<'a>> {
    let (lo, hi, thresholds, vector, scalar) = arrays;
    let (lo, hi) = (slice(lo, "lo")?, slice(hi, "hi")?);
    let (thr, vector_scales, scalar_scales) = (table(thresholds)?, table(vector)?, table(scalar)?);
    // the flat slices lose the rows: a table of one row per channel is what the kernel reads
    let c = lo.len();
    if [thresholds.shape(), vector.shape()]
        .iter()
        .any(|s| s[1] != 0 && s[0] != c)
    {
        return Err(value_error(ReferenceArithError::InconsistentChannels));
    }
    let ranges = |v: &[(usize, usize)]| -> Vec<Range<usize>> { v.iter().map(|&(a, b)| a..b).collect() };
    let (pow, maximum) = (ranges(pow_tails), ranges(max_tails));
    let slices = TableSlices {
        lo,
        hi,
        thresholds: thr,
        vector_scales,
        scalar_scales,
    };
    let tails = ScalarTails {
        pow: &pow,
        maximum: &maximum,
    };
    ReferenceTables::new(n, slices, tails).map_err(value_error)
}

/// Forward pass: `out[i] = round(xc / s) * s` as the reference computes it in `float32`.
#[pyfunction]
#[pyo3(signature = (x, out, lo, hi, thresholds, vector, scalar, pow_tails, max_tails))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn reference_forward<'py>(
    py: Python<'py>,
    x: PyReadonlyArray1<'py, f32>,
    mut out: PyReadwriteArray1<'py, f32>,
    lo: PyReadonlyArray1<'py, f32>,
    hi: PyReadonlyArray1<'py, f32>,
    thresholds: PyReadonlyArray2<'py, u32>,
    vector: PyReadonlyArray2<'py, f32>,
    scalar: PyReadonlyArray2<'py, f32>,
    pow_tails: Vec<(usize, usize)>,
    max_tails: Vec<(usize, usize)>,
) -> PyResult<()> {
    let xs = slice(&x, "x")?;
    let arrays = (lo, hi, thresholds, vector, scalar);
    let tables = tables(xs.len(), &arrays, &pow_tails, &max_tails)?;
    let dst = out
        .as_slice_mut()
        .map_err(|_| value_error("out must be C-contiguous"))?;
    py.detach(|| reference_arith::forward(xs, dst, &tables))
        .map_err(value_error)
}

/// Backward pass: the elementwise gradients for `x`, `lo` (the reference's `minval`), `hi`
/// (`maxval`) and minus those for the exponent of `pow` (the bias and `M` get their sums), into
/// whichever of the four outputs are given.
#[pyfunction]
#[pyo3(signature = (x, g, outs, lo, hi, thresholds, vector, scalar, pow_tails, max_tails))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn reference_backward<'py>(
    py: Python<'py>,
    x: PyReadonlyArray1<'py, f32>,
    g: PyReadonlyArray1<'py, f32>,
    mut outs: Vec<Option<PyReadwriteArray1<'py, f32>>>,
    lo: PyReadonlyArray1<'py, f32>,
    hi: PyReadonlyArray1<'py, f32>,
    thresholds: PyReadonlyArray2<'py, u32>,
    vector: PyReadonlyArray2<'py, f32>,
    scalar: PyReadonlyArray2<'py, f32>,
    pow_tails: Vec<(usize, usize)>,
    max_tails: Vec<(usize, usize)>,
) -> PyResult<()> {
    let xs = slice(&x, "x")?;
    let gs = slice(&g, "g")?;
    if outs.len() != 4 {
        return Err(value_error("outs must hold 4 arrays or None"));
    }
    let arrays = (lo, hi, thresholds, vector, scalar);
    let tables = tables(xs.len(), &arrays, &pow_tails, &max_tails)?;
    let mut dsts = Vec::with_capacity(4);
    for o in outs.iter_mut() {
        dsts.push(match o {
            Some(a) => Some(
                a.as_slice_mut()
                    .map_err(|_| value_error("outputs must be C-contiguous"))?,
            ),
            None => None,
        });
    }
    let [gx, glo, ghi, ngt]: [Option<&mut [f32]>; 4] = dsts.try_into().expect("4 outputs");
    let grads = Gradients {
        x: gx,
        lo: glo,
        hi: ghi,
        neg_exponent: ngt,
    };
    py.detach(|| reference_arith::backward(xs, gs, grads, &tables))
        .map_err(value_error)
}
