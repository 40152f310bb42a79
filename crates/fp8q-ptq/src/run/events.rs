//! What a run tells its caller while it works: notes and progress, so that a CLI can draw
//! progress bars and a sweep or a binding can log or stay silent, with one pipeline.

use std::path::Path;

/// The stages of a run (or an analysis) that report progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Range calibration on training batches.
    Calibration,
    /// BN statistics re-estimation on training batches.
    BnReestimation,
    /// Evaluation on the validation images.
    Validation,
    /// Analysis: each quantizer slot's tensor in each format.
    SlotAnalysis,
    /// Analysis: the network's output with one slot quantized, per slot and format.
    Sensitivity,
    /// Analysis: the recommended mix against every uniform format, end to end.
    MixVerification,
}

impl Stage {
    /// A lower-case label, e.g. `BN re-estimation`.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Calibration => "calibration",
            Stage::BnReestimation => "BN re-estimation",
            Stage::Validation => "validation",
            Stage::SlotAnalysis => "tensor analysis",
            Stage::Sensitivity => "sensitivity",
            Stage::MixVerification => "mix verification",
        }
    }

    /// What the stage counts: `images`, `slots` or `cases` (slot × format).
    pub fn unit(self) -> &'static str {
        match self {
            Stage::Calibration | Stage::BnReestimation | Stage::Validation => "images",
            Stage::SlotAnalysis => "slots",
            Stage::Sensitivity | Stage::MixVerification => "cases",
        }
    }
}

/// One thing that happened.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A line for the user (what was loaded, what was decided).
    Note(&'a str),
    /// A stage starts and will go over about `total` items ([`Stage::unit`]).
    Begin {
        /// The stage.
        stage: Stage,
        /// Items expected.
        total: u64,
    },
    /// `done` more items of the current stage are finished.
    Advance {
        /// Items just finished.
        done: u64,
    },
    /// The current stage is over.
    End,
    /// Downloading a checkpoint: `done` of `total` bytes.
    Download {
        /// Where from.
        url: &'a str,
        /// Bytes so far.
        done: u64,
        /// Bytes in all, when known.
        total: Option<u64>,
    },
    /// A download finished and was saved here.
    Downloaded(&'a Path),
}

/// The receiver of a run's events (`&mut |_| {}` ignores them).
pub type Observer<'o> = dyn FnMut(Event<'_>) + 'o;
