//! Errors of reading images: each names the file or folder that is wrong.

use std::path::PathBuf;

use thiserror::Error;

use fp8q_tensors::TensorError;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ImageError>;

/// Everything that can go wrong in fp8q-images.
#[derive(Debug, Error)]
pub enum ImageError {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, so not also chained as a source).
        err: std::io::Error,
    },
    /// An image that cannot be decoded.
    #[error("cannot decode image {path}: {why}")]
    BadImage {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        why: String,
    },
    /// A dataset folder that is not in ImageNet layout.
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
    /// A batch that could not be made into a feature map.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

impl ImageError {
    /// An [`ImageError::Invalid`] from two strings.
    pub fn invalid(what: impl Into<String>, why: impl Into<String>) -> Self {
        ImageError::Invalid {
            what: what.into(),
            why: why.into(),
        }
    }
}
