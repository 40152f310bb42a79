//! TIFF through the `tiff` crate, limited to the layouts whose bytes are the same whoever decodes
//! them (Pillow reads TIFF with libtiff): the first image of the file, 8-bit unsigned samples,
//! contiguous (chunky) planes, black-is-zero grey (with or without alpha) or RGB (with or
//! without an extra sample), uncompressed or compressed with LZW, Deflate or PackBits
//! (predictors included). Alpha and extra samples are dropped, as `convert('RGB')` drops them.
//!
//! Anything else (JPEG-compressed TIFF, whose pixels depend on libtiff's JPEG set-up; palette,
//! white-is-zero, CMYK, YCbCr, 16-bit and float samples; separate planes; premultiplied alpha)
//! is refused with an error that names the variant, rather than decoded differently.

use std::io::Cursor;

use ::tiff::decoder::{Decoder, DecodingResult};
use ::tiff::tags::Tag;

use super::check_size;
use crate::data::resize::Rgb8;

/// Decode a TIFF file's bytes (first image).
pub fn decode(bytes: &[u8]) -> Result<Rgb8, String> {
    let e = |e: ::tiff::TiffError| e.to_string();
    let mut dec = Decoder::new(Cursor::new(bytes)).map_err(e)?;
    let (w, h) = dec.dimensions().map_err(e)?;
    check_size(w as u64, h as u64)?;
    let tag = |dec: &mut Decoder<_>, t: Tag, default: u32| -> Result<u32, String> {
        Ok(dec.find_tag_unsigned::<u32>(t).map_err(e)?.unwrap_or(default))
    };
    let compression = tag(&mut dec, Tag::Compression, 1)?;
    let photometric = tag(&mut dec, Tag::PhotometricInterpretation, u32::MAX)?;
    let spp = tag(&mut dec, Tag::SamplesPerPixel, 1)?;
    let planar = tag(&mut dec, Tag::PlanarConfiguration, 1)?;
    let bits = dec
        .find_tag_unsigned_vec::<u32>(Tag::BitsPerSample)
        .map_err(e)?
        .unwrap_or_else(|| vec![1]);
    let format = dec
        .find_tag_unsigned_vec::<u32>(Tag::SampleFormat)
        .map_err(e)?
        .unwrap_or_else(|| vec![1]);
    let extra = dec
        .find_tag_unsigned_vec::<u32>(Tag::ExtraSamples)
        .map_err(e)?
        .unwrap_or_default();
    let unsupported = |what: String| Err(format!("unsupported TIFF variant: {what} (convert it to PNG)"));
    if !matches!(compression, 1 | 5 | 8 | 32946 | 32773) {
        return unsupported(format!("compression {compression}"));
    }
    if bits.iter().any(|&b| b != 8) || format.iter().any(|&f| f != 1) {
        return unsupported(format!("{bits:?}-bit samples of format {format:?}"));
    }
    if planar != 1 && spp > 1 {
        return unsupported("separate colour planes".into());
    }
    if extra.contains(&1) {
        return unsupported("premultiplied alpha".into());
    }
    let base = match (photometric, spp) {
        (1, 1 | 2) => 1,
        (2, 3 | 4) => 3,
        _ => return unsupported(format!("photometric interpretation {photometric} with {spp} samples")),
    };
    let px = match dec.read_image().map_err(e)? {
        DecodingResult::U8(v) => v,
        _ => return unsupported("non-8-bit decoding result".into()),
    };
    let (w, h, n) = (w as usize, h as usize, spp as usize);
    if px.len() < w * h * n {
        return Err("image file is truncated".into());
    }
    let px = &px[..w * h * n];
    Ok(if base == 1 {
        let grey: Vec<u8> = px.chunks_exact(n).map(|p| p[0]).collect();
        super::grey_to_rgb(w, h, &grey)
    } else {
        super::first_three(w, h, px, n)
    })
}
