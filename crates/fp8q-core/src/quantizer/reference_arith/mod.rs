//! The elementwise part of the paper reference's `quantize_to_fp8_ste_MM`, evaluated the way
//! PyTorch evaluates it in `float32` (the "reference arithmetic" of `fp8q.torch`).
//!
//! The reference computes, per element, `xc = min(max(x, lo), hi)`,
//! `k = max(1, floor(log2|xc| + b))`, `s = 2^(k - M - b)` and `round(xc / s) * s`. Division,
//! multiplication and round-half-even are exact IEEE operations, so they are done here; the only
//! implementation-specific operations are torch's `log2` and `pow`. The caller (`fp8q.torch`)
//! evaluates those with torch itself on the few values that matter and hands over, per channel
//! ([`TableSlices`]): the binade thresholds (the smallest `|xc|` of each `k`, as torch's `log2`
//! decides it) and the scales `s_k` as torch's vectorized `pow` gives them and as its scalar loop
//! gives them (torch runs the scalar loop on the last few elements of each inner loop: the
//! "tails", whose index ranges are passed too, [`ScalarTails`]). The same for the backward pass:
//! the elementwise gradients of autograd's formulas for `mul`, `div`, `pow`, `minimum` and
//! `maximum`, operation by operation in `f32`; torch itself sums them onto `maxval`, the bias and
//! the mantissa bits.
//!
//! The loops are branch-free (selects and table gathers) and compiled for AVX-512, AVX2 and the
//! baseline, picked at run time; rayon splits them over the cores.
//!
//! * [`ReferenceTables`]: the validated tables of one call (`tables.rs`; errors:
//!   [`ReferenceArithError`]).
//! * [`forward`], [`backward`] and [`Gradients`]: the passes (`passes.rs`).
//! * `channel.rs`: one channel's binade lookup and one element's evaluation; `gradients.rs`:
//!   autograd's formulas for one element.
//!
//! ```
//! use fp8q_core::quantizer::reference_arith::{forward, ReferenceTables, ScalarTails, TableSlices};
//!
//! // E2M1 (signed, 4 bits) with bias b = 1: maxval = 1.5 * 2^(2^2 - 1 - b) = 6, binades
//! // k = 1..=3 starting at 2^(k - b), scales s_k = 2^(k - M - b)
//! let tables = TableSlices {
//!     lo: &[-6.0],
//!     hi: &[6.0],
//!     thresholds: &[2.0f32.to_bits(), 4.0f32.to_bits()],
//!     vector_scales: &[0.5, 1.0, 2.0],
//!     scalar_scales: &[0.5, 1.0, 2.0],
//! };
//! let x = [0.3f32, 2.6, 5.1, 9.0, -1.25];
//! let tables = ReferenceTables::new(x.len(), tables, ScalarTails::default()).unwrap();
//! let mut out = [0.0f32; 5];
//! forward(&x, &mut out, &tables).unwrap();
//! assert_eq!(out, [0.5, 3.0, 6.0, 6.0, -1.0]); // -1.25 / 0.5 = -2.5 rounds to even
//! ```

mod channel;
mod error;
mod gradients;
mod passes;
mod tables;
#[cfg(test)]
mod tests;

pub use error::ReferenceArithError;
pub use passes::{backward, forward, Gradients};
pub use tables::{ReferenceTables, ScalarTails, TableSlices};
