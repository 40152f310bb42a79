//! # fp8q-ptq: post-training quantization of networks
//!
//! Post-training quantization (`docs/ptq.md`): quantizers in a model's slots, the quant setups
//! that place them, and the calibrate → fix → BN re-estimation → evaluate pipeline; one run as
//! a library call ([`run`]), the per-slot format analysis ([`analyze`]) and sweeps ([`sweep`]).
//!
//! Owns: the tie between `fp8q-core`'s quantizers and a network's slots, calibration, metrics,
//! reports. Must not know: how images are decoded (`fp8q-images`), how checkpoints are parsed
//! (`fp8q-tensors`), how a layer computes (`fp8q-nn`), or the command line (`fp8q-cli`).
//!
//! Data flows one way: files → tensors → model → quantizers → metrics → reports.
//!
//!
//! * [`quantizer`]: [`ManagedQuantizer`], a [`fp8q_nn::layers::TensorQuantizer`] backed by
//!   `fp8q_core`'s [`fp8q_core::manager::QuantManager`], reachable from outside the model through
//!   its [`SlotHandle`].
//! * [`setup`]: [`PtqConfig`] (the `validate-quantized` options) and [`install`], which puts
//!   managers into the slots exactly where a quant setup wants them, returning an [`Installed`]
//!   registry (fix ranges, save and load the per-quantizer states).
//! * [`layer_formats`]: [`LayerFormats`], the per-slot formats of mixed-format PTQ
//!   (`--layer-formats`).
//! * [`calibration`]: sequential calibration, BN re-estimation with fixed quantizers, evaluation.

//! * [`evaluate`], [`metrics`]: logits, top-1/top-5 and loss over a loader.
//! * [`run`]: a [`run::RunConfig`] in, a [`run::RunReport`] out.
//! * [`analyze`]: which format each slot needs; [`sweep`]: plans of runs.

pub mod analyze;
pub mod calibration;
pub mod error;
pub mod evaluate;
pub mod layer_formats;
pub mod metrics;
pub mod quantizer;
pub mod run;
pub mod setup;
pub mod sweep;

pub use calibration::{bn_reestimation_default, calibrate, reestimate_bn};
pub use error::{PtqError, Result};
pub use layer_formats::{LayerFormats, SlotFormats};
pub use quantizer::{ManagedQuantizer, SlotHandle};
pub use setup::{install, Installed, PtqConfig, QMethodKind, QuantSetup, SlotPlan, UnitStates};
