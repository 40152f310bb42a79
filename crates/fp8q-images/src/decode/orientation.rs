//! Pillow's `ImageOps.exif_transpose` for an Orientation value, which Pillow applies when it
//! loads a TIFF (not a JPEG: `Image.open` leaves a JPEG's EXIF orientation alone).

use crate::resize::Rgb8;

/// The upright image for Orientation `o` (2: mirrored, 3: rotated 180°, 4: flipped, 5:
/// transposed, 6: rotated 90° clockwise to display, 7: transversed, 8: rotated 90° counter-
/// clockwise); other values leave it as it is.
pub fn apply(img: Rgb8, o: u32) -> Rgb8 {
    let (w, h) = (img.width, img.height);
    // the source pixel of output pixel (x, y)
    let src = |x: usize, y: usize| match o {
        2 => (w - 1 - x, y),
        3 => (w - 1 - x, h - 1 - y),
        4 => (x, h - 1 - y),
        5 => (y, x),
        6 => (y, h - 1 - x),
        7 => (w - 1 - y, h - 1 - x),
        _ => (w - 1 - y, x), // 8
    };
    let (out_w, out_h) = match o {
        2..=4 => (w, h),
        5..=8 => (h, w),
        _ => return img,
    };
    let mut data = Vec::with_capacity(img.data.len());
    for y in 0..out_h {
        for x in 0..out_w {
            let (sx, sy) = src(x, y);
            let i = 3 * (sy * w + sx);
            data.extend_from_slice(&img.data[i..i + 3]);
        }
    }
    Rgb8 {
        width: out_w,
        height: out_h,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_orientations() {
        // 2×1: pixels a, b (grey levels 1 and 2)
        let img = || Rgb8 {
            width: 2,
            height: 1,
            data: vec![1, 1, 1, 2, 2, 2],
        };
        let grey = |r: Rgb8| (r.width, r.height, r.data.iter().step_by(3).copied().collect::<Vec<_>>());
        assert_eq!(grey(apply(img(), 1)), (2, 1, vec![1, 2]));
        assert_eq!(grey(apply(img(), 2)), (2, 1, vec![2, 1]));
        assert_eq!(grey(apply(img(), 3)), (2, 1, vec![2, 1]));
        assert_eq!(grey(apply(img(), 4)), (2, 1, vec![1, 2]));
        assert_eq!(grey(apply(img(), 5)), (1, 2, vec![1, 2]));
        assert_eq!(grey(apply(img(), 6)), (1, 2, vec![1, 2]));
        assert_eq!(grey(apply(img(), 7)), (1, 2, vec![2, 1]));
        assert_eq!(grey(apply(img(), 8)), (1, 2, vec![2, 1]));
    }
}
