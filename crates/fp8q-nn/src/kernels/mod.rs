//! CPU kernels over plain slices: im2col + candle matmul convolution, a direct depthwise
//! convolution, pooling. The layout is handled once at the top of each function.

/// Defines `fn $name(args)` running `$imp(args)` compiled for AVX-512F, AVX2 or the baseline,
/// whichever the CPU supports (checked at run time), so the auto-vectorizer can use wide
/// registers in a build that targets plain x86-64. `$imp` must be `#[inline(always)]`.
macro_rules! dispatch_by_cpu {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) => $imp:ident;) => {
        $(#[$meta])*
        $vis fn $name($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($a: $t),*) {
                    $imp($($a),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($a: $t),*) {
                    $imp($($a),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked just above).
                    return unsafe { avx512($($a),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    return unsafe { avx2($($a),*) };
                }
            }
            $imp($($a),*)
        }
    };
}

pub mod conv;
pub mod depthwise;
pub mod elementwise;
pub mod matmul;
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

/// A plane copied into scratch with its padding written out and each row split into `stride`
/// phases (padded column `px` at `(px % s) · phase_len + px / s`), so that the input values under
/// tap `(ky, kx)` for a whole output row are one contiguous run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PhasePlane {
    /// Values per padded row (all phases).
    pub row_len: usize,
    /// Values per phase.
    pub phase_len: usize,
    /// Stride.
    pub stride: usize,
}

impl PhasePlane {
    /// Copy the `h × w` plane `src` into `buf`, padded with `fill` for the window `win` and an
    /// output of `oh × ow`; returns the layout. `buf` holds `(oh - 1)·s + kh` padded rows.
    pub fn build(
        src: &[f32],
        (h, w): (usize, usize),
        win: Window,
        (oh, ow): (usize, usize),
        fill: f32,
        buf: &mut Vec<f32>,
    ) -> Self {
        let s = win.stride;
        let rows = (oh - 1) * s + win.kh;
        let phase_len = (w + 2 * win.pad).max((ow - 1) * s + win.kw).div_ceil(s);
        let row_len = phase_len * s;
        if buf.len() < rows * row_len {
            buf.resize(rows * row_len, 0.0);
        }
        for (py, row) in buf[..rows * row_len].chunks_mut(row_len).enumerate() {
            row.fill(fill);
            let iy = py as isize - win.pad as isize;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            let in_row = &src[iy as usize * w..(iy as usize + 1) * w];
            if s == 1 {
                row[win.pad..win.pad + w].copy_from_slice(in_row);
                continue;
            }
            for r in 0..s {
                // the first input column ix with (ix + pad) % s == r, and where it lands
                let first = (r + s - win.pad % s) % s;
                let start = (first + win.pad) / s;
                let dst = &mut row[r * phase_len + start..(r + 1) * phase_len];
                for (o, &v) in dst.iter_mut().zip(in_row.iter().skip(first).step_by(s)) {
                    *o = v;
                }
            }
        }
        PhasePlane {
            row_len,
            phase_len,
            stride: s,
        }
    }

    /// Offset of the input under tap `(ky, kx)` for output row `oy`, column 0.
    #[inline(always)]
    pub fn tap(&self, oy: usize, ky: usize, kx: usize) -> usize {
        (oy * self.stride + ky) * self.row_len + (kx % self.stride) * self.phase_len + kx / self.stride
    }
}
