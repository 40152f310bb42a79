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

/// Keep freed activation buffers in the heap (glibc only; done once per process).
///
/// Every layer allocates its output afresh. With glibc's defaults, blocks above the mmap
/// threshold (at most 32 MiB) are mapped on allocation and unmapped on free, so each new feature
/// map is paid for again in page faults: measured here at ~2.5 µs per 4 KiB page, about 40 ms for
/// one 58 MB MobileNetV2 activation at batch 32, i.e. several times the layer's arithmetic.
/// Serving every block from the heap and never trimming it lets the next layer reuse the
/// pages that the previous one freed. The process's resident size then stays at its peak.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // glibc's <malloc.h>
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_MAX: i32 = -4;
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            // SAFETY: mallopt only changes allocator parameters; both are valid settings.
            unsafe {
                mallopt(M_MMAP_MAX, 0);
                mallopt(M_TRIM_THRESHOLD, i32::MAX);
            }
        });
    }
}
