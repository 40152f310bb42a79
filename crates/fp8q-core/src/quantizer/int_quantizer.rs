//! Uniform quantize–dequantize (`docs/quantizers.md`):
//! `q(x) = Δ · (clamp(round_half_even(x / Δ) + z, int_min, int_max) - z)`.
//!
//! `x / Δ` is computed in `f32` as the reference does; the clamp is applied before rounding
//! (equivalent, since the bounds are integers) so the rounding trick `(v + 1.5·2^23) - 1.5·2^23`
//! is exact. NaN stays NaN; ±Inf saturates to the grid's ends.

use super::element_kernel::{self, ElementKernel};
use crate::format::IntGrid;

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
        self.kernel.qdq(x)
    }
    /// Quantize `x` into `out` (same length), in parallel for large inputs.
    pub fn quantize(&self, x: &[f32], out: &mut [f32]) {
        element_kernel::map(x, out, &self.kernel);
    }
    /// A block pass: `q(scale(x)) · back` per block of `k` (see [`super::block_quantizer`]).
    pub(crate) fn map_blocks(
        &self,
        scaling: element_kernel::BlockScaling,
        x: &[f32],
        out: &mut [f32],
        k: usize,
        into: &[f32],
        back: &[f32],
    ) {
        element_kernel::map_blocks(scaling, x, out, k, into, back, &self.kernel)
    }
    /// A fused E8M0 block pass (see [`super::block_quantizer`]).
    pub(crate) fn map_blocks_e8m0(&self, x: &[f32], out: &mut [f32], k: usize, p: &super::block_quantizer::E8m0Params) {
        super::block_quantizer::blocks_e8m0(x, out, k, p, &self.kernel)
    }
    /// Quantize in place, in parallel for large inputs.
    pub fn quantize_inplace(&self, x: &mut [f32]) {
        element_kernel::map_inplace(x, &self.kernel);
    }
    /// Quantize `x` into `out` on the calling thread (for callers that parallelize themselves).
    pub fn quantize_serial(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), out.len(), "input and output lengths differ");
        element_kernel::map_serial(x, out, &self.kernel);
    }
    /// Quantize in place on the calling thread (for callers that parallelize themselves).
    pub fn quantize_inplace_serial(&self, x: &mut [f32]) {
        element_kernel::map_inplace_serial(x, &self.kernel);
    }
    /// `Σ (q(x) - x)²` over `x`, accumulated in `f64`, without writing anything (calling thread).
    pub fn sum_sq_error(&self, x: &[f32]) -> f64 {
        element_kernel::sum_sq_error(x, &self.kernel)
    }
}

const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23

impl ElementKernel for IntKernel {
    #[inline(always)]
    fn qdq(&self, x: f32) -> f32 {
        let k = self;
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
}

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
