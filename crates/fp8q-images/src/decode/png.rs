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
//!
//! Damaged files get Pillow's outcome: the CRC of every chunk before the first `IDAT` is checked,
//! none after; the image data is inflated as far as it goes, so a file that ends (or whose zlib
//! stream goes on) past the last row decodes, missing `IEND` included, while data that ends
//! before it, or turns corrupt anywhere (a wrong Adler-32 included), is an error; chunks other
//! than `IHDR`, `PLTE` and `IDAT` (unknown critical ones included) are skipped.

use std::io::Cursor;

use super::{check_size, MAX_PIXELS};
use crate::resize::Rgb8;

/// Decode a PNG file's bytes.
///
/// The image data is inflated here first, with Pillow's outcome (see `pillow_rows`); the
/// `png` crate then reads a copy of the file holding exactly those rows.
pub fn decode(bytes: &[u8]) -> Result<Rgb8, String> {
    check_crcs_before_idat(bytes)?;
    decode_whole(&with_pillows_rows(bytes)?)
}

/// Decode with the `png` crate (the file as [`with_pillows_rows`] gives it).
fn decode_whole(bytes: &[u8]) -> Result<Rgb8, String> {
    let limits = ::png::Limits {
        bytes: usize::try_from(MAX_PIXELS * 8).unwrap_or(usize::MAX),
    };
    let mut decoder = ::png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    decoder.set_transformations(::png::Transformations::IDENTITY);
    // Pillow checks the CRC of the chunks before the first IDAT (`check_crcs_before_idat`),
    // none after
    decoder.ignore_checksums(true);
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let (w, h) = reader.info().size();
    check_size(w as u64, h as u64)?;
    let (w, h) = (w as usize, h as usize);
    let color = reader.info().color_type;
    let depth = reader.info().bit_depth as usize;
    let palette = reader.info().palette.as_ref().map(|p| p.to_vec());
    let line = reader
        .output_line_size(w as u32)
        .ok_or_else(|| "image too large".to_string())?;
    let size = line.checked_mul(h).ok_or_else(|| "image too large".to_string())?;
    let mut buf = vec![0u8; size];
    // Row by row, stopping at the last row: like Pillow, what follows the pixel data (the rest
    // of the zlib stream, IEND) is not needed, and may be missing.
    let interlaced = reader.info().interlaced;
    let bits_pp = (color.samples() * depth) as u8;
    for y in 0..rows_stored(w, h, interlaced) {
        let row = reader
            .next_interlaced_row()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "image file is truncated".to_string())?;
        match row.interlace() {
            ::png::InterlaceInfo::Null(_) => buf[y * line..(y + 1) * line].copy_from_slice(&row.data()[..line]),
            ::png::InterlaceInfo::Adam7(info) => {
                ::png::expand_interlaced_row(&mut buf, line, row.data(), info, bits_pp)
            }
        }
    }
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

/// The rows the file stores: `height`, or with Adam7 interlacing the rows of the seven passes
/// (a pass without columns or rows stores none).
fn rows_stored(width: usize, height: usize, interlaced: bool) -> usize {
    passes(width, height, interlaced).map(|(_, rows)| rows).sum()
}

/// `(columns, rows)` of each pass that stores rows: the whole image, or Adam7's seven passes.
fn passes(width: usize, height: usize, interlaced: bool) -> impl Iterator<Item = (usize, usize)> {
    // (first column, first row, column step, row step) of each pass
    const PASSES: [(usize, usize, usize, usize); 7] = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ];
    let adam7 = PASSES.iter().filter(move |_| interlaced).map(move |&(x0, y0, dx, dy)| {
        (
            width.saturating_sub(x0).div_ceil(dx),
            height.saturating_sub(y0).div_ceil(dy),
        )
    });
    let whole = (!interlaced).then_some((width, height));
    whole.into_iter().chain(adam7).filter(|&(w, h)| w > 0 && h > 0)
}

/// `bytes` up to the first `IDAT`, then the rows [`pillow_rows`] gives, stored uncompressed in
/// one `IDAT`, then `IEND`; or Pillow's error.
fn with_pillows_rows(bytes: &[u8]) -> Result<Vec<u8>, String> {
    // the chunks the pixels need (IHDR, PLTE: the others, unknown critical ones included, are
    // no concern of `convert('RGB')`), and the image data: consecutive IDAT chunks (the last
    // one possibly cut short)
    let (mut at, mut head, mut idat, mut in_idat) = (8usize, bytes[..8].to_vec(), Vec::new(), false);
    while let Some(h) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let end = at.saturating_add(12 + len);
        match &h[4..8] {
            b"IDAT" => {
                in_idat = true;
                idat.extend_from_slice(&bytes[at + 8..(at + 8).saturating_add(len).min(bytes.len())]);
            }
            _ if in_idat => break,
            b"IHDR" | b"PLTE" => head.extend_from_slice(bytes.get(at..end).ok_or("image file is truncated")?),
            _ => {}
        }
        at = end;
    }
    if !in_idat {
        return Err("image file is truncated (no IDAT chunk)".into());
    }
    let ihdr = match head.get(8..29) {
        Some(h) if &h[4..8] == b"IHDR" => &h[8..],
        _ => return Err("not a PNG file (no IHDR chunk first)".into()),
    };
    let (w, h) = (
        u32::from_be_bytes([ihdr[0], ihdr[1], ihdr[2], ihdr[3]]) as usize,
        u32::from_be_bytes([ihdr[4], ihdr[5], ihdr[6], ihdr[7]]) as usize,
    );
    check_size(w as u64, h as u64)?;
    let (depth, interlaced) = (ihdr[8] as usize, ihdr[12] == 1);
    let samples = match ihdr[9] {
        0 | 3 => 1,
        4 => 2,
        2 => 3,
        6 => 4,
        c => return Err(format!("unknown PNG colour type {c}")),
    };
    // the filtered rows: a filter byte and the packed samples of each stored row
    let need = passes(w, h, interlaced)
        .map(|(pw, ph)| ph * (1 + (pw * samples * depth).div_ceil(8)))
        .sum::<usize>();
    let raw = pillow_rows(&idat, need)?;
    let z = miniz_oxide::deflate::compress_to_vec_zlib(&raw, 0);
    let mut out = head;
    for (kind, data) in [(&b"IDAT"[..], &z[..]), (b"IEND", &[])] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    Ok(out)
}

/// The first `need` bytes zlib inflates from `zdata`, as Pillow's decoder reads them: zlib gets
/// all the data there is and goes as far as it can; corrupt data, a wrong Adler-32 included,
/// is an error wherever it is ("broken data stream"), data that ends (or goes on) past the
/// last row is not, data that ends before it is ("image file is truncated").
fn pillow_rows(zdata: &[u8], need: usize) -> Result<Vec<u8>, String> {
    use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
    use miniz_oxide::inflate::TINFLStatus;
    // one byte more than the rows: more data than the rows hold is not an error
    let mut out = vec![0u8; need + 1];
    let mut state = Box::<DecompressorOxide>::default();
    let flags = inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER
        | inflate_flags::TINFL_FLAG_COMPUTE_ADLER32
        | inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (status, _, n) = decompress(&mut state, zdata, &mut out, 0, flags);
    match status {
        TINFLStatus::Done | TINFLStatus::HasMoreOutput | TINFLStatus::FailedCannotMakeProgress if n >= need => {
            out.truncate(need);
            Ok(out)
        }
        TINFLStatus::Done | TINFLStatus::FailedCannotMakeProgress | TINFLStatus::NeedsMoreInput => {
            Err("image file is truncated".into())
        }
        _ => Err("broken data stream when reading image file".into()),
    }
}

/// Pillow's checks of the chunks before the first `IDAT` (`PngImagePlugin`'s `_open`): each
/// must be whole and its CRC right, ancillary chunks included ("broken PNG file"); the chunks
/// from the first `IDAT` on are not checked.
fn check_crcs_before_idat(bytes: &[u8]) -> Result<(), String> {
    let mut at = 8;
    loop {
        let head = bytes
            .get(at..at + 8)
            .ok_or_else(|| "image file is truncated (no IDAT chunk)".to_string())?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = &head[4..8];
        if kind == b"IDAT" {
            return Ok(());
        }
        let body = bytes.get(at + 4..at + 8 + len).ok_or_else(|| {
            format!(
                "image file is truncated (in the {} chunk)",
                String::from_utf8_lossy(kind)
            )
        })?;
        let crc = bytes.get(at + 8 + len..at + 12 + len).ok_or_else(|| {
            format!(
                "image file is truncated (in the {} chunk)",
                String::from_utf8_lossy(kind)
            )
        })?;
        if crc32(body).to_be_bytes() != crc {
            return Err(format!(
                "broken PNG file (bad checksum in the {} chunk)",
                String::from_utf8_lossy(kind)
            ));
        }
        at += 12 + len;
    }
}

/// CRC-32 (ISO-HDLC, PNG's), bitwise: only the chunks before the pixel data go through it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
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

    #[test]
    fn adam7_rows_and_crc() {
        assert_eq!(rows_stored(37, 23, false), 23);
        // 1x1: pass 1 only; 8x8: 1 + 1 + 1 + 2 + 2 + 4 + 4
        assert_eq!(rows_stored(1, 1, true), 1);
        assert_eq!(rows_stored(8, 8, true), 15);
        // 1 column: passes 1, 3, 5, 7
        assert_eq!(rows_stored(1, 8, true), 1 + 1 + 2 + 4);
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }
}
