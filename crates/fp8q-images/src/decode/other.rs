//! BMP and WebP through the `image` crate, for the variants whose pixels match Pillow's.
//!
//! * BMP: only what [`bmp`](super::bmp) hands over after reading the headers as Pillow does:
//!   uncompressed 1-, 4- and 8-bit palette files and 24- and 32-bit ones (the fourth byte
//!   dropped, as Pillow reads it as padding and `convert('RGB')` would drop it as alpha).
//! * WebP: lossless and lossy, alpha dropped. The first frame of an animation as libwebp's
//!   animation decoder (Pillow's) gives it: the frame's pixels as decoded, at its offset on a
//!   canvas of transparent black, not blended (the `image` crate blends it onto the canvas,
//!   which changes colours by one where the frame has an alpha channel, as lossless ones do).

use std::io::Cursor;

use image::{ImageDecoder, ImageReader};

use super::{check_size, Format};
use crate::resize::Rgb8;

/// Decode a BMP or WebP file's bytes.
pub fn decode(bytes: &[u8], format: Format) -> Result<Rgb8, String> {
    if format == Format::WebP {
        if let Some(frame) = first_frame(bytes) {
            let (cw, ch) = frame.canvas;
            check_size(cw as u64, ch as u64)?;
            let img = decode(&frame.still, Format::WebP)?;
            let (x0, y0) = frame.offset;
            if x0 + img.width > cw || y0 + img.height > ch {
                return Err("animation frame outside the canvas".into());
            }
            let mut data = vec![0u8; cw * ch * 3];
            for (y, row) in img.data.chunks_exact(img.width * 3).enumerate() {
                let at = ((y0 + y) * cw + x0) * 3;
                data[at..at + row.len()].copy_from_slice(row);
            }
            return Ok(Rgb8 {
                width: cw,
                height: ch,
                data,
            });
        }
    }
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

/// The first frame of an animated WebP: the canvas size, the frame's offset, and the frame as a
/// still WebP file of its own.
struct FirstFrame {
    canvas: (usize, usize),
    offset: (usize, usize),
    still: Vec<u8>,
}

/// The RIFF chunks in `data`: (fourcc, body, the whole chunk without padding).
fn chunks(mut data: &[u8]) -> impl Iterator<Item = (&[u8], &[u8], &[u8])> {
    std::iter::from_fn(move || {
        let len = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?) as usize;
        let body = data.get(8..8 + len)?;
        let chunk = (&data[..4], body, &data[..8 + len]);
        data = data.get((8 + len + (len & 1)).min(data.len())..)?;
        Some(chunk)
    })
}

/// [`FirstFrame`] of a file whose VP8X chunk has the animation flag; `None` otherwise (or when
/// the chunks are not as expected: then the `image` crate reads the file, or fails).
fn first_frame(bytes: &[u8]) -> Option<FirstFrame> {
    let u24 = |b: &[u8]| b[0] as usize | (b[1] as usize) << 8 | (b[2] as usize) << 16;
    let mut canvas = None;
    for (fourcc, body, _) in chunks(bytes.get(12..)?) {
        match fourcc {
            b"VP8X" if body.len() >= 10 && body[0] & 0x02 != 0 => {
                canvas = Some((u24(&body[4..7]) + 1, u24(&body[7..10]) + 1));
            }
            b"ANMF" if body.len() >= 16 => {
                let canvas = canvas?;
                let offset = (2 * u24(&body[0..3]), 2 * u24(&body[3..6]));
                let (w, h) = (u24(&body[6..9]) + 1, u24(&body[9..12]) + 1);
                // the frame's ALPH (optional) and VP8/VP8L chunks, as a still file
                let mut inner = Vec::new();
                let mut alpha = false;
                for (fourcc, _, whole) in chunks(&body[16..]) {
                    match fourcc {
                        b"ALPH" => alpha = true,
                        b"VP8 " | b"VP8L" => {}
                        _ => continue,
                    }
                    inner.extend_from_slice(whole);
                    if whole.len() % 2 == 1 {
                        inner.push(0);
                    }
                }
                let mut body = Vec::new();
                if alpha {
                    body.extend_from_slice(b"VP8X");
                    body.extend_from_slice(&10u32.to_le_bytes());
                    body.extend_from_slice(&[0x10, 0, 0, 0]);
                    body.extend_from_slice(&((w - 1) as u32).to_le_bytes()[..3]);
                    body.extend_from_slice(&((h - 1) as u32).to_le_bytes()[..3]);
                }
                body.extend_from_slice(&inner);
                let mut still = b"RIFF".to_vec();
                still.extend_from_slice(&(4 + body.len() as u32).to_le_bytes());
                still.extend_from_slice(b"WEBP");
                still.extend_from_slice(&body);
                return Some(FirstFrame { canvas, offset, still });
            }
            _ => {}
        }
    }
    None
}
