//! Errors of the network side: each names the file, tensor or option that is wrong.

use std::path::PathBuf;

use thiserror::Error;

use fp8q_tensors::TensorError;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, NnError>;

/// A tensor whose shape in the checkpoint differs from what the model needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// Checkpoint key, e.g. `layer1.0.conv1.weight`.
    pub key: String,
    /// Shape the model expects.
    pub expected: Vec<usize>,
    /// Shape found in the checkpoint.
    pub found: Vec<usize>,
}

/// The ways a checkpoint can fail to fit a model, all listed at once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mismatch {
    /// Keys the model needs that the checkpoint lacks.
    pub missing: Vec<String>,
    /// Keys of the checkpoint the model does not use.
    pub unexpected: Vec<String>,
    /// Keys present with the wrong shape.
    pub mis_shaped: Vec<ShapeMismatch>,
}

impl Mismatch {
    /// True when the checkpoint fits.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mis_shaped.is_empty()
    }
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOW: usize = 20;
        fn list(f: &mut std::fmt::Formatter<'_>, what: &str, keys: &[String]) -> std::fmt::Result {
            if keys.is_empty() {
                return Ok(());
            }
            write!(f, "\n  {} {what}:", keys.len())?;
            for k in keys.iter().take(SHOW) {
                write!(f, "\n    {k}")?;
            }
            if keys.len() > SHOW {
                write!(f, "\n    … and {} more", keys.len() - SHOW)?;
            }
            Ok(())
        }
        list(f, "missing tensor(s)", &self.missing)?;
        list(f, "unexpected tensor(s)", &self.unexpected)?;
        if !self.mis_shaped.is_empty() {
            write!(f, "\n  {} mis-shaped tensor(s):", self.mis_shaped.len())?;
            for m in self.mis_shaped.iter().take(SHOW) {
                write!(f, "\n    {}: expected {:?}, found {:?}", m.key, m.expected, m.found)?;
            }
            if self.mis_shaped.len() > SHOW {
                write!(f, "\n    … and {} more", self.mis_shaped.len() - SHOW)?;
            }
        }
        Ok(())
    }
}

/// Everything that can go wrong in fp8q-nn.
#[derive(Debug, Error)]
pub enum NnError {
    /// A checkpoint that cannot be read, or a feature map of the wrong size.
    #[error(transparent)]
    Tensors(Box<TensorError>),
    /// A checkpoint that does not fit the model.
    #[error("checkpoint {path} does not fit {arch}:{mismatch}")]
    CheckpointMismatch {
        /// The file.
        path: PathBuf,
        /// The architecture it was loaded into.
        arch: String,
        /// What is missing, unexpected or mis-shaped.
        mismatch: Box<Mismatch>,
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
    /// A quantizer failed.
    #[error("quantizer of {unit}: {why}")]
    Quantizer {
        /// The unit (checkpoint prefix).
        unit: String,
        /// What went wrong.
        why: String,
    },
}

// Boxed: large and rare.
impl From<TensorError> for NnError {
    fn from(e: TensorError) -> Self {
        NnError::Tensors(Box::new(e))
    }
}

impl NnError {
    /// An [`NnError::Invalid`] from two strings.
    pub fn invalid(what: impl Into<String>, why: impl Into<String>) -> Self {
        NnError::Invalid {
            what: what.into(),
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
        self.map_err(|err| NnError::Tensor {
            unit: unit.to_string(),
            err,
        })
    }
}
