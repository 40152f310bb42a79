//! JPEG through libjpeg-turbo's decoder (`mozjpeg-sys`: MozJPEG's copy of libjpeg-turbo, compiled
//! from C by cargo, without SIMD, with arithmetic decoding like Pillow's libjpeg-turbo), set up
//! as Pillow sets it up. Baseline, progressive, arithmetic; any sampling (4:4:4, 4:2:2, 4:2:0,
//! 4:4:0, 4:1:1); restart markers; 8-bit samples (12-bit files are refused, as Pillow refuses them).
//! Lossless JPEG (SOF3, SOF11), which Pillow's libjpeg-turbo 3 decodes, is refused: the
//! libjpeg-turbo 2 code built here has no lossless mode.
//!
//! * Output colour space by component count, as Pillow's `JpegImagePlugin`: 1 → grey
//!   (replicated to RGB), 3 → RGB (libjpeg converts YCbCr), 4 → CMYK (libjpeg converts YCCK).
//!   Other counts are refused, as Pillow refuses them.
//! * libjpeg's defaults, which Pillow keeps outside draft mode: ISLOW integer IDCT and fancy
//!   (triangle-filter) upsampling of subsampled chroma. libjpeg-turbo's C and SIMD paths for
//!   these are bit-exact with each other on valid files, so the scalar build gives Pillow's SIMD
//!   bytes. (On corrupt entropy-coded data, recovered coefficients can leave the range where the
//!   16-bit SIMD IDCT and the 32-bit C IDCT agree; there we give Pillow's bytes with SIMD off,
//!   `JSIMD_FORCENONE=1`.)
//! * CMYK: Pillow always reads 4-component JPEGs as `CMYK;I` (inverted, the Adobe convention,
//!   with or without an Adobe marker) and converts with its own formula, see
//!   [`cmyk_to_rgb`](super::cmyk::cmyk_to_rgb).
//! * Truncation: Pillow feeds libjpeg a suspending source and raises "image file is truncated"
//!   when the data ends before the image does; here libjpeg's "Premature end of JPEG file"
//!   warning is that error. Other warnings (corrupt data that libjpeg recovers from) are
//!   ignored, as Pillow ignores them.
//! * Errors: libjpeg's `error_exit` must not return. It unwinds (`resume_unwind`, no panic
//!   hook, no output) through the C frames, which `mozjpeg-sys` compiles with `-fexceptions`
//!   for exactly this (its `unwinding` feature), to the `catch_unwind` around the decoder,
//!   which destroys the decompressor and returns the message. No `longjmp`, no exit.
//! * Bounds: images above [`MAX_PIXELS`](super::MAX_PIXELS) are refused after the header is read,
//!   before libjpeg allocates image-sized buffers; progressive files with more than
//!   [`MAX_SCANS`] scans are refused (libjpeg-turbo's TurboJPEG API has the same kind of limit).

use std::ffi::{c_int, c_ulong, CStr};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use mozjpeg_sys::{
    boolean, jpeg_abort, jpeg_common_struct, jpeg_create_decompress, jpeg_crop_scanline, jpeg_decompress_struct,
    jpeg_destroy_decompress, jpeg_error_mgr, jpeg_finish_decompress, jpeg_mem_src, jpeg_progress_mgr, jpeg_read_header,
    jpeg_read_scanlines, jpeg_start_decompress, jpeg_std_error, JCS_YCbCr, JCS_CMYK, JCS_GRAYSCALE, JCS_RGB,
    JCS_UNKNOWN, JDIMENSION, J_DCT_METHOD,
};

use super::check_size;
use crate::resize::Rgb8;

/// The most scans a progressive JPEG may have (a typical one has 10; a hostile one could have
/// thousands that each cost a pass over the coefficients).
pub const MAX_SCANS: c_int = 1000;

/// What `error_exit` unwinds with: libjpeg's message.
struct JpegError(String);

/// libjpeg's formatted message for the current `msg_code`.
unsafe fn message(cinfo: &mut jpeg_common_struct) -> String {
    let err = &*cinfo.err;
    let Some(format) = err.format_message else {
        return format!("libjpeg error {}", err.msg_code);
    };
    // libjpeg writes at most JMSG_LENGTH_MAX (200) bytes into the buffer it is given; the
    // binding types that buffer as `&[u8; 80]`, so call through a pointer-typed signature.
    let mut buf = [0u8; 200];
    let format: unsafe extern "C-unwind" fn(&mut jpeg_common_struct, *mut u8) = std::mem::transmute(format);
    format(cinfo, buf.as_mut_ptr());
    CStr::from_bytes_until_nul(&buf)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("libjpeg error {}", err.msg_code))
}

/// Whether the current message is "Premature end of JPEG file" (compared by text, so that
/// the message table's numbering does not matter).
unsafe fn is_premature_eof(cinfo: &jpeg_common_struct) -> bool {
    let err = &*cinfo.err;
    let code = err.msg_code;
    if code < 0 || code > err.last_jpeg_message || err.jpeg_message_table.is_null() {
        return false;
    }
    let text = *err.jpeg_message_table.add(code as usize);
    !text.is_null() && CStr::from_ptr(text).to_bytes() == b"Premature end of JPEG file"
}

unsafe extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
    let msg = message(cinfo);
    resume_unwind(Box::new(JpegError(msg)));
}

unsafe extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: c_int) {
    if level < 0 {
        if cinfo.client_data.is_null() && is_premature_eof(cinfo) {
            resume_unwind(Box::new(JpegError("image file is truncated".into())));
        }
        (*cinfo.err).num_warnings += 1;
    }
}

unsafe extern "C-unwind" fn output_message(_cinfo: &mut jpeg_common_struct) {}

unsafe extern "C-unwind" fn progress(cinfo: &mut jpeg_common_struct) {
    if cinfo.is_decompressor != 0 {
        let d = &*(cinfo as *mut jpeg_common_struct as *const jpeg_decompress_struct);
        if d.input_scan_number > MAX_SCANS {
            resume_unwind(Box::new(JpegError(format!("more than {MAX_SCANS} scans"))));
        }
    }
}

/// Destroys the decompressor however decoding ends.
struct Decompressor(jpeg_decompress_struct);

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: created by jpeg_create_decompress; destroy is safe in any state and frees
        // every pool libjpeg allocated.
        unsafe { jpeg_destroy_decompress(&mut self.0) }
    }
}

/// Decode a JPEG file's bytes (see the module documentation for the settings).
pub fn decode(bytes: &[u8]) -> Result<Rgb8, String> {
    decode_region(bytes, |_, _| None).map(|d| d.img)
}

/// Part of a decoded image: `img` holds columns `left..left + img.width` and rows `top..top +
/// img.height` of a `full_width × full_height` image, with exactly the bytes of the same pixels
/// of [`decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    /// The pixels decoded.
    pub img: Rgb8,
    /// Column of `img`'s first pixel.
    pub left: usize,
    /// Row of `img`'s first pixel.
    pub top: usize,
    /// Width of the whole image.
    pub full_width: usize,
    /// Height of the whole image.
    pub full_height: usize,
}

/// Columns decoded on either side of the columns asked for and then dropped. libjpeg's fancy
/// upsampling (h2v1, h2v2, h1v2) computes a pixel from its own chroma sample and the one next to
/// it, and a cropped decode replicates its edge samples instead, so the pixel at each cropped
/// edge differs from the whole decode (the test `regions_are_the_whole_decodes_pixels` fails with
/// no margin and passes from one column on); the other sampling layouts replicate samples and
/// read no neighbours. Eight columns is a wide safety factor on that one. (The left edge also
/// moves down to an iMCU boundary.)
const MARGIN: usize = 8;

/// [`decode`] only (about) the pixels `want(width, height)` asks for, as `(columns, rows)`;
/// `None` decodes the whole image. libjpeg-turbo's `jpeg_crop_scanline` skips the inverse DCT,
/// upsampling and colour conversion of the columns left out (beyond a `MARGIN`); every line
/// is still decoded in full, so errors, truncation included, are those of [`decode`].
pub fn decode_region(
    bytes: &[u8],
    want: impl FnOnce(usize, usize) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)>,
) -> Result<Partial, String> {
    // SAFETY: `bytes` outlives the source; decode_with only calls libjpeg on `d`.
    with_decompressor(false, |d, prog| unsafe { decode_with(d, bytes, prog, want) })
}

/// One strip or tile of a JPEG-compressed TIFF, decoded: width, height, components per pixel
/// and the samples, row after row.
pub struct Segment<'a> {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Components per pixel.
    pub components: usize,
    /// The samples.
    pub samples: &'a [u8],
}

/// The strips or tiles of a JPEG-compressed TIFF, decoded as libtiff decodes them for Pillow
/// (`tif_jpeg.c`), each handed to `each` with its index:
///
/// * one decompressor for the whole image: the JPEGTables tag's stream (if any) is read first
///   as a tables-only datastream (anything else is "bogus"), and tables stay defined from one
///   segment to the next, including those a segment defines itself;
/// * `ycbcr_to_rgb` is libtiff's `JPEGCOLORMODE_RGB` for YCbCr images (libjpeg converts YCbCr
///   to RGB); otherwise the components come as they are stored (`JCS_UNKNOWN`, no conversion),
///   and must then be 1x1-sampled;
/// * ISLOW IDCT and fancy upsampling, libjpeg's defaults, which libtiff keeps;
/// * data that ends early is not an error: libjpeg's source warns and ends it with a fake EOI
///   marker, and libjpeg fills in the rest, as with libtiff's source;
/// * once every row is read, what follows in the segment is read to its end and any error
///   there is ignored: libtiff returns `output_scanline < output_height ||
///   TIFFjpeg_finish_decompress(sp)`, which is true when the finishing fails (-1).
pub fn decode_tiff_segments<'s>(
    tables: &[u8],
    segments: impl IntoIterator<Item = &'s [u8]>,
    ycbcr_to_rgb: bool,
    mut each: impl FnMut(usize, Segment) -> Result<(), String>,
) -> Result<(), String> {
    with_decompressor(true, |d, prog| unsafe {
        let cinfo = &mut d.0;
        cinfo.common.progress = prog;
        if !tables.is_empty() {
            jpeg_mem_src(cinfo, tables.as_ptr(), tables.len() as c_ulong);
            // JPEG_HEADER_TABLES_ONLY
            if jpeg_read_header(cinfo, 0 as boolean) != 2 {
                return Err("bogus JPEGTables field".into());
            }
        }
        for (i, bytes) in segments.into_iter().enumerate() {
            // libtiff's JPEGPreDecode: reset from the previous segment, keep the tables
            jpeg_abort(&mut cinfo.common);
            jpeg_mem_src(cinfo, bytes.as_ptr(), bytes.len() as c_ulong);
            jpeg_read_header(cinfo, 1 as boolean);
            let (w, h) = (cinfo.image_width as usize, cinfo.image_height as usize);
            check_size(w as u64, h as u64)?;
            let comps = cinfo.num_components as usize;
            if ycbcr_to_rgb {
                if comps != 3 {
                    return Err(format!("YCbCr JPEG strip or tile {i} of {comps} components"));
                }
                cinfo.jpeg_color_space = JCS_YCbCr;
                cinfo.out_color_space = JCS_RGB;
            } else {
                let info = std::slice::from_raw_parts(cinfo.comp_info, comps);
                if info.iter().any(|c| c.h_samp_factor != 1 || c.v_samp_factor != 1) {
                    return Err("unsupported TIFF variant: subsampled JPEG without YCbCr (convert it to PNG)".into());
                }
                cinfo.jpeg_color_space = JCS_UNKNOWN;
                cinfo.out_color_space = JCS_UNKNOWN;
            }
            cinfo.dct_method = J_DCT_METHOD::JDCT_ISLOW;
            cinfo.do_fancy_upsampling = 1 as boolean;
            jpeg_start_decompress(cinfo);
            let n = cinfo.output_components as usize;
            if (cinfo.output_width as usize, cinfo.output_height as usize) != (w, h) || n != comps {
                return Err("unexpected output layout from libjpeg".into());
            }
            let mut px = vec![0u8; w * h * n];
            while (cinfo.output_scanline as usize) < h {
                let y = cinfo.output_scanline as usize;
                let mut row = px[y * w * n..].as_mut_ptr();
                if jpeg_read_scanlines(cinfo, &mut row, 1) != 1 {
                    return Err("image file is truncated".into());
                }
            }
            // the rest of the segment; its errors are ignored, as libtiff ignores them
            let finish = catch_unwind(AssertUnwindSafe(|| jpeg_finish_decompress(cinfo)));
            if let Err(payload) = finish {
                if !payload.is::<JpegError>() {
                    resume_unwind(payload);
                }
            }
            each(
                i,
                Segment {
                    width: w,
                    height: h,
                    components: n,
                    samples: &px,
                },
            )?;
        }
        Ok(())
    })
}

/// Run `body` on a fresh decompressor whose errors unwind to here and come back as `Err`.
/// With `tolerate_eof`, "Premature end of JPEG file" is a warning, as in libjpeg itself.
fn with_decompressor<T>(
    tolerate_eof: bool,
    body: impl FnOnce(&mut Decompressor, &mut jpeg_progress_mgr) -> Result<T, String>,
) -> Result<T, String> {
    // Boxed so that the addresses libjpeg keeps (err, progress) stay put.
    let mut err: Box<jpeg_error_mgr> = Box::new(unsafe { std::mem::zeroed() });
    let mut prog: Box<jpeg_progress_mgr> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: every libjpeg call in `body` may unwind with a JpegError, which catch_unwind
    // stops; the decompressor is dropped (destroyed) on both paths.
    let result = catch_unwind(AssertUnwindSafe(|| unsafe {
        jpeg_std_error(&mut err);
        err.error_exit = Some(error_exit);
        err.emit_message = Some(emit_message);
        err.output_message = Some(output_message);
        prog.progress_monitor = Some(progress);
        let mut d = Box::new(Decompressor(std::mem::zeroed()));
        d.0.common.err = &mut *err;
        jpeg_create_decompress(&mut d.0);
        // emit_message reads this: non-null when the end of the data is only a warning
        if tolerate_eof {
            d.0.common.client_data = std::ptr::NonNull::<u8>::dangling().as_ptr().cast();
        }
        body(&mut d, &mut prog)
    }));
    match result {
        Ok(r) => r,
        Err(payload) => match payload.downcast::<JpegError>() {
            Ok(e) if e.0.contains("SOF type 0xc3") || e.0.contains("SOF type 0xcb") => Err(format!(
                "unsupported JPEG variant: lossless JPEG ({}; Pillow's libjpeg-turbo 3 decodes it, MozJPEG's \
                 libjpeg-turbo 2 built here does not; convert it to PNG)",
                e.0
            )),
            Ok(e) => Err(e.0),
            Err(other) => resume_unwind(other), // a bug of ours, not bad input
        },
    }
}

/// The decoding proper; may unwind with a [`JpegError`].
unsafe fn decode_with(
    d: &mut Decompressor,
    bytes: &[u8],
    prog: &mut jpeg_progress_mgr,
    want: impl FnOnce(usize, usize) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)>,
) -> Result<Partial, String> {
    let cinfo = &mut d.0;
    cinfo.common.progress = prog;
    jpeg_mem_src(cinfo, bytes.as_ptr(), bytes.len() as c_ulong);
    jpeg_read_header(cinfo, 1 as boolean);
    let (w, h) = (cinfo.image_width as usize, cinfo.image_height as usize);
    check_size(w as u64, h as u64)?;
    let comps = cinfo.num_components;
    cinfo.out_color_space = match comps {
        1 => JCS_GRAYSCALE,
        3 => JCS_RGB,
        4 => JCS_CMYK,
        n => return Err(format!("cannot handle {n}-layer images")),
    };
    cinfo.dct_method = J_DCT_METHOD::JDCT_ISLOW;
    cinfo.do_fancy_upsampling = 1 as boolean;
    jpeg_start_decompress(cinfo);
    let n = cinfo.output_components as usize;
    if (cinfo.output_width as usize, cinfo.output_height as usize) != (w, h) || n != comps as usize {
        return Err("unexpected output layout from libjpeg".into());
    }
    // the columns and rows asked for, and those decoded: widened by the margin (above, left and
    // right; rows below are not affected by stopping), inside the image
    let (want_cols, want_rows) = match want(w, h) {
        Some((c, r)) if c.start < c.end && c.end <= w && r.start < r.end && r.end <= h => (c, r),
        _ => (0..w, 0..h),
    };
    let mut cols = want_cols.start.saturating_sub(MARGIN)..(want_cols.end + MARGIN).min(w);
    let rows = want_rows.clone();
    if cols.len() < w {
        let (mut xoffset, mut width) = (cols.start as JDIMENSION, cols.len() as JDIMENSION);
        // libjpeg moves the left edge down to an iMCU boundary and keeps the right edge
        jpeg_crop_scanline(cinfo, &mut xoffset, &mut width);
        cols = xoffset as usize..xoffset as usize + width as usize;
        if cols.start > want_cols.start
            || cols.end != (want_cols.end + MARGIN).min(w)
            || cinfo.output_width as usize != cols.len()
        {
            return Err("unexpected cropped layout from libjpeg".into());
        }
    }
    let stride = cols.len() * n;
    let mut px = vec![0u8; stride * rows.len()];
    let mut discard = vec![0u8; if rows.len() < h { stride } else { 0 }];
    // Lines outside `rows` are decoded into `discard`. (libjpeg's jpeg_skip_scanlines would
    // save their inverse DCT, but it has had bugs in some sampling layouts, it skips to the end
    // without reading the data, which would hide truncation, and the lines outside are a small
    // part of a photograph's.)
    while (cinfo.output_scanline as usize) < h {
        let y = cinfo.output_scanline as usize;
        let mut row = if rows.contains(&y) {
            px[(y - rows.start) * stride..].as_mut_ptr()
        } else {
            discard.as_mut_ptr()
        };
        if jpeg_read_scanlines(cinfo, &mut row, 1) != 1 {
            return Err("image file is truncated".into());
        }
    }
    jpeg_finish_decompress(cinfo);
    // keep the pixels asked for (those next to a cropped edge are not the whole decode's)
    let (cw, rh) = (want_cols.len(), want_rows.len());
    if (cw, rh) != (cols.len(), rows.len()) {
        let skip = (want_cols.start - cols.start) * n;
        for y in 0..rh {
            let from = (y + want_rows.start - rows.start) * stride + skip;
            px.copy_within(from..from + cw * n, y * cw * n);
        }
        px.truncate(cw * rh * n);
    }
    let img = match n {
        1 => super::grey_to_rgb(cw, rh, &px),
        3 => Rgb8 {
            width: cw,
            height: rh,
            data: px,
        },
        _ => super::cmyk::cmyk_to_rgb(cw, rh, &px, 4, true),
    };
    Ok(Partial {
        img,
        left: want_cols.start,
        top: want_rows.start,
        full_width: w,
        full_height: h,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_returned_not_raised() {
        let err = decode(b"\xff\xd8\xff\xe0\x00\x10JFIF").unwrap_err();
        assert!(!err.is_empty());
        let err = decode(b"\xff\xd8\xff").unwrap_err();
        assert!(!err.is_empty());
        // a marker segment whose length points past the end
        let err = decode(b"\xff\xd8\xff\xdb\xff\xff\x00").unwrap_err();
        assert!(!err.is_empty());
    }

    /// A region decode gives exactly the whole decode's bytes of the pixels asked for, and the
    /// same errors, on every JPEG fixture (every sampling, progressive, arithmetic, grey, CMYK,
    /// restart markers, corrupt and truncated data) and many regions of each.
    #[test]
    fn regions_are_the_whole_decodes_pixels() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/images");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                std::fs::read(p)
                    .map(|b| b.starts_with(b"\xff\xd8\xff"))
                    .unwrap_or(false)
            })
            .collect();
        names.sort();
        let mut state = 7u64;
        let mut next = move |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % n.max(1)
        };
        let mut regions = 0;
        for path in &names {
            let bytes = std::fs::read(path).unwrap();
            let whole = decode(&bytes);
            let Ok(whole) = whole else {
                let err = whole.unwrap_err();
                let region = decode_region(&bytes, |w, h| Some((w / 3..w / 2 + 1, h / 4..h / 2 + 1)));
                assert_eq!(region.map(|_| ()), Err(err), "{path:?}");
                continue;
            };
            let (w, h) = (whole.width, whole.height);
            for case in 0..40 {
                let (c0, r0) = (next(w), next(h));
                let (c1, r1) = (c0 + 1 + next(w - c0), r0 + 1 + next(h - r0));
                let (c0, c1) = if case % 5 == 0 { (w / 5, w - w / 5) } else { (c0, c1) };
                let got = decode_region(&bytes, |fw, fh| {
                    assert_eq!((fw, fh), (w, h));
                    Some((c0..c1.max(c0 + 1), r0..r1))
                })
                .unwrap();
                assert_eq!((got.full_width, got.full_height), (w, h));
                assert!(got.left <= c0 && got.left + got.img.width >= c1.max(c0 + 1), "{path:?}");
                assert!(got.top <= r0 && got.top + got.img.height >= r1, "{path:?}");
                let want = whole.crop(got.left, got.top, got.img.width, got.img.height);
                let differ: Vec<(usize, usize)> = (0..want.data.len())
                    .filter(|&i| want.data[i] != got.img.data[i])
                    .map(|i| (got.left + i / 3 % want.width, got.top + i / 3 / want.width))
                    .collect();
                assert!(
                    differ.is_empty(),
                    "{path:?}: region {:?} {:?}: {} bytes differ, first at (x, y) {:?}, last {:?}",
                    got.left..got.left + got.img.width,
                    got.top..got.top + got.img.height,
                    differ.len(),
                    differ.first(),
                    differ.last()
                );
                regions += 1;
            }
        }
        assert!(regions > 500, "{regions}");
    }
}
