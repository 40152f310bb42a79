//! A [`TensorQuantizer`] backed by a [`QuantManager`].
//!
//! The manager lives behind an `Arc<Mutex<…>>` shared by the quantizer (inside the model's slot)
//! and a [`SlotHandle`] (kept by the pipeline), so that ranges can be fixed, saved and loaded
//! without walking the model. A weight quantizer caches its output while the slot is fixed: the
//! next pass with the same weight copies the cached quantized weight instead of re-quantizing.
//!
//! ```
//! use fp8q_core::manager::{QuantConfig, QuantManager};
//! use fp8q_core::quantizer::{BlockLayout, QuantMethod};
//! use fp8q_core::range::RangeMethod;
//! use fp8q_nn::layers::{SlotKind, TensorQuantizer};
//! use fp8q_ptq::ManagedQuantizer;
//! let manager = QuantManager::new(QuantConfig {
//!     method: QuantMethod::Fp { n_bits: 8, mantissa_bits: 3, allow_unsigned: false },
//!     range_method: RangeMethod::CurrentMinMax,
//!     per_channel: false,
//!     fp_set_maxval: true,
//!     fp_maxval: None,
//! })
//! .unwrap();
//! let (mut q, handle) = ManagedQuantizer::new("conv1", SlotKind::Output, manager);
//! let mut x = vec![0.3f32, -2.0];
//! q.quantize(&mut x, 1, BlockLayout::flat(2), true).unwrap(); // estimates the range [-2, 2], then quantizes
//! handle.fix();
//! let mut y = vec![3.0f32];
//! q.quantize(&mut y, 1, BlockLayout::flat(1), true).unwrap();
//! assert_eq!(y, vec![2.0]); // fixed: clipped to the calibrated range
//! ```

use std::sync::{Arc, Mutex, MutexGuard};

use fp8q_core::manager::{QuantConfig, QuantManager, QuantizerState, SlotState};

use crate::error::{PtqError, Result};
use fp8q_nn::layers::{SlotKind, TensorQuantizer};

#[derive(Debug)]
struct Shared {
    manager: QuantManager,
    /// Renewed whenever the quantizers may have changed (fix, estimate, load); unique across all
    /// quantizers of the process.
    generation: u64,
}

/// A number never handed out before.
fn next_generation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The pipeline's handle on one installed quantizer.
#[derive(Debug, Clone)]
pub struct SlotHandle {
    /// The unit (checkpoint prefix: `conv1`, `layer1.0`, `features.3.conv.3`, `fc`).
    pub unit: String,
    /// Which slot of the unit.
    pub kind: SlotKind,
    shared: Arc<Mutex<Shared>>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic while holding the lock leaves a consistent manager (it is only mutated through
    // its own methods), so a poisoned lock is still usable.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl SlotHandle {
    /// `weight` for a weight slot, `act` for an output or block-output slot (the golden files'
    /// field names).
    pub fn role(&self) -> &'static str {
        match self.kind {
            SlotKind::Weight => "weight",
            SlotKind::Output | SlotKind::BlockOutput => "act",
        }
    }

    /// Stop estimating: keep the current quantizers.
    pub fn fix(&self) {
        let mut s = lock(&self.shared);
        s.manager.fix();
        s.generation = next_generation();
    }

    /// Estimate again from scratch on the next pass.
    pub fn estimate(&self) {
        let mut s = lock(&self.shared);
        s.manager.estimate();
        s.generation = next_generation();
    }

    /// Estimate or fixed.
    pub fn slot_state(&self) -> SlotState {
        lock(&self.shared).manager.slot_state()
    }

    /// The current quantizer state (`None` before any range is known).
    pub fn state(&self) -> Option<QuantizerState> {
        lock(&self.shared).manager.state()
    }

    /// Replace the quantizers with a saved state and fix the slot.
    pub fn load_state(&self, state: &QuantizerState) -> Result<()> {
        let mut s = lock(&self.shared);
        s.manager.load_state(state).map_err(|e| PtqError::Quantizer {
            unit: format!("{} ({})", self.unit, self.role()),
            why: e.to_string(),
        })?;
        s.generation = next_generation();
        Ok(())
    }

    /// Replace the manager with a fresh one of `config` (estimate state, no range): a slot
    /// rebuilt in another format, e.g. the format recorded in loaded quantization parameters.
    pub fn reconfigure(&self, config: QuantConfig) -> Result<()> {
        let manager = QuantManager::new(config).map_err(|e| PtqError::Quantizer {
            unit: format!("{} ({})", self.unit, self.role()),
            why: e.to_string(),
        })?;
        let mut s = lock(&self.shared);
        s.manager = manager;
        s.generation = next_generation();
        Ok(())
    }

    /// A copy of the manager (its configuration, method and estimator state).
    pub fn manager(&self) -> QuantManager {
        lock(&self.shared).manager.clone()
    }
}

/// A quantizer in a model slot, backed by a [`QuantManager`].
#[derive(Debug)]
pub struct ManagedQuantizer {
    unit: String,
    kind: SlotKind,
    shared: Arc<Mutex<Shared>>,
    /// `(generation, input, output)` of the last fixed weight quantization.
    cache: Option<(u64, Vec<f32>, Vec<f32>)>,
}

impl ManagedQuantizer {
    /// A quantizer for `unit`'s `kind` slot and the handle that reaches it.
    pub fn new(unit: &str, kind: SlotKind, manager: QuantManager) -> (Self, SlotHandle) {
        let shared = Arc::new(Mutex::new(Shared {
            manager,
            generation: next_generation(),
        }));
        let handle = SlotHandle {
            unit: unit.to_string(),
            kind,
            shared: shared.clone(),
        };
        (
            ManagedQuantizer {
                unit: unit.to_string(),
                kind,
                shared,
                cache: None,
            },
            handle,
        )
    }
}

impl TensorQuantizer for ManagedQuantizer {
    fn quantize(
        &mut self,
        data: &mut [f32],
        channels: usize,
        layout: fp8q_core::quantizer::BlockLayout,
        update_range: bool,
    ) -> fp8q_nn::Result<()> {
        let mut s = lock(&self.shared);
        let fixed = s.manager.slot_state() == SlotState::Fixed;
        let cacheable = fixed && self.kind == SlotKind::Weight;
        if cacheable {
            if let Some((generation, input, output)) = &self.cache {
                if *generation == s.generation && input.as_slice() == &*data {
                    data.copy_from_slice(output);
                    return Ok(());
                }
            }
        }
        let input = cacheable.then(|| data.to_vec());
        let result = if update_range {
            s.manager.forward_in(data, channels, layout)
        } else {
            s.manager.quantize_in(data, layout)
        };
        result.map_err(|e| fp8q_nn::NnError::Quantizer {
            unit: format!(
                "{} ({})",
                self.unit,
                if self.kind == SlotKind::Weight { "weight" } else { "act" }
            ),
            why: e.to_string(),
        })?;
        if let Some(input) = input {
            self.cache = Some((s.generation, input, data.to_vec()));
        } else {
            self.cache = None;
        }
        Ok(())
    }

    fn fixed_elementwise(&self) -> Option<fp8q_core::quantizer::Quantizer> {
        lock(&self.shared).manager.fixed_quantizer().copied()
    }

    fn fixed_version(&self) -> Option<u64> {
        let s = lock(&self.shared);
        (s.manager.slot_state() == SlotState::Fixed).then_some(s.generation)
    }
}
