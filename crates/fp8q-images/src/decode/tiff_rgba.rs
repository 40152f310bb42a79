//! YCbCr TIFF compressed with LZW, Deflate or PackBits, as Pillow gets it: Pillow hands such
//! files to libtiff's `TIFFRGBAImage` (`_decodeAsRGBA` in its `TiffDecode.c`), one strip or one
//! row of tiles a call, which converts them with libtiff's own tables and subsampling rules
//! (libtiff 4.7, `tif_getimage.c`, `tif_color.c`), reproduced here:
//!
//! * the samples come in data units of `h · v` luma samples (row by row) then Cb and Cr, for a
//!   block of `h × v` pixels (YCbCrSubsampling, default 2, 2; libtiff converts 4×4, 4×2, 4×1,
//!   2×2, 2×1, 1×2 and 1×1), units left to right, then block row after block row, whole units
//!   also where the image or a tile ends within one; every pixel of a block gets the block's
//!   chroma (YCbCrPositioning plays no part);
//! * the conversion is [`Tables`]: libtiff's fixed-point tables from the YCbCrCoefficients
//!   (default 0.299, 0.587, 0.114) and ReferenceBlackWhite (default 0, 255, 128, 255, 128, 255)
//!   tags, computed in `f32` as libtiff computes them.
//!
//! 8-bit samples, three a pixel, contiguous, no predictor; anything else is refused. The data
//! are decompressed as libtiff decompresses them ([`lzw_libtiff`], [`packbits_libtiff`], zlib's
//! inflate), damaged data included: libtiff reports the error, and Pillow's reading goes on
//! with what it got (the rest zeros). A strip or tile reaching past the end of the file is an
//! error, as it is for libtiff.

use std::io::Cursor;

use ::tiff::decoder::ifd::Value;
use ::tiff::decoder::{ChunkType, Decoder};
use ::tiff::tags::Tag;

/// libtiff's YCbCr → RGB tables (`TIFFYCbCrToRGBInit`, `TIFFYCbCrtoRGB`).
pub struct Tables {
    y: [i32; 256],
    cr_r: [i32; 256],
    cb_b: [i32; 256],
    cr_g: [i32; 256],
    cb_g: [i32; 256],
}

const SHIFT: u32 = 16;
const ONE_HALF: i32 = 1 << (SHIFT - 1);

/// libtiff's `CLAMP` on floats (NaN goes to the minimum).
fn clamp_f(f: f32, min: f32, max: f32) -> f32 {
    // (NaN compares false, so it takes the minimum, as libtiff's `!(f >= min)` does)
    if f.is_nan() || f < min {
        min
    } else if f > max {
        max
    } else {
        f
    }
}

/// libtiff's `FIX`: `(int32_t)(x * 65536 + 0.5)`, the product in `f32`, the sum in `f64`.
fn fix(x: f32) -> i32 {
    (f64::from(x * 65536.0) + 0.5) as i32
}

/// libtiff's `Code2V(c, RB, RW, CR)`, in `f32`.
fn code2v(c: i32, rb: f32, rw: f32, cr: f32) -> f32 {
    let d = rw - rb;
    let num = (c.wrapping_sub(rb as i32)) as f32 * cr;
    num / if d != 0.0 { d } else { 1.0 }
}

/// libtiff's `CLAMPw` on floats.
fn clamp_w(v: f32, min: f32, max: f32) -> f32 {
    if v < min {
        min
    } else if v > max {
        max
    } else {
        v
    }
}

impl Tables {
    /// The tables for the luma coefficients and reference black and white.
    pub fn new(luma: [f32; 3], rbw: [f32; 6]) -> Tables {
        let f1 = 2.0 - 2.0 * luma[0];
        let d1 = fix(clamp_f(f1, 0.0, 2.0));
        let f2 = luma[0] * f1 / luma[1];
        let d2 = -fix(clamp_f(f2, 0.0, 2.0));
        let f3 = 2.0 - 2.0 * luma[2];
        let d3 = fix(clamp_f(f3, 0.0, 2.0));
        let f4 = luma[2] * f3 / luma[1];
        let d4 = -fix(clamp_f(f4, 0.0, 2.0));
        let mut t = Tables {
            y: [0; 256],
            cr_r: [0; 256],
            cb_b: [0; 256],
            cr_g: [0; 256],
            cb_g: [0; 256],
        };
        let (lo, hi) = (-128.0 * 32.0, 128.0 * 32.0);
        for i in 0..256 {
            let x = i as i32 - 128;
            let cr = clamp_w(code2v(x, rbw[4] - 128.0, rbw[5] - 128.0, 127.0), lo, hi) as i32;
            let cb = clamp_w(code2v(x, rbw[2] - 128.0, rbw[3] - 128.0, 127.0), lo, hi) as i32;
            t.cr_r[i] = (d1.wrapping_mul(cr).wrapping_add(ONE_HALF)) >> SHIFT;
            t.cb_b[i] = (d3.wrapping_mul(cb).wrapping_add(ONE_HALF)) >> SHIFT;
            t.cr_g[i] = d2.wrapping_mul(cr);
            t.cb_g[i] = d4.wrapping_mul(cb).wrapping_add(ONE_HALF);
            t.y[i] = clamp_w(code2v(x + 128, rbw[0], rbw[1], 255.0), lo, hi) as i32;
        }
        t
    }

    /// One pixel.
    pub fn rgb(&self, y: u8, cb: u8, cr: u8) -> [u8; 3] {
        let (y, cb, cr) = (usize::from(y), usize::from(cb), usize::from(cr));
        let yv = self.y[y];
        let r = yv.wrapping_add(self.cr_r[cr]);
        let g = yv.wrapping_add(self.cb_g[cb].wrapping_add(self.cr_g[cr]) >> SHIFT);
        let b = yv.wrapping_add(self.cb_b[cb]);
        [r, g, b].map(|v| v.clamp(0, 255) as u8)
    }
}

/// A float tag of exactly `N` values as libtiff reads it (rationals as `f32` quotients, 0 for a
/// zero denominator), or `None` when it is missing, unreadable or has another count (libtiff
/// then ignores it).
fn float_tag<const N: usize>(dec: &mut Decoder<Cursor<&[u8]>>, tag: u16) -> Option<[f32; N]> {
    let values = match dec.find_tag(Tag::from_u16_exhaustive(tag)).ok()?? {
        Value::List(v) => v,
        v => vec![v],
    };
    if values.len() != N {
        return None;
    }
    let mut out = [0f32; N];
    for (o, v) in out.iter_mut().zip(values) {
        *o = match v {
            Value::Rational(n, d) => {
                if d == 0 {
                    0.0
                } else {
                    n as f32 / d as f32
                }
            }
            Value::SRational(n, d) => {
                if d == 0 {
                    0.0
                } else {
                    n as f32 / d as f32
                }
            }
            Value::Float(f) => f,
            Value::Double(f) => f as f32,
            Value::Byte(v) => f32::from(v),
            Value::Short(v) => f32::from(v),
            Value::Unsigned(v) => v as f32,
            Value::SignedByte(v) => f32::from(v),
            Value::SignedShort(v) => f32::from(v),
            Value::Signed(v) => v as f32,
            _ => return None,
        };
    }
    Some(out)
}

/// libtiff's LZW decoding of one strip or tile into `out` (`LZWDecode`, `tif_lzw.c`): 9- to
/// 12-bit codes, most significant bit first, the code width growing one code early; the
/// stream must start with a clear code. Decoding stops when `out` is full; at an end code, an
/// invalid code, or the end of the data, the rest of `out` is zeroed (libtiff reports an error,
/// which Pillow's reading of YCbCr ignores).
pub fn lzw_libtiff(data: &[u8], out: &mut [u8]) {
    const CLEAR: usize = 256;
    const EOI: usize = 257;
    const FIRST: usize = 258;
    // entries: (previous entry, length, last byte, first byte); 4095 + 1024 of them, as libtiff
    const SIZE: usize = 4095 + 1024;
    let mut next = vec![0u16; SIZE];
    let mut length = vec![0u16; SIZE];
    let mut value = vec![0u8; SIZE];
    let mut first = vec![0u8; SIZE];
    for c in 0..256 {
        length[c] = 1;
        value[c] = c as u8;
        first[c] = c as u8;
    }
    // `free` is libtiff's free_entp, with -1 (before any clear code, or once the table is
    // full) as `None`
    let mut free: Option<usize> = None;
    let mut old = 0usize;
    let mut nbits = 9u32;
    let mut max = (1usize << nbits) - 2;
    let (mut bit, total_bits) = (0u64, data.len() as u64 * 8);
    let mut op = 0usize;
    let read_code = |bit: &mut u64, nbits: u32| -> Option<usize> {
        if *bit + u64::from(nbits) > total_bits {
            return None;
        }
        let mut code = 0usize;
        for _ in 0..nbits {
            let byte = data[(*bit / 8) as usize];
            code = (code << 1) | usize::from((byte >> (7 - *bit % 8)) & 1);
            *bit += 1;
        }
        Some(code)
    };
    'decode: while op < out.len() {
        let Some(code) = read_code(&mut bit, nbits) else { break };
        if code == CLEAR {
            free = Some(FIRST);
            nbits = 9;
            max = (1 << nbits) - 2;
            let code = loop {
                match read_code(&mut bit, nbits) {
                    Some(CLEAR) => continue,
                    Some(c) => break c,
                    None => break 'decode,
                }
            };
            if code >= EOI {
                break;
            }
            out[op] = code as u8;
            op += 1;
            old = code;
            continue;
        }
        if code == EOI {
            break;
        }
        // a new entry: `old`'s string and the first byte of this code's (of `old`'s own when the
        // code is the entry being made)
        let Some(f) = free else { break };
        // (libtiff: a literal above the free entry, or a string code past it)
        if code > f {
            break;
        }
        let last = if code >= FIRST && code == f {
            first[old]
        } else {
            first[code]
        };
        let last = if code < 256 { code as u8 } else { last };
        // (`free` is below the table's end)
        next[f] = old as u16;
        length[f] = length[old] + 1;
        value[f] = last;
        first[f] = first[old];
        let nf = f + 1;
        if nf > max {
            nbits = (nbits + 1).min(12);
            max = (1 << nbits) - 2;
        }
        // (libtiff checks for the table's end when the code width grows, which at 12 bits is
        // at every entry, so well before the end)
        free = (nf < SIZE).then_some(nf);
        old = code;
        // the code's string, written back to front; only its beginning when `out` ends first
        let len = usize::from(length[code]);
        let n = len.min(out.len() - op);
        let mut e = code;
        for k in (0..len).rev() {
            if k < n {
                out[op + k] = value[e];
            }
            e = usize::from(next[e]);
        }
        op += n;
    }
    out[op..].fill(0);
}

/// libtiff's PackBits decoding into `out` (`PackBitsDecode`): a header byte n, then n + 1
/// literal bytes (n ≥ 0) or one byte repeated 1 - n times (n < 0; -128 skipped), runs cut at
/// the end of `out`; data ending early leaves the rest of `out` zeroed.
pub fn packbits_libtiff(data: &[u8], out: &mut [u8]) {
    let (mut i, mut op) = (0usize, 0usize);
    while i < data.len() && op < out.len() {
        let n = data[i] as i8 as i64;
        i += 1;
        if n < 0 {
            if n == -128 {
                continue;
            }
            let run = ((1 - n) as usize).min(out.len() - op);
            let Some(&b) = data.get(i) else { break };
            i += 1;
            out[op..op + run].fill(b);
            op += run;
        } else {
            let run = (n as usize + 1).min(out.len() - op);
            let Some(lit) = data.get(i..i + run) else { break };
            out[op..op + run].copy_from_slice(lit);
            op += run;
            i += run;
        }
    }
    out[op..].fill(0);
}

/// Deflate as libtiff's `ZIPDecode` with zlib leaves it in `out`: the bytes inflated before
/// the stream ends or fails; the rest of `out` is left as it was.
fn deflate_libtiff(data: &[u8], out: &mut [u8]) {
    use miniz_oxide::inflate::decompress_to_vec_zlib_with_limit;
    let got = match decompress_to_vec_zlib_with_limit(data, out.len()) {
        Ok(v) => v,
        Err(e) => e.output,
    };
    let n = got.len().min(out.len());
    out[..n].copy_from_slice(&got[..n]);
}

/// Decode one strip or tile into the first `read` bytes of `out` as libtiff does.
fn libtiff_decode(compression: u32, data: &[u8], out: &mut [u8]) -> Result<(), String> {
    match compression {
        5 => lzw_libtiff(data, out),
        8 | 32946 => deflate_libtiff(data, out),
        32773 => packbits_libtiff(data, out),
        other => return Err(format!("unsupported TIFF variant: YCbCr with compression {other}")),
    }
    Ok(())
}

/// Decode a YCbCr image (`w × h`, contiguous 8-bit samples, compressed) as libtiff's
/// `TIFFRGBAImage` converts it for Pillow; RGB rows. `file` is the file itself: libtiff reads
/// its directory, not Pillow's view of it (which can lose entries after a damaged one), so the
/// tags used here come from there; a tag that cannot be read is left out, as libtiff leaves it.
pub(super) fn decode(file: &[u8], (w, h): (usize, usize), compression: u32) -> Result<Vec<u8>, String> {
    let e = |e: ::tiff::TiffError| e.to_string();
    let mut dec = Decoder::new(Cursor::new(file)).map_err(e)?;
    let dec = &mut dec;
    let unsupported = |what: String| Err(format!("unsupported TIFF variant: {what} (convert it to PNG)"));
    let predictor = dec.find_tag_unsigned::<u32>(Tag::Predictor).ok().flatten().unwrap_or(1);
    if predictor != 1 {
        return unsupported(format!("YCbCr with predictor {predictor}"));
    }
    // YCbCrSubsampling: exactly two SHORT-range values, else libtiff's default 2, 2
    let sub = match dec.find_tag_unsigned_vec::<u32>(Tag::ChromaSubsampling) {
        Ok(Some(v)) if v.len() == 2 && v.iter().all(|&s| s <= u32::from(u16::MAX)) => (v[0] as usize, v[1] as usize),
        _ => (2, 2),
    };
    if !matches!(sub, (4, 4) | (4, 2) | (4, 1) | (2, 2) | (2, 1) | (1, 2) | (1, 1)) {
        return unsupported(format!(
            "YCbCr subsampling {} × {} (libtiff cannot convert it)",
            sub.0, sub.1
        ));
    }
    let (hs, vs) = sub;
    // (libtiff refuses an image smaller than one block, since Pillow's libtiff of November 2025)
    if w < hs || h < vs {
        return Err(format!(
            "YCbCr subsampling {hs} × {vs} is larger than the {w} × {h} image"
        ));
    }
    let luma = float_tag::<3>(dec, 529).unwrap_or([0.299, 0.587, 0.114]);
    let rbw = float_tag::<6>(dec, 532).unwrap_or([0.0, 255.0, 128.0, 255.0, 128.0, 255.0]);
    if luma.iter().any(|v| v.is_nan()) || luma[1] == 0.0 {
        return Err("invalid values for the YCbCrCoefficients tag".into());
    }
    let in_range = |f: f32| f > (-0x7FFF_FFFF + 128) as f32 && f < 0x7FFF_FFFF as f32;
    if !rbw.iter().all(|&f| in_range(f)) {
        return Err("invalid values for the ReferenceBlackWhite tag".into());
    }
    let tables = Tables::new(luma, rbw);

    // the pieces: strips as wide as the image, or tiles
    let tiled = dec.get_chunk_type() == ChunkType::Tile;
    let (pw, ph) = if tiled {
        let (tw, th) = dec.chunk_dimensions();
        (tw as usize, th as usize)
    } else {
        let rps = dec
            .find_tag_unsigned::<u64>(Tag::RowsPerStrip)
            .ok()
            .flatten()
            .unwrap_or(u64::from(u32::MAX));
        (w, rps.min(h as u64) as usize)
    };
    if pw == 0 || ph == 0 || (tiled && (pw % hs != 0 || ph % vs != 0)) {
        return unsupported(format!("{pw} × {ph} pieces of {hs} × {vs} YCbCr blocks"));
    }
    super::check_size(pw as u64, ph as u64)?;
    let (across, down) = (w.div_ceil(pw), h.div_ceil(ph));
    let chunks = super::tiff::chunk_bytes(dec, file, across * down)?;
    let unit = hs * vs + 2;
    let units_across = pw.div_ceil(hs);
    let mut rgb = vec![0u8; w * h * 3];
    let mut buf = Vec::new();
    for ty in 0..down {
        for tx in 0..across {
            let k = ty * across + tx;
            let (x0, y0) = (tx * pw, ty * ph);
            let rows = ph.min(h - y0);
            let cols = pw.min(w - x0);
            // a strip holds its own rows' block rows; a tile always all of its own
            let block_rows = if tiled { ph / vs } else { rows.div_ceil(vs) };
            let row_bytes = units_across * unit;
            let whole = block_rows * row_bytes;
            // libtiff reads a strip as whole scanlines of ⌊row_bytes / v⌋ bytes, which for 4×4
            // blocks and an odd number of them across leaves out the last bytes (their Cb and Cr
            // stay 0 in its zeroed buffer)
            let read = if tiled {
                whole
            } else {
                whole.min(block_rows * vs * (row_bytes / vs))
            };
            let data = chunks[k];
            // strips: a fresh zeroed buffer each (one Pillow call a strip); tiles: one buffer
            // for a row of them, what a failed decoding leaves standing stays
            if !tiled || tx == 0 {
                buf.clear();
                buf.resize(whole, 0);
            }
            libtiff_decode(compression, data, &mut buf[..read])?;
            let px = &buf;
            for r in 0..rows {
                for c in 0..cols {
                    let u = &px[((r / vs) * units_across + c / hs) * unit..][..unit];
                    let [cb, cr] = [u[hs * vs], u[hs * vs + 1]];
                    let at = ((y0 + r) * w + x0 + c) * 3;
                    rgb[at..at + 3].copy_from_slice(&tables.rgb(u[(r % vs) * hs + c % hs], cb, cr));
                }
            }
        }
    }
    Ok(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 9-bit codes, most significant bit first (hand-assembled streams).
    fn pack9(codes: &[u16]) -> Vec<u8> {
        let mut bits: Vec<bool> = codes
            .iter()
            .flat_map(|&c| (0..9).rev().map(move |k| (c >> k) & 1 == 1))
            .collect();
        bits.resize(bits.len().div_ceil(8) * 8, false);
        bits.chunks(8)
            .map(|b| b.iter().fold(0u8, |a, &x| (a << 1) | u8::from(x)))
            .collect()
    }

    #[test]
    fn lzw_strings_early_end_and_errors_as_libtiff() {
        // clear, A, B, <AB>, <ABA> (the entry being made), end: ABABABA, then zeros
        let mut out = [9u8; 10];
        lzw_libtiff(&pack9(&[256, 65, 66, 258, 260, 257]), &mut out);
        assert_eq!(&out, b"ABABABA\0\0\0");
        // the output ends within a string: its beginning only
        let mut out = [9u8; 5];
        lzw_libtiff(&pack9(&[256, 65, 66, 258, 260, 257]), &mut out);
        assert_eq!(&out, b"ABABA");
        // no clear code first: nothing is decoded
        let mut out = [9u8; 4];
        lzw_libtiff(&pack9(&[65, 66, 257]), &mut out);
        assert_eq!(out, [0; 4]);
        // a code not yet in the table, and data ending without an end code
        let mut out = [9u8; 4];
        lzw_libtiff(&pack9(&[256, 65, 300, 66]), &mut out);
        assert_eq!(&out, b"A\0\0\0");
        let mut out = [9u8; 4];
        lzw_libtiff(&pack9(&[256, 65, 66]), &mut out);
        assert_eq!(&out, b"AB\0\0");
    }

    #[test]
    fn packbits_runs_cut_and_short_data_as_libtiff() {
        let mut out = [9u8; 8];
        // literal "xy", -128 skipped, 'z' 3 times, literal "w" cut at the end, …
        packbits_libtiff(&[1, b'x', b'y', 0x80, 0xFE, b'z', 2, b'w', b'v', b'u'], &mut out);
        assert_eq!(&out, b"xyzzzwvu");
        let mut out = [9u8; 8];
        packbits_libtiff(&[0xF9, b'q'], &mut out);
        assert_eq!(&out, b"qqqqqqqq");
        // a literal run the data do not hold: stop, zeros after
        let mut out = [9u8; 6];
        packbits_libtiff(&[1, b'a', b'b', 3, b'c'], &mut out);
        assert_eq!(&out, b"ab\0\0\0\0");
    }

    /// libtiff's tables for the default coefficients at full range (computed by hand from the
    /// formulas: D1 = FIX(1.402) = 91881, D3 = FIX(1.772) = 116130).
    #[test]
    fn tables_match_libtiff_formulas_at_the_defaults() {
        let t = Tables::new([0.299, 0.587, 0.114], [0.0, 255.0, 128.0, 255.0, 128.0, 255.0]);
        assert_eq!(t.rgb(128, 128, 128), [128, 128, 128]);
        // Cr = 255: 127 · 1.402 = 178.05 → 178; Cb = 255: 127 · 1.772 = 225.04 → 225; Cb = 0:
        // -128 · 1.772 = -226.8 → -227
        assert_eq!(t.cr_r[255], (91881 * 127 + 32768) >> 16);
        assert_eq!(t.cb_b[0], (116130 * -128 + 32768) >> 16);
        assert_eq!(t.cb_b[0], -227);
        assert_eq!(t.rgb(0, 255, 255), [178, 0, 225]);
    }
}
