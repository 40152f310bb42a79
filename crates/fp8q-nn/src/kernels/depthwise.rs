//! Depthwise convolution (groups = channels, one filter per channel), computed directly.
//!
//! candle splits a grouped convolution into one convolution per group, which is very slow for
//! MobileNetV2's depthwise layers; here each output plane is a short loop over the kernel taps,
//! with the inner loop running along a contiguous row.

use rayon::prelude::*;

use super::Window;
use crate::error::{NnError, Result};
use crate::feature_map::FeatureMap;

/// Depthwise convolution of `x` with `weight` (`[C, 1, kh, kw]` flattened). `unit` names the
/// layer in errors.
pub fn depthwise_conv2d(x: &FeatureMap, weight: &[f32], win: Window, unit: &str) -> Result<FeatureMap> {
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
    out.data.par_chunks_mut(oh * ow).enumerate().for_each(|(nc, dst)| {
        let ch = nc % c;
        let src = &x.data[nc * h * w..(nc + 1) * h * w];
        let k = &weight[ch * taps..(ch + 1) * taps];
        for kx in 0..win.kw {
            // ox range whose input column ox·s + kx - pad lies in [0, w)
            let ox_lo = (win.pad.saturating_sub(kx)).div_ceil(win.stride);
            let ox_hi = if w + win.pad > kx {
                ((w + win.pad - kx - 1) / win.stride + 1).min(ow)
            } else {
                0
            };
            if ox_lo >= ox_hi {
                continue;
            }
            for oy in 0..oh {
                let out_row = &mut dst[oy * ow..(oy + 1) * ow];
                for ky in 0..win.kh {
                    let iy = (oy * win.stride + ky) as isize - win.pad as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let wv = k[ky * win.kw + kx];
                    let in_row = &src[iy as usize * w..(iy as usize + 1) * w];
                    let ix0 = ox_lo * win.stride + kx - win.pad;
                    if win.stride == 1 {
                        let n = ox_hi - ox_lo;
                        for (o, i) in out_row[ox_lo..ox_hi].iter_mut().zip(&in_row[ix0..ix0 + n]) {
                            *o += wv * i;
                        }
                    } else {
                        for (j, o) in out_row[ox_lo..ox_hi].iter_mut().enumerate() {
                            *o += wv * in_row[ix0 + j * win.stride];
                        }
                    }
                }
            }
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_direct_definition() {
        for &(stride, pad, h, w) in &[(1, 1, 6, 5), (2, 1, 7, 8), (2, 1, 8, 7), (1, 0, 5, 5)] {
            let (n, c) = (2, 3);
            let x: Vec<f32> = (0..n * c * h * w)
                .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
                .collect();
            let wt: Vec<f32> = (0..c * 9).map(|i| ((i * 13 % 17) as f32) / 8.0 - 1.0).collect();
            let fm = FeatureMap::from_vec(x.clone(), n, c, h, w).unwrap();
            let win = Window {
                kh: 3,
                kw: 3,
                stride,
                pad,
            };
            let got = depthwise_conv2d(&fm, &wt, win, "t").unwrap();
            let (oh, ow) = win.out_hw(h, w).unwrap();
            for b in 0..n {
                for ch in 0..c {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut s = 0.0f32;
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let iy = (oy * stride + ky) as isize - pad as isize;
                                    let ix = (ox * stride + kx) as isize - pad as isize;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                        s += wt[ch * 9 + ky * 3 + kx]
                                            * x[((b * c + ch) * h + iy as usize) * w + ix as usize];
                                    }
                                }
                            }
                            let g = got.data[((b * c + ch) * oh + oy) * ow + ox];
                            assert!((g - s).abs() < 1e-5, "s{stride}: {g} vs {s}");
                        }
                    }
                }
            }
        }
    }
}
