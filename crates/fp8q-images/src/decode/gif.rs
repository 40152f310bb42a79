//! GIF, which Pillow opens whatever the file's name (an ImageFolder of scraped images often
//! holds GIF content under a `.jpg` name): the first frame, as Pillow's `GifImagePlugin` and its
//! C decoder (`GifDecode.c`) give it, then `convert('RGB')`.
//!
//! What Pillow does with the first frame, and this module with it:
//!
//! * the blocks before the first image descriptor are read with Pillow's leniency: unknown
//!   bytes between blocks are skipped, extension sub-blocks may end early at the end of the
//!   file; a graphic control extension must hold at least 3 bytes (4 with the transparency
//!   flag), as Pillow reads them;
//! * the canvas is the logical screen, enlarged to hold the frame if the frame reaches past it;
//!   it starts as index 0, or as the transparency index if the frame has one, and the frame's
//!   indices are written over its rectangle (transparency does not mask the first frame);
//! * a palette whose entries are the grey ramp (entry `i` = `(i, i, i)`) counts as no palette:
//!   the frame is then grey (`L`), index `v` giving `(v, v, v)` — unless a local grey-ramp
//!   palette hides a global colour one, whose colours Pillow then applies anyway when it loads
//!   the image; otherwise the indices are looked up in the local palette, else the global one,
//!   and indices past the palette's end are black;
//! * the LZW data is decoded as `GifDecode.c` decodes it: an end code does not end the stream
//!   (Pillow reads on, in 64 KiB pieces of the rest of the file, and the codes after it carry
//!   on), decoding ends when the frame's last row is complete, a sub-block is only decoded once
//!   all its bytes are there, and a frame the data does not fill is "truncated" — refused, as
//!   Pillow refuses it; interlaced rows come in GIF's four passes;
//! * frames after the first are not read, as `Image.open` + `convert` do not read them.
//!
//! The LZW decoder is written here rather than taken from the `gif` crate because the result
//! must be Pillow's on files that break the rules (data after the end code, short streams,
//! frames past the screen), where decoders rightly differ.

use super::check_size;
use crate::resize::Rgb8;

/// `ImageFile.MAXBLOCK`: how much of the file Pillow hands its decoder at a time.
const PIECE: usize = 65_536;
/// `GIFTABLE`/`GIFBUFFER`: 12-bit codes.
const TABLE: usize = 4096;

/// Decode a GIF file's bytes (first frame) to RGB.
pub fn decode(bytes: &[u8]) -> Result<Rgb8, String> {
    let mut r = Reader { bytes, pos: 0 };
    let header = r.take(13);
    if header.len() < 13 {
        return Err("truncated GIF header".into());
    }
    let (screen_w, screen_h) = (le16(header, 6), le16(header, 8));
    let flags = header[10];
    let mut global: Option<Vec<u8>> = None;
    if flags & 0x80 != 0 {
        let p = r.take(3 << ((flags & 7) + 1));
        if palette_needed(p)? {
            global = Some(p.to_vec());
        }
    }
    let frame = first_frame(&mut r)?;
    // the canvas grows to hold a frame past the logical screen
    let (x1, y1) = (frame.x0 + frame.w, frame.y0 + frame.h);
    let (width, height) = (screen_w.max(x1), screen_h.max(y1));
    if width == 0 || height == 0 {
        return Err("GIF of zero width or height".into());
    }
    check_size(width as u64, height as u64)?;
    if frame.w == 0 || frame.h == 0 {
        return Err("GIF frame of zero width or height".into());
    }
    let mut canvas = vec![frame.transparency.unwrap_or(0); width * height];
    lzw(
        &bytes[frame.data..],
        frame.min_code_size,
        frame.interlaced,
        &mut Frame {
            canvas: &mut canvas,
            stride: width,
            x0: frame.x0,
            y0: frame.y0,
            w: frame.w,
            h: frame.h,
        },
    )?;
    // the palette the pixels are looked up in (None: grey)
    let colours = match &frame.local {
        Some(Some(p)) => Some(p.as_slice()),
        Some(None) | None => global.as_deref(),
    };
    let mut data = Vec::with_capacity(3 * canvas.len());
    match colours {
        Some(p) => {
            let entries = p.len() / 3;
            for &v in &canvas {
                let v = v as usize;
                if v < entries {
                    data.extend_from_slice(&p[3 * v..3 * v + 3]);
                } else {
                    data.extend_from_slice(&[0, 0, 0]);
                }
            }
        }
        None => canvas.iter().for_each(|&v| data.extend_from_slice(&[v, v, v])),
    }
    Ok(Rgb8 { width, height, data })
}

/// The file's bytes, read as Pillow's file object reads them: short at the end, never past it.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.bytes.len());
        let end = start.saturating_add(n).min(self.bytes.len());
        self.pos = end;
        &self.bytes[start..end]
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).first().copied()
    }

    /// A sub-block (Pillow's `GifImageFile.data`): `None` at the end of the file or for the
    /// zero-length terminator, else its bytes (short at the end of the file).
    fn sub_block(&mut self) -> Option<&'a [u8]> {
        match self.byte() {
            Some(n) if n > 0 => Some(self.take(n as usize)),
            _ => None,
        }
    }
}

fn le16(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

/// Pillow's `_is_palette_needed`: false for the grey ramp, entry `i` = `(i, i, i)`.
fn palette_needed(p: &[u8]) -> Result<bool, String> {
    for (i, e) in p.chunks(3).enumerate() {
        // Python's chained comparison stops at the first inequality, so a short last entry is
        // only an error when everything before it matched
        if i > 255 || e[0] as usize != i {
            return Ok(true);
        }
        if e.len() < 3 {
            return Err("truncated GIF palette".into());
        }
        if e[1] != e[0] || e[2] != e[0] {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What the blocks up to the first image descriptor say.
struct FirstFrame {
    x0: usize,
    y0: usize,
    w: usize,
    h: usize,
    interlaced: bool,
    /// The local palette: absent, present but the grey ramp (`None`), or its bytes.
    local: Option<Option<Vec<u8>>>,
    transparency: Option<u8>,
    min_code_size: u8,
    /// Where the image data (its sub-blocks) starts.
    data: usize,
}

/// Pillow's `GifImageFile._seek(0)`.
fn first_frame(r: &mut Reader) -> Result<FirstFrame, String> {
    let mut transparency = None;
    let mut s = r.byte();
    if matches!(s, None | Some(b';')) {
        return Err("no image in the GIF file".into());
    }
    loop {
        if s.is_none() {
            s = r.byte();
        }
        match s {
            None | Some(b';') => return Err("no image in the GIF file".into()),
            Some(b'!') => {
                let label = r.byte().ok_or("truncated GIF extension")?;
                let mut block = r.sub_block();
                match (label, block) {
                    (249, Some(b)) => {
                        // graphic control extension: flags, delay (read whether used or not),
                        // transparent index
                        let flags = *b.first().ok_or("truncated GIF graphic control extension")?;
                        if flags & 1 != 0 {
                            transparency = Some(*b.get(3).ok_or("truncated GIF graphic control extension")?);
                        }
                        if b.len() < 3 {
                            return Err("truncated GIF graphic control extension".into());
                        }
                    }
                    (254, _) => {
                        // comment: its sub-blocks, up to the terminator, then the next block
                        while block.is_some_and(|b| !b.is_empty()) {
                            block = r.sub_block();
                        }
                        s = None;
                        continue;
                    }
                    (255, Some(b)) if b.starts_with(b"NETSCAPE2.0") => {
                        r.sub_block();
                    }
                    _ => {}
                }
                while r.sub_block().is_some_and(|b| !b.is_empty()) {}
            }
            Some(b',') => {
                let d = r.take(9);
                if d.len() < 9 {
                    return Err("truncated GIF image descriptor".into());
                }
                let flags = d[8];
                let local = if flags & 0x80 != 0 {
                    let p = r.take(3 << ((flags & 7) + 1));
                    Some(palette_needed(p)?.then(|| p.to_vec()))
                } else {
                    None
                };
                let min_code_size = r.byte().ok_or("truncated GIF image data")?;
                return Ok(FirstFrame {
                    x0: le16(d, 0),
                    y0: le16(d, 2),
                    w: le16(d, 4),
                    h: le16(d, 6),
                    interlaced: flags & 0x40 != 0,
                    local,
                    transparency,
                    min_code_size,
                    data: r.pos,
                });
            }
            // anything else between blocks is skipped
            Some(_) => {}
        }
        s = None;
    }
}

/// The frame's rectangle of the canvas, and where the next index goes.
struct Frame<'a> {
    canvas: &'a mut [u8],
    stride: usize,
    x0: usize,
    y0: usize,
    w: usize,
    h: usize,
}

/// Rows in GIF order: all of them, or the four interlace passes.
struct Rows {
    y: usize,
    step: usize,
    pass: u8,
    h: usize,
}

impl Rows {
    fn new(h: usize, interlaced: bool) -> Rows {
        Rows {
            y: 0,
            step: if interlaced { 8 } else { 1 },
            pass: if interlaced { 1 } else { 0 },
            h,
        }
    }

    /// Move to the next row; false when the frame is complete.
    fn advance(&mut self) -> bool {
        self.y += self.step;
        while self.y >= self.h {
            (self.y, self.step, self.pass) = match self.pass {
                1 => (4, 8, 2),
                2 => (2, 4, 3),
                3 => (1, 2, 0),
                _ => return false,
            };
        }
        true
    }
}

/// Why the decoder stopped.
enum Stop {
    /// The frame's last row is complete.
    Done,
    /// It read an end code, or needs bytes it has not been given.
    Paused,
}

/// The LZW decoder's state, kept across pauses as `GifDecode.c` keeps it.
struct Lzw {
    clear: usize,
    end: usize,
    next: usize,
    code_size: u32,
    code_mask: usize,
    /// 1: reset the table; 2: expecting the first code after a clear; 3: decoding.
    state: u8,
    bits: u64,
    bit_count: u32,
    /// Bytes left in the current sub-block.
    block_left: usize,
    last_code: usize,
    last_first: u8,
    suffix: Vec<u8>,
    prefix: Vec<usize>,
    /// A string being expanded, first byte last.
    string: Vec<u8>,
}

/// Decode the image data starting at `data[0]` into `frame`, as Pillow's `ImageFile.load`
/// drives `GifDecode.c`: the decoder gets 64 KiB of the rest of the file more each time it
/// pauses, and the frame is truncated if it pauses with the file exhausted.
fn lzw(data: &[u8], min_code_size: u8, interlaced: bool, frame: &mut Frame) -> Result<(), String> {
    if min_code_size > 12 {
        return Err(format!("GIF LZW minimum code size {min_code_size} (at most 12)"));
    }
    let clear = 1usize << min_code_size;
    let mut d = Lzw {
        clear,
        end: clear + 1,
        next: 0,
        code_size: 0,
        code_mask: 0,
        state: 1,
        bits: 0,
        bit_count: 0,
        block_left: 0,
        last_code: 0,
        last_first: 0,
        suffix: vec![0; TABLE],
        prefix: vec![0; TABLE],
        string: Vec::with_capacity(TABLE),
    };
    let mut rows = Rows::new(frame.h, interlaced);
    let mut x = 0;
    let mut pos = 0;
    let mut limit = data.len().min(PIECE);
    loop {
        match d.run(&data[..limit], &mut pos, &mut rows, &mut x, frame)? {
            Stop::Done => return Ok(()),
            Stop::Paused if limit == data.len() => {
                return Err("GIF image data is truncated (the frame is not complete)".into());
            }
            Stop::Paused => limit = data.len().min(limit + PIECE),
        }
    }
}

impl Lzw {
    /// Decode from `data[*pos..]` until the frame is complete, an end code, or the data runs
    /// out (a sub-block is only entered when all its bytes are in `data`).
    fn run(
        &mut self,
        data: &[u8],
        pos: &mut usize,
        rows: &mut Rows,
        x: &mut usize,
        frame: &mut Frame,
    ) -> Result<Stop, String> {
        let broken = || Err("broken GIF data stream".to_string());
        loop {
            if self.state == 1 {
                self.next = self.clear + 2;
                self.code_size = self.clear.trailing_zeros() + 1;
                self.code_mask = (1 << self.code_size) - 1;
                self.state = 2;
            }
            while self.bit_count < self.code_size {
                if self.block_left > 0 {
                    self.bits |= u64::from(data[*pos]) << self.bit_count;
                    *pos += 1;
                    self.block_left -= 1;
                    self.bit_count += 8;
                } else {
                    let Some(&n) = data.get(*pos) else {
                        return Ok(Stop::Paused);
                    };
                    if data.len() - *pos < n as usize + 1 {
                        return Ok(Stop::Paused);
                    }
                    self.block_left = n as usize;
                    *pos += 1;
                }
            }
            let c = (self.bits as usize) & self.code_mask;
            self.bits >>= self.code_size;
            self.bit_count -= self.code_size;
            if c == self.clear {
                if self.state != 2 {
                    self.state = 1;
                }
                continue;
            }
            if c == self.end {
                return Ok(Stop::Paused);
            }
            self.string.clear();
            if self.state == 2 {
                // the first code after a clear stands for itself
                if c > self.clear {
                    return broken();
                }
                self.last_first = c as u8;
                self.last_code = c;
                self.string.push(c as u8);
                self.state = 3;
            } else {
                let this = c;
                let mut c = c;
                if c > self.next {
                    return broken();
                }
                if c == self.next {
                    // the code being defined: the previous string and its first byte
                    self.string.push(self.last_first);
                    c = self.last_code;
                }
                while c >= self.clear {
                    if c >= TABLE || self.string.len() >= TABLE {
                        return broken();
                    }
                    self.string.push(self.suffix[c]);
                    c = self.prefix[c];
                }
                self.string.push(c as u8);
                self.last_first = c as u8;
                if self.next < TABLE {
                    self.suffix[self.next] = c as u8;
                    self.prefix[self.next] = self.last_code;
                    if self.next == self.code_mask && self.code_size < 12 {
                        self.code_size += 1;
                        self.code_mask = (1 << self.code_size) - 1;
                    }
                    self.next += 1;
                }
                self.last_code = this;
            }
            // the string's bytes, first byte first, row by row
            for &v in self.string.iter().rev() {
                frame.canvas[(frame.y0 + rows.y) * frame.stride + frame.x0 + *x] = v;
                *x += 1;
                if *x >= frame.w {
                    *x = 0;
                    if !rows.advance() {
                        return Ok(Stop::Done);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interlaced_rows_come_in_four_passes() {
        for h in 1..=20 {
            let mut rows = Rows::new(h, true);
            let mut seen = vec![rows.y];
            while rows.advance() {
                seen.push(rows.y);
            }
            let mut want: Vec<usize> = (0..h).step_by(8).collect();
            want.extend((4..h).step_by(8));
            want.extend((2..h).step_by(4));
            want.extend((1..h).step_by(2));
            assert_eq!(seen, want, "height {h}");
        }
    }

    #[test]
    fn the_grey_ramp_is_no_palette() {
        let ramp: Vec<u8> = (0..4u8).flat_map(|i| [i, i, i]).collect();
        assert!(!palette_needed(&ramp).unwrap());
        let mut other = ramp.clone();
        other[7] = 9;
        assert!(palette_needed(&other).unwrap());
        assert!(palette_needed(&[5, 0]).unwrap());
        assert!(palette_needed(&[0, 0]).is_err());
    }
}
