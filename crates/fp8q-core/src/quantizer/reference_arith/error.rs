//! What can be wrong with the reference-arithmetic tables or the buffers of a pass.

use thiserror::Error;

/// Inconsistent tables, tails or buffers given to the reference-arithmetic kernel (the messages
/// are the ones `fp8q.torch` shows as `ValueError`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReferenceArithError {
    /// No channel, or `lo`, `hi`, the thresholds and the two scale tables disagree on the number
    /// of channels (or the two scale tables on their size).
    #[error("reference tables: inconsistent channel counts")]
    InconsistentChannels,
    /// The scale tables need one entry per binade: one more than the thresholds per channel.
    #[error("reference tables: need one more scale than thresholds")]
    ScaleCount,
    /// The elements do not split into equal channels.
    #[error("reference tables: {elements} elements do not split into {channels} channels")]
    ChannelSplit {
        /// Elements of the tensor.
        elements: usize,
        /// Channels of the tables.
        channels: usize,
    },
    /// A channel's thresholds decrease somewhere.
    #[error("reference tables: thresholds must not decrease")]
    DecreasingThresholds {
        /// The channel (0-based).
        channel: usize,
    },
    /// A tail's index range does not lie in the tensor.
    #[error("{which}: range {start}..{end} is outside 0..{elements}")]
    TailOutOfRange {
        /// `"pow tails"` or `"max tails"`.
        which: &'static str,
        /// The range's start.
        start: usize,
        /// The range's end.
        end: usize,
        /// Elements of the tensor.
        elements: usize,
    },
    /// `x` does not have the number of elements the tables were built for.
    #[error("x has {got} elements but the reference tables were built for {expected}")]
    ElementCount {
        /// Elements of `x`.
        got: usize,
        /// Elements the tables were built for.
        expected: usize,
    },
    /// An incoming gradient or an output has another length than `x`.
    #[error("{what} must have as many elements as x")]
    Length {
        /// `"out"`, `"g"` or `"outputs"`.
        what: &'static str,
    },
}
