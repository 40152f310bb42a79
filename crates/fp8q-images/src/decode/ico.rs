//! ICO (Windows icon), which Pillow opens whatever the file's name: the image Pillow's
//! `IcoImagePlugin` picks, as it decodes it, then `convert('RGB')`.
//!
//! * The directory's entries are ordered as Pillow orders them: by colour depth, then (stably)
//!   by area, largest first; Pillow loads the first, so of the largest icons the one with the
//!   *lowest* colour depth. An entry's size byte 0 means 256; its colour depth is its bit
//!   count, else `⌈log2(colours)⌉`, else 256.
//! * A PNG frame (from the entry's offset to the end of the file) decodes as any PNG ([`png`]).
//! * Any other frame is a BMP without its file header (a DIB) whose height counts the colour
//!   (XOR) bitmap and the transparency (AND) mask: Pillow reads the first half, rows as the
//!   header says, with its BMP rules ([`bmp`]: the pixel data follows the palette). The mask only
//!   gives alpha, which `convert('RGB')` drops, but Pillow reads it and fails when it is not in
//!   the file: for a 32-bit entry the fourth byte of each pixel, otherwise a 1-bit mask ending
//!   where the entry's byte count says the entry ends.
//!
//! [`png`]: super::png
//! [`bmp`]: super::bmp

use crate::resize::Rgb8;

/// One directory entry, as Pillow reads it.
struct Entry {
    width: u32,
    height: u32,
    bpp: u16,
    size: u32,
    offset: u32,
    color_depth: u32,
}

/// Decode an ICO file's bytes.
pub fn decode(bytes: &[u8]) -> Result<Rgb8, String> {
    let u16_at = |i: usize| bytes.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |i: usize| {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let count = u16_at(4).ok_or("truncated ICO header")? as usize;
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let at = 6 + 16 * i;
        let e = bytes.get(at..at + 16).ok_or("truncated ICO directory")?;
        let (width, height, colours) = (e[0], e[1], e[2]);
        let bpp = u16::from_le_bytes([e[6], e[7]]);
        let color_depth = if bpp != 0 {
            u32::from(bpp)
        } else if colours != 0 {
            // ⌈log2(colours)⌉
            32 - (u32::from(colours) - 1).leading_zeros()
        } else {
            256
        };
        entries.push(Entry {
            width: if width == 0 { 256 } else { width.into() },
            height: if height == 0 { 256 } else { height.into() },
            bpp,
            size: u32_at(at + 8).ok_or("truncated ICO directory")?,
            offset: u32_at(at + 12).ok_or("truncated ICO directory")?,
            color_depth,
        });
    }
    // Pillow's two stable sorts: by colour depth, then by area, largest first
    entries.sort_by_key(|e| e.color_depth);
    entries.sort_by_key(|e| std::cmp::Reverse(e.width * e.height));
    let entry = entries.first().ok_or("ICO file without images")?;
    let start = entry.offset as usize;
    let frame = bytes.get(start..).ok_or("ICO image offset past the end of the file")?;
    if frame.starts_with(b"\x89PNG\r\n\x1a\n") {
        return super::png::decode(frame);
    }
    dib(bytes, entry, frame)
}

/// A BMP frame without its file header, the first half of its rows (see the module
/// documentation).
fn dib(bytes: &[u8], entry: &Entry, frame: &[u8]) -> Result<Rgb8, String> {
    let truncated = || "truncated ICO bitmap".to_string();
    let header_size = frame
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(truncated)?;
    // a BMP file of it: a file header whose data offset 0 means "after the palette", as for
    // Pillow's DibImageFile, and half the height
    let mut bmp = Vec::with_capacity(14 + frame.len());
    bmp.extend_from_slice(b"BM");
    bmp.extend_from_slice(&[0; 12]);
    bmp.extend_from_slice(frame);
    let (width, rows) = if header_size == 12 {
        let at = 14 + 6;
        let h = bmp
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(truncated)?;
        bmp[at..at + 2].copy_from_slice(&(h / 2).to_le_bytes());
        let w = bmp
            .get(18..20)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(truncated)?;
        (u64::from(w), u64::from(h / 2))
    } else {
        let at = 14 + 8;
        let field = bmp
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(truncated)?;
        // Pillow's height: top-down when the field's top byte is 0xFF (2^32 - field)
        let top_down = field >> 24 == 0xFF;
        let h = if top_down {
            (1u64 << 32) - u64::from(field)
        } else {
            u64::from(field)
        };
        let half = h / 2;
        let new = if top_down {
            ((1u64 << 32) - half) as u32
        } else {
            half as u32
        };
        bmp[at..at + 4].copy_from_slice(&new.to_le_bytes());
        let w = bmp
            .get(18..22)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(truncated)?;
        (u64::from(w), half)
    };
    let img = super::bmp::decode(&bmp)?;
    // the alpha Pillow reads, and fails on when it is missing
    let (w, h) = (width as usize, rows as usize);
    if entry.bpp == 32 {
        let data = super::bmp::pixel_offset(&bmp)?.saturating_sub(14);
        let need = 4usize.saturating_mul(w).saturating_mul(h);
        if frame.len().saturating_sub(data) < need {
            return Err("truncated ICO alpha channel".into());
        }
    } else {
        let stride_bits = w.div_ceil(32) * 32;
        let total = stride_bits * h / 8;
        let end = entry.offset as usize + entry.size as usize;
        let ok = end.checked_sub(total).is_some_and(|at| at + total <= bytes.len());
        if !ok {
            return Err("ICO transparency mask outside the file".into());
        }
    }
    Ok(img)
}
