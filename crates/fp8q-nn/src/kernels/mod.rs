//! CPU kernels over plain slices: im2col + candle matmul convolution, a direct depthwise
//! convolution, pooling. The layout is handled once at the top of each function.

pub mod conv;
pub mod depthwise;
pub mod pool;

/// Geometry of a 2-D convolution or pooling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both directions).
    pub stride: usize,
    /// Zero padding (both directions).
    pub pad: usize,
}

impl Window {
    /// Output size along one axis of length `len` with kernel size `k`.
    pub fn out_len(&self, len: usize, k: usize) -> Option<usize> {
        let padded = len + 2 * self.pad;
        if padded < k || self.stride == 0 {
            return None;
        }
        Some((padded - k) / self.stride + 1)
    }

    /// Output `(h, w)` for an input `(h, w)`.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        Some((self.out_len(h, self.kh)?, self.out_len(w, self.kw)?))
    }
}
