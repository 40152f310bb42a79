//! The validation and training transforms of SPEC §5.5, from a decoded image to normalized
//! CHW `f32` values.
//!
//! * Validation: resize so the shorter side is `size + 24` (Pillow-exact, the chosen filter),
//!   centre crop `size` (offsets rounded half to even like Python's `round`), scale to [0, 1],
//!   normalize with the ImageNet mean and std.
//! * Training: RandomResizedCrop(size, scale 0.08–1, ratio 3/4–4/3) and a random horizontal
//!   flip, drawn from a generator seeded per image.

use std::path::Path;

pub use super::decode::decode;
use super::decode::{decode_bytes, jpeg, Format};
use super::fused::{needed_region, resize_window_normalized, NeededRegion, Region};
use super::resize::{resize, resize_window, Filter, Rgb8};
use super::rng::Rng;
use crate::error::{ImageError, Result};

/// ImageNet channel means.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Which transform to apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// Resize shorter side to `size + 24`, centre crop `size`.
    Val {
        /// Crop size (224).
        size: usize,
        /// Resampling filter.
        filter: Filter,
    },
    /// RandomResizedCrop + horizontal flip.
    Train {
        /// Output size (224).
        size: usize,
        /// Resampling filter.
        filter: Filter,
        /// Seed of the per-image generators.
        seed: u64,
    },
}

impl Transform {
    /// The validation transform at 224 with PIL bilinear.
    pub fn val() -> Self {
        Transform::Val {
            size: 224,
            filter: Filter::Bilinear,
        }
    }

    /// The pixels of a `width × height` image the validation transform reads, when less than
    /// the whole image suffices (`None` for training, or when the image must be whole).
    pub fn val_region(&self, width: usize, height: usize) -> Option<NeededRegion> {
        match *self {
            Transform::Val { size, filter } => {
                let (w, h) = shorter_side_size(width, height, size + 24);
                let (left, top) = center_crop_offsets(w, h, size);
                needed_region((width, height), (w, h), filter, (left, top, size.min(w), size.min(h)))
            }
            Transform::Train { .. } => None,
        }
    }

    /// Output side length.
    pub fn size(&self) -> usize {
        match *self {
            Transform::Val { size, .. } | Transform::Train { size, .. } => size,
        }
    }

    /// Transform an image; `index` selects the training transform's random draw. Writes
    /// `3 · size · size` values (CHW) into `out`.
    pub fn apply(&self, img: &Rgb8, index: u64, out: &mut [f32]) {
        let whole = Region::whole(img);
        let cropped = match *self {
            Transform::Val { size, filter } => {
                // Resize(size + 24) then CenterCrop(size), computing only the crop's pixels
                let (w, h) = shorter_side_size(img.width, img.height, size + 24);
                let (left, top) = center_crop_offsets(w, h, size);
                let window = (left, top, size.min(w), size.min(h));
                // the fused path when it applies (both passes run), same values
                if resize_window_normalized(whole, (w, h), filter, window, (MEAN, STD), out) {
                    return;
                }
                resize_window(img, w, h, filter, window)
            }
            Transform::Train { size, filter, seed } => {
                let mut rng = Rng::for_item(seed, index);
                let (left, top, w, h) = random_resized_crop_box(img.width, img.height, &mut rng);
                let r = resize(&img.crop(left, top, w, h), size, size, filter);
                if rng.uniform() < 0.5 {
                    r.flip_horizontal()
                } else {
                    r
                }
            }
        };
        to_normalized_chw(&cropped, out);
    }

    /// Read, decode and transform one file, as [`decode`] then [`apply`](Self::apply) do. The
    /// validation transform of a JPEG decodes only the columns it reads
    /// ([`decode_region`](super::decode::jpeg::decode_region)), with the same values.
    pub fn load(&self, path: &Path, index: u64, out: &mut [f32]) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|err| ImageError::Io {
            path: path.to_path_buf(),
            err,
        })?;
        let bad = |why| ImageError::BadImage {
            path: path.to_path_buf(),
            why,
        };
        if matches!(self, Transform::Val { .. }) && Format::sniff(&bytes) == Some(Format::Jpeg) {
            // On an error, the whole decode below gives the error (or the image, should only the
            // region decode fail).
            if let Ok(part) = jpeg::decode_region(&bytes, |w, h| self.val_region(w, h).map(|r| (r.cols, r.rows))) {
                let region = Region {
                    img: &part.img,
                    left: part.left,
                    top: part.top,
                    full_width: part.full_width,
                    full_height: part.full_height,
                };
                if self.apply_region(region, out) {
                    return Ok(());
                }
                if (part.img.width, part.img.height) == (part.full_width, part.full_height) {
                    self.apply(&part.img, index, out);
                    return Ok(());
                }
                // a part that is not enough (not expected): decode the whole file below
            }
        }
        let img = decode_bytes(&bytes).map_err(bad)?;
        self.apply(&img, index, out);
        Ok(())
    }

    /// The validation transform of an image of which only `region` is present, which must hold
    /// [`val_region`](Self::val_region)'s pixels. Returns `false`, writing nothing, when that is
    /// not enough (training, a region lacking pixels, a resize the fused path does not do):
    /// then [`apply`](Self::apply) the whole image.
    pub fn apply_region(&self, region: Region<'_>, out: &mut [f32]) -> bool {
        match *self {
            Transform::Val { size, filter } => {
                let (w, h) = shorter_side_size(region.full_width, region.full_height, size + 24);
                let (left, top) = center_crop_offsets(w, h, size);
                let window = (left, top, size.min(w), size.min(h));
                resize_window_normalized(region, (w, h), filter, window, (MEAN, STD), out)
            }
            Transform::Train { .. } => false,
        }
    }
}

/// The size torchvision's `Resize(s)` gives a `w × h` image: the shorter side becomes `s`, the
/// longer `⌊s · long / short⌋`.
pub fn shorter_side_size(w: usize, h: usize, s: usize) -> (usize, usize) {
    if w <= h {
        (s, s * h / w.max(1))
    } else {
        (s * w / h.max(1), s)
    }
}

/// torchvision's `Resize(s)`: the shorter side becomes `s`, the longer `⌊s · long / short⌋`.
pub fn resize_shorter(img: &Rgb8, s: usize, filter: Filter) -> Rgb8 {
    let (nw, nh) = shorter_side_size(img.width, img.height, s);
    resize(img, nw, nh, filter)
}

/// Python's `round` of `x / 2` for an integer `x` (halves to even).
fn round_half_even_div2(x: usize) -> usize {
    let q = x / 2;
    if x % 2 == 1 && q % 2 == 1 {
        q + 1
    } else {
        q
    }
}

/// `(left, top)` of torchvision's centre crop: `round((w - size) / 2)`, `round((h - size) / 2)`.
pub fn center_crop_offsets(w: usize, h: usize, size: usize) -> (usize, usize) {
    (
        round_half_even_div2(w.saturating_sub(size)),
        round_half_even_div2(h.saturating_sub(size)),
    )
}

/// torchvision's `RandomResizedCrop.get_params` (scale 0.08–1, ratio 3/4–4/3) on our generator:
/// `(left, top, width, height)`.
pub fn random_resized_crop_box(w: usize, h: usize, rng: &mut Rng) -> (usize, usize, usize, usize) {
    let area = (w * h) as f64;
    let (log_lo, log_hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.range_f64(0.08, 1.0);
        let ratio = rng.range_f64(log_lo, log_hi).exp();
        let cw = (target * ratio).sqrt().round() as usize;
        let ch = (target / ratio).sqrt().round() as usize;
        if cw > 0 && cw <= w && ch > 0 && ch <= h {
            let top = rng.int_inclusive(h - ch);
            let left = rng.int_inclusive(w - cw);
            return (left, top, cw, ch);
        }
    }
    // fallback: whole image clamped to the ratio range, centred
    let in_ratio = w as f64 / h as f64;
    let (cw, ch) = if in_ratio < 3.0 / 4.0 {
        (w, ((w as f64 / (3.0 / 4.0)).round() as usize).min(h))
    } else if in_ratio > 4.0 / 3.0 {
        (((h as f64 * 4.0 / 3.0).round() as usize).min(w), h)
    } else {
        (w, h)
    };
    ((w - cw) / 2, (h - ch) / 2, cw, ch)
}

/// `ToTensor` + `Normalize` in f32, as torchvision computes them: `(v / 255 - mean) / std`.
pub fn to_normalized_chw(img: &Rgb8, out: &mut [f32]) {
    let plane = img.width * img.height;
    for (i, px) in img.data.chunks_exact(3).enumerate() {
        for ch in 0..3 {
            out[ch * plane + i] = (px[ch] as f32 / 255.0 - MEAN[ch]) / STD[ch];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_offsets_round_half_to_even() {
        // (w - 224) / 2 = 0.5 → 0, 1.5 → 2, 2.5 → 2, 12 → 12
        assert_eq!(center_crop_offsets(225, 227, 224), (0, 2));
        assert_eq!(center_crop_offsets(229, 248, 224), (2, 12));
    }

    #[test]
    fn shorter_side_resize_sizes() {
        let img = Rgb8 {
            width: 300,
            height: 207,
            data: vec![0; 300 * 207 * 3],
        };
        let r = resize_shorter(&img, 248, Filter::Bilinear);
        assert_eq!((r.width, r.height), (359, 248)); // ⌊248 · 300 / 207⌋ = ⌊359.42⌋
    }

    /// Fixed expected pixels of the whole validation transform on a synthetic image: a 2×2
    /// checkerboard of 0 and 255 blown up to 248×248, centre-cropped to 224 (offset 12).
    #[test]
    fn val_transform_fixed_pixels() {
        // 248×248 input: resize is the identity, the crop starts at (12, 12)
        let mut data = vec![0u8; 248 * 248 * 3];
        for y in 0..248 {
            for x in 0..248 {
                let v = if (x < 124) ^ (y < 124) { 255 } else { 0 };
                data[(y * 248 + x) * 3..(y * 248 + x) * 3 + 3].copy_from_slice(&[v, v / 5, 0]);
            }
        }
        let img = Rgb8 {
            width: 248,
            height: 248,
            data,
        };
        let mut out = vec![0f32; 3 * 224 * 224];
        Transform::val().apply(&img, 0, &mut out);
        // output (0,0) = input (12,12): black quadrant → (0 - mean) / std
        assert_eq!(out[0], (0.0 - 0.485) / 0.229);
        // output (0, 111) = input (12, 123) is still black; (0, 112) = input (12, 124) is white
        assert_eq!(out[111], (0.0 - 0.485) / 0.229);
        assert_eq!(out[112], (1.0 - 0.485) / 0.229);
        // green channel of a white pixel: 51 / 255 = 0.2
        assert_eq!(out[224 * 224 + 112], (51.0f32 / 255.0 - 0.456) / 0.224);
    }

    /// `load` (a JPEG's needed columns only, fused resize) gives the bits of `decode` +
    /// `apply`, and the same errors, on every image fixture, for several sizes and filters.
    #[test]
    fn load_equals_decode_then_apply() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/images");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e != "json"))
            .collect();
        paths.sort();
        let transforms = [
            Transform::val(),
            Transform::Val {
                size: 64,
                filter: Filter::Bicubic,
            },
            Transform::Val {
                size: 100,
                filter: Filter::Lanczos,
            },
            Transform::Val {
                size: 32,
                filter: Filter::Nearest,
            },
        ];
        let mut jpegs = 0;
        for path in &paths {
            for t in &transforms {
                let n = 3 * t.size() * t.size();
                let (mut got, mut want) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                let loaded = t.load(path, 0, &mut got);
                match decode(path) {
                    Ok(img) => {
                        t.apply(&img, 0, &mut want);
                        assert!(loaded.is_ok(), "{path:?}: {loaded:?}");
                        assert!(
                            got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{path:?} {t:?}"
                        );
                    }
                    Err(e) => assert_eq!(loaded.unwrap_err().to_string(), e.to_string(), "{path:?}"),
                }
            }
            jpegs += path.extension().is_some_and(|e| e == "jpg") as usize;
        }
        assert!(jpegs >= 20, "{jpegs}");
    }

    #[test]
    fn train_crop_is_inside_and_deterministic() {
        for i in 0..200 {
            let mut a = Rng::for_item(7, i);
            let mut b = Rng::for_item(7, i);
            let (l, t, w, h) = random_resized_crop_box(150, 300, &mut a);
            assert_eq!((l, t, w, h), random_resized_crop_box(150, 300, &mut b));
            assert!(w > 0 && h > 0 && l + w <= 150 && t + h <= 300);
            let r = w as f64 / h as f64;
            assert!((0.72..=1.37).contains(&r) || w == 150, "ratio {r}");
        }
    }
}
