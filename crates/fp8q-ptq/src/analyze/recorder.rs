//! A [`TensorQuantizer`] that quantizes nothing and keeps a copy of what passes: put into the
//! slots of an FP32 network, it captures each slot's tensor (a weight once, an activation per
//! batch) without changing the forward pass.

use std::sync::{Arc, Mutex};

use fp8q_core::quantizer::BlockLayout;
use fp8q_nn::layers::{SlotKind, TensorQuantizer};

/// What one slot saw.
#[derive(Debug, Default)]
pub struct Recording {
    /// One entry per batch (a weight: one entry).
    pub batches: Vec<Vec<f32>>,
    /// Size of dimension 0 as the slot reported it (output channels of a weight; 1 for an
    /// activation).
    pub dim0: usize,
    /// Where the reduction axis lies in each batch (the blocks of a block-scaled format).
    pub layouts: Vec<BlockLayout>,
}

/// The recorder in a slot; the handle [`Recorder::new`] returns reaches what it captured.
#[derive(Debug)]
pub struct Recorder {
    kind: SlotKind,
    seen: Arc<Mutex<Recording>>,
}

impl Recorder {
    /// A recorder for a slot of `kind` and the handle to its recording.
    pub fn new(kind: SlotKind) -> (Self, Arc<Mutex<Recording>>) {
        let seen = Arc::new(Mutex::new(Recording::default()));
        (
            Recorder {
                kind,
                seen: seen.clone(),
            },
            seen,
        )
    }
}

impl TensorQuantizer for Recorder {
    fn quantize(
        &mut self,
        data: &mut [f32],
        channels: usize,
        layout: BlockLayout,
        update_range: bool,
    ) -> fp8q_nn::Result<()> {
        // a shared quantizer re-used without updating (the average pool) is not this slot's
        // tensor; a weight is the same tensor on every pass
        if !update_range {
            return Ok(());
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if self.kind == SlotKind::Weight && !seen.batches.is_empty() {
            return Ok(());
        }
        seen.dim0 = channels;
        seen.batches.push(data.to_vec());
        seen.layouts.push(layout);
        Ok(())
    }
}
