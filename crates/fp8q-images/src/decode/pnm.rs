//! PBM/PGM/PPM (`P1`–`P6`), PFM (`Pf`) and Pillow's own extensions (`P0CMYK`, `PyCMYK`,
//! `PyRGBA`, `PyP`), read as Pillow's `PpmImagePlugin` reads them, then converted to RGB.
//!
//! * The magic number is what precedes the first whitespace, at most 6 bytes (Pillow's
//!   `_read_magic`). Header tokens are separated by whitespace; `#` starts a comment up to the
//!   end of the line (as in Pillow, a comment does not end the token it interrupts). Tokens are
//!   at most 10 characters; `0 < maxval < 65536`.
//! * `P4`/`P1`: bit 1 (character `1`) is black, 0 is white.
//! * `P5`/`P6` with maxval 255: the bytes as they are. `P5` with maxval 65535: 16-bit grey,
//!   which `convert('RGB')` clips to 255. Any other maxval: each sample becomes
//!   `round(v / maxval · M)` (Python's round, halves to even) with `M = 65535` for grey above
//!   255 (then clipped to 255 like any 32-bit grey) and `M = 255` otherwise; samples are two
//!   bytes big-endian above 255.
//! * `P2`/`P3` (plain text): the same scaling; a value above maxval is an error.
//! * `Pf`: grey `f32` samples (little-endian when the scale token is negative, else
//!   big-endian), rows bottom to top; the scale must be finite and non-zero and is otherwise
//!   ignored. `convert('RGB')` goes through Pillow's `F` → `L`: 0 at or below 0 (and NaN), 255
//!   at or above 255, truncated in between.
//! * `P0CMYK`/`PyCMYK` (CMYK, Pillow's CMYK → RGB), `PyRGBA` (alpha dropped) and `PyP` (palette
//!   indices with no palette: black) are raw samples like `P5`/`P6`, scaled the same way.
//! * Too little pixel data is an error (Pillow: "image file is truncated" / "not enough image
//!   data"); bytes after the image are ignored.

use super::check_size;
use crate::resize::Rgb8;

const WHITESPACE: &[u8] = b" \t\n\x0b\x0c\r";

/// A reader over the file with Pillow's token rules.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn next_byte(&mut self) -> Option<u8> {
        let b = self.bytes.get(self.pos).copied();
        self.pos += b.is_some() as usize;
        b
    }

    /// The next header token (consumes the one whitespace byte that ends it).
    fn token(&mut self) -> Result<Vec<u8>, String> {
        let mut token = Vec::new();
        while token.len() <= 10 {
            let Some(c) = self.next_byte() else { break };
            if WHITESPACE.contains(&c) {
                if token.is_empty() {
                    continue;
                }
                break;
            } else if c == b'#' {
                while let Some(c) = self.next_byte() {
                    if c == b'\r' || c == b'\n' {
                        break;
                    }
                }
                continue;
            }
            token.push(c);
        }
        if token.is_empty() {
            return Err("reached EOF while reading header".into());
        }
        if token.len() > 10 {
            return Err("token too long in file header".into());
        }
        Ok(token)
    }

    fn number(&mut self, what: &str) -> Result<u64, String> {
        let t = self.token()?;
        std::str::from_utf8(&t)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| format!("invalid {what} in header"))
    }
}

/// Python's `round(v / maxval * out_max)` in f64.
fn scale(v: u32, maxval: u32, out_max: u32) -> u32 {
    (v as f64 / maxval as f64 * out_max as f64).round_ties_even() as u32
}

/// What the magic number says.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `P1`…`P6`, by digit.
    Netpbm(u8),
    /// `Pf`.
    Float,
    /// `P0CMYK`, `PyCMYK`.
    Cmyk,
    /// `PyRGBA`.
    Rgba,
    /// `PyP`.
    Palette,
}

/// Decode a PBM/PGM/PPM/PFM file's bytes.
pub fn decode(bytes: &[u8]) -> Result<Rgb8, String> {
    // the magic number: up to 6 bytes, ended by whitespace (consumed) or the end of the file
    let mut pos = 0;
    let mut magic = Vec::new();
    for _ in 0..6 {
        let Some(&c) = bytes.get(pos) else { break };
        pos += 1;
        if WHITESPACE.contains(&c) {
            break;
        }
        magic.push(c);
    }
    let kind = match magic.as_slice() {
        [b'P', d @ b'1'..=b'6'] => Kind::Netpbm(*d),
        b"Pf" => Kind::Float,
        b"P0CMYK" | b"PyCMYK" => Kind::Cmyk,
        b"PyRGBA" => Kind::Rgba,
        b"PyP" => Kind::Palette,
        _ => return Err("not a PPM file".into()),
    };
    let mut cur = Cursor { bytes, pos };
    let w = cur.number("width")?;
    let h = cur.number("height")?;
    check_size(w, h)?;
    let (w, h) = (w as usize, h as usize);
    let truncated = || "image file is truncated".to_string();
    if kind == Kind::Float {
        return float(&mut cur, w, h);
    }
    let kind = match kind {
        Kind::Netpbm(d) => d,
        // the extensions read as raw samples, like P5/P6, with their own band counts below
        _ => b'6',
    };
    if kind == b'1' || kind == b'4' {
        let mut grey = Vec::with_capacity(w * h);
        if kind == b'4' {
            let row_bytes = w.div_ceil(8);
            let data = bytes.get(cur.pos..cur.pos + row_bytes * h).ok_or_else(truncated)?;
            for row in data.chunks_exact(row_bytes) {
                grey.extend((0..w).map(|x| if row[x / 8] >> (7 - x % 8) & 1 == 1 { 0 } else { 255 }));
            }
        } else {
            let mut rest = bytes[cur.pos..].iter();
            while grey.len() < w * h {
                match rest.next() {
                    None => return Err(truncated()),
                    Some(b'#') => {
                        for c in rest.by_ref() {
                            if *c == b'\n' || *c == b'\r' {
                                break;
                            }
                        }
                    }
                    Some(c) if WHITESPACE.contains(c) => {}
                    Some(b'0') => grey.push(255),
                    Some(b'1') => grey.push(0),
                    Some(c) => return Err(format!("invalid token for this mode: {:?}", *c as char)),
                }
            }
        }
        return Ok(super::grey_to_rgb(w, h, &grey));
    }
    let bands = match (kind, magic.as_slice()) {
        (_, b"PyP") | (b'2' | b'5', _) => 1,
        (_, b"P0CMYK" | b"PyCMYK" | b"PyRGBA") => 4,
        _ => 3,
    };
    let maxval = cur.number("maxval")?;
    if !(1..65536).contains(&maxval) {
        return Err("maxval must be greater than 0 and less than 65536".into());
    }
    let maxval = maxval as u32;
    // grey above 255 is Pillow mode I: scaled to 65535, clipped to 255 by convert('RGB')
    let grey = matches!(kind, b'2' | b'5') && magic.as_slice() != b"PyP";
    let out_max = if grey && maxval > 255 { 65535 } else { 255 };
    let n = w * h * bands;
    let mut samples = Vec::with_capacity(n);
    if kind == b'5' || kind == b'6' {
        let wide = maxval > 255;
        let data = bytes
            .get(cur.pos..cur.pos + n * (1 + wide as usize))
            .ok_or_else(truncated)?;
        let raw = maxval == 255 || (maxval == 65535 && grey);
        for i in 0..n {
            let v = if wide {
                u16::from_be_bytes([data[2 * i], data[2 * i + 1]]) as u32
            } else {
                data[i] as u32
            };
            let v = if raw { v } else { scale(v, maxval, out_max).min(out_max) };
            samples.push(v.min(255) as u8);
        }
    } else {
        let mut rest = &bytes[cur.pos..];
        while samples.len() < n {
            // skip whitespace and comments, then read a decimal token
            match rest.first() {
                None => return Err(truncated()),
                Some(b'#') => {
                    let end = rest
                        .iter()
                        .position(|c| *c == b'\n' || *c == b'\r')
                        .unwrap_or(rest.len());
                    rest = &rest[end..];
                }
                Some(c) if WHITESPACE.contains(c) => rest = &rest[1..],
                Some(_) => {
                    let end = rest
                        .iter()
                        .position(|c| WHITESPACE.contains(c) || *c == b'#')
                        .unwrap_or(rest.len());
                    let token = &rest[..end];
                    if token.len() > 10 {
                        return Err("token too long found in data".into());
                    }
                    let v: u32 = std::str::from_utf8(token)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| "invalid value in data".to_string())?;
                    if v > maxval {
                        return Err(format!("channel value too large for this mode: {v}"));
                    }
                    samples.push(scale(v, maxval, out_max).min(255) as u8);
                    rest = &rest[end..];
                }
            }
        }
    }
    Ok(match magic.as_slice() {
        b"PyP" => super::grey_to_rgb(w, h, &vec![0; w * h]),
        b"P0CMYK" | b"PyCMYK" => super::cmyk::cmyk_to_rgb(w, h, &samples, 4, false),
        b"PyRGBA" => super::first_three(w, h, &samples, 4),
        _ if bands == 1 => super::grey_to_rgb(w, h, &samples),
        _ => Rgb8 {
            width: w,
            height: h,
            data: samples,
        },
    })
}

/// `Pf`: the scale token, then `f32` rows from the bottom up, each value as Pillow's `F` → `L`
/// converts it ([`f_to_l`](super::f_to_l)).
fn float(cur: &mut Cursor, w: usize, h: usize) -> Result<Rgb8, String> {
    let token = cur.token()?;
    let scale = python_float(&token).ok_or("invalid scale in header")?;
    if scale == 0.0 || !scale.is_finite() {
        return Err("scale must be finite and non-zero".into());
    }
    let data = cur
        .bytes
        .get(cur.pos..cur.pos + 4 * w * h)
        .ok_or("image file is truncated")?;
    let mut grey = Vec::with_capacity(w * h);
    for row in data.chunks_exact(4 * w).rev() {
        grey.extend(row.chunks_exact(4).map(|b| {
            let b = [b[0], b[1], b[2], b[3]];
            let v = if scale < 0.0 {
                f32::from_le_bytes(b)
            } else {
                f32::from_be_bytes(b)
            };
            super::f_to_l(v)
        }));
    }
    Ok(super::grey_to_rgb(w, h, &grey))
}

/// Python's `float(token)` for a header token: Rust's parsing, plus underscores between digits.
fn python_float(token: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(token).ok()?;
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' && !(i > 0 && b[i - 1].is_ascii_digit() && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            return None;
        }
    }
    s.replace('_', "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_scaling() {
        let img = decode(b"P2 # c\n2 1\n4\n1 4\n").unwrap();
        // round(1/4·255) = round(63.75) = 64; 4 → 255
        assert_eq!(img.data, vec![64, 64, 64, 255, 255, 255]);
        let img = decode(b"P4\n3 1\n\xa0").unwrap();
        assert_eq!(img.data, vec![0, 0, 0, 255, 255, 255, 0, 0, 0]);
        assert!(decode(b"P6\n2 2\n255\n\x00").unwrap_err().contains("truncated"));
        assert!(decode(b"P5\n1 1\n0\n\x00").unwrap_err().contains("maxval"));
        assert!(decode(b"P2\n1 1\n3\n7\n").unwrap_err().contains("too large"));
    }

    #[test]
    fn pfm_rows_bottom_up_clipped_and_truncated() {
        let mut file = b"Pf\n2 2\n-1\n".to_vec();
        for v in [f32::NAN, 300.0, 0.99, 254.9] {
            file.extend(v.to_le_bytes());
        }
        // the file's first row is the image's last
        assert_eq!(
            decode(&file).unwrap().data,
            [0, 0, 0, 254, 254, 254, 0, 0, 0, 255, 255, 255]
        );
        assert!(decode(b"Pf\n1 1\n0\n\0\0\0\0").unwrap_err().contains("non-zero"));
        assert_eq!(python_float(b"1_0"), Some(10.0));
        assert_eq!(python_float(b"-2e3"), Some(-2000.0));
        assert_eq!(python_float(b"1__0"), None);
        assert_eq!(python_float(b"_1"), None);
    }
}
