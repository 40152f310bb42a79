//! # fp8q-py
//!
//! The native part of the `fp8q` Python package (`fp8q._native`, built by maturin): thin PyO3
//! wrappers around `fp8q-core` and `fp8q-export`. Arrays pass as NumPy buffers without copies (float32, C order);
//! every kernel and range estimator runs with the GIL released, threaded by rayon. Bad input
//! raises `ValueError`/`TypeError` with the messages of the `fp8q` command line.
//!
//! The Python layer (`python/fp8q/`) adds the keyword-only signatures, ml_dtypes views of codes
//! and the PyTorch autograd function; the public API is documented there and in the `.pyi` stubs.
//!
//! Owns: conversion between NumPy arrays and the library's slices and report values. Must not
//! hold quantization logic of its own: every call goes to the same library entry points as the
//! command line.

mod analyze;
mod arrays;
mod blocks;
mod codes;
mod errors;
mod export;
mod format;
mod quantize;
mod reference;
mod streamed;
mod study;

use pyo3::prelude::*;

/// The native module `fp8q._native`.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(quantize::quantize, m)?)?;
    m.add_function(wrap_pyfunction!(quantize::estimate_range, m)?)?;
    m.add_function(wrap_pyfunction!(codes::encode, m)?)?;
    m.add_function(wrap_pyfunction!(codes::decode, m)?)?;
    m.add_function(wrap_pyfunction!(codes::block_format, m)?)?;
    m.add_function(wrap_pyfunction!(codes::encode_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(codes::decode_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(study::sqnr, m)?)?;
    m.add_function(wrap_pyfunction!(analyze::analyze, m)?)?;
    m.add_class::<streamed::StreamedAnalysis>()?;
    m.add_function(wrap_pyfunction!(export::export, m)?)?;
    m.add_function(wrap_pyfunction!(export::write_tensors, m)?)?;
    m.add_function(wrap_pyfunction!(streamed::write_heat_map, m)?)?;
    m.add_function(wrap_pyfunction!(reference::reference_forward, m)?)?;
    m.add_function(wrap_pyfunction!(reference::reference_backward, m)?)?;
    m.add_class::<format::Format>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
