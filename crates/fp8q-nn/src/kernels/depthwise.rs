//! Depthwise convolution (groups = channels, one filter per channel), computed directly.
//!
//! candle splits a grouped convolution into one convolution per group, which is very slow for
//! MobileNetV2's depthwise layers. Here each input plane is first copied into a zero-padded
//! scratch plane whose rows are split into `stride` phases (columns `j·s + r` for phase `r`), so
//! that every tap of every output row reads a contiguous, in-bounds run of values. An output row
//! is then one pass over its columns, all `kh·kw` taps accumulated in registers (16 columns at a
//! time, which the AVX-512 build turns into single vector operations). The work is split over
//! images, and over channel ranges when the batch is small.

use std::cell::RefCell;

use rayon::prelude::*;

use super::{PhasePlane, Window};
use crate::error::{NnError, Result};
use fp8q_tensors::feature_map::FeatureMap;

/// Columns accumulated together.
const LANES: usize = 16;

/// Depthwise convolution of `x` with `weight` (`[C, 1, kh, kw]` flattened). `unit` names the
/// layer in errors.
pub fn depthwise_conv2d(x: &FeatureMap, weight: &[f32], win: Window, unit: &str) -> Result<FeatureMap> {
    super::keep_freed_memory();
    let taps = win.kh * win.kw;
    if weight.len() != x.c * taps {
        return Err(NnError::invalid(
            unit,
            format!(
                "depthwise weight of {} values does not fit {} channels",
                weight.len(),
                x.c
            ),
        ));
    }
    let (oh, ow) = win
        .out_hw(x.h, x.w)
        .ok_or_else(|| NnError::invalid(unit, format!("input {:?} too small", x.dims())))?;
    let (h, w, c) = (x.h, x.w, x.c);
    let mut out = FeatureMap::zeros(x.n, c, oh, ow);
    let out_plane = oh * ow;
    if out.data.is_empty() {
        return Ok(out);
    }
    // Tasks of whole channel runs: about 4 per thread, never less than one image's worth of
    // channels unless the batch is smaller than that.
    let tasks = 4 * rayon::current_num_threads().max(1);
    let per_task = if x.n >= tasks {
        c
    } else {
        (x.n * c).div_ceil(tasks).max(1)
    };
    let geom = Geometry { h, w, oh, ow, win };
    out.data
        .par_chunks_mut(per_task * out_plane)
        .enumerate()
        .for_each(|(t, dst)| {
            let first = t * per_task;
            SCRATCH.with(|s| {
                let buf = &mut *s.borrow_mut();
                for (j, out_plane_vals) in dst.chunks_mut(out_plane).enumerate() {
                    let nc = first + j;
                    let ch = nc % c;
                    let src = &x.data[nc * h * w..(nc + 1) * h * w];
                    plane(src, &weight[ch * taps..(ch + 1) * taps], &geom, buf, out_plane_vals);
                }
            });
        });
    Ok(out)
}

/// Sizes of one plane's convolution.
struct Geometry {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    win: Window,
}

thread_local! {
    /// Per-thread padded plane.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

dispatch_by_cpu! {
    /// Convolve one plane, with the fastest code the CPU supports.
    fn plane(src: &[f32], k: &[f32], g: &Geometry, buf: &mut Vec<f32>, dst: &mut [f32]) => plane_impl;
}

#[inline(always)]
fn plane_impl(src: &[f32], k: &[f32], g: &Geometry, buf: &mut Vec<f32>, dst: &mut [f32]) {
    let Geometry { h, w, oh, ow, win } = *g;
    let pp = PhasePlane::build(src, (h, w), win, (oh, ow), 0.0, buf);
    if win.kh == 3 && win.kw == 3 {
        // Rows are read in whole lane blocks: the last block of a row may run past it (into
        // the next row or the slack added here); those lanes are computed and dropped.
        let span = ow.next_multiple_of(LANES);
        let need = (0..3).map(|kx| pp.tap(oh - 1, 2, kx)).max().unwrap_or(0) + span;
        if buf.len() < need {
            buf.resize(need, 0.0);
        }
        let padded = &buf[..];
        let kk: &[f32; 9] = k.try_into().expect("9 taps");
        for (oy, out_row) in dst.chunks_mut(ow).enumerate() {
            let rows: [&[f32]; 9] = std::array::from_fn(|t| {
                let st = pp.tap(oy, t / 3, t % 3);
                &padded[st..st + span]
            });
            row_taps(out_row, &rows, kk);
        }
    } else {
        let padded = &buf[..];
        for (oy, out_row) in dst.chunks_mut(ow).enumerate() {
            out_row.fill(0.0);
            for (t, &wv) in k.iter().enumerate() {
                let st = pp.tap(oy, t / win.kw, t % win.kw);
                for (o, &v) in out_row.iter_mut().zip(&padded[st..st + ow]) {
                    *o += wv * v;
                }
            }
        }
    }
}

/// `out[i] = Σ_t k[t] · rows[t][i]`, every row at least `out.len()` rounded up to whole lane
/// blocks long.
#[inline(always)]
fn row_taps<const T: usize>(out: &mut [f32], rows: &[&[f32]; T], k: &[f32; T]) {
    for (b, chunk) in out.chunks_mut(LANES).enumerate() {
        let i = b * LANES;
        let mut acc = [0f32; LANES];
        for t in 0..T {
            let r: &[f32; LANES] = rows[t][i..i + LANES].try_into().expect("lane block");
            for l in 0..LANES {
                acc[l] += k[t] * r[l];
            }
        }
        chunk.copy_from_slice(&acc[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], wt: &[f32], n: usize, c: usize, h: usize, w: usize, win: Window) -> Vec<f32> {
        let (oh, ow) = win.out_hw(h, w).unwrap();
        let taps = win.kh * win.kw;
        let mut out = vec![0f32; n * c * oh * ow];
        for b in 0..n {
            for ch in 0..c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = 0.0f64;
                        for ky in 0..win.kh {
                            for kx in 0..win.kw {
                                let iy = (oy * win.stride + ky) as isize - win.pad as isize;
                                let ix = (ox * win.stride + kx) as isize - win.pad as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    s += wt[ch * taps + ky * win.kw + kx] as f64
                                        * x[((b * c + ch) * h + iy as usize) * w + ix as usize] as f64;
                                }
                            }
                        }
                        out[((b * c + ch) * oh + oy) * ow + ox] = s as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_direct_definition() {
        // 3×3 stride 1/2 on odd and even sizes, rows shorter and longer than a lane block,
        // batch 1 (channel-split tasks) and batch > 1; a 5×5 and a 3×3 without padding for the
        // generic path; stride 3.
        for &(n, c, k, stride, pad, h, w) in &[
            (2, 3, 3, 1, 1, 6, 5),
            (2, 3, 3, 2, 1, 7, 8),
            (2, 3, 3, 2, 1, 8, 7),
            (2, 3, 3, 1, 0, 5, 5),
            (1, 5, 3, 1, 1, 19, 37),
            (3, 4, 3, 2, 1, 33, 35),
            (1, 7, 3, 2, 1, 1, 1),
            (40, 2, 3, 1, 1, 4, 17),
            (2, 3, 5, 1, 2, 9, 21),
            (2, 3, 5, 2, 2, 10, 11),
            (2, 2, 3, 3, 1, 11, 20),
            (1, 2, 1, 2, 0, 5, 6),
        ] {
            let x: Vec<f32> = (0..n * c * h * w)
                .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
                .collect();
            let wt: Vec<f32> = (0..c * k * k).map(|i| ((i * 13 % 17) as f32) / 8.0 - 1.0).collect();
            let fm = FeatureMap::from_vec(x.clone(), n, c, h, w).unwrap();
            let win = Window {
                kh: k,
                kw: k,
                stride,
                pad,
            };
            let got = depthwise_conv2d(&fm, &wt, win, "t").unwrap();
            let want = naive(&x, &wt, n, c, h, w, win);
            assert_eq!(got.data.len(), want.len());
            for (i, (g, s)) in got.data.iter().zip(&want).enumerate() {
                assert!(
                    (g - s).abs() < 1e-5,
                    "n{n} c{c} k{k} s{stride} {h}x{w} @{i}: {g} vs {s}"
                );
            }
        }
    }
}
