//! # fp8q-tensors: tensors and the files users keep them in
//!
//! * [`checkpoint`]: PyTorch checkpoints (`torch.save`'s zip format and its legacy pre-1.6
//!   stream, read without executing anything) and `.safetensors`, into named candle tensors.
//! * [`tensor_files`]: named `f32` tensors read from and written to `.npy` and `.safetensors`.
//! * [`safetensors_stream`]: a `.safetensors` file written one tensor at a time (checkpoints
//!   larger than memory).
//! * [`hub`]: torchvision's pretrained checkpoints in the torch hub cache, downloaded there.
//! * [`feature_map`]: [`feature_map::FeatureMap`], the owned NCHW `f32` activation that flows
//!   between the images, the networks and the quantizers.
//!
//! Owns: file formats of tensors, the torch hub cache. Must not know: networks, images,
//! quantizers or runs; a checkpoint is read into tensors by key, and what the keys mean is the
//! business of the crates above (`fp8q-nn`).

pub mod checkpoint;
pub mod error;
pub mod feature_map;
pub mod hub;
pub mod safetensors_stream;
pub mod tensor_files;

pub use error::{Result, TensorError};
