//! # fp8q-nn: the networks
//!
//! ResNet-18/50 and MobileNetV2 in FP32 with batch norm kept unfolded ([`models`]), built from
//! layers ([`layers`]) that run on the CPU kernels of [`kernels`]. Each conv+BN unit and linear
//! layer is named by its checkpoint prefix (`layer1.0.conv1`) and carries empty quantizer slots
//! ([`layers::QuantSlot`]) that a PTQ pipeline fills; [`weights`] finds a model's tensors in a
//! checkpoint by dotted path and lists every key that does not fit.
//!
//! Owns: kernels, layers, models, the slot interface ([`layers::TensorQuantizer`]).
//! Must not know: where images come from, how a quantizer's range is calibrated, runs and
//! reports (that is `fp8q-ptq`), or how checkpoint files are parsed (that is `fp8q-tensors`).
//!
//! Data flows one way: tensors (`fp8q_tensors::feature_map::FeatureMap`, checkpoints) → model
//! units ([`layers`], [`models`]) → logits.

pub mod error;
pub mod kernels;
pub mod layers;
pub mod models;
pub mod weights;

pub use error::{NnError, Result};
