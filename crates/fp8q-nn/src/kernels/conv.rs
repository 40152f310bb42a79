//! Dense (groups = 1) convolution as im2col followed by a single-threaded `gemm` per group of
//! images, the groups spread over the rayon pool.
//!
//! For a group of `g` images, the receptive fields become the columns of a `[C·kh·kw, g·OH·OW]`
//! matrix (image after image along the columns); the weight `[OC, C·kh·kw]` times that matrix is
//! the group's `[OC, g·OH·OW]` output, which is scattered back into NCHW order. A group of one
//! image multiplies straight into the output, and a 1×1 convolution with stride 1 and no padding
//! then skips im2col too: the image's NCHW plane is already its column matrix.
//!
//! Groups are sized so that each product has enough columns to keep the microkernel busy (the
//! late 7×7 layers have only 49 columns per image) and the images split evenly over the
//! threads. Each gemm runs on one thread, so nothing nests; a batch smaller than the thread
//! count instead lets gemm split one product over the threads. Column and product buffers are
//! per-thread scratch, reused across calls. The products go through [`super::matmul::matmul`], so
//! an image's output does not depend on the images it is grouped with.

use std::cell::RefCell;

use candle_core::Tensor;
use gemm::Parallelism;
use rayon::prelude::*;

use super::matmul::matmul;
use super::{PhasePlane, Window};
use crate::error::{NnError, Result, TensorContext};
use fp8q_tensors::feature_map::{with_f32_slice, FeatureMap};

/// Fewest columns wanted in one product (images are grouped until they reach it).
const MIN_COLUMNS: usize = 256;

/// Convolve `x` with `weight` (`[OC, C, kh, kw]`, as a candle tensor). `unit` names the layer
/// in errors.
pub fn conv2d(x: &FeatureMap, weight: &Tensor, win: Window, unit: &str) -> Result<FeatureMap> {
    let (oc, ic, kh, kw) = weight.dims4().at(unit)?;
    if ic != x.c || kh != win.kh || kw != win.kw {
        return Err(NnError::invalid(
            unit,
            format!("weight {:?} does not fit input {:?}", weight.dims(), x.dims()),
        ));
    }
    with_f32_slice(weight, unit, |w| conv2d_slice(x, w, oc, win, unit))?
}

/// Convolve `x` with the `[oc, x.c, win.kh, win.kw]` weight `w` given as a flat slice.
pub fn conv2d_slice(x: &FeatureMap, w: &[f32], oc: usize, win: Window, unit: &str) -> Result<FeatureMap> {
    super::keep_freed_memory();
    let k = x.c * win.kh * win.kw;
    if w.len() != oc * k {
        return Err(NnError::invalid(
            unit,
            format!("{} weight values for {oc} filters of {k}", w.len()),
        ));
    }
    let (oh, ow) = win
        .out_hw(x.h, x.w)
        .ok_or_else(|| NnError::invalid(unit, format!("input {:?} too small", x.dims())))?;
    let p = oh * ow;
    let mut out = FeatureMap::zeros(x.n, oc, oh, ow);
    if out.data.is_empty() || k == 0 {
        return Ok(out);
    }
    let threads = rayon::current_num_threads().max(1);
    let plane_in = x.c * x.h * x.w;
    if x.n < threads {
        // Too few images to go round: one product per image, split by gemm itself.
        for (i, dst) in out.data.chunks_mut(oc * p).enumerate() {
            let img = &x.data[i * plane_in..(i + 1) * plane_in];
            conv_group(img, x, 1, w, oc, win, (oh, ow), dst, Parallelism::Rayon(threads));
        }
        return Ok(out);
    }
    let group = group_size(x.n, p, threads);
    out.data
        .par_chunks_mut(group * oc * p)
        .zip(x.data.par_chunks(group * plane_in))
        .for_each(|(dst, imgs)| {
            let g = imgs.len() / plane_in;
            conv_group(imgs, x, g, w, oc, win, (oh, ow), dst, Parallelism::None);
        });
    Ok(out)
}

/// Images per product: at least enough for [`MIN_COLUMNS`] columns where the batch allows,
/// then the size that loads the busiest thread least (smallest among equals).
fn group_size(n: usize, p: usize, threads: usize) -> usize {
    let most = (n / threads).max(1);
    let least = MIN_COLUMNS.div_ceil(p.max(1)).clamp(1, most);
    let load = |g: usize| n.div_ceil(g).div_ceil(threads) * g;
    (least..=most).min_by_key(|&g| (load(g), g)).unwrap_or(1)
}

thread_local! {
    /// Per-thread column and product buffers.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Grow `v` to at least `len` values and return its first `len` (contents unspecified).
fn scratch(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// Convolve the `g` consecutive images in `imgs` (each of `x`'s channel and plane sizes) into
/// `dst` (`g` NCHW output images).
#[allow(clippy::too_many_arguments)]
fn conv_group(
    imgs: &[f32],
    x: &FeatureMap,
    g: usize,
    w: &[f32],
    oc: usize,
    win: Window,
    (oh, ow): (usize, usize),
    dst: &mut [f32],
    par: Parallelism,
) {
    let k = x.c * win.kh * win.kw;
    let p = oh * ow;
    let cols_n = g * p;
    let plane_in = x.c * x.h * x.w;
    let pointwise = win.kh == 1 && win.kw == 1 && win.stride == 1 && win.pad == 0;
    if pointwise && g == 1 {
        // SAFETY: `imgs` is `[k, p]`, `w` is `[oc, k]`, `dst` is `[oc, p]`, all row-major.
        unsafe { matmul(dst, w, imgs, oc, k, p, par) };
        return;
    }
    SCRATCH.with(|s| {
        let (cols_buf, prod_buf) = &mut *s.borrow_mut();
        let cols = scratch(cols_buf, k * cols_n);
        for (i, img) in imgs.chunks(plane_in).enumerate() {
            if pointwise {
                for (row, src) in img.chunks(p).enumerate() {
                    cols[row * cols_n + i * p..row * cols_n + (i + 1) * p].copy_from_slice(src);
                }
            } else {
                im2col_into(img, x.c, x.h, x.w, win, oh, ow, cols, cols_n, i * p);
            }
        }
        if g == 1 {
            // SAFETY: `cols` is `[k, p]`, `w` is `[oc, k]`, `dst` is `[oc, p]`.
            unsafe { matmul(dst, w, cols, oc, k, p, par) };
            return;
        }
        let prod = scratch(prod_buf, oc * cols_n);
        // SAFETY: `cols` is `[k, g·p]`, `w` is `[oc, k]`, `prod` is `[oc, g·p]`.
        unsafe { matmul(prod, w, cols, oc, k, cols_n, par) };
        for (i, out_img) in dst.chunks_mut(oc * p).enumerate() {
            for (o, out_row) in out_img.chunks_mut(p).enumerate() {
                out_row.copy_from_slice(&prod[o * cols_n + i * p..o * cols_n + (i + 1) * p]);
            }
        }
    });
}

/// Write one image's column matrix (`[c·kh·kw]` rows of `oh·ow` values, padding as zeros) into
/// `dst`, row `r` starting at `r·ld + offset`.
#[allow(clippy::too_many_arguments)]
fn im2col_into(
    img: &[f32],
    c: usize,
    h: usize,
    w: usize,
    win: Window,
    oh: usize,
    ow: usize,
    dst: &mut [f32],
    ld: usize,
    offset: usize,
) {
    let p = oh * ow;
    PADDED.with(|b| {
        let buf = &mut *b.borrow_mut();
        for ch in 0..c {
            let src = &img[ch * h * w..(ch + 1) * h * w];
            let pp = PhasePlane::build(src, (h, w), win, (oh, ow), 0.0, buf);
            for ky in 0..win.kh {
                for kx in 0..win.kw {
                    let r = (ch * win.kh + ky) * win.kw + kx;
                    let row = &mut dst[r * ld + offset..r * ld + offset + p];
                    for (oy, out_row) in row.chunks_mut(ow).enumerate() {
                        let st = pp.tap(oy, ky, kx);
                        out_row.copy_from_slice(&buf[st..st + ow]);
                    }
                }
            }
        }
    });
}

thread_local! {
    /// Per-thread padded input plane for im2col.
    static PADDED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The column matrix of every image: `[n][c·kh·kw][oh·ow]`.
pub fn im2col(x: &FeatureMap, win: Window, oh: usize, ow: usize) -> Vec<f32> {
    let p = oh * ow;
    let k = x.c * win.kh * win.kw;
    let plane_in = x.c * x.h * x.w;
    let mut cols = vec![0.0f32; x.n * k * p];
    if p == 0 || k == 0 {
        return cols;
    }
    cols.par_chunks_mut(k * p)
        .zip(x.data.par_chunks(plane_in.max(1)))
        .for_each(|(dst, img)| im2col_into(img, x.c, x.h, x.w, win, oh, ow, dst, p, 0));
    cols
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Direct definition of a convolution, for comparison.
    fn naive(x: &FeatureMap, wt: &[f32], oc: usize, win: Window) -> FeatureMap {
        let (oh, ow) = win.out_hw(x.h, x.w).unwrap();
        let mut out = FeatureMap::zeros(x.n, oc, oh, ow);
        for n in 0..x.n {
            for o in 0..oc {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = 0.0f64;
                        for c in 0..x.c {
                            for ky in 0..win.kh {
                                for kx in 0..win.kw {
                                    let iy = (oy * win.stride + ky) as isize - win.pad as isize;
                                    let ix = (ox * win.stride + kx) as isize - win.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                                        continue;
                                    }
                                    let xv = x.data[((n * x.c + c) * x.h + iy as usize) * x.w + ix as usize];
                                    let wv = wt[((o * x.c + c) * win.kh + ky) * win.kw + kx];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        out.data[((n * oc + o) * oh + oy) * ow + ox] = s as f32;
                    }
                }
            }
        }
        out
    }

    fn pseudo(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn check(n: usize, c: usize, oc: usize, k: usize, stride: usize, pad: usize, h: usize, w: usize) {
        let x = FeatureMap::from_vec(pseudo(n * c * h * w, 1), n, c, h, w).unwrap();
        let wt = pseudo(oc * c * k * k, 7);
        let win = Window {
            kh: k,
            kw: k,
            stride,
            pad,
        };
        let wtensor = Tensor::from_vec(wt.clone(), (oc, c, k, k), &Device::Cpu).unwrap();
        let got = conv2d(&x, &wtensor, win, "t").unwrap();
        let want = naive(&x, &wt, oc, win);
        assert_eq!(got.dims(), want.dims());
        let tol = 1e-5 * (c * k * k) as f32;
        for (i, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
            assert!(
                (a - b).abs() <= tol,
                "n{n} c{c} oc{oc} k{k} s{stride} p{pad} {h}x{w} @{i}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn matches_direct_definition() {
        for &(k, stride, pad, h, w) in &[
            (3, 1, 1, 7, 6),
            (3, 2, 1, 9, 8),
            (7, 2, 3, 11, 10),
            (1, 2, 0, 6, 7),
            (1, 1, 0, 5, 5),
        ] {
            check(2, 3, 4, k, stride, pad, h, w);
        }
    }

    #[test]
    fn batch_grouping_and_odd_sizes() {
        // batch 1 (gemm's own threads), small batches (groups of several images per product),
        // odd channel counts and sizes; 1×1, 3×3 s1/s2, 7×7 s2 p3, and a kernel wider than
        // the input with padding.
        for &(n, c, oc, k, stride, pad, h, w) in &[
            (1, 5, 7, 3, 1, 1, 9, 11),
            (1, 8, 9, 1, 1, 0, 7, 5),
            (5, 8, 9, 1, 1, 0, 7, 5),
            (6, 16, 24, 1, 1, 0, 3, 3),
            (7, 3, 8, 7, 2, 3, 13, 15),
            (4, 6, 5, 3, 2, 1, 9, 9),
            (9, 17, 19, 3, 1, 1, 5, 3),
            (3, 4, 6, 3, 2, 1, 2, 2),
            (3, 2, 3, 5, 1, 2, 3, 4),
            (33, 4, 5, 3, 1, 1, 4, 4),
        ] {
            check(n, c, oc, k, stride, pad, h, w);
        }
    }

    #[test]
    fn group_sizes_balance_threads() {
        assert_eq!(group_size(32, 49, 2), 8);
        assert_eq!(group_size(32, 196, 2), 2);
        assert_eq!(group_size(32, 3136, 2), 1);
        assert_eq!(group_size(3, 49, 2), 1);
        for n in 1..40 {
            for p in [1, 7, 49, 196, 784] {
                let g = group_size(n, p, 2);
                assert!(g >= 1 && g <= n.max(1));
            }
        }
    }

    #[test]
    fn im2col_layout() {
        let x = FeatureMap::from_vec((1..=8).map(|v| v as f32).collect(), 2, 1, 2, 2).unwrap();
        let win = Window {
            kh: 2,
            kw: 2,
            stride: 1,
            pad: 0,
        };
        assert_eq!(im2col(&x, win, 1, 1), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    }
}
