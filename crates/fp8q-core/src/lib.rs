//! # fp8q-core
//!
//! The framework-free core of fp8q: low-bit number formats ([`format`](mod@format)), fast quantize–dequantize
//! kernels ([`quantizer`]), range estimators ([`range`]) and the analytical error study
//! ([`analysis`]); [`manager`] ties a quantizer and an estimator to one tensor slot of a network. Everything here works on plain `f32` slices in row-major layout, with
//! per-channel parameters along dimension 0.
//!
//! Owns: formats, quantizers, range estimators, the distribution mathematics and the per-tensor
//! format choice. Must not know: tensors files, networks, images or any tensor framework; it is
//! the bottom of the workspace and depends on no other fp8q crate.
//!
//! ```
//! use fp8q_core::format::FpFormat;
//! use fp8q_core::quantizer::FpQuantizer;
//!
//! let q = FpQuantizer::new(FpFormat::new(8, 3, true).unwrap(), 1.0).unwrap();
//! let mut x = vec![0.3f32, -2.0, 0.0];
//! q.quantize_inplace(&mut x);
//! assert_eq!(x[1], -1.0); // clipped to the range
//! ```

pub mod analysis;
pub mod error;
pub mod format;
pub mod manager;
pub mod quantizer;
pub mod range;

pub use error::{FormatError, Result};
