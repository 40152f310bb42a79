//! The first directory of a TIFF as Pillow's `ImageFileDirectory_v2.load` sees it, which is
//! not always what is in the file: Pillow keeps the first of two entries with the same tag,
//! skips entries of a type it does not know (17, 18, …), with no data (count 0), or whose data
//! would take the tags' running total of out-of-line bytes past the file's size, and stops
//! reading the directory altogether at the first entry whose data runs past the end of the
//! file ("Truncated File Read"), keeping the entries before it. A damaged file can so lose,
//! say, its ExtraSamples tag to Pillow, and its pixels are then read otherwise.
//!
//! [`view`] gives a copy of the file whose first directory holds exactly the entries Pillow
//! keeps (a new directory appended to the file, the header pointing to it, no next directory),
//! or `None` when that is the file's own directory. Classic TIFF only; BigTIFF is left as it
//! is.

/// A classic TIFF's bytes, read in its byte order.
pub(crate) struct Tiff<'a> {
    pub bytes: &'a [u8],
    pub little: bool,
}

impl<'a> Tiff<'a> {
    /// `None` unless `bytes` start with a classic TIFF header (`II*\0` or `MM\0*`).
    pub fn new(bytes: &'a [u8]) -> Option<Tiff<'a>> {
        let little = bytes.starts_with(b"II*\0");
        (little || bytes.starts_with(b"MM\0*")).then_some(Tiff { bytes, little })
    }

    pub fn u16_at(&self, i: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(i..i.checked_add(2)?)?.try_into().ok()?;
        Some(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    pub fn u32_at(&self, i: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(i..i.checked_add(4)?)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    /// `v` in the file's byte order.
    pub fn u16_bytes(&self, v: u16) -> [u8; 2] {
        if self.little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    }

    /// `v` in the file's byte order.
    pub fn u32_bytes(&self, v: u32) -> [u8; 4] {
        if self.little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    }

    /// Where the first directory is, and its number of entries.
    pub fn first_directory(&self) -> Option<(usize, usize)> {
        let ifd = self.u32_at(4)? as usize;
        Some((ifd, self.u16_at(ifd)? as usize))
    }
}

/// The copy of `bytes` with Pillow's view of the first directory, if it differs.
pub fn view(bytes: &[u8]) -> Option<Vec<u8>> {
    let t = Tiff::new(bytes)?;
    let (ifd, count) = t.first_directory()?;
    let len = bytes.len() as u64;
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut seen = Vec::new();
    let mut total = 0u64;
    let mut changed = false;
    for i in 0..count {
        let at = ifd + 2 + 12 * i;
        let Some(entry) = bytes.get(at..at + 12) else {
            // a short read of the directory: Pillow stops, keeping what it has
            changed = true;
            break;
        };
        let tag = t.u16_at(at)?;
        let unit: u64 = match t.u16_at(at + 2)? {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 | 11 | 13 => 4,
            5 | 10 | 12 | 16 => 8,
            _ => {
                changed = true;
                continue;
            }
        };
        if seen.contains(&tag) {
            changed = true;
            continue;
        }
        let size = u64::from(t.u32_at(at + 4)?) * unit;
        if size == 0 {
            changed = true;
            continue;
        }
        if size > 4 {
            total += size;
            if total > len {
                changed = true;
                continue;
            }
            if u64::from(t.u32_at(at + 8)?) + size > len {
                changed = true;
                break;
            }
        }
        seen.push(tag);
        kept.push(entry);
    }
    if !changed {
        return None;
    }
    let mut copy = bytes.to_vec();
    if copy.len() % 2 == 1 {
        copy.push(0);
    }
    let new_ifd = u32::try_from(copy.len()).ok()?;
    let n = u16::try_from(kept.len()).ok()?;
    copy.extend_from_slice(&t.u16_bytes(n));
    for entry in kept {
        copy.extend_from_slice(entry);
    }
    copy.extend_from_slice(&[0; 4]);
    copy[4..8].copy_from_slice(&t.u32_bytes(new_ifd));
    Some(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian TIFF header and a directory of `entries` (tag, type, count, value).
    fn tiff(entries: &[(u16, u16, u32, u32)], tail: &[u8]) -> Vec<u8> {
        let mut b = b"II*\0\x08\0\0\0".to_vec();
        b.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for &(tag, typ, count, value) in entries {
            b.extend_from_slice(&tag.to_le_bytes());
            b.extend_from_slice(&typ.to_le_bytes());
            b.extend_from_slice(&count.to_le_bytes());
            b.extend_from_slice(&value.to_le_bytes());
        }
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(tail);
        b
    }

    fn tags(view: &[u8]) -> Vec<u16> {
        let ifd = u32::from_le_bytes(view[4..8].try_into().unwrap()) as usize;
        let n = u16::from_le_bytes(view[ifd..ifd + 2].try_into().unwrap()) as usize;
        (0..n)
            .map(|i| u16::from_le_bytes(view[ifd + 2 + 12 * i..ifd + 4 + 12 * i].try_into().unwrap()))
            .collect()
    }

    #[test]
    fn a_sound_directory_is_left_alone() {
        assert_eq!(view(&tiff(&[(256, 3, 1, 5), (257, 3, 1, 7)], &[])), None);
    }

    #[test]
    fn pillows_view_of_a_damaged_directory() {
        // duplicate (first kept), unknown type, no data: skipped
        let v = view(&tiff(
            &[
                (256, 3, 1, 5),
                (256, 3, 1, 9),
                (300, 17, 1, 0),
                (301, 3, 0, 0),
                (257, 3, 1, 7),
            ],
            &[],
        ))
        .unwrap();
        assert_eq!(tags(&v), [256, 257]);
        // data past the end: reading stops there, the entries after it are lost
        let v = view(&tiff(&[(256, 3, 1, 5), (305, 2, 20, 4_000_000), (338, 3, 1, 1)], &[])).unwrap();
        assert_eq!(tags(&v), [256]);
    }
}
