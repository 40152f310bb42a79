//! TIFF through the `tiff` crate, for the layouts of Pillow's `TiffImagePlugin` whose pixels do
//! not depend on who decodes them (Pillow reads compressed TIFF with libtiff): the first image
//! of the file, its first directory read as Pillow reads it ([`tiff_ifd`]), in strips or tiles,
//! contiguous or (8- and 16-bit) separate planes, uncompressed or compressed with LZW, Deflate
//! or PackBits (predictors included), or with JPEG, decoded as libtiff decodes it for Pillow
//! (`read_jpeg`: YCbCr converted to RGB by libjpeg, grey, RGB and CMYK as stored), then
//! converted as Pillow converts its mode to RGB:
//!
//! * black-is-zero grey, 1-, 2-, 4-, 8-bit (`1`, `L;2`, `L;4`, `L`: scaled to 0-255) and 1- and
//!   8-bit white-is-zero (`1;I`, `L;I`, inverted), with or without an extra sample;
//! * 16-bit grey (`I;16`/`I;16B`, and little-endian white-is-zero, which Pillow does not
//!   invert): values above 255 clip to 255 (Pillow's `I;16` → `RGB`); signed 16-bit and signed
//!   or unsigned (little-endian) 32-bit grey (Pillow's `I`, unsigned read as signed) clip to
//!   0-255;
//! * RGB, 8- and 16-bit (16-bit samples keep their most significant byte, Pillow's `RGB;16`),
//!   with or without an extra sample;
//! * palette, 1- to 8-bit: the ColorMap's 16-bit entries divided by 256, as Pillow reads them;
//! * CMYK, 8- and 16-bit, with Pillow's CMYK → RGB formula ([`cmyk_to_rgb`]);
//! * 32-bit float grey (Pillow's `F`, white-is-zero not inverted): Pillow's `F` → `L`, 0 at or
//!   below 0 and for NaN, 255 at or above 255, truncated in between;
//! * uncompressed YCbCr, three samples a pixel whatever the subsampling tag says, converted with
//!   Pillow's tables ([`ycbcr`]); YCbCr compressed with LZW, Deflate or PackBits, converted as
//!   libtiff's `TIFFRGBAImage` converts it for Pillow, subsampling and damaged data included
//!   ([`tiff_rgba`]);
//! * the Orientation tag, which Pillow applies when it loads a TIFF ([`orientation`]).
//!
//! Alpha and extra samples are dropped, as `convert('RGB')` drops them; 8-bit RGB with
//! premultiplied alpha is un-premultiplied first, as Pillow's `RGBa` reading does, and so are
//! compressed separate RGBA planes (8- or 16-bit) whose first extra sample libtiff reports as
//! associated or unspecified (the latter also when the ExtraSamples tag is missing), as Pillow
//! does after reading them. Uncompressed separate planes are read as Pillow reads them itself
//! (`pillow_raw_planes`), 16-bit ones garbled as it garbles them. Compressed
//! big-endian signed and float grey is read byte-swapped, as Pillow reads libtiff's
//! native-order samples with its big-endian raw modes.
//!
//! Refused with an error naming the variant, rather than decoded differently: YCbCr in separate
//! planes or with a predictor, old-style JPEG (compression 6), other compressions (CCITT fax, ZSTD, WebP, …),
//! white-is-zero other than 1-, 8- and little-endian 16-bit, float samples other than 32-bit
//! grey, signed ones other than grey, separate planes of other than 8- or 16-bit samples,
//! premultiplied alpha other than 8-bit RGBa, fill order 2, CIELab.
//!
//! [`tiff_ifd`]: super::tiff_ifd
//! [`cmyk_to_rgb`]: super::cmyk::cmyk_to_rgb
//! [`ycbcr`]: super::ycbcr
//! [`tiff_rgba`]: super::tiff_rgba
//! [`orientation`]: super::orientation

use std::io::Cursor;

use ::tiff::decoder::{ChunkType, Decoder, DecodingResult, Limits};
use ::tiff::tags::Tag;
use ::tiff::ColorType;

use super::check_size;
use crate::resize::Rgb8;

/// What the samples are, after Pillow's reading of the tags.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Grey,
    WhiteIsZero,
    Rgb,
    Palette,
    Cmyk,
    /// Uncompressed YCbCr, which Pillow reads itself, three samples a pixel whatever the
    /// subsampling tag says, and converts with its own tables ([`ycbcr`]).
    ///
    /// [`ycbcr`]: super::ycbcr
    YCbCr,
    /// Compressed YCbCr, which Pillow has libtiff convert ([`tiff_rgba`]).
    ///
    /// [`tiff_rgba`]: super::tiff_rgba
    YCbCrLibtiff,
}

/// Decode a TIFF file's bytes (first image).
pub fn decode(bytes: &[u8]) -> Result<Rgb8, String> {
    // (Pillow's reading stops at the end of the file itself; libtiff reads the file's own
    // directory)
    let (file, file_len) = (bytes, bytes.len());
    // the first directory as Pillow reads it (a damaged one can lose entries)
    let view = super::tiff_ifd::view(bytes);
    let bytes = view.as_deref().unwrap_or(bytes);
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
    let fill_order = tag(&mut dec, Tag::FillOrder, 1)?;
    let orientation = tag(&mut dec, Tag::Orientation, 1)?;
    let vec_tag = |dec: &mut Decoder<_>, t: Tag| dec.find_tag_unsigned_vec::<u32>(t).map_err(e);
    let mut bits = vec_tag(&mut dec, Tag::BitsPerSample)?.unwrap_or_else(|| vec![1]);
    let format = vec_tag(&mut dec, Tag::SampleFormat)?.unwrap_or_else(|| vec![1]);
    let extra = vec_tag(&mut dec, Tag::ExtraSamples)?.unwrap_or_default();
    let unsupported = |what: String| Err(format!("unsupported TIFF variant: {what} (convert it to PNG)"));
    if !matches!(compression, 1 | 5 | 7 | 8 | 32946 | 32773) {
        return unsupported(format!("compression {compression}"));
    }
    // Pillow reads compressed TIFF with libtiff, whose strip reading refuses a RowsPerStrip
    // above i32::MAX (other than 2^32 - 1, "one strip")
    let rows_per_strip = dec.find_tag_unsigned::<u64>(Tag::RowsPerStrip).map_err(e)?;
    if compression != 1 && rows_per_strip.is_some_and(|r| r > i32::MAX as u64 && r != u64::from(u32::MAX)) {
        return Err(format!("RowsPerStrip {} is too large", rows_per_strip.unwrap_or(0)));
    }
    let jpeg = compression == 7;
    if jpeg && !(matches!((photometric, spp), (1, 1) | (2 | 6, 3) | (5, 4)) && planar == 1 && extra.is_empty()) {
        return unsupported(format!(
            "JPEG compression with photometric interpretation {photometric}, {spp} samples"
        ));
    }
    // Pillow's reading: one BitsPerSample value stands for every sample, extra values are
    // ignored
    if bits.len() == 1 && spp > 1 && spp <= 6 {
        bits = vec![bits[0]; spp as usize];
    }
    bits.truncate(spp as usize);
    let depth = bits[0];
    // 32-bit and signed grey: Pillow's `I` mode (`I;32N`, `I;32S`, `I;16S`), clipped to 0-255
    // (Pillow has no mode for big-endian unsigned 32-bit grey and refuses it)
    let big_endian = bytes.starts_with(b"MM");
    let int_grey = photometric == 1
        && spp == 1
        && (matches!((format.as_slice(), depth), ([2], 16 | 32))
            || ((format.as_slice(), depth) == (&[1][..], 32) && !big_endian));
    // libtiff (compressed files) hands Pillow native-order samples, which Pillow's big-endian
    // raw modes for signed and float grey (`I;16BS`, `I;32BS`, `F;32BF`) then read
    // byte-swapped
    let swapped = compression != 1 && big_endian;
    if photometric == 1 && spp == 1 && depth == 32 && format.as_slice() == [1] && big_endian {
        return unsupported("big-endian unsigned 32-bit grey (Pillow has no mode for it)".into());
    }
    // 16-bit white-is-zero: Pillow's `I;16`, not inverted, little-endian files only
    let white16 = photometric == 0 && spp == 1 && depth == 16 && format.as_slice() == [1];
    if white16 && big_endian {
        return unsupported("big-endian 16-bit white-is-zero (Pillow has no mode for it)".into());
    }
    // 32-bit float grey: Pillow's `F` (white-is-zero too, not inverted), converted as F -> L
    let float_grey = matches!(photometric, 0 | 1) && spp == 1 && depth == 32 && format.as_slice() == [3];
    if bits.len() != spp as usize
        || bits.iter().any(|&b| b != depth)
        || (format.iter().any(|&f| f != 1) && !int_grey && !float_grey)
    {
        return unsupported(format!("{bits:?}-bit samples of format {format:?}"));
    }
    // separate planes: 8- and 16-bit samples, as Pillow reads them (libtiff's planes of
    // compressed files; uncompressed ones with one letter of the raw mode a plane)
    let planar = planar == 2 && spp > 1;
    if planar && !matches!(depth, 8 | 16) {
        return unsupported(format!("separate colour planes of {depth}-bit samples"));
    }
    if fill_order != 1 {
        return unsupported(format!("fill order {fill_order}"));
    }
    // premultiplied alpha: only 8-bit RGBa, which Pillow reads (and un-premultiplies), and
    // 16-bit RGBa in compressed separate planes (below)
    let premultiplied = extra.first() == Some(&1);
    let rgba_planes = planar && compression != 1 && photometric == 2 && spp == 4;
    if extra.contains(&1) && !(premultiplied && photometric == 2 && spp == 4 && (depth == 8 || rgba_planes)) {
        return unsupported("premultiplied alpha".into());
    }
    // Pillow un-premultiplies the RGBA planes libtiff reads for it when libtiff's first extra
    // sample is associated alpha or unspecified, which is what libtiff declares a missing
    // ExtraSamples tag to be (a 4-sample RGB image without the tag)
    let premultiplied = premultiplied || (rgba_planes && extra.is_empty());
    let kind = match photometric {
        _ if float_grey => Kind::Grey,
        // libtiff's JPEGCOLORMODE_RGB: libjpeg converts the YCbCr to RGB
        6 if jpeg => Kind::Rgb,
        6 if compression == 1 => Kind::YCbCr,
        // LZW, Deflate or PackBits: Pillow has libtiff's TIFFRGBAImage convert it
        6 if !planar && depth == 8 && spp == 3 && extra.is_empty() => Kind::YCbCrLibtiff,
        6 => {
            return unsupported(format!(
                "YCbCr of {spp} {depth}-bit samples{} compressed with {compression}",
                if planar { " in separate planes" } else { "" }
            ))
        }
        0 => Kind::WhiteIsZero,
        1 => Kind::Grey,
        2 => Kind::Rgb,
        3 => Kind::Palette,
        5 => Kind::Cmyk,
        _ => return unsupported(format!("photometric interpretation {photometric}")),
    };
    // Pillow reads uncompressed separate planes with one letter of the raw mode each, which only
    // works for RGB, RGBA (unassociated alpha) and CMYK
    if planar && compression == 1 && !(matches!(kind, Kind::Rgb | Kind::Cmyk) && matches!(extra.as_slice(), [] | [2])) {
        return Err(format!(
            "uncompressed separate planes of photometric interpretation {photometric} with extra samples {extra:?} \
             (Pillow cannot read them either)"
        ));
    }
    let n = spp as usize;
    // Pillow's OPEN_INFO table: the sample layouts it reads, by depth and extra samples
    // (0: unspecified, 2: unassociated alpha, 999: Corel Draw's alpha; 1, premultiplied, is
    // refused above)
    let known = matches!(
        (kind, depth, n, extra.as_slice()),
        (Kind::Grey, 1 | 2 | 4 | 8 | 16 | 32, 1, [])
            | (Kind::Grey | Kind::Palette, 8, 2, [0 | 2])
            | (Kind::WhiteIsZero, 1 | 8 | 16, 1, [])
            | (Kind::Palette, 1 | 2 | 4 | 8, 1, [])
            | (Kind::Rgb, 8 | 16, 3, [])
            | (Kind::YCbCr | Kind::YCbCrLibtiff, 8, 3, [])
            | (Kind::Rgb, 8 | 16, 4, [] | [0] | [2])
            | (Kind::Rgb, 8, 4, [1])
            | (Kind::Rgb, 16, 4, [1])
            | (Kind::Rgb, 8, 4, [999])
            | (Kind::Rgb, 8, 5, [0 | 2, 0])
            | (Kind::Rgb, 8, 6, [0 | 2, 0, 0])
            | (Kind::Cmyk, 8 | 16, 4, [])
            | (Kind::Cmyk, 8, 5, [0])
            | (Kind::Cmyk, 8, 6, [0, 0])
    );
    if !known {
        return unsupported(format!(
            "photometric interpretation {photometric} with {n} {depth}-bit samples and extra samples {extra:?}"
        ));
    }
    let palette = if kind == Kind::Palette {
        let map = vec_tag(&mut dec, Tag::ColorMap)?.ok_or("palette image without a ColorMap")?;
        let entries = 1usize << depth;
        if map.len() != 3 * entries {
            return Err(format!("ColorMap of {} values for {depth}-bit indices", map.len()));
        }
        (0..entries)
            .map(|i| [0, 1, 2].map(|c| (map[c * entries + i] / 256) as u8))
            .collect()
    } else {
        Vec::new()
    };
    let (w, h) = (w as usize, h as usize);
    // Read as the grey levels of a copy of the file that says black-is-zero: palette images (the
    // `tiff` crate has no palette colour type and refuses to read them), YCbCr (which it refuses
    // when the subsampling tag is not 1, 1; Pillow ignores the tag), and RGB or CMYK with
    // extra samples (the `tiff` crate reads only an alpha sample after the colour ones, and
    // misreads the others), which then come as they are stored, `n` per pixel.
    let base = match kind {
        Kind::Rgb => 3,
        Kind::Cmyk => 4,
        _ => n,
    };
    if kind == Kind::YCbCrLibtiff {
        let data = super::tiff_rgba::decode(file, (w, h), compression)?;
        let img = Rgb8 {
            width: w,
            height: h,
            data,
        };
        return Ok(super::orientation::apply(img, orientation));
    }
    // uncompressed separate planes: Pillow's own reading, one 8-bit letter of the raw mode a
    // strip or tile
    let raw_planes = planar && compression == 1;
    let result = if raw_planes {
        // Pillow's bytes a sample, for the row stride of a tile past the right edge: the bits of
        // all samples over 8 and over its count of samples (colour channels and extra samples,
        // which is 3 for an RGB image of 4 samples without an ExtraSamples tag)
        let samples = if kind == Kind::Cmyk { 4 } else { 3 } + extra.len() as u64;
        let bits_sum: u64 = bits.iter().map(|&b| u64::from(b)).sum();
        DecodingResult::U8(pillow_raw_planes(
            &mut dec,
            &bytes[..file_len.min(bytes.len())],
            (w, h),
            n,
            (bits_sum, 8 * samples),
        )?)
    } else if jpeg {
        DecodingResult::U8(read_jpeg(&mut dec, bytes, photometric == 6, n)?)
    } else if matches!(kind, Kind::Palette | Kind::YCbCr) || n > base || (photometric == 0 && (float_grey || white16)) {
        let grey = as_black_is_zero(bytes)
            .ok_or("palette or extra-sample image without a readable PhotometricInterpretation")?;
        let mut dec = Decoder::new(Cursor::new(&grey[..])).map_err(e)?;
        read_whole(&mut dec, planar)?
    } else {
        read_whole(&mut dec, planar)?
    };
    let img = match result {
        DecodingResult::U8(px) if depth == 8 || raw_planes => {
            let px = whole(px, w * h * n)?;
            match kind {
                // the `tiff` crate has already inverted white-is-zero samples, as Pillow's `L;I`
                Kind::Grey | Kind::WhiteIsZero => super::grey_to_rgb(w, h, &every(&px, n)),
                Kind::Rgb if premultiplied => super::first_three(w, h, &unpremultiply(px), n),
                Kind::Rgb => super::first_three(w, h, &px, n),
                Kind::Palette => lookup(w, h, &every(&px, n), &palette),
                Kind::Cmyk => super::cmyk::cmyk_to_rgb(w, h, &px, n, false),
                Kind::YCbCr => Rgb8 {
                    width: w,
                    height: h,
                    data: super::ycbcr::to_rgb(&px, n),
                },
                // (converted by `tiff_rgba` above, never read as samples)
                Kind::YCbCrLibtiff => return Err("compressed YCbCr read as samples".into()),
            }
        }
        DecodingResult::U8(px) => {
            // 1, 2, 4 bits: rows of packed samples, most significant first
            let row = (w * depth as usize).div_ceil(8);
            let px = whole(px, row * h)?;
            let idx = unpack(&px, w, h, depth as usize);
            if kind == Kind::Palette {
                lookup(w, h, &idx, &palette)
            } else {
                let scale = 255 / ((1u32 << depth) - 1) as u8;
                let grey: Vec<u8> = idx.iter().map(|&v| v * scale).collect();
                super::grey_to_rgb(w, h, &grey)
            }
        }
        DecodingResult::U16(px) => {
            let px = whole(px, w * h * n)?;
            match kind {
                // (16-bit white-is-zero was read from a black-is-zero copy: not inverted)
                Kind::Grey | Kind::WhiteIsZero => {
                    let grey: Vec<u8> = px.iter().map(|&v| v.min(255) as u8).collect();
                    super::grey_to_rgb(w, h, &grey)
                }
                _ => {
                    let high: Vec<u8> = px.iter().map(|&v| (v >> 8) as u8).collect();
                    if kind == Kind::Rgb && premultiplied {
                        super::first_three(w, h, &unpremultiply(high), n)
                    } else if kind == Kind::Cmyk {
                        super::cmyk::cmyk_to_rgb(w, h, &high, n, false)
                    } else {
                        super::first_three(w, h, &high, n)
                    }
                }
            }
        }
        DecodingResult::F32(px) if float_grey => {
            let grey: Vec<u8> = whole(px, w * h)?
                .into_iter()
                .map(|v| {
                    super::f_to_l(if swapped {
                        f32::from_bits(v.to_bits().swap_bytes())
                    } else {
                        v
                    })
                })
                .collect();
            super::grey_to_rgb(w, h, &grey)
        }
        DecodingResult::I16(px) if int_grey => clip_grey(
            w,
            h,
            whole(px, w * h)?
                .into_iter()
                .map(|v| i32::from(if swapped { v.swap_bytes() } else { v })),
        ),
        DecodingResult::I32(px) if int_grey => clip_grey(
            w,
            h,
            whole(px, w * h)?
                .into_iter()
                .map(|v| if swapped { v.swap_bytes() } else { v }),
        ),
        // Pillow reads unsigned 32-bit samples as signed (`I;32N`)
        DecodingResult::U32(px) if int_grey => clip_grey(w, h, whole(px, w * h)?.into_iter().map(|v| v as i32)),
        _ => return unsupported(format!("{depth}-bit decoding result")),
    };
    Ok(super::orientation::apply(img, orientation))
}

/// The first image's samples, as [`Decoder::read_image`] gives them (rows padded to whole
/// bytes). A tiled image is read tile by tile, each whole tile in one read, and the tiles'
/// visible parts copied into place: the `tiff` crate's own reading of an image whose tiles are
/// not all inside it (the right-hand column of an image whose width is not a multiple of the
/// tile width) reads the LZW stream in small pieces, and `weezl` (0.1.12) can then report "no
/// progress" before the tile's end ("no lzw end code found" from `tiff` 0.11.3), which happens
/// on files written by tifffile.
fn read_whole(dec: &mut Decoder<Cursor<&[u8]>>, planar: bool) -> Result<DecodingResult, String> {
    let e = |e: ::tiff::TiffError| e.to_string();
    if planar {
        return if dec.get_chunk_type() == ChunkType::Tile {
            read_plane_tiles(dec)
        } else {
            read_planes(dec)
        };
    }
    if dec.get_chunk_type() != ChunkType::Tile {
        return dec.read_image().map_err(e);
    }
    let (w, _) = dec.dimensions().map_err(e)?;
    let layout = dec.image_buffer_layout().map_err(e)?;
    let mut image = DecodingResult::U8(Vec::new());
    image.resize_to(&layout, &Limits::default()).map_err(e)?;
    let row_bytes = layout.row_stride.map_or(0, |s| s.get());
    let (tw, th) = dec.chunk_dimensions();
    // a tile buffer is bounded as an image is
    check_size(u64::from(tw), u64::from(th))?;
    // bits per sample and samples per pixel of the rows the `tiff` crate gives
    let (depth, samples) = match dec.colortype().map_err(e)? {
        ColorType::Gray(b) => (b, 1),
        ColorType::RGB(b) => (b, 3),
        ColorType::RGBA(b) | ColorType::CMYK(b) => (b, 4),
        ColorType::CMYKA(b) => (b, 5),
        ColorType::Multiband { bit_depth, num_samples } => (bit_depth, num_samples),
        other => {
            return Err(format!(
                "unsupported TIFF variant: colour type {other:?} (convert it to PNG)"
            ))
        }
    };
    let bits_per_pixel = u64::from(depth) * u64::from(samples);
    if (u64::from(tw) * bits_per_pixel) % 8 != 0 || th == 0 {
        return Err(format!(
            "unsupported TIFF variant: {tw} × {th} tiles of {bits_per_pixel}-bit pixels"
        ));
    }
    let tile_row_bytes = (u64::from(tw) * bits_per_pixel / 8) as usize;
    let across = w.div_ceil(tw.max(1));
    let mut tile = DecodingResult::U8(Vec::new());
    for index in 0..dec.tile_count().map_err(e)? {
        // rows as long as the tile's: the whole tile is decoded in one read
        dec.read_chunk_to_buffer(&mut tile, index, tile_row_bytes).map_err(e)?;
        let (_, rows) = dec.chunk_data_dimensions(index);
        let (tx, ty) = ((index % across) as usize, (index / across) as usize);
        let x0 = tx * tile_row_bytes;
        let n = tile_row_bytes.min(row_bytes.saturating_sub(x0));
        let src = tile.as_buffer(0);
        let src = src.as_bytes();
        let mut dst = image.as_buffer(0);
        let dst = dst.as_bytes_mut();
        for r in 0..rows as usize {
            let y = ty * th as usize + r;
            let from = src.get(r * tile_row_bytes..r * tile_row_bytes + n);
            let to = dst.get_mut(y * row_bytes + x0..y * row_bytes + x0 + n);
            match (from, to) {
                (Some(from), Some(to)) => to.copy_from_slice(from),
                _ => return Err(format!("tile {index} does not fit the image")),
            }
        }
    }
    Ok(image)
}

/// An image of separate 8- or 16-bit planes (PlanarConfiguration 2), its samples interleaved
/// as a contiguous image's are (16-bit ones in native order, as libtiff hands them to Pillow).
fn read_planes(dec: &mut Decoder<Cursor<&[u8]>>) -> Result<DecodingResult, String> {
    let e = |e: ::tiff::TiffError| e.to_string();
    let mut result = DecodingResult::U8(Vec::new());
    let layout = dec.read_image_to_buffer(&mut result).map_err(e)?;
    let complete = |len: usize| match layout.plane_stride {
        Some(stride) if layout.planes > 1 && len >= layout.complete_len => Ok((stride.get(), layout.planes)),
        _ => Err("the planes of the image could not all be read".to_string()),
    };
    match result {
        DecodingResult::U8(planes) => {
            let (plane, n) = complete(planes.len())?;
            Ok(DecodingResult::U8(interleave(&planes, plane, n)))
        }
        DecodingResult::U16(planes) => {
            // (the layout counts bytes)
            let (plane, n) = complete(planes.len() * 2)?;
            Ok(DecodingResult::U16(interleave(&planes, plane / 2, n)))
        }
        _ => Err("separate planes of other than 8- or 16-bit samples".into()),
    }
}

/// `n` planes of `plane` samples each → `n` samples a pixel.
fn interleave<T: Copy + Default>(planes: &[T], plane: usize, n: usize) -> Vec<T> {
    let mut px = vec![T::default(); plane * n];
    for (p, samples) in planes.chunks(plane).take(n).enumerate() {
        for (i, &v) in samples.iter().enumerate() {
            px[i * n + p] = v;
        }
    }
    px
}

/// Tiles of separate planes, as libtiff reads them for Pillow (`TIFFReadTile` per tile and
/// plane): every plane's tiles read whole, one chunk at a time (the `tiff` crate's own reading
/// of tiled planes trips an assertion of its), their visible parts copied into place, the
/// samples interleaved as a contiguous image's are (16-bit ones in native order).
fn read_plane_tiles(dec: &mut Decoder<Cursor<&[u8]>>) -> Result<DecodingResult, String> {
    let e = |e: ::tiff::TiffError| e.to_string();
    let (w, h) = dec.dimensions().map_err(e)?;
    let (tw, th) = dec.chunk_dimensions();
    check_size(u64::from(tw), u64::from(th))?;
    let (depth, n) = match dec.colortype().map_err(e)? {
        ColorType::RGB(b) => (b, 3),
        ColorType::RGBA(b) | ColorType::CMYK(b) => (b, 4),
        ColorType::CMYKA(b) => (b, 5),
        ColorType::GrayA(b) => (b, 2),
        ColorType::Multiband { bit_depth, num_samples } => (bit_depth, num_samples as usize),
        other => {
            return Err(format!(
                "unsupported TIFF variant: tiled planes of colour type {other:?}"
            ))
        }
    };
    if tw == 0 || th == 0 || !matches!(depth, 8 | 16) {
        return Err(format!(
            "unsupported TIFF variant: {tw} × {th} tiles of {depth}-bit planes"
        ));
    }
    let (w, h, tw, th) = (w as usize, h as usize, tw as usize, th as usize);
    let (across, down) = (w.div_ceil(tw), h.div_ceil(th));
    let per_plane = across * down;
    if (dec.tile_count().map_err(e)? as usize) < per_plane * n {
        return Err(format!("{n} planes of {per_plane} tiles, but fewer tiles in the file"));
    }
    let mut px8 = Vec::new();
    let mut px16 = Vec::new();
    if depth == 8 {
        px8 = vec![0u8; w * h * n];
    } else {
        px16 = vec![0u16; w * h * n];
    }
    let mut tile = DecodingResult::U8(Vec::new());
    for plane in 0..n {
        for t in 0..per_plane {
            let index = (plane * per_plane + t) as u32;
            // rows as long as the tile's: the whole tile is decoded in one read
            dec.read_chunk_to_buffer(&mut tile, index, tw * depth as usize / 8)
                .map_err(e)?;
            let (x0, y0) = ((t % across) * tw, (t / across) * th);
            let (cols, rows) = (tw.min(w - x0), th.min(h - y0));
            let short = || format!("tile {index} holds fewer rows than the image needs");
            for r in 0..rows {
                let at = (y0 + r) * w + x0;
                match &tile {
                    DecodingResult::U8(src) if depth == 8 => {
                        let row = src.get(r * tw..r * tw + cols).ok_or_else(short)?;
                        for (c, &v) in row.iter().enumerate() {
                            px8[(at + c) * n + plane] = v;
                        }
                    }
                    DecodingResult::U16(src) if depth == 16 => {
                        let row = src.get(r * tw..r * tw + cols).ok_or_else(short)?;
                        for (c, &v) in row.iter().enumerate() {
                            px16[(at + c) * n + plane] = v;
                        }
                    }
                    _ => return Err(format!("tile {index}: not {depth}-bit samples")),
                }
            }
        }
    }
    Ok(if depth == 8 {
        DecodingResult::U8(px8)
    } else {
        DecodingResult::U16(px16)
    })
}

/// Uncompressed separate planes as Pillow reads them itself: every strip or tile is a tile of
/// its own, read with one letter of the raw mode (`RGB` or `RGB;16L` → `R`, `G`, `B`), an
/// 8-bit unpacker, taking the offsets in the file's order, each the next strip or tile of the
/// current plane, the next plane once the image is covered; bands no offset reaches stay 0.
/// A piece `x1 - x0` pixels wide is read as rows of that many bytes from its offset, one after
/// the other, except that a tile reaching past the image's right edge has a row stride of
/// ⌊tile width · `sample_bytes.0` / `sample_bytes.1`⌋ bytes (Pillow's bytes a sample: the bits of
/// all samples over 8 and over the samples it counts). So 8-bit planes come out as stored, and
/// 16-bit ones as Pillow garbles them: each piece's first bytes, low and high mixed. Byte
/// counts play no part; a piece reaching past the end of the file is an error (Pillow's "image
/// file is truncated"). Returns `n` samples a pixel.
fn pillow_raw_planes(
    dec: &mut Decoder<Cursor<&[u8]>>,
    file: &[u8],
    (w, h): (usize, usize),
    n: usize,
    sample_bytes: (u64, u64),
) -> Result<Vec<u8>, String> {
    let e = |e: ::tiff::TiffError| e.to_string();
    let tag = |dec: &mut Decoder<_>, t: Tag| dec.find_tag_unsigned::<u64>(t).map_err(e);
    let (offsets, pw, ph) = if dec.get_chunk_type() == ChunkType::Tile {
        let offsets = dec.find_tag_unsigned_vec::<u64>(Tag::TileOffsets).map_err(e)?;
        (offsets, tag(dec, Tag::TileWidth)?, tag(dec, Tag::TileLength)?)
    } else {
        let offsets = dec.find_tag_unsigned_vec::<u64>(Tag::StripOffsets).map_err(e)?;
        (
            offsets,
            Some(w as u64),
            Some(tag(dec, Tag::RowsPerStrip)?.unwrap_or(h as u64)),
        )
    };
    let (Some(offsets), Some(pw), Some(ph)) = (offsets, pw, ph) else {
        return Err("no strip or tile offsets and sizes".into());
    };
    if pw == 0 || ph == 0 {
        return Err(format!("{pw} × {ph} strips or tiles"));
    }
    let mut px = vec![0u8; w * h * n];
    let (mut x, mut y, mut band) = (0usize, 0usize, 0usize);
    for &offset in &offsets {
        if band >= n {
            // (Pillow's letter past the raw mode's bands is not an unpacker)
            return Err(format!("more strips or tiles than the {n} planes hold"));
        }
        let x1 = (x as u64).saturating_add(pw).min(w as u64) as usize;
        let y1 = (y as u64).saturating_add(ph).min(h as u64) as usize;
        let cols = x1 - x;
        let stride = if x as u64 + pw > w as u64 {
            let s = u128::from(pw) * u128::from(sample_bytes.0) / u128::from(sample_bytes.1.max(1));
            let s = usize::try_from(s).map_err(|_| "tile too wide")?;
            if s < cols {
                // (Pillow's raw decoder refuses a stride shorter than a row)
                return Err(format!("row stride {s} is shorter than a row of {cols} samples"));
            }
            s
        } else {
            cols
        };
        let start = usize::try_from(offset).map_err(|_| "offset too large")?;
        for r in 0..y1 - y {
            let from = stride
                .checked_mul(r)
                .and_then(|d| start.checked_add(d))
                .and_then(|a| file.get(a..a.checked_add(cols)?))
                .ok_or_else(|| format!("data at offset {offset} runs past the end of the file"))?;
            for (c, &v) in from.iter().enumerate() {
                px[((y + r) * w + x + c) * n + band] = v;
            }
        }
        x = (x as u64).saturating_add(pw).min(w as u64) as usize;
        if x >= w {
            x = 0;
            y = (y as u64).saturating_add(ph).min(h as u64) as usize;
            if y >= h {
                (y, band) = (0, band + 1);
            }
        }
    }
    Ok(px)
}

/// The bytes of the first image's first `count` strips or tiles, as libtiff reads them for
/// Pillow: at their offsets, as long as their byte counts say; one that is empty or reaches
/// past the end of `file` is an error, as are fewer of them than `count`.
pub(super) fn chunk_bytes<'a>(
    dec: &mut Decoder<Cursor<&[u8]>>,
    file: &'a [u8],
    count: usize,
) -> Result<Vec<&'a [u8]>, String> {
    let e = |e: ::tiff::TiffError| e.to_string();
    let (offsets, counts) = if dec.get_chunk_type() == ChunkType::Tile {
        (Tag::TileOffsets, Tag::TileByteCounts)
    } else {
        (Tag::StripOffsets, Tag::StripByteCounts)
    };
    let offsets = dec
        .find_tag_unsigned_vec::<u64>(offsets)
        .map_err(e)?
        .unwrap_or_default();
    let counts = dec.find_tag_unsigned_vec::<u64>(counts).map_err(e)?.unwrap_or_default();
    if offsets.len() < count || counts.len() < count {
        return Err(format!(
            "{} strips or tiles for {count}",
            offsets.len().min(counts.len())
        ));
    }
    (0..count)
        .map(|i| {
            usize::try_from(offsets[i])
                .ok()
                .zip(usize::try_from(counts[i]).ok())
                .filter(|&(_, n)| n > 0)
                .and_then(|(o, n)| file.get(o..o.checked_add(n)?))
                .ok_or_else(|| format!("strip or tile {i} is empty or reaches past the end of the file"))
        })
        .collect()
}

/// A JPEG-compressed image (compression 7, "new-style" JPEG) as libtiff decodes it for
/// Pillow: every strip or tile is a JPEG stream, abbreviated when the JPEGTables tag holds the
/// tables, decoded by libjpeg ([`decode_tiff_segments`]), YCbCr converted to RGB
/// (`JPEGCOLORMODE_RGB`, which Pillow sets for contiguous YCbCr) and anything else as stored.
/// A segment must be the size libtiff expects (the strip's rows or the whole tile), except that
/// the last strip may hold more rows, which are dropped, as libtiff drops them. Returns the
/// image's samples, row after row.
///
/// [`decode_tiff_segments`]: super::jpeg::decode_tiff_segments
fn read_jpeg(dec: &mut Decoder<Cursor<&[u8]>>, bytes: &[u8], ycbcr: bool, samples: usize) -> Result<Vec<u8>, String> {
    let e = |e: ::tiff::TiffError| e.to_string();
    let (w, h) = dec.dimensions().map_err(e)?;
    let (w, h) = (w as usize, h as usize);
    let tables = match dec.find_tag(Tag::JPEGTables).map_err(e)? {
        Some(v) => v.into_u8_vec().map_err(e)?,
        None => Vec::new(),
    };
    if ycbcr {
        // libtiff's scanline size: each subsampling factor 1, 2 or 4 (the default is 2, 2)
        let sub = dec
            .find_tag_unsigned_vec::<u32>(Tag::ChromaSubsampling)
            .map_err(e)?
            .unwrap_or_else(|| vec![2, 2]);
        if sub.len() < 2 || sub[..2].iter().any(|f| !matches!(f, 1 | 2 | 4)) {
            return Err(format!("invalid YCbCr subsampling {sub:?}"));
        }
    }
    let tiled = dec.get_chunk_type() == ChunkType::Tile;
    let (cw, ch) = dec.chunk_dimensions();
    let (cw, ch) = (cw as usize, ch as usize);
    if cw == 0 || ch == 0 {
        return Err("TIFF strips or tiles of zero size".into());
    }
    let across = if tiled { w.div_ceil(cw) } else { 1 };
    let segments = chunk_bytes(dec, bytes, across * h.div_ceil(ch))?;
    let mut image = vec![0u8; w * h * samples];
    super::jpeg::decode_tiff_segments(&tables, segments, ycbcr, |i, seg| {
        let (x0, y0) = ((i % across) * cw, (i / across) * ch);
        let (sw, sh, n) = (seg.width, seg.height, seg.components);
        if n != samples {
            return Err(format!(
                "a JPEG strip or tile of {n} components in an image of {samples} samples"
            ));
        }
        // what libtiff expects: whole tiles; strips of RowsPerStrip rows, the last one shorter
        let (ew, eh) = if tiled { (cw, ch) } else { (w, ch.min(h - y0)) };
        let last_strip_taller = !tiled && sw == ew && sh > eh && y0 + eh == h;
        if (sw, sh) != (ew, eh) && !last_strip_taller {
            return Err(format!(
                "unsupported TIFF variant: a {sw} x {sh} JPEG strip or tile where {ew} x {eh} is expected \
                 (convert it to PNG)"
            ));
        }
        // the part inside the image
        let cols = ew.min(w - x0);
        for r in 0..eh.min(h - y0) {
            let from = &seg.samples[r * sw * n..][..cols * n];
            image[((y0 + r) * w + x0) * n..][..cols * n].copy_from_slice(from);
        }
        Ok(())
    })?;
    Ok(image)
}

/// The first `len` values, or the truncation error.
fn whole<T>(mut px: Vec<T>, len: usize) -> Result<Vec<T>, String> {
    if px.len() < len {
        return Err("image file is truncated".into());
    }
    px.truncate(len);
    Ok(px)
}

/// Pillow's `I` → `RGB`: each value clipped to 0-255, replicated.
fn clip_grey(w: usize, h: usize, px: impl Iterator<Item = i32>) -> Rgb8 {
    let grey: Vec<u8> = px.map(|v| v.clamp(0, 255) as u8).collect();
    super::grey_to_rgb(w, h, &grey)
}

/// Pillow's `RGBa` unpacker: colour · 255 / alpha (integer division, clipped), black where
/// alpha is 0.
fn unpremultiply(mut px: Vec<u8>) -> Vec<u8> {
    for p in px.chunks_exact_mut(4) {
        let a = p[3] as u32;
        for c in &mut p[..3] {
            *c = match a {
                0 => 0,
                255 => *c,
                _ => (*c as u32 * 255 / a).min(255) as u8,
            };
        }
    }
    px
}

/// The first sample of every `n`.
fn every(px: &[u8], n: usize) -> Vec<u8> {
    px.iter().step_by(n).copied().collect()
}

/// Palette lookup (a full palette: `1 << bits` entries).
fn lookup(w: usize, h: usize, idx: &[u8], palette: &[[u8; 3]]) -> Rgb8 {
    Rgb8 {
        width: w,
        height: h,
        data: idx.iter().flat_map(|&i| palette[i as usize]).collect(),
    }
}

/// Samples of `bits` (1, 2, 4) packed most significant first, rows padded to whole bytes.
fn unpack(px: &[u8], w: usize, h: usize, bits: usize) -> Vec<u8> {
    let row = (w * bits).div_ceil(8);
    let per_byte = 8 / bits;
    let mask = ((1u16 << bits) - 1) as u8;
    let mut out = Vec::with_capacity(w * h);
    for r in px.chunks_exact(row).take(h) {
        for x in 0..w {
            let shift = 8 - bits * (x % per_byte + 1);
            out.push((r[x / per_byte] >> shift) & mask);
        }
    }
    out
}

/// A copy of the file whose first image says PhotometricInterpretation 1 (black is zero), or
/// `None` when the tag is not a single SHORT in the first directory.
fn as_black_is_zero(bytes: &[u8]) -> Option<Vec<u8>> {
    let t = super::tiff_ifd::Tiff::new(bytes)?;
    let (ifd, count) = t.first_directory()?;
    for k in 0..count {
        let entry = ifd.checked_add(2 + 12 * k)?;
        if t.u16_at(entry)? == 262 {
            if t.u16_at(entry + 2)? != 3 {
                return None;
            }
            let mut copy = bytes.to_vec();
            copy.get_mut(entry + 8..entry + 10)?.copy_from_slice(&t.u16_bytes(1));
            return Some(copy);
        }
    }
    None
}
