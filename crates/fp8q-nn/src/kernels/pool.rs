//! Max pooling and global average pooling.

use rayon::prelude::*;

use super::Window;
use crate::error::{NnError, Result};
use crate::feature_map::FeatureMap;

/// Max pooling with implicit `-inf` padding (PyTorch's `MaxPool2d`).
pub fn max_pool2d(x: &FeatureMap, win: Window, unit: &str) -> Result<FeatureMap> {
    super::keep_freed_memory();
    let (oh, ow) = win
        .out_hw(x.h, x.w)
        .ok_or_else(|| NnError::invalid(unit, format!("input {:?} too small", x.dims())))?;
    let (h, w) = (x.h, x.w);
    let mut out = FeatureMap::zeros(x.n, x.c, oh, ow);
    out.data.par_chunks_mut(oh * ow).enumerate().for_each(|(nc, dst)| {
        let src = &x.data[nc * h * w..(nc + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..win.kh {
                    let iy = (oy * win.stride + ky) as isize - win.pad as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    for kx in 0..win.kw {
                        let ix = (ox * win.stride + kx) as isize - win.pad as isize;
                        if ix < 0 || ix >= w as isize {
                            continue;
                        }
                        let v = src[iy as usize * w + ix as usize];
                        if v > m || v.is_nan() {
                            m = v;
                        }
                    }
                }
                dst[oy * ow + ox] = m;
            }
        }
    });
    Ok(out)
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
    fn global_average() {
        let x = FeatureMap::from_vec(vec![1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 0.0, 4.0], 1, 2, 2, 2).unwrap();
        assert_eq!(global_avg_pool(&x).data, vec![3.0, 1.0]);
    }
}
