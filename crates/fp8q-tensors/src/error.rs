//! Errors of reading and writing tensors: each names the file, URL or option that is wrong.

use std::path::PathBuf;

use thiserror::Error;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, TensorError>;

/// Everything that can go wrong in fp8q-tensors.
#[derive(Debug, Error)]
pub enum TensorError {
    /// A file could not be opened, read or written.
    #[error("cannot read {path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, so not also chained as a source).
        err: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {err}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        err: std::io::Error,
    },
    /// A tensor file (`.npy`, `.safetensors`) that cannot be read or written as asked.
    #[error("{path}: {why}")]
    BadTensorFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A checkpoint file that is not a readable `.pth` / `.safetensors`.
    #[error("invalid checkpoint {path}: {why}")]
    BadCheckpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// An impossible option or argument.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The option.
        what: String,
        /// Why.
        why: String,
    },
    /// A tensor operation failed (a bug or an unsupported shape).
    #[error("tensor operation failed in {unit}: {err}")]
    Tensor {
        /// The unit (checkpoint prefix) or operation.
        unit: String,
        /// candle's error.
        err: candle_core::Error,
    },
    /// A pretrained checkpoint that could not be downloaded into the torch hub cache.
    #[error("cannot download {url}: {why}\n  to run without downloading, put that file at {dest}")]
    Download {
        /// Where the file comes from.
        url: String,
        /// The cache file it was to become.
        dest: PathBuf,
        /// What went wrong.
        why: String,
    },
}

impl TensorError {
    /// An [`TensorError::Invalid`] from two strings.
    pub fn invalid(what: impl Into<String>, why: impl Into<String>) -> Self {
        TensorError::Invalid {
            what: what.into(),
            why: why.into(),
        }
    }

    /// An [`TensorError::BadCheckpoint`].
    pub fn bad_checkpoint(path: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        TensorError::BadCheckpoint {
            path: path.into(),
            why: why.into(),
        }
    }
}

/// Attach a unit name to a candle error.
pub(crate) trait TensorContext<T> {
    /// Name the unit or operation that failed.
    fn at(self, unit: &str) -> Result<T>;
}

impl<T> TensorContext<T> for candle_core::Result<T> {
    fn at(self, unit: &str) -> Result<T> {
        self.map_err(|err| TensorError::Tensor {
            unit: unit.to_string(),
            err,
        })
    }
}
