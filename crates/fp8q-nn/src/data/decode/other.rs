//! BMP and WebP through the `image` crate, for the variants whose pixels match Pillow's.
//!
//! * BMP: only what [`bmp`](super::bmp) hands over after reading the headers as Pillow does:
//!   uncompressed 1-, 4- and 8-bit palette files and 24- and 32-bit ones (the fourth byte
//!   dropped, as Pillow reads it as padding and `convert('RGB')` would drop it as alpha).
//! * WebP: lossless and lossy, alpha dropped. The first frame of an animation.

use std::io::Cursor;

use image::{ImageDecoder, ImageReader};

use super::{check_size, Format};
use crate::data::resize::Rgb8;

/// Decode a BMP or WebP file's bytes.
pub fn decode(bytes: &[u8], format: Format) -> Result<Rgb8, String> {
    let image_format = match format {
        Format::Bmp => image::ImageFormat::Bmp,
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
