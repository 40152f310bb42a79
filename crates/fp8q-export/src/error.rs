//! Errors of an export: each names what is wrong and where (the tensor, the file).

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong in an export.
#[derive(Debug, Error)]
pub enum ExportError {
    /// A format that has no deployed layout, or bad format options.
    #[error("format '{name}': {why}")]
    Format {
        /// The name given.
        name: String,
        /// Why it cannot be exported.
        why: String,
    },
    /// A tensor that cannot be exported as asked.
    #[error("tensor '{name}': {why}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A bad input or output file or folder.
    #[error("{path}: {why}")]
    File {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Any other invalid setting.
    #[error("{0}")]
    Invalid(String),
    /// A tensor file error.
    #[error(transparent)]
    Tensors(#[from] fp8q_tensors::TensorError),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, ExportError>;

/// An error about a file.
pub fn file_error(path: impl Into<PathBuf>, why: impl std::fmt::Display) -> ExportError {
    ExportError::File {
        path: path.into(),
        why: why.to_string(),
    }
}
