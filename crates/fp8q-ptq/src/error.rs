//! Errors of PTQ runs, analyses and sweeps: each names the file, unit or option that is wrong.
//! Errors of the crates below pass through unchanged.

use std::path::PathBuf;

use thiserror::Error;

use fp8q_images::ImageError;
use fp8q_nn::NnError;
use fp8q_tensors::TensorError;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, PtqError>;

/// Everything that can go wrong in fp8q-ptq.
#[derive(Debug, Error)]
pub enum PtqError {
    /// A file could not be opened, read or written.
    #[error("cannot read {path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, so not also chained as a source).
        err: std::io::Error,
    },
    /// A dataset folder that cannot serve a run.
    #[error("invalid dataset folder {path}: {why}")]
    BadDataset {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
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
    /// A quantizer failed.
    #[error("quantizer of {unit}: {why}")]
    Quantizer {
        /// The unit (checkpoint prefix).
        unit: String,
        /// What went wrong.
        why: String,
    },
    /// The network failed (a checkpoint that does not fit, a tensor operation).
    #[error(transparent)]
    Nn(Box<NnError>),
    /// An image or dataset folder that cannot be read.
    #[error(transparent)]
    Images(Box<ImageError>),
    /// A tensor file or download that failed.
    #[error(transparent)]
    Tensors(Box<TensorError>),
}

// The errors of the crates below are boxed: they are large, and rare.
impl From<NnError> for PtqError {
    fn from(e: NnError) -> Self {
        PtqError::Nn(Box::new(e))
    }
}

impl From<ImageError> for PtqError {
    fn from(e: ImageError) -> Self {
        PtqError::Images(Box::new(e))
    }
}

impl From<TensorError> for PtqError {
    fn from(e: TensorError) -> Self {
        PtqError::Tensors(Box::new(e))
    }
}

impl PtqError {
    /// An [`PtqError::Invalid`] from two strings.
    pub fn invalid(what: impl Into<String>, why: impl Into<String>) -> Self {
        PtqError::Invalid {
            what: what.into(),
            why: why.into(),
        }
    }
}
