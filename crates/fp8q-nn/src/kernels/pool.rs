//! Max pooling and global average pooling.

use std::cell::RefCell;

use rayon::prelude::*;

use super::{PhasePlane, Window};
use crate::error::{NnError, Result};
use fp8q_tensors::feature_map::FeatureMap;

/// Max pooling with implicit `-inf` padding (PyTorch's `MaxPool2d`); NaN propagates.
pub fn max_pool2d(x: &FeatureMap, win: Window, unit: &str) -> Result<FeatureMap> {
    super::keep_freed_memory();
    let (oh, ow) = win
        .out_hw(x.h, x.w)
        .ok_or_else(|| NnError::invalid(unit, format!("input {:?} too small", x.dims())))?;
    let (h, w) = (x.h, x.w);
    let mut out = FeatureMap::zeros(x.n, x.c, oh, ow);
    let out_plane = oh * ow;
    if out.data.is_empty() {
        return Ok(out);
    }
    // Runs of whole planes, about 4 tasks per thread.
    let planes = x.n * x.c;
    let per_task = planes.div_ceil(4 * rayon::current_num_threads().max(1)).max(1);
    out.data
        .par_chunks_mut(per_task * out_plane)
        .enumerate()
        .for_each(|(t, dst)| {
            SCRATCH.with(|s| {
                let buf = &mut *s.borrow_mut();
                for (j, out_vals) in dst.chunks_mut(out_plane).enumerate() {
                    let nc = t * per_task + j;
                    let src = &x.data[nc * h * w..(nc + 1) * h * w];
                    let pp = PhasePlane::build(src, (h, w), win, (oh, ow), f32::NEG_INFINITY, buf);
                    // Rows are read in whole lane blocks; lanes past a row's end are dropped.
                    let need = (0..win.kw).map(|kx| pp.tap(oh - 1, win.kh - 1, kx)).max().unwrap_or(0)
                        + ow.next_multiple_of(LANES);
                    if buf.len() < need {
                        buf.resize(need, 0.0);
                    }
                    max_plane(buf, &pp, win, ow, out_vals);
                }
            });
        });
    Ok(out)
}

dispatch_by_cpu! {
    /// Max over the window of every output of one plane, from its padded copy.
    fn max_plane(padded: &[f32], pp: &PhasePlane, win: Window, ow: usize, out: &mut [f32]) => max_plane_impl;
}

/// Columns reduced together.
const LANES: usize = 16;

#[inline(always)]
fn max_plane_impl(padded: &[f32], pp: &PhasePlane, win: Window, ow: usize, out: &mut [f32]) {
    for (oy, out_row) in out.chunks_mut(ow).enumerate() {
        for (b, chunk) in out_row.chunks_mut(LANES).enumerate() {
            let mut acc = [f32::NEG_INFINITY; LANES];
            for ky in 0..win.kh {
                for kx in 0..win.kw {
                    let st = pp.tap(oy, ky, kx) + b * LANES;
                    let r: &[f32; LANES] = padded[st..st + LANES].try_into().expect("lane block");
                    for l in 0..LANES {
                        // branch-free, so it vectorizes: a NaN, once taken, stays
                        let take = (r[l] > acc[l]) | r[l].is_nan();
                        acc[l] = if take { r[l] } else { acc[l] };
                    }
                }
            }
            chunk.copy_from_slice(&acc[..chunk.len()]);
        }
    }
}

thread_local! {
    /// Per-thread padded plane.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Mean over each `h × w` plane: the result has shape `[n, c, 1, 1]`.
pub fn global_avg_pool(x: &FeatureMap) -> FeatureMap {
    let plane = x.plane();
    let data: Vec<f32> = x
        .data
        .chunks(plane.max(1))
        .map(|p| p.iter().sum::<f32>() / plane as f32)
        .collect();
    FeatureMap {
        data,
        n: x.n,
        c: x.c,
        h: 1,
        w: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_3x3_s2_p1() {
        // 1x1x4x4 input 0..16; windows centred on even positions
        let x = FeatureMap::from_vec((0..16).map(|v| v as f32).collect(), 1, 1, 4, 4).unwrap();
        let y = max_pool2d(
            &x,
            Window {
                kh: 3,
                kw: 3,
                stride: 2,
                pad: 1,
            },
            "t",
        )
        .unwrap();
        assert_eq!(y.dims(), [1, 1, 2, 2]);
        assert_eq!(y.data, vec![5.0, 7.0, 13.0, 15.0]);
    }

    #[test]
    fn max_pool_matches_direct_definition() {
        for &(n, c, k, stride, pad, h, w) in &[
            (2, 3, 3, 2, 1, 9, 8),
            (1, 2, 3, 2, 1, 112, 37),
            (3, 1, 2, 2, 0, 7, 7),
            (1, 2, 3, 1, 1, 5, 6),
        ] {
            let x: Vec<f32> = (0..n * c * h * w).map(|i| ((i * 37 % 101) as f32) - 50.0).collect();
            let fm = FeatureMap::from_vec(x.clone(), n, c, h, w).unwrap();
            let win = Window {
                kh: k,
                kw: k,
                stride,
                pad,
            };
            let got = max_pool2d(&fm, win, "t").unwrap();
            let (oh, ow) = win.out_hw(h, w).unwrap();
            for p in 0..n * c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut m = f32::NEG_INFINITY;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * stride + ky) as isize - pad as isize;
                                let ix = (ox * stride + kx) as isize - pad as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    m = m.max(x[(p * h + iy as usize) * w + ix as usize]);
                                }
                            }
                        }
                        assert_eq!(got.data[(p * oh + oy) * ow + ox], m);
                    }
                }
            }
        }
    }

    #[test]
    fn max_pool_propagates_nan() {
        let mut v: Vec<f32> = (0..16).map(|v| v as f32).collect();
        v[0] = f32::NAN;
        let x = FeatureMap::from_vec(v, 1, 1, 4, 4).unwrap();
        let win = Window {
            kh: 3,
            kw: 3,
            stride: 2,
            pad: 1,
        };
        let y = max_pool2d(&x, win, "t").unwrap();
        assert!(y.data[0].is_nan());
        assert_eq!(&y.data[1..], &[7.0, 13.0, 15.0]);
    }

    #[test]
    fn global_average() {
        let x = FeatureMap::from_vec(vec![1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 0.0, 4.0], 1, 2, 2, 2).unwrap();
        assert_eq!(global_avg_pool(&x).data, vec![3.0, 1.0]);
    }
}
