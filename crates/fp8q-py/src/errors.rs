//! Errors for Python: invalid values become `ValueError`, wrong types `TypeError`, with the
//! library's own message (the text the `fp8q` command line prints after "Caused by").

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::PyErr;
use std::fmt::Display;

/// A `ValueError` carrying `e`'s message.
pub(crate) fn value_error(e: impl Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A `TypeError` carrying `e`'s message.
pub(crate) fn type_error(e: impl Display) -> PyErr {
    PyTypeError::new_err(e.to_string())
}
