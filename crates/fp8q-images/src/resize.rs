//! Pillow-exact resampling of 8-bit RGB images (`Image.resize(size, filter)`).
//!
//! Pillow resizes with a separable convolution: for each output pixel it weighs the input pixels
//! under the filter, stretched by the scale when downscaling (that is the antialiasing), with
//! weights normalized to sum 1 and then converted to fixed point with 22 fractional bits
//! (rounded half away from zero). The horizontal pass runs first and is rounded to 8 bits, then
//! the vertical pass. Each pass is skipped when its size does not change. `NEAREST` is not a
//! convolution: it samples `⌊(x + 0.5) · scale⌋`.
//!
//! `fast_image_resize` follows Pillow-SIMD instead, whose 16-bit coefficients with a variable
//! precision can differ from Pillow by one grey level; torchvision runs on Pillow, so this
//! module implements Pillow's arithmetic itself.
//!
//! ```
//! use fp8q_images::resize::{resize, Filter, Rgb8};
//! // 4×1 grey ramp downscaled to 2×1: weights 3/7, 3/7, 1/7 for the first output pixel
//! let img = Rgb8 { width: 4, height: 1, data: [10u8, 20, 30, 40].iter().flat_map(|&v| [v, v, v]).collect() };
//! let out = resize(&img, 2, 1, Filter::Bilinear);
//! assert_eq!(out.data[0], 17); // (3·10 + 3·20 + 1·30) / 7 = 17.14
//! ```

/// An 8-bit RGB image, pixels interleaved row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width · height · 3` bytes.
    pub data: Vec<u8>,
}

impl Rgb8 {
    /// The sub-image `[left, left + w) × [top, top + h)` (must lie inside).
    pub fn crop(&self, left: usize, top: usize, w: usize, h: usize) -> Rgb8 {
        let mut data = Vec::with_capacity(w * h * 3);
        for y in top..top + h {
            let row = &self.data[(y * self.width + left) * 3..(y * self.width + left + w) * 3];
            data.extend_from_slice(row);
        }
        Rgb8 {
            width: w,
            height: h,
            data,
        }
    }

    /// Mirror left–right.
    pub fn flip_horizontal(&self) -> Rgb8 {
        let mut data = Vec::with_capacity(self.data.len());
        for y in 0..self.height {
            for x in (0..self.width).rev() {
                let i = (y * self.width + x) * 3;
                data.extend_from_slice(&self.data[i..i + 3]);
            }
        }
        Rgb8 { data, ..*self }
    }
}

/// A resampling filter (`--interpolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Nearest neighbour (no convolution).
    Nearest,
    /// Box, support 0.5.
    Box,
    /// Triangle, support 1 (PIL `BILINEAR`).
    Bilinear,
    /// Hamming-windowed sinc, support 1.
    Hamming,
    /// Cubic with a = -0.5, support 2.
    Bicubic,
    /// Lanczos-3.
    Lanczos,
}

impl std::str::FromStr for Filter {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "nearest" => Filter::Nearest,
            "box" => Filter::Box,
            "bilinear" => Filter::Bilinear,
            "hamming" => Filter::Hamming,
            "bicubic" => Filter::Bicubic,
            "lanczos" => Filter::Lanczos,
            other => {
                return Err(format!(
                    "unknown interpolation '{other}' (nearest, box, bilinear, hamming, bicubic, lanczos)"
                ))
            }
        })
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = x * std::f64::consts::PI;
        px.sin() / px
    }
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let px = x * std::f64::consts::PI;
                    px.sin() / px * (0.54 + 0.46 * px.cos())
                }
            }
            Filter::Bicubic => {
                let a = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if x > -3.0 && x < 3.0 {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

pub(crate) const PRECISION_BITS: u32 = 32 - 8 - 2;

/// For each output index: first input index and fixed-point weights (Pillow's `int` arithmetic:
/// the weights sum to 2^22, so a sum of 8-bit values times weights fits an `i32`).
pub(crate) struct Coeffs {
    pub(crate) start: Vec<usize>,
    /// `weights[bounds[i]..bounds[i + 1]]` belong to output index `i`.
    pub(crate) bounds: Vec<usize>,
    pub(crate) weights: Vec<i32>,
}

impl Coeffs {
    /// First input index and weights of output index `i`.
    pub(crate) fn of(&self, i: usize) -> (usize, &[i32]) {
        (self.start[i], &self.weights[self.bounds[i]..self.bounds[i + 1]])
    }
}

pub(crate) fn coefficients(in_size: usize, out_size: usize, filter: Filter) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    let mut start = Vec::with_capacity(out_size);
    let mut bounds = Vec::with_capacity(out_size + 1);
    let mut weights = Vec::new();
    bounds.push(0);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero
        let xmin = ((center - support + 0.5).trunc() as i64).max(0) as usize;
        let xmax = ((center + support + 0.5).trunc() as i64).min(in_size as i64).max(0) as usize;
        let count = xmax.saturating_sub(xmin);
        let mut k: Vec<f64> = (0..count)
            .map(|x| filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss))
            .collect();
        let ww: f64 = k.iter().sum();
        if ww != 0.0 {
            k.iter_mut().for_each(|v| *v /= ww);
        }
        let one = (1u64 << PRECISION_BITS) as f64;
        weights.extend(k.iter().map(|&v| {
            if v < 0.0 {
                (-0.5 + v * one).trunc() as i32
            } else {
                (0.5 + v * one).trunc() as i32
            }
        }));
        start.push(xmin);
        bounds.push(weights.len());
    }
    Coeffs { start, bounds, weights }
}

#[inline]
pub(crate) fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's horizontal pass for output columns `cols` of the input rows `rows`.
fn horizontal(img: &Rgb8, c: &Coeffs, cols: std::ops::Range<usize>, rows: std::ops::Range<usize>) -> Rgb8 {
    let w = cols.len();
    let mut data = vec![0u8; w * rows.len() * 3];
    for (out_row, y) in data.chunks_exact_mut(w * 3).zip(rows) {
        let row = &img.data[y * img.width * 3..(y + 1) * img.width * 3];
        for (out, xx) in out_row.chunks_exact_mut(3).zip(cols.clone()) {
            let (first, k) = c.of(xx);
            let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
            for (px, &k) in row[first * 3..(first + k.len()) * 3].chunks_exact(3).zip(k) {
                acc[0] += px[0] as i32 * k;
                acc[1] += px[1] as i32 * k;
                acc[2] += px[2] as i32 * k;
            }
            out.copy_from_slice(&[clip8(acc[0]), clip8(acc[1]), clip8(acc[2])]);
        }
    }
    Rgb8 {
        width: w,
        height: data.len() / (w * 3).max(1),
        data,
    }
}

/// Pillow's vertical pass for output rows `rows`; `img` holds the input rows from `first_row` on.
fn vertical(img: &Rgb8, c: &Coeffs, rows: std::ops::Range<usize>, first_row: usize) -> Rgb8 {
    let stride = img.width * 3;
    let mut data = vec![0u8; stride * rows.len()];
    let mut acc = vec![0i32; stride];
    for (out_row, yy) in data.chunks_exact_mut(stride.max(1)).zip(rows) {
        let (first, k) = c.of(yy);
        acc.fill(1i32 << (PRECISION_BITS - 1));
        for (j, &k) in k.iter().enumerate() {
            let y = first + j - first_row;
            for (a, &v) in acc.iter_mut().zip(&img.data[y * stride..(y + 1) * stride]) {
                *a += v as i32 * k;
            }
        }
        for (d, &a) in out_row.iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    Rgb8 {
        width: img.width,
        height: data.len() / stride.max(1),
        data,
    }
}

fn nearest(img: &Rgb8, out_w: usize, out_h: usize) -> Rgb8 {
    let sx = img.width as f64 / out_w as f64;
    let sy = img.height as f64 / out_h as f64;
    let mut data = Vec::with_capacity(out_w * out_h * 3);
    for y in 0..out_h {
        let iy = (((y as f64 + 0.5) * sy) as usize).min(img.height - 1);
        for x in 0..out_w {
            let ix = (((x as f64 + 0.5) * sx) as usize).min(img.width - 1);
            let p = (iy * img.width + ix) * 3;
            data.extend_from_slice(&img.data[p..p + 3]);
        }
    }
    Rgb8 {
        width: out_w,
        height: out_h,
        data,
    }
}

/// Resize to `out_w × out_h` exactly as Pillow's `Image.resize((out_w, out_h), filter)`.
pub fn resize(img: &Rgb8, out_w: usize, out_h: usize, filter: Filter) -> Rgb8 {
    resize_window(img, out_w, out_h, filter, (0, 0, out_w, out_h))
}

/// The window `(left, top, w, h)` (inside `out_w × out_h`) of [`resize`]`(img, out_w, out_h,
/// filter)`, computing only what the window needs: the horizontal pass for its columns and the
/// input rows its vertical pass reads, the vertical pass for its rows. Every output pixel of a
/// Pillow pass depends only on its own input pixels, so the values are exactly those of the full
/// resize followed by a crop (torchvision's `Resize` + `CenterCrop`) at a fraction of the cost.
pub fn resize_window(
    img: &Rgb8,
    out_w: usize,
    out_h: usize,
    filter: Filter,
    (left, top, w, h): (usize, usize, usize, usize),
) -> Rgb8 {
    assert!(
        left + w <= out_w && top + h <= out_h,
        "window outside the resized image"
    );
    if w == 0 || h == 0 || img.width == 0 || img.height == 0 {
        return Rgb8 {
            width: w,
            height: h,
            data: vec![0; w * h * 3],
        };
    }
    if filter == Filter::Nearest {
        return nearest(img, out_w, out_h).crop(left, top, w, h);
    }
    // input rows the vertical pass reads (all of the window's rows when it is skipped)
    let vc = (out_h != img.height).then(|| coefficients(img.height, out_h, filter));
    let rows = match &vc {
        Some(c) if h > 0 => {
            let lo = (top..top + h).map(|y| c.of(y).0).min().unwrap_or(0);
            let hi = (top..top + h).map(|y| c.of(y).0 + c.of(y).1.len()).max().unwrap_or(lo);
            lo..hi.max(lo)
        }
        Some(_) => 0..0,
        None => top..top + h,
    };
    let first_row = rows.start;
    let horizontal_out = if out_w != img.width {
        horizontal(img, &coefficients(img.width, out_w, filter), left..left + w, rows)
    } else {
        img.crop(left, rows.start, w, rows.len())
    };
    match vc {
        Some(c) => vertical(&horizontal_out, &c, top..top + h, first_row),
        None => horizontal_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(w: usize, h: usize, v: &[u8]) -> Rgb8 {
        Rgb8 {
            width: w,
            height: h,
            data: v.iter().flat_map(|&x| [x, x, x]).collect(),
        }
    }

    fn channel0(img: &Rgb8) -> Vec<u8> {
        img.data.iter().step_by(3).copied().collect()
    }

    /// Bilinear 2× upscale of [0, 100] (support 1, no antialiasing): output centres at input
    /// positions 0.25 and 0.75 (minus 0.5 from pixel centres): weights worked by hand.
    #[test]
    fn bilinear_upscale_by_hand() {
        let out = resize(&grey(2, 1, &[0, 100]), 4, 1, Filter::Bilinear);
        // weight of input pixel x for centre c: 1 - |x + 0.5 - c|, window ⌊c ± 1 + 0.5⌋
        // x0 (c = 0.25): window [0, 1): pixel 0 only → 0
        // x1 (c = 0.75): 0.75·0 + 0.25·100 → 25
        // x2 (c = 1.25): 0.25·0 + 0.75·100 → 75
        // x3 (c = 1.75): window [1, 2): pixel 1 only → 100
        assert_eq!(channel0(&out), vec![0, 25, 75, 100]);
    }

    /// Antialiased bilinear 2× downscale: support 2, weights 3/7 3/7 1/7 at the left edge,
    /// 1/8 3/8 3/8 1/8 inside, worked by hand.
    #[test]
    fn bilinear_downscale_by_hand() {
        let out = resize(&grey(6, 1, &[10, 20, 30, 40, 50, 60]), 3, 1, Filter::Bilinear);
        // x0 (centre 1): (3·10 + 3·20 + 30)/7 = 17.14 → 17
        // x1 (centre 3): (20 + 3·30 + 3·40 + 50)/8 = 35
        // x2 (centre 5): pixels 3..6, weights 1/7, 3/7, 3/7: (40 + 3·50 + 3·60)/7 = 52.86 → 53
        assert_eq!(channel0(&out), vec![17, 35, 53]);
    }

    /// The horizontal pass is rounded to 8 bits before the vertical one.
    #[test]
    fn two_passes_round_in_between() {
        // 2x2 → 1x1 box: horizontal averages rows (1+2)/2 = 1.5 → 2, (2+3)/2 = 2.5 → 3,
        // then vertical (2+3)/2 = 2.5 → 3 (a single 2-D pass would give (1+2+2+3)/4 = 2)
        let out = resize(&grey(2, 2, &[1, 2, 2, 3]), 1, 1, Filter::Box);
        assert_eq!(channel0(&out), vec![3]);
    }

    #[test]
    fn nearest_samples_centres() {
        let out = resize(&grey(4, 1, &[1, 2, 3, 4]), 2, 1, Filter::Nearest);
        assert_eq!(channel0(&out), vec![2, 4]); // ⌊0.5·2⌋ = 1, ⌊1.5·2⌋ = 3
    }

    /// A window of the resize is the crop of the full resize, for every filter, up- and
    /// downscaling, with one pass skipped or both run.
    #[test]
    fn window_equals_crop_of_full_resize() {
        let mut state = 12345u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize
        };
        let filters = [
            Filter::Nearest,
            Filter::Box,
            Filter::Bilinear,
            Filter::Hamming,
            Filter::Bicubic,
            Filter::Lanczos,
        ];
        for case in 0..60 {
            let (w, h) = (1 + next() % 40, 1 + next() % 40);
            let img = Rgb8 {
                width: w,
                height: h,
                data: (0..w * h * 3).map(|_| (next() % 256) as u8).collect(),
            };
            let out_w = if case % 5 == 0 { w } else { 1 + next() % 50 };
            let out_h = if case % 7 == 0 { h } else { 1 + next() % 50 };
            let filter = filters[case % filters.len()];
            let full = resize(&img, out_w, out_h, filter);
            let (ww, wh) = (1 + next() % out_w, 1 + next() % out_h);
            let (left, top) = (next() % (out_w - ww + 1), next() % (out_h - wh + 1));
            assert_eq!(
                resize_window(&img, out_w, out_h, filter, (left, top, ww, wh)),
                full.crop(left, top, ww, wh),
                "case {case}: {w}x{h} -> {out_w}x{out_h} {filter:?} window {left},{top} {ww}x{wh}"
            );
        }
    }

    #[test]
    fn crop_and_flip() {
        let img = grey(3, 2, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(channel0(&img.crop(1, 0, 2, 2)), vec![2, 3, 5, 6]);
        assert_eq!(channel0(&img.flip_horizontal()), vec![3, 2, 1, 6, 5, 4]);
    }
}
