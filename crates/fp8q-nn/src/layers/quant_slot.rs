//! Slots where quantizers plug into a unit: a weight quantizer, an output-activation quantizer,
//! a block's output quantizer. In FP32 every slot is empty and costs nothing.
//!
//! The quantization logic itself (grids, range estimators) lives in `fp8q-core`; a slot only
//! holds something that implements [`TensorQuantizer`] and hands it the unit's values.
//!
//! ```
//! use fp8q_nn::layers::{QuantSlot, TensorQuantizer};
//! use fp8q_core::quantizer::BlockLayout;
//! #[derive(Debug)]
//! struct Round;
//! impl TensorQuantizer for Round {
//!     fn quantize(&mut self, data: &mut [f32], _channels: usize, _layout: BlockLayout, _update: bool) -> fp8q_nn::Result<()> {
//!         data.iter_mut().for_each(|v| *v = v.round());
//!         Ok(())
//!     }
//! }
//! let mut slot = QuantSlot::empty();
//! let mut x = vec![0.4f32, 1.6];
//! slot.apply(&mut x, 1, BlockLayout::flat(2), true).unwrap();
//! assert_eq!(x, vec![0.4, 1.6]); // empty: identity
//! slot.set(Box::new(Round));
//! slot.apply(&mut x, 1, BlockLayout::flat(2), true).unwrap();
//! assert_eq!(x, vec![0.0, 2.0]);
//! ```

use fp8q_core::quantizer::{BlockLayout, Quantizer};
use fp8q_tensors::feature_map::FeatureMap;

use crate::error::Result;

/// Which slot of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SlotKind {
    /// The conv / linear weight (per-channel along dim 0 when asked).
    Weight,
    /// The unit's output activation (after BN and the activation function).
    Output,
    /// A residual block's own output quantizer (`layer1.0`, `features.3`).
    BlockOutput,
}

/// Something that quantizes a tensor in place: a quantizer with its range estimator.
pub trait TensorQuantizer: Send + std::fmt::Debug {
    /// Quantize–dequantize `data` in place. `data` holds `channels` equal chunks along dim 0
    /// (1 for a per-tensor quantizer on an activation). With `update_range` the quantizer may
    /// update its range from `data` first (when it is estimating); without it, it must use its
    /// current range (a shared quantizer re-used, e.g. on the average pool's output). `layout`
    /// places the tensor's reduction axis (the input channels of a weight, the channels of an
    /// activation), along which a block-scaled format forms its blocks.
    fn quantize(&mut self, data: &mut [f32], channels: usize, layout: BlockLayout, update_range: bool) -> Result<()>;

    /// A per-tensor element-wise quantizer equivalent to [`TensorQuantizer::quantize`] for any
    /// data, when there is one (a fixed range): the caller may then apply it to pieces of a
    /// tensor inside its own loops instead of calling `quantize` on the whole.
    fn fixed_elementwise(&self) -> Option<Quantizer> {
        None
    }

    /// While the quantizer is fixed (the same input always gives the same output), a number
    /// unique to its current state across the process, so that callers may cache its output.
    fn fixed_version(&self) -> Option<u64> {
        None
    }
}

/// An optional quantizer.
#[derive(Debug, Default)]
pub struct QuantSlot {
    quantizer: Option<Box<dyn TensorQuantizer>>,
}

impl QuantSlot {
    /// An empty slot (FP32).
    pub fn empty() -> Self {
        QuantSlot { quantizer: None }
    }

    /// Put a quantizer in.
    pub fn set(&mut self, q: Box<dyn TensorQuantizer>) {
        self.quantizer = Some(q);
    }

    /// Take the quantizer out, leaving the slot empty.
    pub fn take(&mut self) -> Option<Box<dyn TensorQuantizer>> {
        self.quantizer.take()
    }

    /// The quantizer, if any.
    pub fn get_mut(&mut self) -> Option<&mut (dyn TensorQuantizer + 'static)> {
        self.quantizer.as_deref_mut()
    }

    /// True when a quantizer is present.
    pub fn is_active(&self) -> bool {
        self.quantizer.is_some()
    }

    /// See [`TensorQuantizer::fixed_elementwise`] (`None` for an empty slot).
    pub fn fixed_elementwise(&self) -> Option<Quantizer> {
        self.quantizer.as_ref().and_then(|q| q.fixed_elementwise())
    }

    /// See [`TensorQuantizer::fixed_version`] (`None` for an empty slot).
    pub fn fixed_version(&self) -> Option<u64> {
        self.quantizer.as_ref().and_then(|q| q.fixed_version())
    }

    /// Quantize in place if a quantizer is present.
    pub fn apply(&mut self, data: &mut [f32], channels: usize, layout: BlockLayout, update_range: bool) -> Result<()> {
        match &mut self.quantizer {
            Some(q) => q.quantize(data, channels, layout, update_range),
            None => Ok(()),
        }
    }
}

/// The layout of an NCHW activation for block formats: blocks along the channels.
pub fn channel_layout(fm: &FeatureMap) -> BlockLayout {
    BlockLayout {
        outer: fm.n,
        len: fm.c,
        inner: fm.h * fm.w,
    }
}
