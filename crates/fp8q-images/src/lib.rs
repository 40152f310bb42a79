//! # fp8q-images: images as Pillow and torchvision give them
//!
//! Images from an ImageNet-layout folder to normalized NCHW batches.
//!
//! [`folder`] lists the samples (sorted classes, sorted files), [`decode`] reads image files to
//! RGB exactly as Pillow does, [`resize`] is a Pillow-exact resampler, [`transform`] holds the validation and training transforms, [`loader`] decodes and
//! transforms batches on rayon threads while the model runs, [`cache`] keeps transformed
//! validation images across runs.

//!
//! Owns: image decoding (byte-exact with Pillow's `Image.open(p).convert('RGB')`), the
//! torchvision transforms, the loader and the image cache. Must not know: networks, quantizers
//! or runs; a batch leaves as an `fp8q_tensors::feature_map::FeatureMap` with its labels.

pub mod cache;
pub mod decode;
pub mod error;
pub mod folder;
pub mod fused;
pub mod loader;
mod pending;
pub mod resize;
pub mod rng;
pub mod transform;

pub use cache::ImageCache;
pub use error::{ImageError, Result};
pub use folder::ImageFolder;
pub use loader::{Batch, BatchLoader, LoaderOptions};
pub use resize::Filter;
pub use transform::Transform;
