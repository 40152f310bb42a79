//! # fp8q-nn: post-training quantization of CNNs
//!
//! ResNet-18/50 and MobileNetV2 in FP32 with batch norm kept unfolded, each conv+BN unit and
//! linear layer named by its checkpoint prefix and carrying empty quantizer slots
//! ([`layers::QuantSlot`]) that the PTQ pipeline fills; checkpoint loading (`.pth` without
//! executing anything, `.safetensors`); torchvision's pretrained weights from the torch hub cache
//! ([`hub`]); an ImageNet-folder data pipeline with PIL-exact resizing.
//!
//! Data flows one way: files ([`checkpoint`], [`data`]) → tensors ([`feature_map`]) → model
//! units ([`layers`], [`models`]) → metrics ([`metrics`]).

pub mod analyze;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod feature_map;
pub mod hub;
pub mod kernels;
pub mod layers;
pub mod metrics;
pub mod models;
pub mod ptq;
pub mod run;
pub mod sweep;
pub mod weights;

pub use error::{NnError, Result};
