//! BMP run-length decoding (RLE8 and RLE4) as Pillow's `BmpRleDecoder` does it, to one palette
//! index per pixel in stored row order.
//!
//! Hand-written: the `image` crate decodes these files too, but it paints skipped pixels black
//! (Pillow gives them palette index 0), keeps absolute runs inside their row (Pillow lets them
//! run on into the next one) and accepts files that end early (Pillow raises "not enough image
//! data"). The rules followed here, from Pillow's decoder:
//!
//! * a pair `n, v` with `n > 0` is a run of `n` pixels (RLE8: `v`; RLE4: the high and low nibbles
//!   of `v` alternately), cut short so that it does not pass the end of the row, counted from
//!   the column `x` that the decoder tracks;
//! * `0, 0` ends the line: index 0 up to the next whole row (nothing if already at a row start);
//! * `0, 1` ends the bitmap; `0, 2, dx, dy` skips `dx + dy · width` pixels (index 0);
//! * `0, n` with `n ≥ 3` is an absolute run of `n` indices (RLE4: two per byte) padded to an even
//!   byte count; it is not cut at the row end, only at the end of the image, and `x` advances
//!   by `n`;
//! * the data ends when the image is full, at end-of-bitmap or when the bytes run out; fewer
//!   than `width · height` pixels is an error, as in Pillow.

/// Expand the RLE8 (`rle4 = false`) or RLE4 data starting at `data[start]` to
/// `width · height` indices, rows in file order.
pub fn expand(data: &[u8], start: usize, width: usize, height: usize, rle4: bool) -> Result<Vec<u8>, String> {
    let total = width * height;
    // Grows with the output, so a short file cannot make us allocate a huge buffer up front;
    // `total` is below the decompression-bomb limit (checked by the caller).
    let mut out: Vec<u8> = Vec::new();
    let (mut pos, mut x) = (start, 0usize);
    while out.len() < total {
        let (Some(&count), Some(&value)) = (data.get(pos), data.get(pos + 1)) else {
            break;
        };
        pos += 2;
        let count = count as usize;
        if count > 0 {
            let n = count.min(width.saturating_sub(x));
            if rle4 {
                let pair = [value >> 4, value & 0x0F];
                out.extend((0..n).map(|i| pair[i % 2]));
            } else {
                out.resize(out.len() + n, value);
            }
            x += n;
            continue;
        }
        match value {
            0 => {
                let row_end = out.len().div_ceil(width) * width;
                out.resize(row_end, 0);
                x = 0;
            }
            1 => break,
            2 => {
                let (Some(&right), Some(&up)) = (data.get(pos), data.get(pos + 1)) else {
                    break;
                };
                pos += 2;
                let skip = (right as usize + up as usize * width).min(total - out.len());
                out.resize(out.len() + skip, 0);
                x = out.len() % width;
            }
            n => {
                let n = n as usize;
                let count = n.min(total - out.len());
                let byte_count = if rle4 { count.div_ceil(2) } else { count };
                let end = (pos + byte_count).min(data.len());
                let bytes = &data[pos..end];
                if rle4 {
                    for (i, &b) in bytes.iter().enumerate() {
                        out.push(b >> 4);
                        if 2 * i + 1 < count {
                            out.push(b & 0x0F);
                        }
                    }
                } else {
                    out.extend_from_slice(bytes);
                }
                pos = end;
                if bytes.len() < byte_count || out.len() == total {
                    break;
                }
                x += n;
                // absolute runs are padded to a 16-bit boundary of the file offset
                pos += pos & 1;
            }
        }
    }
    if out.len() < total {
        return Err("not enough image data".into());
    }
    out.truncate(total);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_end_of_line_delta_and_absolute() {
        // 5×3: a run, end of line; a delta of 2 right then a run of 2; an absolute run of 5
        let data = [3, 7, 0, 0, 0, 2, 2, 0, 2, 9, 0, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 1];
        let got = expand(&data, 0, 5, 3, false).unwrap();
        assert_eq!(got, [7, 7, 7, 0, 0, 0, 0, 9, 9, 0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn runs_are_cut_at_the_row_end_absolute_runs_are_not() {
        // a run of 9 in a 5-wide row gives 5; the next run is dropped (x is at the row end)
        assert_eq!(
            expand(&[9, 1, 4, 2, 0, 0, 5, 3], 0, 5, 2, false).unwrap(),
            [1, 1, 1, 1, 1, 3, 3, 3, 3, 3]
        );
        // an absolute run of 7 continues into the second row
        assert_eq!(
            expand(&[0, 7, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0], 0, 5, 2, false).unwrap(),
            [1, 2, 3, 4, 5, 6, 7, 0, 0, 0]
        );
    }

    #[test]
    fn rle4_nibbles() {
        // a run of 5 alternating 1, 2; an absolute run of 3 nibbles (2 bytes)
        let got = expand(&[5, 0x12, 0, 3, 0x34, 0x50, 0, 0], 0, 5, 2, true).unwrap();
        assert_eq!(got, [1, 2, 1, 2, 1, 3, 4, 5, 0, 0]);
    }

    #[test]
    fn short_data_is_an_error() {
        assert!(expand(&[5, 1, 0, 1], 0, 5, 2, false)
            .unwrap_err()
            .contains("not enough"));
        assert!(expand(&[], 0, 5, 2, false).is_err());
        assert!(expand(&[0, 7, 1, 2], 0, 5, 2, false).is_err());
        assert!(expand(&[0, 2, 1], 0, 5, 2, false).is_err());
    }
}
