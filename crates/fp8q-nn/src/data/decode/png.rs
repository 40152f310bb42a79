//! PNG through the `png` crate (samples as stored, no transformation), converted to RGB as
//! Pillow's `PngImagePlugin` modes and `convert('RGB')` do:
//!
//! | PNG                      | Pillow mode | to RGB                                        |
//! |--------------------------|-------------|-----------------------------------------------|
//! | grey 1/2/4/8 bit         | `1`, `L`    | scaled by bit replication (·255, ·85, ·17), replicated |
//! | grey 16 bit              | `I;16`      | clipped to 255 (not scaled), replicated       |
//! | grey+alpha 8/16 bit      | `LA`        | grey (16 bit: most significant byte), replicated |
//! | RGB / RGBA 8/16 bit      | `RGB(A)`    | as is (16 bit: most significant byte), alpha dropped |
//! | palette 1/2/4/8 bit      | `P`         | palette lookup; indices past the palette are black |
//!
//! Transparency (`tRNS`) and gamma are ignored, as `convert('RGB')` ignores them.

use std::io::Cursor;

use super::{check_size, MAX_PIXELS};
use crate::data::resize::Rgb8;

/// Decode a PNG file's bytes.
pub fn decode(bytes: &[u8]) -> Result<Rgb8, String> {
    let limits = ::png::Limits {
        bytes: usize::try_from(MAX_PIXELS * 8).unwrap_or(usize::MAX),
    };
    let mut decoder = ::png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    decoder.set_transformations(::png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let (w, h) = reader.info().size();
    check_size(w as u64, h as u64)?;
    let (w, h) = (w as usize, h as usize);
    let color = reader.info().color_type;
    let depth = reader.info().bit_depth as usize;
    let palette = reader.info().palette.as_ref().map(|p| p.to_vec());
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| "image too large".to_string())?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    let line = frame.line_size;
    let rows = (0..h).map(|y| &buf[y * line..(y + 1) * line]);
    let mut data = Vec::with_capacity(w * h * 3);
    use ::png::ColorType::*;
    match (color, depth) {
        (Grayscale, 16) => {
            for row in rows {
                for s in row.chunks_exact(2).take(w) {
                    let v = u16::from_be_bytes([s[0], s[1]]).min(255) as u8;
                    data.extend_from_slice(&[v, v, v]);
                }
            }
        }
        (Grayscale, _) => {
            let scale = match depth {
                1 => 255,
                2 => 85,
                4 => 17,
                _ => 1,
            };
            for row in rows {
                for x in 0..w {
                    let v = sample(row, x, depth) * scale;
                    data.extend_from_slice(&[v, v, v]);
                }
            }
        }
        (Indexed, _) => {
            let pal = palette.ok_or_else(|| "palette image without a palette".to_string())?;
            for row in rows {
                for x in 0..w {
                    let i = sample(row, x, depth) as usize;
                    match pal.get(3 * i..3 * i + 3) {
                        Some(rgb) => data.extend_from_slice(rgb),
                        None => data.extend_from_slice(&[0; 3]),
                    }
                }
            }
        }
        (GrayscaleAlpha | Rgb | Rgba, _) => {
            let channels = match color {
                GrayscaleAlpha => 2,
                Rgb => 3,
                _ => 4,
            };
            let bytes_per = depth / 8; // 8 or 16 bit: keep the first (most significant) byte
            for row in rows {
                for p in row.chunks_exact(channels * bytes_per).take(w) {
                    if channels == 2 {
                        data.extend_from_slice(&[p[0], p[0], p[0]]);
                    } else {
                        data.extend_from_slice(&[p[0], p[bytes_per], p[2 * bytes_per]]);
                    }
                }
            }
        }
    }
    Ok(Rgb8 {
        width: w,
        height: h,
        data,
    })
}

/// Sample `x` of a packed row of `depth`-bit samples (1, 2, 4 or 8), most significant first.
fn sample(row: &[u8], x: usize, depth: usize) -> u8 {
    if depth == 8 {
        return row[x];
    }
    let per_byte = 8 / depth;
    let shift = 8 - depth * (x % per_byte + 1);
    (row[x / per_byte] >> shift) & ((1u8 << depth) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_samples() {
        assert_eq!(sample(&[0b1011_0010], 0, 2), 0b10);
        assert_eq!(sample(&[0b1011_0010], 3, 2), 0b10);
        assert_eq!(sample(&[0b1011_0010], 1, 4), 0b0010);
        assert_eq!(sample(&[0b1000_0001], 7, 1), 1);
    }
}
