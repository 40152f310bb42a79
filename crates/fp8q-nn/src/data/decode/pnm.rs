//! PBM/PGM/PPM (`P1`–`P6`) read as Pillow's `PpmImagePlugin` reads them, then converted to RGB.
//!
//! * Header tokens are separated by whitespace; `#` starts a comment up to the end of the line
//!   (as in Pillow, a comment does not end the token it interrupts). Tokens are at most 10
//!   characters; `0 < maxval < 65536`.
//! * `P4`/`P1`: bit 1 (character `1`) is black, 0 is white.
//! * `P5`/`P6` with maxval 255: the bytes as they are. `P5` with maxval 65535: 16-bit grey,
//!   which `convert('RGB')` clips to 255. Any other maxval: each sample becomes
//!   `round(v / maxval · M)` (Python's round, halves to even) with `M = 65535` for grey above
//!   255 (then clipped to 255 like any 32-bit grey) and `M = 255` otherwise; samples are two
//!   bytes big-endian above 255.
//! * `P2`/`P3` (plain text): the same scaling; a value above maxval is an error.
//! * Too little pixel data is an error (Pillow: "image file is truncated" / "not enough image
//!   data"); bytes after the image are ignored.

use super::check_size;
use crate::data::resize::Rgb8;

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

/// Decode a PBM/PGM/PPM file's bytes.
pub fn decode(bytes: &[u8]) -> Result<Rgb8, String> {
    let magic = bytes.get(..2).ok_or("not a PPM file")?;
    if bytes.get(2).is_some_and(|c| !WHITESPACE.contains(c)) {
        return Err("not a PPM file".into());
    }
    let kind = magic[1];
    let mut cur = Cursor {
        bytes,
        pos: 3.min(bytes.len()),
    };
    let w = cur.number("width")?;
    let h = cur.number("height")?;
    check_size(w, h)?;
    let (w, h) = (w as usize, h as usize);
    let truncated = || "image file is truncated".to_string();
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
    let maxval = cur.number("maxval")?;
    if !(1..65536).contains(&maxval) {
        return Err("maxval must be greater than 0 and less than 65536".into());
    }
    let maxval = maxval as u32;
    let bands = if kind == b'2' || kind == b'5' { 1 } else { 3 };
    // grey above 255 is Pillow mode I: scaled to 65535, clipped to 255 by convert('RGB')
    let out_max = if bands == 1 && maxval > 255 { 65535 } else { 255 };
    let n = w * h * bands;
    let mut samples = Vec::with_capacity(n);
    if kind == b'5' || kind == b'6' {
        let wide = maxval > 255;
        let data = bytes
            .get(cur.pos..cur.pos + n * (1 + wide as usize))
            .ok_or_else(truncated)?;
        let raw = maxval == 255 || (maxval == 65535 && bands == 1);
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
    Ok(if bands == 1 {
        super::grey_to_rgb(w, h, &samples)
    } else {
        Rgb8 {
            width: w,
            height: h,
            data: samples,
        }
    })
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
}
