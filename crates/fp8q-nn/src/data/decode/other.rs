//! BMP and WebP through the `image` crate, for the variants whose pixels match Pillow's.
//!
//! * BMP: 1-, 4- and 8-bit palette, 24-bit and 32-bit uncompressed (the fourth byte dropped,
//!   as Pillow reads it as padding or alpha and `convert('RGB')` drops it). 16-bit (5/6-bit
//!   channels, which Pillow widens with its own rounding) and RLE-compressed BMPs are refused
//!   rather than decoded differently.
//! * WebP: lossless and lossy, alpha dropped. The first frame of an animation.

use std::io::Cursor;

use image::{ImageDecoder, ImageReader};

use super::{check_size, Format};
use crate::data::resize::Rgb8;

/// The BMP variants we decode, from the file header: `Err` names a refused one.
fn check_bmp(bytes: &[u8]) -> Result<(), String> {
    let u16_at = |i: usize| bytes.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |i: usize| {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let header = u32_at(14).ok_or("truncated BMP header")?;
    let (bpp, compression) = if header == 12 {
        (u16_at(24).ok_or("truncated BMP header")?, 0)
    } else {
        (
            u16_at(28).ok_or("truncated BMP header")?,
            u32_at(30).ok_or("truncated BMP header")?,
        )
    };
    match (bpp, compression) {
        (1 | 4 | 8 | 24 | 32, 0) => Ok(()),
        _ => Err(format!(
            "unsupported BMP variant: {bpp} bits per pixel, compression {compression} (convert it to PNG)"
        )),
    }
}

/// Decode a BMP or WebP file's bytes.
pub fn decode(bytes: &[u8], format: Format) -> Result<Rgb8, String> {
    let image_format = match format {
        Format::Bmp => {
            check_bmp(bytes)?;
            image::ImageFormat::Bmp
        }
        Format::WebP => image::ImageFormat::WebP,
        other => return Err(format!("{other:?} is not decoded here")),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(super::MAX_PIXELS * 4);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    check_size(w as u64, h as u64)?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    let (w, h) = (w as usize, h as usize);
    Ok(match img {
        image::DynamicImage::ImageRgb8(b) => Rgb8 {
            width: w,
            height: h,
            data: b.into_raw(),
        },
        image::DynamicImage::ImageRgba8(b) => super::first_three(w, h, b.as_raw(), 4),
        image::DynamicImage::ImageLuma8(b) => super::grey_to_rgb(w, h, b.as_raw()),
        image::DynamicImage::ImageLumaA8(b) => {
            let grey: Vec<u8> = b.as_raw().chunks_exact(2).map(|p| p[0]).collect();
            super::grey_to_rgb(w, h, &grey)
        }
        other => return Err(format!("unsupported {format:?} layout {:?}", other.color())),
    })
}
