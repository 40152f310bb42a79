//! Image files to 8-bit RGB exactly as the reference loads them: Pillow's
//! `Image.open(path).convert('RGB')`.
//!
//! The format is chosen by the file's content (its magic bytes), never by its extension:
//! ImageNet holds a PNG named `.JPEG`. Each format has its own module:
//!
//! * [`jpeg`]: libjpeg-turbo's decoder (the `mozjpeg-sys` crate, built from C source by cargo),
//!   with the settings Pillow uses: ISLOW IDCT, fancy upsampling, CMYK inverted (Adobe
//!   convention) and converted with Pillow's formula. A truncated file is an error, as in Pillow.
//! * [`png`]: the `png` crate, 16-bit samples reduced as Pillow reduces them (most significant
//!   byte for colour, clipped to 255 for 16-bit grey).
//! * [`pnm`]: binary and plain PBM/PGM/PPM, Pillow's scaling of other maximum values; grey
//!   PFM and Pillow's own `P0CMYK`/`Py…` variants.
//! * [`tiff`]: grey (1 to 16 bits), RGB (8, 16), palette, CMYK (8, 16) TIFF, uncompressed, LZW,
//!   Deflate or PackBits (the `tiff` crate), converted as Pillow converts its modes, [`cmyk`]
//!   and the Orientation tag ([`orientation`]) included. JPEG-compressed TIFF as libtiff
//!   decodes it for Pillow ([`jpeg`]'s libjpeg); uncompressed YCbCr with Pillow's conversion
//!   ([`ycbcr`]); other YCbCr TIFF is refused.
//! * [`bmp`]: BMP headers read with Pillow's rules; 16-bit, bitfield and run-length ([`bmp_rle`])
//!   pixels unpacked as Pillow unpacks them, the common uncompressed layouts through the `image`
//!   crate.
//! * [`other`]: WebP, and uncompressed BMP for [`bmp`], through the `image` crate.
//! * [`gif`]: the first frame of a GIF, as Pillow composes and decodes it (its own LZW
//!   decoder's handling of broken streams included).
//! * [`ico`]: the icon Pillow picks from a Windows icon file, a PNG or a headerless BMP.
//!
//! What Pillow's `Image.open` does not do, we do not do either: EXIF orientation (of a JPEG;
//! Pillow does apply a TIFF's Orientation tag) and ICC profiles are ignored, alpha is dropped
//! (not composited), palettes are looked up.
//!
//! Variants whose exact bytes we cannot reproduce are refused with an error naming the variant
//! (`unsupported … variant`), never decoded approximately: YCbCr TIFF compressed other than with
//! JPEG (libtiff's own conversion), old-style JPEG, CCITT fax and other rarer TIFF compressions,
//! separate planes, float samples; the BMP layouts Pillow misreads (see [`bmp`]); lossless JPEG (see [`jpeg`]).
//! Content of the other formats Pillow opens whatever the file's name (JPEG 2000) is refused
//! naming the format.
//!
//! Images larger than Pillow's decompression-bomb limit ([`MAX_PIXELS`]) are refused before
//! any pixel memory is allocated.
//!
//! ```no_run
//! let img = fp8q_images::decode::decode(std::path::Path::new("n01440764/ILSVRC2012_val_00000293.JPEG")).unwrap();
//! assert_eq!(img.data.len(), img.width * img.height * 3);
//! ```

use std::path::Path;

use super::resize::Rgb8;
use crate::error::{ImageError, Result};

pub mod bmp;
pub mod bmp_rle;
pub mod cmyk;
pub mod gif;
pub mod ico;
pub mod jpeg;
pub mod orientation;
pub mod other;
pub mod png;
pub mod pnm;
pub mod tiff;
pub mod tiff_ifd;
pub mod tiff_rgba;
pub mod ycbcr;

/// The largest image accepted, in pixels: Pillow's `DecompressionBombError` threshold
/// (twice `Image.MAX_IMAGE_PIXELS` = 2 · 89 478 485).
pub const MAX_PIXELS: u64 = 2 * 89_478_485;

/// The formats recognised by their leading bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `FF D8 FF`.
    Jpeg,
    /// `89 'PNG' 0D 0A 1A 0A`.
    Png,
    /// `'BM'`.
    Bmp,
    /// `'P1'` … `'P6'`, `'Pf'` (PFM), `'P0CMYK'`, `'Py…'` (Pillow's extensions).
    Pnm,
    /// `'II*\0'` or `'MM\0*'`, BigTIFF `'II+\0'` or `'MM\0+'`.
    Tiff,
    /// `'RIFF' size 'WEBP'`.
    WebP,
    /// `'GIF87a'` or `'GIF89a'`.
    Gif,
    /// `00 00 01 00` (Windows icon).
    Ico,
}

impl Format {
    /// The format of a file from its first bytes, if it is one we decode.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Some(Format::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Format::Png),
            [b'B', b'M', ..] => Some(Format::Bmp),
            // Pillow's test: `P` and one of `0123456fy` (PFM and its own extensions included)
            [b'P', b'0'..=b'6' | b'f' | b'y', ..] => Some(Format::Pnm),
            [b'I', b'I', 42 | 43, 0, ..] | [b'M', b'M', 0, 42 | 43, ..] => Some(Format::Tiff),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Format::WebP),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Format::Gif),
            [0, 0, 1, 0, ..] => Some(Format::Ico),
            _ => None,
        }
    }
}

/// Decode a file to 8-bit RGB as Pillow's `Image.open(path).convert('RGB')` does. Errors
/// ([`ImageError::BadImage`], or [`ImageError::Io`] when the file cannot be read) name the file.
pub fn decode(path: &Path) -> Result<Rgb8> {
    let bytes = std::fs::read(path).map_err(|err| ImageError::Io {
        path: path.to_path_buf(),
        err,
    })?;
    decode_bytes(&bytes).map_err(|why| ImageError::BadImage {
        path: path.to_path_buf(),
        why,
    })
}

/// Decode an in-memory file; the error is the reason alone (the caller adds the path).
pub fn decode_bytes(bytes: &[u8]) -> std::result::Result<Rgb8, String> {
    let format = Format::sniff(bytes).ok_or_else(|| {
        // formats Pillow also opens, whatever the file's name, named in the refusal
        let known = match bytes {
            [b'P', b'F', ..] => Some("colour PFM"),
            [0, 0, 0, 0x0C, b'j', b'P', ..] | [0xFF, 0x4F, 0xFF, 0x51, ..] => Some("JPEG 2000"),
            _ => None,
        };
        match known {
            Some(name) => format!(
                "unsupported format: {name} content (fp8q decodes JPEG, PNG, BMP, PBM/PGM/PPM, TIFF, WebP, GIF and ICO; \
                 convert it to PNG)"
            ),
            None => "unrecognised format (expected JPEG, PNG, BMP, PBM/PGM/PPM, TIFF, WebP, GIF or ICO content)".to_string(),
        }
    })?;
    let img = match format {
        Format::Jpeg => jpeg::decode(bytes),
        Format::Png => png::decode(bytes),
        Format::Pnm => pnm::decode(bytes),
        // the `tiff` crate asserts on some layouts it cannot read (a panic found in its
        // tiled separate-plane reading is avoided, see [`tiff`]); a bad file must not take the
        // process down, so a panic there is this file's error
        Format::Tiff => std::panic::catch_unwind(|| tiff::decode(bytes))
            .unwrap_or_else(|_| Err("the TIFF decoder failed on this file (a bug of the `tiff` crate)".into())),
        Format::Bmp => bmp::decode(bytes),
        Format::WebP => other::decode(bytes, format),
        Format::Gif => gif::decode(bytes),
        Format::Ico => ico::decode(bytes),
    }?;
    if img.width == 0 || img.height == 0 {
        return Err("empty image".into());
    }
    debug_assert_eq!(img.data.len(), img.width * img.height * 3);
    Ok(img)
}

/// Refuse dimensions above [`MAX_PIXELS`] (and zero) before allocating.
pub(crate) fn check_size(width: u64, height: u64) -> std::result::Result<(), String> {
    if width == 0 || height == 0 {
        return Err(format!("empty image ({width}×{height})"));
    }
    if width.saturating_mul(height) > MAX_PIXELS {
        return Err(format!(
            "{width}×{height} pixels is above the decompression-bomb limit of {MAX_PIXELS} pixels"
        ));
    }
    Ok(())
}

/// Pillow's `F` → `L` (`convert('RGB')` of a float image goes through it): 0 at or below 0,
/// 255 at or above 255, truncated in between, and 0 for NaN (C's `(UINT8)` of a NaN on x86).
/// Rust's saturating `as u8` is exactly that.
pub(crate) fn f_to_l(v: f32) -> u8 {
    v as u8
}

/// Grey to RGB by replication (Pillow's `L` → `RGB`).
pub(crate) fn grey_to_rgb(width: usize, height: usize, grey: &[u8]) -> Rgb8 {
    Rgb8 {
        width,
        height,
        data: grey.iter().flat_map(|&v| [v, v, v]).collect(),
    }
}

/// Drop every `n`-th channel beyond the first three (RGBA/RGBX → RGB, alpha ignored as in
/// Pillow's `RGBA` → `RGB`).
pub(crate) fn first_three(width: usize, height: usize, px: &[u8], n: usize) -> Rgb8 {
    Rgb8 {
        width,
        height,
        data: px.chunks_exact(n).flat_map(|p| [p[0], p[1], p[2]]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(Format::sniff(b"\xff\xd8\xff\xe0"), Some(Format::Jpeg));
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\n..."), Some(Format::Png));
        assert_eq!(Format::sniff(b"BM...."), Some(Format::Bmp));
        assert_eq!(Format::sniff(b"P6\n"), Some(Format::Pnm));
        assert_eq!(Format::sniff(b"P7\n"), None);
        assert_eq!(Format::sniff(b"II*\0"), Some(Format::Tiff));
        assert_eq!(Format::sniff(b"MM\0+"), Some(Format::Tiff));
        assert_eq!(Format::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::WebP));
        assert_eq!(Format::sniff(b"GIF89a"), Some(Format::Gif));
        assert_eq!(Format::sniff(b"GIF88a"), None);
        assert_eq!(Format::sniff(b""), None);
        assert_eq!(Format::sniff(b"Pf\n"), Some(Format::Pnm));
        let err = decode_bytes(b"PF\n").unwrap_err();
        assert!(err.contains("unsupported format: colour PFM"), "{err}");
        let err = decode_bytes(b"XYZ").unwrap_err();
        assert!(err.contains("unrecognised format"), "{err}");
    }

    #[test]
    fn size_limit() {
        assert!(check_size(65500, 2732).is_ok());
        assert!(check_size(65500, 2733).unwrap_err().contains("decompression-bomb"));
        assert!(check_size(0, 5).unwrap_err().contains("empty"));
    }
}
