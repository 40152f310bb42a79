//! The validation transform's hot path: a window of a Pillow-exact resize (both passes run),
//! normalized and written as CHW `f32` straight into the batch slot, with the same values as
//! [`resize_window`](super::resize::resize_window) followed by
//! [`to_normalized_chw`](super::transform::to_normalized_chw).
//!
//! What differs is only how the same integer arithmetic is scheduled:
//!
//! * the horizontal pass writes its 8-bit results as three planes (R, G, B) instead of
//!   interleaved pixels, so that the vertical pass reads and writes contiguous rows of one
//!   channel, which is the CHW layout of the output;
//! * the vertical pass clips to 8 bits and normalizes in the same loop (no intermediate image);
//! * on x86-64 the horizontal pass runs on SSE4.1 (the three channels of an output pixel in one
//!   vector of `i32`, one multiply-add per tap) and the vertical pass is compiled for AVX2,
//!   chosen at run time from the CPU's features; elsewhere, or on older CPUs, the same loops
//!   run as plain code. Integer sums are exact (and wrap alike) in every variant, and the
//!   `f32` normalization is the same IEEE operations in the same order, so every variant gives
//!   the same bits;
//! * the coefficients of the last few sizes and the scratch buffers are kept per thread.
//!
//! The input may be a region of the image ([`Region`]): only the pixels the window's passes
//! read must be present ([`needed_region`]), which lets the JPEG decoder skip the rest.

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;

use super::resize::{clip8, coefficients, Coeffs, Filter, Rgb8, PRECISION_BITS};

/// The input pixels a window needs: columns and rows of the full image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeededRegion {
    /// Input columns the horizontal pass reads.
    pub cols: Range<usize>,
    /// Input rows the vertical pass reads.
    pub rows: Range<usize>,
}

/// Part of an image: `img` holds columns `left..left + img.width` and rows `top..top +
/// img.height` of an image of `full_width × full_height` pixels.
#[derive(Debug, Clone, Copy)]
pub struct Region<'a> {
    /// The pixels present.
    pub img: &'a Rgb8,
    /// Column of `img`'s first pixel in the full image.
    pub left: usize,
    /// Row of `img`'s first pixel in the full image.
    pub top: usize,
    /// Width of the full image.
    pub full_width: usize,
    /// Height of the full image.
    pub full_height: usize,
}

impl<'a> Region<'a> {
    /// The whole image.
    pub fn whole(img: &'a Rgb8) -> Self {
        Region {
            img,
            left: 0,
            top: 0,
            full_width: img.width,
            full_height: img.height,
        }
    }
}

/// Coefficients of the last few (input, output, filter) sizes resized on this thread.
fn cached_coefficients(in_size: usize, out_size: usize, filter: Filter) -> Rc<Coeffs> {
    type Cache = Vec<((usize, usize, Filter), Rc<Coeffs>)>;
    thread_local! {
        static CACHE: RefCell<Cache> = const { RefCell::new(Vec::new()) };
    }
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        let key = (in_size, out_size, filter);
        if let Some(pos) = cache.iter().position(|(k, _)| *k == key) {
            let hit = cache.remove(pos);
            let c = hit.1.clone();
            cache.push(hit); // most recently used last
            return c;
        }
        let c = Rc::new(coefficients(in_size, out_size, filter));
        if cache.len() >= 8 {
            cache.remove(0);
        }
        cache.push((key, c.clone()));
        c
    })
}

/// Input span (first index, end) read by output indices `out`.
fn span(c: &Coeffs, out: Range<usize>) -> Range<usize> {
    let lo = out.clone().map(|i| c.of(i).0).min().unwrap_or(0);
    let hi = out.map(|i| c.of(i).0 + c.of(i).1.len()).max().unwrap_or(lo);
    lo..hi.max(lo)
}

/// Whether the fused path handles this resize: a convolution filter, both passes run (the
/// size changes in both directions) and a non-empty window inside the resized image.
fn fused_applies(
    (in_w, in_h): (usize, usize),
    (out_w, out_h): (usize, usize),
    filter: Filter,
    (left, top, w, h): (usize, usize, usize, usize),
) -> bool {
    filter != Filter::Nearest
        && in_w > 0
        && in_h > 0
        && out_w != in_w
        && out_h != in_h
        && w > 0
        && h > 0
        && left + w <= out_w
        && top + h <= out_h
}

/// The input pixels [`resize_window_normalized`] reads for this window of an `in_w × in_h`
/// image resized to `out_w × out_h`, or `None` when the fused path does not apply (a pass is
/// skipped, nearest neighbour, an empty window): then the caller needs the whole image.
pub fn needed_region(
    in_size: (usize, usize),
    out_size: (usize, usize),
    filter: Filter,
    window: (usize, usize, usize, usize),
) -> Option<NeededRegion> {
    if !fused_applies(in_size, out_size, filter, window) {
        return None;
    }
    let (left, top, w, h) = window;
    let hc = cached_coefficients(in_size.0, out_size.0, filter);
    let vc = cached_coefficients(in_size.1, out_size.1, filter);
    Some(NeededRegion {
        cols: span(&hc, left..left + w),
        rows: span(&vc, top..top + h),
    })
}

/// The instruction sets the kernels use.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Simd {
    Sse41 = 1,
    Avx2 = 2,
}

/// Whether the CPU has `level` (and the tests have not turned it off).
#[cfg(target_arch = "x86_64")]
fn cpu_has(level: Simd) -> bool {
    #[cfg(test)]
    if tests::MAX_SIMD.with(|m| m.get()) < level as u8 {
        return false;
    }
    match level {
        Simd::Sse41 => std::arch::is_x86_feature_detected!("sse4.1"),
        Simd::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
    }
}

/// Per-thread scratch: the horizontal pass's planes and the vertical pass's accumulators.
#[derive(Default)]
struct Scratch {
    planes: Vec<u8>,
    acc: Vec<i32>,
    taps: Taps,
}

/// The horizontal pass's coefficients for the window's columns, every column padded to the same
/// number of taps with zero weights (which add exactly nothing), for the AVX2 kernel.
#[derive(Default)]
struct Taps {
    /// Taps per column.
    n: usize,
    /// First input column of each output column, relative to the region's first column,
    /// such that `start + n` stays inside the region.
    start: Vec<usize>,
    /// `weights[(i / 4 · n + j) · 16 + (i % 4) · 4 ..][..4]`: tap `j` of column `i`, four
    /// times (one per lane of R, G, B and the ignored fourth byte), grouped by four columns.
    weights: Vec<i32>,
}

impl Taps {
    /// Padded taps of output columns `cols` for a region `width` pixels wide starting at
    /// column `col0`; `false` when the region is too narrow to pad (then the per-pixel path).
    fn build(&mut self, c: &Coeffs, cols: Range<usize>, col0: usize, width: usize) -> bool {
        let n = cols.clone().map(|x| c.of(x).1.len()).max().unwrap_or(0);
        if n == 0 || n > width {
            return false;
        }
        let w = cols.len();
        self.n = n;
        self.start.clear();
        self.weights.clear();
        self.weights.resize(w.div_ceil(4) * n * 16, 0);
        for (i, x) in cols.enumerate() {
            let (first, k) = c.of(x);
            let rel = first - col0;
            // shift left when the padded taps would run past the region's end
            let start = rel.min(width - n);
            let shift = rel - start;
            self.start.push(start);
            for (j, &kj) in k.iter().enumerate() {
                let at = ((i / 4) * n + j + shift) * 16 + (i % 4) * 4;
                self.weights[at..at + 4].fill(kj);
            }
        }
        true
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The window `(left, top, w, h)` of Pillow's resize of the full image of `region` to `out_w ×
/// out_h`, as CHW `f32` `(v / 255 - mean[c]) / std[c]` in `out` (`3 · w · h` values). Returns
/// `false`, writing nothing, when the fused path does not apply (see [`needed_region`]) or the
/// region lacks pixels the window needs; the caller then takes the general path.
pub fn resize_window_normalized(
    region: Region<'_>,
    (out_w, out_h): (usize, usize),
    filter: Filter,
    window: (usize, usize, usize, usize),
    (mean, std): ([f32; 3], [f32; 3]),
    out: &mut [f32],
) -> bool {
    let img = region.img;
    let full = (region.full_width, region.full_height);
    let Some(need) = needed_region(full, (out_w, out_h), filter, window) else {
        return false;
    };
    let (left, top, w, h) = window;
    let present_cols = region.left..region.left + img.width;
    let present_rows = region.top..region.top + img.height;
    if need.cols.start < present_cols.start
        || need.cols.end > present_cols.end
        || need.rows.start < present_rows.start
        || need.rows.end > present_rows.end
        || img.data.len() != img.width * img.height * 3
        || out.len() < 3 * w * h
    {
        return false;
    }
    let hc = cached_coefficients(full.0, out_w, filter);
    let vc = cached_coefficients(full.1, out_h, filter);
    let n_rows = need.rows.len();
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let Scratch { planes, acc, taps } = &mut *s;
        planes.clear();
        planes.resize(3 * w * n_rows, 0);
        acc.clear();
        acc.resize(w, 0);
        // horizontal pass: input rows `need.rows`, output columns of the window
        let (r_plane, rest) = planes.split_at_mut(w * n_rows);
        let (g_plane, b_plane) = rest.split_at_mut(w * n_rows);
        let cols = left..left + w;
        #[cfg(target_arch = "x86_64")]
        if cpu_has(Simd::Avx2) && taps.build(&hc, cols.clone(), region.left, img.width) {
            // SAFETY: the CPU has AVX2 (checked just above); `taps` was built for this region.
            unsafe { horizontal_rows_avx2(region, &need.rows, taps, [r_plane, g_plane, b_plane]) };
        } else {
            horizontal_rows(region, &need.rows, &hc, cols, [r_plane, g_plane, b_plane]);
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = taps;
            horizontal_rows(region, &need.rows, &hc, cols, [r_plane, g_plane, b_plane]);
        }
        // vertical pass, channel by channel: rows of the plane to rows of the output
        let plane_out = w * h;
        for (c, plane) in planes.chunks_exact(w * n_rows).enumerate() {
            let dst = &mut out[c * plane_out..(c + 1) * plane_out];
            for (r, yy) in (top..top + h).enumerate() {
                let (first, k) = vc.of(yy);
                let rows = &plane[(first - need.rows.start) * w..(first - need.rows.start + k.len()) * w];
                vertical_row(rows, w, k, acc, &mut dst[r * w..(r + 1) * w], mean[c], std[c]);
            }
        }
    });
    true
}

/// The horizontal pass of input rows `rows` (of the full image) into three planes of
/// `cols.len()` bytes per row.
fn horizontal_rows(region: Region<'_>, rows: &Range<usize>, c: &Coeffs, cols: Range<usize>, planes: [&mut [u8]; 3]) {
    let w = cols.len();
    let stride = region.img.width * 3;
    let [r_plane, g_plane, b_plane] = planes;
    for (i, y) in rows.clone().enumerate() {
        let outs = [
            &mut r_plane[i * w..(i + 1) * w],
            &mut g_plane[i * w..(i + 1) * w],
            &mut b_plane[i * w..(i + 1) * w],
        ];
        horizontal_row(
            &region.img.data,
            (y - region.top) * stride,
            region.left,
            c,
            cols.clone(),
            outs,
        );
    }
}

/// [`horizontal_rows`] on AVX2 with [`Taps`]: four output pixels at a time, two per 256-bit
/// vector (R, G, B and one ignored byte of each as `i32` lanes), one multiply-add per tap.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn horizontal_rows_avx2(region: Region<'_>, rows: &Range<usize>, taps: &Taps, planes: [&mut [u8]; 3]) {
    use std::arch::x86_64::*;
    let data = &region.img.data;
    let stride = region.img.width * 3;
    let w = taps.start.len();
    let n = taps.n;
    let [r_plane, g_plane, b_plane] = planes;
    let bias = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    // bytes r0 g0 b0 x0 r1 … of four pixels to r0 r1 r2 r3 g0 … b3 x…
    let to_planar = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let load = |p: usize| -> u64 {
        // SAFETY (of the callers): p + 4 <= data.len()
        std::ptr::read_unaligned(data.as_ptr().add(p) as *const u32) as u64
    };
    for (row, y) in rows.clone().enumerate() {
        let row_start = (y - region.top) * stride;
        let o = row * w;
        let mut i = 0;
        while i + 4 <= w {
            let s = &taps.start[i..i + 4];
            // the last tap of a pixel reads 4 bytes from 3 · (start + n - 1)
            if row_start + 3 * (s[0].max(s[1]).max(s[2]).max(s[3]) + n) >= data.len() {
                break;
            }
            let p = [
                row_start + 3 * s[0],
                row_start + 3 * s[1],
                row_start + 3 * s[2],
                row_start + 3 * s[3],
            ];
            let wt = taps.weights.as_ptr().add((i / 4) * n * 16);
            let (mut acc01, mut acc23) = (bias, bias);
            for j in 0..n {
                let k01 = _mm256_loadu_si256(wt.add(j * 16) as *const __m256i);
                let k23 = _mm256_loadu_si256(wt.add(j * 16 + 8) as *const __m256i);
                let v01 = load(p[0] + 3 * j) | load(p[1] + 3 * j) << 32;
                let v23 = load(p[2] + 3 * j) | load(p[3] + 3 * j) << 32;
                let v01 = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(v01 as i64));
                let v23 = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(v23 as i64));
                acc01 = _mm256_add_epi32(acc01, _mm256_mullo_epi32(v01, k01));
                acc23 = _mm256_add_epi32(acc23, _mm256_mullo_epi32(v23, k23));
            }
            // >> 22 and clamp to 0..=255 (signed then unsigned saturation), as clip8
            let v01 = _mm256_srai_epi32::<{ PRECISION_BITS as i32 }>(acc01);
            let v23 = _mm256_srai_epi32::<{ PRECISION_BITS as i32 }>(acc23);
            // per 128-bit lane: [p0, p2] then [p1, p3] as i16, then as bytes
            let packed = _mm256_packus_epi16(_mm256_packs_epi32(v01, v23), _mm256_setzero_si256());
            let lo = _mm256_castsi256_si128(packed); // p0 p2 (4 bytes each)
            let hi = _mm256_extracti128_si256::<1>(packed); // p1 p3
            let px = _mm_shuffle_epi8(_mm_unpacklo_epi32(lo, hi), to_planar);
            std::ptr::write_unaligned(r_plane.as_mut_ptr().add(o + i) as *mut i32, _mm_cvtsi128_si32(px));
            std::ptr::write_unaligned(g_plane.as_mut_ptr().add(o + i) as *mut i32, _mm_extract_epi32::<1>(px));
            std::ptr::write_unaligned(b_plane.as_mut_ptr().add(o + i) as *mut i32, _mm_extract_epi32::<2>(px));
            i += 4;
        }
        // the last pixels (and any whose loads would leave the buffer), one at a time
        for i in i..w {
            let (start, at) = (taps.start[i], (i / 4) * n * 16 + (i % 4) * 4);
            let k: Vec<i32> = (0..n).map(|j| taps.weights[at + j * 16]).collect();
            let px = horizontal_pixel(data, row_start + 3 * start, &k);
            r_plane[o + i] = px[0];
            g_plane[o + i] = px[1];
            b_plane[o + i] = px[2];
        }
    }
}

/// One row of the horizontal pass: output columns `cols`, from the row of interleaved RGB that
/// starts at `data[row_start]` (whose first pixel is column `col0` of the full image), into the
/// three channel rows `outs`.
fn horizontal_row(data: &[u8], row_start: usize, col0: usize, c: &Coeffs, cols: Range<usize>, outs: [&mut [u8]; 3]) {
    #[cfg(target_arch = "x86_64")]
    if cpu_has(Simd::Sse41) {
        // SAFETY: the CPU has SSE4.1 (checked just above).
        unsafe { horizontal_row_sse41(data, row_start, col0, c, cols, outs) };
        return;
    }
    let [ro, go, bo] = outs;
    for (i, xx) in cols.enumerate() {
        let (first, k) = c.of(xx);
        let px = horizontal_pixel(data, row_start + (first - col0) * 3, k);
        ro[i] = px[0];
        go[i] = px[1];
        bo[i] = px[2];
    }
}

/// Pillow's horizontal pass for one output pixel whose first input pixel starts at `data[p]`.
#[inline(always)]
fn horizontal_pixel(data: &[u8], p: usize, k: &[i32]) -> [u8; 3] {
    let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
    for (px, &k) in data[p..p + k.len() * 3].chunks_exact(3).zip(k) {
        acc[0] = acc[0].wrapping_add((px[0] as i32).wrapping_mul(k));
        acc[1] = acc[1].wrapping_add((px[1] as i32).wrapping_mul(k));
        acc[2] = acc[2].wrapping_add((px[2] as i32).wrapping_mul(k));
    }
    [clip8(acc[0]), clip8(acc[1]), clip8(acc[2])]
}

/// [`horizontal_row`] on SSE4.1: the three channels (and one byte of the next pixel, ignored)
/// of each tap widened to four `i32` lanes, multiplied by the tap's weight and summed.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.1")]
unsafe fn horizontal_row_sse41(
    data: &[u8],
    row_start: usize,
    col0: usize,
    c: &Coeffs,
    cols: Range<usize>,
    outs: [&mut [u8]; 3],
) {
    use std::arch::x86_64::*;
    let [ro, go, bo] = outs;
    let bias = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
    for (i, xx) in cols.enumerate() {
        let (first, k) = c.of(xx);
        let p = row_start + (first - col0) * 3;
        // each tap loads 4 bytes: the last one reads one byte past its pixel, which must exist
        let px = if p + k.len() * 3 < data.len() {
            let mut acc = bias;
            let base = data.as_ptr().add(p);
            for (j, &kj) in k.iter().enumerate() {
                // SAFETY: p + 3j + 4 <= p + 3·len + 1 <= data.len()
                let v = _mm_cvtsi32_si128(std::ptr::read_unaligned(base.add(3 * j) as *const i32));
                let v = _mm_cvtepu8_epi32(v);
                acc = _mm_add_epi32(acc, _mm_mullo_epi32(v, _mm_set1_epi32(kj)));
            }
            // >> 22 then clamp to 0..=255 (signed then unsigned saturation), as clip8
            let v = _mm_srai_epi32::<{ PRECISION_BITS as i32 }>(acc);
            let v = _mm_packus_epi16(_mm_packs_epi32(v, v), v);
            let b = (_mm_cvtsi128_si32(v) as u32).to_le_bytes();
            [b[0], b[1], b[2]]
        } else {
            horizontal_pixel(data, p, k)
        };
        ro[i] = px[0];
        go[i] = px[1];
        bo[i] = px[2];
    }
}

/// One output row of the vertical pass on one channel: `rows` holds the `k.len()` input rows
/// (each `w` bytes) the output row reads; the result is clipped and normalized into `dst`.
fn vertical_row(rows: &[u8], w: usize, k: &[i32], acc: &mut [i32], dst: &mut [f32], mean: f32, std: f32) {
    #[cfg(target_arch = "x86_64")]
    if cpu_has(Simd::Avx2) {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { vertical_row_avx2(rows, w, k, acc, dst, mean, std) };
        return;
    }
    vertical_row_body(rows, w, k, acc, dst, mean, std);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn vertical_row_avx2(rows: &[u8], w: usize, k: &[i32], acc: &mut [i32], dst: &mut [f32], mean: f32, std: f32) {
    vertical_row_body(rows, w, k, acc, dst, mean, std);
}

#[inline(always)]
fn vertical_row_body(rows: &[u8], w: usize, k: &[i32], acc: &mut [i32], dst: &mut [f32], mean: f32, std: f32) {
    let acc = &mut acc[..w];
    acc.fill(1i32 << (PRECISION_BITS - 1));
    for (row, &k) in rows.chunks_exact(w).zip(k) {
        for (a, &v) in acc.iter_mut().zip(&row[..w]) {
            *a = a.wrapping_add((v as i32).wrapping_mul(k));
        }
    }
    for (d, &a) in dst[..w].iter_mut().zip(acc.iter()) {
        // clip8, then torchvision's ToTensor + Normalize
        let v = (a >> PRECISION_BITS).clamp(0, 255);
        *d = (v as f32 / 255.0 - mean) / std;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::resize_window;
    use crate::transform::{to_normalized_chw, MEAN, STD};

    thread_local! {
        /// The widest instruction set the kernels may use on this test's thread (0: plain).
        pub(super) static MAX_SIMD: std::cell::Cell<u8> = const { std::cell::Cell::new(2) };
    }

    fn lcg(state: &mut u64) -> usize {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 33) as usize
    }

    fn reference(img: &Rgb8, out: (usize, usize), filter: Filter, window: (usize, usize, usize, usize)) -> Vec<f32> {
        let r = resize_window(img, out.0, out.1, filter, window);
        let mut v = vec![0f32; r.data.len()];
        to_normalized_chw(&r, &mut v);
        v
    }

    /// The fused path gives the bits of resize_window + to_normalized_chw, for every filter, up-
    /// and downscaling, whole images and regions holding just the needed pixels (or more).
    /// Every kernel variant (plain, SSE4.1, AVX2 where the CPU has them) gives the same bits.
    #[test]
    fn fused_equals_resize_then_normalize() {
        for level in 0..=2 {
            MAX_SIMD.with(|m| m.set(level));
            fused_equals_reference();
        }
    }

    fn fused_equals_reference() {
        let mut state = 99u64;
        let filters = [
            Filter::Box,
            Filter::Bilinear,
            Filter::Hamming,
            Filter::Bicubic,
            Filter::Lanczos,
        ];
        let mut checked = 0;
        for case in 0..300 {
            let (w, h) = (1 + lcg(&mut state) % 60, 1 + lcg(&mut state) % 60);
            let img = Rgb8 {
                width: w,
                height: h,
                data: (0..w * h * 3).map(|_| (lcg(&mut state) % 256) as u8).collect(),
            };
            let out_w = 1 + lcg(&mut state) % 70;
            let out_h = 1 + lcg(&mut state) % 70;
            let filter = filters[case % filters.len()];
            let (ww, wh) = (1 + lcg(&mut state) % out_w, 1 + lcg(&mut state) % out_h);
            let window = (
                lcg(&mut state) % (out_w - ww + 1),
                lcg(&mut state) % (out_h - wh + 1),
                ww,
                wh,
            );
            let want = reference(&img, (out_w, out_h), filter, window);
            let mut got = vec![f32::NAN; 3 * ww * wh];
            let applies = out_w != w && out_h != h;
            assert_eq!(
                resize_window_normalized(
                    Region::whole(&img),
                    (out_w, out_h),
                    filter,
                    window,
                    (MEAN, STD),
                    &mut got
                ),
                applies,
                "case {case}"
            );
            if !applies {
                assert!(needed_region((w, h), (out_w, out_h), filter, window).is_none());
                continue;
            }
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "case {case}: {w}x{h} -> {out_w}x{out_h} {filter:?} window {window:?}"
            );
            // the needed region alone, possibly with a margin
            let need = needed_region((w, h), (out_w, out_h), filter, window).unwrap();
            let m = case % 3;
            let cols = need.cols.start.saturating_sub(m)..(need.cols.end + m).min(w);
            let rows = need.rows.start.saturating_sub(m)..(need.rows.end + m).min(h);
            let part = img.crop(cols.start, rows.start, cols.len(), rows.len());
            let region = Region {
                img: &part,
                left: cols.start,
                top: rows.start,
                full_width: w,
                full_height: h,
            };
            let mut got = vec![f32::NAN; 3 * ww * wh];
            assert!(resize_window_normalized(
                region,
                (out_w, out_h),
                filter,
                window,
                (MEAN, STD),
                &mut got
            ));
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "case {case}: region {cols:?} {rows:?}"
            );
            // a region missing a needed column is refused
            if need.cols.len() > 1 {
                let part = img.crop(need.cols.start + 1, rows.start, need.cols.len() - 1, rows.len());
                let region = Region {
                    left: need.cols.start + 1,
                    img: &part,
                    ..region
                };
                assert!(!resize_window_normalized(
                    region,
                    (out_w, out_h),
                    filter,
                    window,
                    (MEAN, STD),
                    &mut got
                ));
            }
            checked += 1;
        }
        assert!(checked > 200, "{checked}");
    }

    /// A photograph-sized case with the validation transform's sizes (500×375 → 330×248, crop
    /// 224), extreme pixel values included.
    #[test]
    fn fused_val_sizes() {
        for level in 0..=2 {
            MAX_SIMD.with(|m| m.set(level));
            fused_val_sizes_at_level();
        }
    }

    fn fused_val_sizes_at_level() {
        let mut state = 5u64;
        for (w, h) in [(500, 375), (375, 500), (333, 500), (640, 480)] {
            let img = Rgb8 {
                width: w,
                height: h,
                data: (0..w * h * 3)
                    .map(|i| match lcg(&mut state) % 8 {
                        0 => 0,
                        1 => 255,
                        _ => ((i / 3 + lcg(&mut state) % 40) % 256) as u8,
                    })
                    .collect(),
            };
            let (ow, oh) = crate::transform::shorter_side_size(w, h, 248);
            let (l, t) = crate::transform::center_crop_offsets(ow, oh, 224);
            let window = (l, t, 224, 224);
            for filter in [Filter::Bilinear, Filter::Bicubic, Filter::Lanczos] {
                let want = reference(&img, (ow, oh), filter, window);
                let mut got = vec![0f32; 3 * 224 * 224];
                assert!(resize_window_normalized(
                    Region::whole(&img),
                    (ow, oh),
                    filter,
                    window,
                    (MEAN, STD),
                    &mut got
                ));
                assert!(
                    got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{w}x{h} {filter:?}"
                );
            }
        }
    }
}
