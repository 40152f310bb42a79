//! Uniform quantize–dequantize (SPEC §2.2):
//! `q(x) = Δ · (clamp(round_half_even(x / Δ) + z, int_min, int_max) - z)`.
//!
//! `x / Δ` is computed in `f32` as the reference does; the clamp is applied before rounding
//! (equivalent, since the bounds are integers) so the rounding trick `(v + 1.5·2^23) - 1.5·2^23`
//! is exact. NaN stays NaN; ±Inf saturates to the grid's ends.

use super::simd::{dispatch_by_cpu, PAR_CHUNK};
use crate::format::IntGrid;
use rayon::prelude::*;

/// A ready-to-run INT quantizer: a concrete grid.
///
/// ```
/// use fp8q_core::format::{IntFormat, IntKind};
/// use fp8q_core::quantizer::IntQuantizer;
/// let grid = IntFormat::new(8, IntKind::Symmetric).unwrap().grid_for_range(-1.27, 1.27);
/// let q = IntQuantizer::new(grid);
/// assert_eq!(q.quantize_value(0.015), 0.02); // 1.5 steps -> 2 steps (ties to even)
/// assert_eq!(q.quantize_value(-5.0), -1.28); // int_min is -128
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntQuantizer {
    grid: IntGrid,
    kernel: IntKernel,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct IntKernel {
    delta: f32,
    lo: f32,
    hi: f32,
}

impl IntQuantizer {
    /// A quantizer for a grid.
    pub fn new(grid: IntGrid) -> Self {
        let z = grid.zero_point;
        Self {
            grid,
            kernel: IntKernel {
                delta: grid.delta,
                lo: grid.int_min as f32 - z,
                hi: grid.int_max as f32 - z,
            },
        }
    }
    /// The grid.
    pub fn grid(&self) -> IntGrid {
        self.grid
    }
    /// Quantize one value.
    #[inline]
    pub fn quantize_value(&self, x: f32) -> f32 {
        qdq(x, &self.kernel)
    }
    /// Quantize `x` into `out`, in parallel for large inputs.
    pub fn quantize(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), out.len(), "input and output lengths differ");
        if x.len() <= PAR_CHUNK {
            int_qdq_slice(x, out, &self.kernel);
        } else {
            x.par_chunks(PAR_CHUNK)
                .zip(out.par_chunks_mut(PAR_CHUNK))
                .for_each(|(x, o)| int_qdq_slice(x, o, &self.kernel));
        }
    }
    /// Quantize in place, in parallel for large inputs.
    pub fn quantize_inplace(&self, x: &mut [f32]) {
        if x.len() <= PAR_CHUNK {
            int_qdq_inplace(x, &self.kernel);
        } else {
            x.par_chunks_mut(PAR_CHUNK)
                .for_each(|c| int_qdq_inplace(c, &self.kernel));
        }
    }
    /// Quantize in place on a single thread.
    pub fn quantize_inplace_serial(&self, x: &mut [f32]) {
        int_qdq_inplace(x, &self.kernel);
    }
    /// `Σ (q(x) - x)²` accumulated in `f64` (single thread).
    pub fn sum_sq_error(&self, x: &[f32]) -> f64 {
        int_sse(x, &self.kernel)
    }
}

const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23

#[inline(always)]
fn qdq(x: f32, k: &IntKernel) -> f32 {
    let v = x / k.delta;
    let v = if v < k.lo {
        k.lo
    } else if v > k.hi {
        k.hi
    } else {
        v
    };
    ((v + MAGIC) - MAGIC) * k.delta
}

#[inline(always)]
fn qdq_slice_generic(x: &[f32], out: &mut [f32], k: &IntKernel) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = qdq(v, k);
    }
}

#[inline(always)]
fn qdq_inplace_generic(x: &mut [f32], k: &IntKernel) {
    for v in x.iter_mut() {
        *v = qdq(*v, k);
    }
}

#[inline(always)]
fn sse_generic(x: &[f32], k: &IntKernel) -> f64 {
    const L: usize = 16;
    let mut acc = [0.0f64; L];
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        for i in 0..L {
            let d = qdq(c[i], k) as f64 - c[i] as f64;
            acc[i] += d * d;
        }
    }
    let mut tail = 0.0;
    for &v in chunks.remainder() {
        let d = qdq(v, k) as f64 - v as f64;
        tail += d * d;
    }
    acc.iter().sum::<f64>() + tail
}

dispatch_by_cpu! { fn int_qdq_slice(x: &[f32], out: &mut [f32], k: &IntKernel) => qdq_slice_generic; }
dispatch_by_cpu! { fn int_qdq_inplace(x: &mut [f32], k: &IntKernel) => qdq_inplace_generic; }
dispatch_by_cpu! { fn int_sse(x: &[f32], k: &IntKernel) -> f64 => sse_generic; }

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{IntFormat, IntKind};

    #[test]
    fn specials_and_saturation() {
        let g = IntFormat::new(8, IntKind::Asymmetric)
            .unwrap()
            .grid_for_range(-1.0, 3.0);
        let q = IntQuantizer::new(g);
        let (lo, hi) = g.bounds();
        assert!(q.quantize_value(f32::NAN).is_nan());
        assert_eq!(q.quantize_value(f32::INFINITY) as f64, (hi as f32) as f64);
        assert_eq!(q.quantize_value(f32::NEG_INFINITY) as f64, (lo as f32) as f64);
        assert_eq!(q.quantize_value(0.0), 0.0);
    }
}
