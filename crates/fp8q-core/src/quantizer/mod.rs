//! Quantize–dequantize ("fake quantization") of `f32` data, per tensor or per channel.
//!
//! * [`FpQuantizer`]: the flexible-bias FP grid with maximum `α`; also serves the
//!   standard 8-bit encodings, whose finite values are a flexible-bias grid with a clamp.
//! * [`IntQuantizer`]: a uniform grid.
//! * [`QuantMethod`]: a grid *family* without a range (format and options); a range turns it
//!   into a [`Quantizer`]. Range estimators (see [`crate::range`]) produce the ranges.
//! * [`fp8_cast`]: the scaled cast to a deployed 8-bit encoding's codes, fused with its
//!   dequantization and error sums (what `fp8q export` stores).
//! * [`quantize_channels`]: one quantizer per index of dimension 0.
//! * [`reference_arith`]: the elementwise part of the paper reference's `quantize_to_fp8_ste_MM`
//!   in PyTorch's `float32` arithmetic, from tables of torch's `log2`/`pow` (for `fp8q.torch`).

pub mod block_codes;
pub mod block_quantizer;
pub(crate) mod element_kernel;
pub mod fp8_cast;
pub mod fp_quantizer;
pub mod int_quantizer;
pub mod reference_arith;

pub use block_quantizer::{BlockLayout, BlockQuantizer};
pub use fp_quantizer::FpQuantizer;
pub use int_quantizer::IntQuantizer;

use crate::error::{FormatError, Result};
use crate::format::{BlockFormat, Format, FpFormat, IntFormat, StandardFp8};
use rayon::prelude::*;

/// A ready quantizer of either kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantizer {
    /// Floating point (flexible bias or a standard encoding).
    Fp(FpQuantizer),
    /// Uniform integer.
    Int(IntQuantizer),
}

impl Quantizer {
    /// Quantize one value.
    #[inline]
    pub fn quantize_value(&self, x: f32) -> f32 {
        match self {
            Quantizer::Fp(q) => q.quantize_value(x),
            Quantizer::Int(q) => q.quantize_value(x),
        }
    }
    /// Quantize `x` into `out` (parallel for large inputs).
    pub fn quantize(&self, x: &[f32], out: &mut [f32]) {
        match self {
            Quantizer::Fp(q) => q.quantize(x, out),
            Quantizer::Int(q) => q.quantize(x, out),
        }
    }
    /// Quantize in place (parallel for large inputs).
    pub fn quantize_inplace(&self, x: &mut [f32]) {
        match self {
            Quantizer::Fp(q) => q.quantize_inplace(x),
            Quantizer::Int(q) => q.quantize_inplace(x),
        }
    }
    /// Quantize `x` into `out` on the calling thread.
    pub fn quantize_serial(&self, x: &[f32], out: &mut [f32]) {
        match self {
            Quantizer::Fp(q) => q.quantize_serial(x, out),
            Quantizer::Int(q) => q.quantize_serial(x, out),
        }
    }
    /// Quantize in place on the calling thread.
    pub fn quantize_inplace_serial(&self, x: &mut [f32]) {
        match self {
            Quantizer::Fp(q) => q.quantize_inplace_serial(x),
            Quantizer::Int(q) => q.quantize_inplace_serial(x),
        }
    }
    /// `Σ (q(x) - x)²` in `f64` on the calling thread.
    pub fn sum_sq_error(&self, x: &[f32]) -> f64 {
        match self {
            Quantizer::Fp(q) => q.sum_sq_error(x),
            Quantizer::Int(q) => q.sum_sq_error(x),
        }
    }
}

/// A grid family without a range: what `--qmethod`, `--n-bits` and friends describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantMethod {
    /// The paper's flexible-bias FP: `α = max(|min|, |max|)` of the range. With
    /// `allow_unsigned`, a range with `min >= 0` drops the sign bit (`e = n - m`).
    Fp {
        /// Total bits.
        n_bits: u32,
        /// Mantissa bits (the MSE estimator may change them).
        mantissa_bits: u32,
        /// Use an unsigned format for non-negative ranges.
        allow_unsigned: bool,
    },
    /// Uniform INT, symmetric or asymmetric.
    Int(IntFormat),
    /// A standard encoding scaled so that its largest finite value is `max(|min|, |max|)`.
    Standard(StandardFp8),
    /// A block-scaled format: its scales come from each block, so it has no range.
    Block(BlockFormat),
}

impl QuantMethod {
    /// The method for a named format (flexible FP formats keep their signedness fixed).
    pub fn from_format(format: Format) -> Self {
        match format {
            Format::Fp(f) => QuantMethod::Fp {
                n_bits: f.n_bits(),
                mantissa_bits: f.mantissa_bits(),
                allow_unsigned: !f.is_signed(),
            },
            Format::Int(f) => QuantMethod::Int(f),
            Format::Standard(s) => QuantMethod::Standard(s),
            Format::Block(b) => QuantMethod::Block(b),
        }
    }

    /// Total bits.
    pub fn n_bits(&self) -> u32 {
        match self {
            QuantMethod::Fp { n_bits, .. } => *n_bits,
            QuantMethod::Int(f) => f.n_bits,
            QuantMethod::Standard(_) => 8,
            QuantMethod::Block(b) => b.element().n_bits(),
        }
    }

    /// Mantissa bits of a flexible FP method.
    pub fn mantissa_bits(&self) -> Option<u32> {
        match self {
            QuantMethod::Fp { mantissa_bits, .. } => Some(*mantissa_bits),
            _ => None,
        }
    }

    /// The same method with other mantissa bits (flexible FP only), validated for the signed
    /// format, or for the unsigned one when unsigned formats are allowed (one more mantissa bit).
    pub fn with_mantissa_bits(&self, m: u32) -> Result<Self> {
        match *self {
            QuantMethod::Fp {
                n_bits, allow_unsigned, ..
            } => {
                FpFormat::new(n_bits, m, !allow_unsigned)?;
                Ok(QuantMethod::Fp {
                    n_bits,
                    mantissa_bits: m,
                    allow_unsigned,
                })
            }
            _ => Err(FormatError::Invalid {
                what: "mantissa bits",
                why: "only flexible-bias FP formats have a variable mantissa".into(),
            }),
        }
    }

    /// The FP format this method uses for a range with minimum `x_min`.
    pub fn fp_format_for(&self, x_min: f32) -> Result<Option<FpFormat>> {
        match *self {
            QuantMethod::Fp {
                n_bits,
                mantissa_bits,
                allow_unsigned,
            } => {
                let signed = !(allow_unsigned && x_min >= 0.0);
                Ok(Some(FpFormat::new(n_bits, mantissa_bits, signed)?))
            }
            _ => Ok(None),
        }
    }

    /// The quantizer for a range `[x_min, x_max]` (see `docs/formats.md`, `docs/quantizers.md`).
    pub fn quantizer_for_range(&self, x_min: f32, x_max: f32) -> Result<Quantizer> {
        if x_min.is_nan() || x_max.is_nan() || x_min.is_infinite() || x_max.is_infinite() {
            return Err(FormatError::BadRange {
                min: x_min as f64,
                max: x_max as f64,
                why: "bounds must be finite",
            });
        }
        match *self {
            QuantMethod::Fp { .. } => {
                let format = self.fp_format_for(x_min)?.expect("fp method");
                let alpha = (x_min.abs()).max(x_max.abs()) as f64;
                Ok(Quantizer::Fp(FpQuantizer::new_allow_zero(format, alpha)?))
            }
            QuantMethod::Int(f) => Ok(Quantizer::Int(IntQuantizer::new(f.grid_for_range(x_min, x_max)))),
            QuantMethod::Block(b) => Err(no_range(b)),
            QuantMethod::Standard(s) => {
                let alpha = (x_min.abs()).max(x_max.abs()) as f64;
                let scale = if alpha == 0.0 {
                    0.0
                } else {
                    alpha / s.max_value() as f64
                };
                Ok(Quantizer::Fp(FpQuantizer::standard(s, scale)?))
            }
        }
    }

    /// The quantizer for the symmetric range `[-α, α]`.
    pub fn quantizer_for_maxval(&self, alpha: f64) -> Result<Quantizer> {
        crate::format::fp_format::check_maxval(alpha)?;
        match *self {
            QuantMethod::Fp {
                n_bits, mantissa_bits, ..
            } => Ok(Quantizer::Fp(FpQuantizer::new(
                FpFormat::new(n_bits, mantissa_bits, true)?,
                alpha,
            )?)),
            QuantMethod::Int(f) => Ok(Quantizer::Int(IntQuantizer::new(
                f.grid_for_range(-alpha as f32, alpha as f32),
            ))),
            QuantMethod::Standard(s) => Ok(Quantizer::Fp(FpQuantizer::standard(s, alpha / s.max_value() as f64)?)),
            QuantMethod::Block(b) => Err(no_range(b)),
        }
    }
}

/// The error for asking a block format for a per-tensor or per-channel quantizer.
fn no_range(b: BlockFormat) -> FormatError {
    FormatError::Invalid {
        what: "format",
        why: format!("the block format {b} takes its scales from each block of the data; it has no range or maxval"),
    }
}

/// How `len` elements split over `quantizers`: `None` for a single (per-tensor) quantizer, else
/// the elements per channel along dimension 0.
fn channel_split(quantizers: &[Quantizer], len: usize) -> Result<Option<usize>> {
    match quantizers.len() {
        0 => Err(FormatError::Shape("no quantizer given".into())),
        1 => Ok(None),
        c if !len.is_multiple_of(c) => Err(FormatError::Shape(format!(
            "{len} elements cannot be split into {c} channels along dimension 0"
        ))),
        c => Ok(Some(len / c)),
    }
}

/// Quantize `data` in place with one quantizer per index of dimension 0 (`quantizers.len()`
/// equal chunks), or with a single quantizer for the whole tensor.
pub fn quantize_channels(quantizers: &[Quantizer], data: &mut [f32]) -> Result<()> {
    match channel_split(quantizers, data.len())? {
        None => quantizers[0].quantize_inplace(data),
        Some(0) => {}
        Some(per) => data
            .par_chunks_mut(per)
            .zip(quantizers.par_iter())
            .for_each(|(chunk, q)| q.quantize_inplace_serial(chunk)),
    }
    Ok(())
}

/// Quantize `x` into `out` with one quantizer per index of dimension 0 (see [`quantize_channels`]).
pub fn quantize_channels_into(quantizers: &[Quantizer], x: &[f32], out: &mut [f32]) -> Result<()> {
    if x.len() != out.len() {
        return Err(FormatError::Shape(format!(
            "input has {} elements but the output {}",
            x.len(),
            out.len()
        )));
    }
    match channel_split(quantizers, x.len())? {
        None => quantizers[0].quantize(x, out),
        Some(0) => {}
        Some(per) => x
            .par_chunks(per)
            .zip(out.par_chunks_mut(per))
            .zip(quantizers.par_iter())
            .for_each(|((x, o), q)| q.quantize_serial(x, o)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_into_equals_in_place() {
        let f = FpFormat::new(8, 3, true).unwrap();
        let qs: Vec<Quantizer> = (1..=4)
            .map(|c| Quantizer::Fp(FpQuantizer::new(f, c as f64 * 0.7).unwrap()))
            .collect();
        let x: Vec<f32> = (0..4 * 3000).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
        let mut a = x.clone();
        quantize_channels(&qs, &mut a).unwrap();
        let mut b = vec![0.0; x.len()];
        quantize_channels_into(&qs, &x, &mut b).unwrap();
        assert_eq!(a, b);
        assert!(quantize_channels_into(&qs, &x[..5], &mut b[..5]).is_err());
        assert!(quantize_channels_into(&qs, &x, &mut b[..5]).is_err());
    }
}
