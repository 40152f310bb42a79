//! Post-training quantization (`docs/ptq.md`): quantizers in a model's slots, the quant setups
//! that place them, and the calibrate → fix → BN re-estimation → evaluate pipeline.
//!
//! * [`quantizer`]: [`ManagedQuantizer`], a [`crate::layers::TensorQuantizer`] backed by
//!   `fp8q_core`'s [`fp8q_core::manager::QuantManager`], reachable from outside the model through
//!   its [`SlotHandle`].
//! * [`setup`]: [`PtqConfig`] (the `validate-quantized` options) and [`install`], which puts
//!   managers into the slots exactly where a quant setup wants them, returning an [`Installed`]
//!   registry (fix ranges, save and load the per-quantizer states).
//! * [`layer_formats`]: [`LayerFormats`], the per-slot formats of mixed-format PTQ
//!   (`--layer-formats`).
//! * [`pipeline`]: sequential calibration, BN re-estimation with fixed quantizers, evaluation.

pub mod layer_formats;
pub mod pipeline;
pub mod quantizer;
pub mod setup;

pub use layer_formats::{LayerFormats, SlotFormats};
pub use pipeline::{bn_reestimation_default, calibrate, reestimate_bn};
pub use quantizer::{ManagedQuantizer, SlotHandle};
pub use setup::{install, Installed, PtqConfig, QMethodKind, QuantSetup, SlotPlan, UnitStates};
