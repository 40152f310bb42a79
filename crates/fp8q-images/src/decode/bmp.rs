//! BMP as Pillow's `BmpImagePlugin` reads it. The headers are read here, with Pillow's rules
//! (header sizes, where the masks and the palette are, the data offset, top-down storage), and
//! decide what is decoded and how:
//!
//! * uncompressed 1-, 4- and 8-bit palette files and 24- and 32-bit ones are unpacked here
//!   (indices past the palette black, as Pillow pads palettes to 256 entries with black; the
//!   fourth byte of 32-bit pixels dropped), with every header size Pillow reads (the `image`
//!   crate, used before, has no 64-byte OS/2 2.x header); other layouts go to the `image` crate
//!   (see [`other`]);
//! * 16-bit files (uncompressed 5-5-5, or `BI_BITFIELDS` with Pillow's two masks, 5-6-5 and
//!   5-5-5) are unpacked here: Pillow widens a 5-bit channel `v` to `v · 255 / 31` and a 6-bit
//!   one to `v · 255 / 63`, truncating, where the `image` crate rounds;
//! * RLE8 and RLE4 files are expanded by [`bmp_rle`] (the `image` crate's reading of runs
//!   differs from Pillow's, see there) and looked up here;
//! * 24- and 32-bit `BI_BITFIELDS` files with one of Pillow's byte-aligned masks are unpacked
//!   here, to keep to Pillow's list of masks (others are refused, as Pillow refuses them).
//!
//! Pillow's palette rules: a palette that is exactly the grey ramp (`i, i, i` for every entry;
//! black then white for two entries) is ignored and the image is grey (`L`: the index is the
//! grey level, even past the ramp) or bilevel (`1`: any non-zero index is white); otherwise
//! indices past the palette are black. Those grey and bilevel files are unpacked here. Where
//! the grey shortcut makes Pillow read uncompressed pixels at another bit depth than stored (an
//! 8-bit file with a black-and-white palette, read as 1-bit) the file is refused rather than
//! decoded differently (where Pillow fails on it, as for 4-bit pixels with the 16-level ramp, we
//! fail too). Bit depths, compressions and masks Pillow refuses are refused.
//!
//! Bounds: uncompressed data must be all there (as in Pillow, the last row's padding may be
//! missing) before the image is allocated. Run-length data legitimately expands a lot (a delta
//! of 4 bytes skips up to 255 rows), so its index buffer grows with the decoded runs, up to the
//! decompression-bomb limit checked on the declared size.
//!
//! [`other`]: super::other
//! [`bmp_rle`]: super::bmp_rle

use super::{bmp_rle, check_size};
use crate::resize::Rgb8;

/// Pillow's compression numbers.
const RAW: u32 = 0;
const RLE8: u32 = 1;
const RLE4: u32 = 2;
const BITFIELDS: u32 = 3;

/// What the palette makes of the indices (Pillow's image mode for 1/4/8-bit files).
enum Indexed {
    /// `1`: any non-zero index is white.
    Bilevel,
    /// `L`: the index is the grey level.
    Grey,
    /// `P`: RGB entries; indices past the end are black.
    Palette(Vec<[u8; 3]>),
}

impl Indexed {
    fn rgb(&self, index: u8) -> [u8; 3] {
        match self {
            Indexed::Bilevel => [if index != 0 { 255 } else { 0 }; 3],
            Indexed::Grey => [index; 3],
            Indexed::Palette(p) => p.get(index as usize).copied().unwrap_or([0; 3]),
        }
    }
}

/// The header fields Pillow reads.
struct Header {
    width: u64,
    height: u64,
    /// Rows stored top row first (a negative height).
    top_down: bool,
    bits: u16,
    compression: u32,
    /// `BI_BITFIELDS` masks: red, green, blue, alpha.
    masks: [u32; 4],
    /// Palette entries as stored (BGR or BGRX), palette files only.
    indexed: Option<Indexed>,
    /// Where the pixel data starts.
    offset: usize,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    b.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Read the file and info headers, masks and palette as `BmpImagePlugin._bitmap` does.
fn header(bytes: &[u8]) -> Result<Header, String> {
    let truncated = || "truncated BMP header".to_string();
    let offset = u32_at(bytes, 10).ok_or_else(truncated)? as usize;
    let size = u32_at(bytes, 14).ok_or_else(truncated)?;
    if ![12, 40, 52, 56, 64, 108, 124].contains(&size) {
        return Err(format!("Unsupported BMP header type ({size})"));
    }
    let size = size as usize;
    if bytes.len() < 14 + size {
        return Err(truncated());
    }
    let mut pos = 14 + size; // the file position after what Pillow has read
    let (width, height, top_down, bits, compression, colors, padding);
    let mut masks = [0u32; 4];
    if size == 12 {
        width = u16_at(bytes, 18).ok_or_else(truncated)? as u64;
        height = u16_at(bytes, 20).ok_or_else(truncated)? as u64;
        top_down = false;
        bits = u16_at(bytes, 24).ok_or_else(truncated)?;
        (compression, colors, padding) = (RAW, 0, 3);
    } else {
        top_down = bytes[25] == 0xFF;
        width = u32_at(bytes, 18).ok_or_else(truncated)? as u64;
        let h = u32_at(bytes, 22).ok_or_else(truncated)? as u64;
        height = if top_down { (1 << 32) - h } else { h };
        bits = u16_at(bytes, 28).ok_or_else(truncated)?;
        compression = u32_at(bytes, 30).ok_or_else(truncated)?;
        colors = u32_at(bytes, 46).ok_or_else(truncated)? as u64;
        padding = 4;
        if compression == BITFIELDS {
            // in the header from 52 bytes on (alpha from 56), after a 40-byte header otherwise
            let n = if size >= 56 { 4 } else { 3 };
            for (i, m) in masks.iter_mut().enumerate().take(n) {
                *m = u32_at(bytes, 54 + 4 * i).ok_or_else(truncated)?;
            }
            if size == 40 {
                pos += 12;
            }
        }
    }
    if !matches!(bits, 1 | 4 | 8 | 16 | 24 | 32) {
        return Err(format!("Unsupported BMP pixel depth ({bits})"));
    }
    let colors = if colors == 0 && bits <= 8 { 1 << bits } else { colors };
    let mut offset = offset;
    if offset == 14 + size && bits <= 8 {
        offset += padding * colors as usize;
    }
    match compression {
        RAW => {}
        RLE8 | RLE4 if bits <= 8 => {}
        // Pillow reads the pixels with a palette raw mode into an RGB image and fails
        RLE8 | RLE4 => return Err("unknown raw mode for given image mode".into()),
        BITFIELDS => {
            let rgb = [masks[0], masks[1], masks[2]];
            let ok = match bits {
                32 => mask_bytes(masks).is_some(),
                24 => rgb == [0xFF0000, 0xFF00, 0xFF],
                16 => rgb == MASKS_565 || rgb == MASKS_555,
                _ => false,
            };
            if !ok {
                return Err("Unsupported BMP bitfields layout".into());
            }
        }
        c => return Err(format!("Unsupported BMP compression ({c})")),
    }
    let mut indexed = None;
    if bits <= 8 {
        if !(1..=65536).contains(&colors) {
            return Err(format!("Unsupported BMP Palette size ({colors})"));
        }
        let len = padding * colors as usize;
        let palette = &bytes[pos.min(bytes.len())..(pos + len).min(bytes.len())];
        pos += palette.len();
        let entry = |i: usize| palette.get(i * padding..i * padding + 3);
        let grey = if colors == 2 {
            entry(0) == Some(&[0, 0, 0][..]) && entry(1) == Some(&[255, 255, 255][..])
        } else {
            (0..colors as usize).all(|i| entry(i) == Some(&[i as u8; 3][..]))
        };
        indexed = Some(if grey && colors <= 2 {
            Indexed::Bilevel
        } else if grey {
            Indexed::Grey
        } else if colors > 256 {
            return Err("invalid palette size".into());
        } else {
            Indexed::Palette(palette.chunks_exact(padding).map(|p| [p[2], p[1], p[0]]).collect())
        });
    }
    Ok(Header {
        width,
        height,
        top_down,
        bits,
        compression,
        masks,
        indexed,
        offset: if offset == 0 { pos } else { offset },
    })
}

const MASKS_565: [u32; 3] = [0xF800, 0x7E0, 0x1F];
const MASKS_555: [u32; 3] = [0x7C00, 0x3E0, 0x1F];

/// For Pillow's 32-bit masks, the byte of each pixel holding red, green and blue.
fn mask_bytes(masks: [u32; 4]) -> Option<[usize; 3]> {
    const SUPPORTED: [[u32; 4]; 8] = [
        [0xFF0000, 0xFF00, 0xFF, 0x0],
        [0xFF000000, 0xFF0000, 0xFF00, 0x0],
        [0xFF000000, 0xFF00, 0xFF, 0x0],
        [0xFF000000, 0xFF0000, 0xFF00, 0xFF],
        [0xFF, 0xFF00, 0xFF0000, 0xFF000000],
        [0xFF0000, 0xFF00, 0xFF, 0xFF000000],
        [0xFF000000, 0xFF00, 0xFF, 0xFF0000],
        [0x0, 0x0, 0x0, 0x0],
    ];
    if !SUPPORTED.contains(&masks) {
        return None;
    }
    if masks == [0; 4] {
        return Some([2, 1, 0]); // Pillow reads it as BGRA
    }
    Some([0, 1, 2].map(|c| masks[c].trailing_zeros() as usize / 8))
}

/// Where a BMP file's pixel data starts, as Pillow reads the headers.
pub(crate) fn pixel_offset(bytes: &[u8]) -> Result<usize, String> {
    Ok(header(bytes)?.offset)
}

/// Decode a BMP file's bytes as `Image.open(p).convert('RGB')` does.
pub fn decode(bytes: &[u8]) -> Result<Rgb8, String> {
    let h = header(bytes)?;
    check_size(h.width, h.height)?;
    let (w, ht) = (h.width as usize, h.height as usize);
    match (h.compression, h.bits, &h.indexed) {
        (RLE8 | RLE4, _, Some(indexed)) => {
            let indices = bmp_rle::expand(bytes, h.offset, w, ht, h.compression == RLE4)?;
            Ok(rows_to_rgb(w, ht, h.top_down, |row, out| {
                for &i in &indices[row * w..(row + 1) * w] {
                    out.extend_from_slice(&indexed.rgb(i));
                }
            }))
        }
        // Pillow's grey shortcut reads the pixels as 1-bit (bilevel) or 8-bit (grey) data
        (RAW, 1, Some(Indexed::Bilevel))
        | (RAW, 8, Some(Indexed::Grey))
        | (RAW, 16 | 24 | 32, _)
        | (RAW, 1 | 4 | 8, Some(Indexed::Palette(_)))
        | (BITFIELDS, _, _) => packed(bytes, &h),
        (RAW, _, Some(Indexed::Bilevel | Indexed::Grey)) => Err(format!(
            "unsupported BMP variant: {}-bit pixels with a grey-ramp or black-and-white palette (Pillow reads \
             them at another bit depth; convert it to PNG)",
            h.bits
        )),
        (RAW, _, _) => super::other::decode(bytes, super::Format::Bmp),
        _ => Err(format!(
            "unsupported BMP variant: {} bits per pixel, compression {}",
            h.bits, h.compression
        )),
    }
}

/// Pillow's row stride for uncompressed data: whole 32-bit words.
fn stride(width: usize, bits: usize) -> usize {
    ((width * bits + 31) >> 3) & !3
}

/// Uncompressed 16-bit and bitfield pixels, and the bilevel and grey shortcuts.
fn packed(bytes: &[u8], h: &Header) -> Result<Rgb8, String> {
    let (w, ht, bits) = (h.width as usize, h.height as usize, h.bits as usize);
    let stride = stride(w, bits);
    // Pillow needs every row but not the last row's padding
    let need = stride
        .checked_mul(ht - 1)
        .and_then(|n| n.checked_add((w * bits).div_ceil(8)))
        .and_then(|n| n.checked_add(h.offset));
    if need.is_none_or(|n| n > bytes.len()) {
        return Err("image file is truncated".into());
    }
    let rgb = [h.masks[0], h.masks[1], h.masks[2]];
    let data = &bytes[h.offset..];
    if let Some(Indexed::Palette(_)) = &h.indexed {
        // 1-, 4- and 8-bit indices, most significant first
        let indexed = h.indexed.as_ref().unwrap();
        let mask = ((1u16 << bits) - 1) as u8;
        return Ok(rows_to_rgb(w, ht, h.top_down, |row, out| {
            let r = &data[row * stride..];
            for x in 0..w {
                let shift = 8 - bits * (x % (8 / bits) + 1);
                out.extend_from_slice(&indexed.rgb((r[x * bits / 8] >> shift) & mask));
            }
        }));
    }
    Ok(match bits {
        1 => rows_to_rgb(w, ht, h.top_down, |row, out| {
            let bits = &data[row * stride..][..w.div_ceil(8)];
            for x in 0..w {
                out.extend_from_slice(&[if bits[x / 8] & (0x80 >> (x % 8)) != 0 { 255 } else { 0 }; 3]);
            }
        }),
        8 => rows_to_rgb(w, ht, h.top_down, |row, out| {
            for &v in &data[row * stride..][..w] {
                out.extend_from_slice(&[v; 3]);
            }
        }),
        16 => {
            // uncompressed 16-bit files are 5-5-5 (Pillow's BGR;15)
            let six = h.compression == BITFIELDS && rgb == MASKS_565;
            rows_to_rgb(w, ht, h.top_down, |row, out| {
                for p in data[row * stride..][..2 * w].chunks_exact(2) {
                    let v = u16::from_le_bytes([p[0], p[1]]) as u32;
                    let five = |v: u32| (v & 31) * 255 / 31;
                    let (r, g) = if six {
                        (five(v >> 11), ((v >> 5) & 63) * 255 / 63)
                    } else {
                        (five(v >> 10), five(v >> 5))
                    };
                    out.extend_from_slice(&[r as u8, g as u8, five(v) as u8]);
                }
            })
        }
        _ => {
            let n = bits / 8;
            let at = if h.compression == BITFIELDS && n == 4 {
                mask_bytes(h.masks).ok_or("Unsupported BMP bitfields layout")?
            } else {
                [2, 1, 0] // BGR, BGRX
            };
            rows_to_rgb(w, ht, h.top_down, |row, out| {
                for p in data[row * stride..][..n * w].chunks_exact(n) {
                    out.extend_from_slice(&[p[at[0]], p[at[1]], p[at[2]]]);
                }
            })
        }
    })
}

/// Build the image from stored rows (`fill(stored_row, out)` appends one row of RGB), turning
/// bottom-up storage upright.
fn rows_to_rgb(width: usize, height: usize, top_down: bool, fill: impl Fn(usize, &mut Vec<u8>)) -> Rgb8 {
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        fill(if top_down { y } else { height - 1 - y }, &mut data);
    }
    Rgb8 { width, height, data }
}
