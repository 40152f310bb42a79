//! JPEG through libjpeg-turbo's decoder (`mozjpeg-sys`: MozJPEG's copy of libjpeg-turbo, compiled
//! from C by cargo, without SIMD, with arithmetic decoding like Pillow's libjpeg-turbo), set up
//! as Pillow sets it up. Baseline, progressive, arithmetic; any sampling (4:4:4, 4:2:2, 4:2:0,
//! 4:4:0, 4:1:1); restart markers; 8-bit samples (12-bit files are refused, as Pillow refuses them).
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
    boolean, jpeg_common_struct, jpeg_create_decompress, jpeg_decompress_struct, jpeg_destroy_decompress,
    jpeg_error_mgr, jpeg_finish_decompress, jpeg_mem_src, jpeg_progress_mgr, jpeg_read_header, jpeg_read_scanlines,
    jpeg_start_decompress, jpeg_std_error, JCS_CMYK, JCS_GRAYSCALE, JCS_RGB, J_DCT_METHOD,
};

use super::check_size;
use crate::data::resize::Rgb8;

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
        if is_premature_eof(cinfo) {
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
    // Boxed so that the addresses libjpeg keeps (err, progress) stay put.
    let mut err: Box<jpeg_error_mgr> = Box::new(unsafe { std::mem::zeroed() });
    let mut prog: Box<jpeg_progress_mgr> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: every libjpeg call below may unwind with a JpegError, which catch_unwind stops;
    // the decompressor is dropped (destroyed) on both paths. `bytes` outlives the source.
    let result = catch_unwind(AssertUnwindSafe(|| unsafe {
        jpeg_std_error(&mut err);
        err.error_exit = Some(error_exit);
        err.emit_message = Some(emit_message);
        err.output_message = Some(output_message);
        prog.progress_monitor = Some(progress);
        let mut d = Box::new(Decompressor(std::mem::zeroed()));
        d.0.common.err = &mut *err;
        jpeg_create_decompress(&mut d.0);
        decode_with(&mut d, bytes, &mut prog)
    }));
    match result {
        Ok(r) => r,
        Err(payload) => match payload.downcast::<JpegError>() {
            Ok(e) => Err(e.0),
            Err(other) => resume_unwind(other), // a bug of ours, not bad input
        },
    }
}

/// The decoding proper; may unwind with a [`JpegError`].
unsafe fn decode_with(d: &mut Decompressor, bytes: &[u8], prog: &mut jpeg_progress_mgr) -> Result<Rgb8, String> {
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
    let stride = w * n;
    let mut px = vec![0u8; stride * h];
    while (cinfo.output_scanline as usize) < h {
        let y = cinfo.output_scanline as usize;
        let mut row = px[y * stride..].as_mut_ptr();
        if jpeg_read_scanlines(cinfo, &mut row, 1) != 1 {
            return Err("image file is truncated".into());
        }
    }
    jpeg_finish_decompress(cinfo);
    Ok(match n {
        1 => super::grey_to_rgb(w, h, &px),
        3 => Rgb8 {
            width: w,
            height: h,
            data: px,
        },
        _ => super::cmyk::cmyk_to_rgb(w, h, &px, 4, true),
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
}
