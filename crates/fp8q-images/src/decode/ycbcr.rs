//! Pillow's YCbCr → RGB conversion (`convert('RGB')` of a `YCbCr` image, `ConvertYCbCr.c`):
//! the JFIF equations in 6-bit fixed point,
//!
//! ```text
//! R = Y + (R_Cr[Cr] >> 6)
//! G = Y + ((G_Cb[Cb] + G_Cr[Cr]) >> 6)
//! B = Y + (B_Cb[Cb] >> 6)
//! ```
//!
//! clipped to 0–255, where each table entry is `(int)(c · (v − 128) · 64 + 0.5)` in C, i.e. the
//! product plus a half truncated toward zero (so negative products round up at halves and
//! above: −89.7 becomes −89), with c = 1.402, −0.34414, −0.71414 and 1.772, and `>>` an
//! arithmetic shift.

/// The four tables, indexed by the chroma sample.
struct Tables {
    r_cr: [i32; 256],
    g_cb: [i32; 256],
    g_cr: [i32; 256],
    b_cb: [i32; 256],
}

fn table(c: f64) -> [i32; 256] {
    std::array::from_fn(|v| (c * (v as f64 - 128.0) * 64.0 + 0.5).trunc() as i32)
}

/// Convert packed `Y Cb Cr` samples, `n` per pixel (the first three used), to RGB.
pub fn to_rgb(px: &[u8], n: usize) -> Vec<u8> {
    let t = Tables {
        r_cr: table(1.402),
        g_cb: table(-0.34414),
        g_cr: table(-0.71414),
        b_cb: table(1.772),
    };
    let clip = |v: i32| v.clamp(0, 255) as u8;
    px.chunks_exact(n)
        .flat_map(|p| {
            let (y, cb, cr) = (i32::from(p[0]), p[1] as usize, p[2] as usize);
            [
                clip(y + (t.r_cr[cr] >> 6)),
                clip(y + ((t.g_cb[cb] + t.g_cr[cr]) >> 6)),
                clip(y + (t.b_cb[cb] >> 6)),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_halves_toward_positive() {
        let r = table(1.402);
        // 1.402 · (0 − 128) · 64 = −11485.18: plus a half, truncated toward zero
        assert_eq!((r[0], r[127], r[128], r[129], r[255]), (-11484, -89, 0, 90, 11395));
        assert_eq!(to_rgb(&[128, 128, 128], 3), [128, 128, 128]);
        // Pillow: Image.fromarray([[[0, 0, 255], [255, 255, 0]]], "YCbCr").convert("RGB")
        assert_eq!(to_rgb(&[0, 0, 255, 255, 255, 0], 3), [178, 0, 0, 75, 255, 255]);
    }
}
