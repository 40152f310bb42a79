//! Pillow's CMYK to RGB conversion (`convert('RGB')` of a `CMYK` image), shared by JPEG (whose
//! CMYK Pillow reads inverted, `CMYK;I`) and TIFF (read as stored).

use crate::resize::Rgb8;

/// `cmyk2rgb`: with `nk = 255 - K`, each channel is `nk - MULDIV255(C, nk)` where
/// `MULDIV255(a, b) = ((a·b + 128) >> 8 + a·b + 128) >> 8` (a rounded `a·b / 255`). `px` holds
/// `n ≥ 4` bytes per pixel (C, M, Y, K first; the rest ignored), every byte inverted when
/// `inverted` (Pillow's `CMYK;I` raw mode, as libjpeg gives Adobe CMYK).
pub fn cmyk_to_rgb(width: usize, height: usize, px: &[u8], n: usize, inverted: bool) -> Rgb8 {
    fn muldiv255(a: i32, b: i32) -> i32 {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    }
    let flip = if inverted { 255 } else { 0 };
    let mut data = Vec::with_capacity(width * height * 3);
    for p in px.chunks_exact(n).take(width * height) {
        let [c, m, y, k] = [0, 1, 2, 3].map(|i| (p[i] ^ flip) as i32);
        let nk = 255 - k;
        for v in [c, m, y] {
            data.push((nk - muldiv255(v, nk)).clamp(0, 255) as u8);
        }
    }
    Rgb8 { width, height, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_formula() {
        // raw (inverted) CMYK: 255 everywhere is C=M=Y=K=0 → white
        assert_eq!(
            cmyk_to_rgb(1, 1, &[255, 255, 255, 255], 4, true).data,
            vec![255, 255, 255]
        );
        // K = 255 (raw 0) → black whatever the inks
        assert_eq!(cmyk_to_rgb(1, 1, &[3, 200, 90, 0], 4, true).data, vec![0, 0, 0]);
        // C = 100, K = 0: 255 - round(100 · 255 / 255) = 155
        assert_eq!(
            cmyk_to_rgb(1, 1, &[155, 255, 255, 255], 4, true).data,
            vec![155, 255, 255]
        );
        // as stored (TIFF), with an extra sample: C = 100, M = 0, Y = 255, K = 55
        assert_eq!(
            cmyk_to_rgb(1, 1, &[100, 0, 255, 55, 9], 5, false).data,
            vec![122, 200, 0]
        );
    }
}
