//! Encode and decode block-scaled tensors as torchao lays them out: element codes and block
//! scales.
//!
//! * **Element codes**, one byte per element in tensor order: FP elements as `sign | exponent |
//!   mantissa` with the OCP bias `2^(e-1) - 1` (FP6 unpacked in the low 6 bits, as torchao's
//!   `f32_to_f6_*_unpacked`), the standard 8-bit encodings as their ml_dtypes byte, INT
//!   elements in two's complement in the low `n` bits; **4-bit elements are packed two to a
//!   byte, low nibble first** (torchao's `pack_uint4`; an odd count ends with a zero nibble).
//!   The sign of a code is the sign of the scaled input (a small negative value rounds to `-0`).
//! * **Scales**: E8M0 as biased bytes (255 = NaN), E4M3 as `float8_e4m3fn` bytes plus the `f32`
//!   tensor scale, F32 as values; laid out as the tensor with the block axis shortened to
//!   `ceil(len / K)`.
//!
//! Elements of a NaN block (its scale byte is 255, or its scale NaN) are stored as code 0: the
//! scale alone makes the block NaN when decoded. Elements wider than 8 bits have no byte code.

use super::block_quantizer::{
    e8m0_reciprocal, e8m0_value, transpose_from_rows, transpose_to_rows, BlockLayout, BlockQuantizer, StoredScale,
};
use crate::error::{FormatError, Result};
use crate::format::{BlockElement, BlockFormat, Overflow, StandardFp8};
use rayon::prelude::*;
use std::borrow::Cow;

/// The stored block scales.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockScales {
    /// Biased E8M0 bytes.
    E8m0(Vec<u8>),
    /// `float8_e4m3fn` bytes (under [`BlockEncoding::tensor_scale`]).
    E4m3(Vec<u8>),
    /// `f32` scales.
    F32(Vec<f32>),
}

impl BlockScales {
    /// Number of scales.
    pub fn len(&self) -> usize {
        match self {
            BlockScales::E8m0(v) | BlockScales::E4m3(v) => v.len(),
            BlockScales::F32(v) => v.len(),
        }
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A block-scaled tensor: element codes, block scales and the tensor scale.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockEncoding {
    /// Element codes (4-bit elements packed two to a byte, low nibble first).
    pub codes: Vec<u8>,
    /// Block scales.
    pub scales: BlockScales,
    /// The `f32` tensor scale of a two-level format.
    pub tensor_scale: Option<f32>,
    /// The shape of the scales: the tensor's, with the block axis `ceil(len / K)` long.
    pub scale_shape: Vec<usize>,
}

/// The byte code of a unit-grid element value `q` whose sign is `negative`.
pub fn element_code(element: BlockElement, q: f32, negative: bool) -> u8 {
    match element {
        BlockElement::Standard(s) => s.encode(if negative { -q.abs() } else { q.abs() }, Overflow::Saturate),
        BlockElement::Int(n) => {
            let k = (q as f64 * ((n - 2) as f64).exp2()).round() as i64;
            (k & ((1i64 << n) - 1)) as u8
        }
        BlockElement::Fp(f) => {
            let (e, m) = (f.exponent_bits(), f.mantissa_bits());
            let bias = (1i32 << (e - 1)) - 1;
            let a = q.abs();
            let sign = u32::from(negative) << (e + m);
            // a lies on the element's grid: its f32 exponent and top mantissa bits are the code's
            let bits = a.to_bits();
            let ex = (bits >> 23) as i32 - 127;
            let body = if a == 0.0 {
                0
            } else if ex < 1 - bias {
                // a subnormal element: a multiple of the smallest one, 2^(1 - bias - m)
                (a * 2f32.powi(bias - 1 + m as i32)) as u32
            } else {
                (((ex + bias) as u32) << m) | ((bits >> (23 - m)) & ((1 << m) - 1))
            };
            (sign | body) as u8
        }
    }
}

/// The unit-grid value of an element code.
pub fn element_value(element: BlockElement, code: u8) -> f32 {
    match element {
        BlockElement::Standard(s) => s.decode(code),
        BlockElement::Int(n) => {
            let shift = 32 - n;
            let k = ((u32::from(code) << shift) as i32) >> shift;
            (k as f64 / ((n - 2) as f64).exp2()) as f32
        }
        BlockElement::Fp(f) => {
            let (e, m) = (f.exponent_bits(), f.mantissa_bits());
            let bias = (1i32 << (e - 1)) - 1;
            let c = u32::from(code);
            let sign = ((c >> (e + m)) & 1) << 31;
            let exp = ((c >> m) & ((1 << e) - 1)) as i32;
            let mant = c & ((1 << m) - 1);
            let v = if exp == 0 {
                mant as f32 * 2f32.powi(1 - bias - m as i32)
            } else {
                // an f32 with the element's exponent and mantissa (every element is an f32 normal)
                f32::from_bits((((exp - bias + 127) as u32) << 23) | (mant << (23 - m)))
            };
            f32::from_bits(v.to_bits() | sign)
        }
    }
}

fn check_element(format: BlockFormat) -> Result<()> {
    if format.element().n_bits() > 8 {
        return Err(FormatError::Invalid {
            what: "format",
            why: format!(
                "{format} has {}-bit elements; byte codes exist for elements of at most 8 bits",
                format.element().n_bits()
            ),
        });
    }
    Ok(())
}

/// The shape of the scales of a tensor of `shape` with blocks along `axis`.
pub fn scale_shape(format: BlockFormat, shape: &[usize], axis: isize) -> Result<Vec<usize>> {
    BlockLayout::new(shape, axis)?;
    let a = if axis < 0 { axis + shape.len() as isize } else { axis } as usize;
    let mut s = shape.to_vec();
    s[a] = s[a].div_ceil(format.block_size());
    Ok(s)
}

/// Encode `x` (shape `shape`, blocks along `axis`).
///
/// ```
/// use fp8q_core::format::BlockFormat;
/// use fp8q_core::quantizer::block_codes::{encode_blocks, BlockScales};
/// let f: BlockFormat = "mxfp4".parse().unwrap();
/// let e = encode_blocks(f, &[0.1, -3.0, 0.74, 2.9], &[4], -1).unwrap();
/// // X = 2^-1 (byte 126); elements 0, -6, 1.5, 6 -> codes 0x0, 0xf, 0x3, 0x7, two per byte
/// assert_eq!(e.scales, BlockScales::E8m0(vec![126]));
/// assert_eq!(e.codes, vec![0xf0, 0x73]);
/// ```
pub fn encode_blocks(format: BlockFormat, x: &[f32], shape: &[usize], axis: isize) -> Result<BlockEncoding> {
    encode_blocks_with(&BlockQuantizer::for_tensor(format, x), x, shape, axis)
}

/// Encode `x` with a quantizer readied beforehand: for a part of a tensor, whose two-level
/// tensor scale comes from the whole tensor's largest magnitude ([`BlockQuantizer::new`]).
pub fn encode_blocks_with(q: &BlockQuantizer, x: &[f32], shape: &[usize], axis: isize) -> Result<BlockEncoding> {
    let format = q.format();
    check_element(format)?;
    let layout = BlockLayout::new(shape, axis)?;
    if x.len() != layout.numel() {
        return Err(FormatError::Shape(format!(
            "shape {shape:?} has {} elements but {} values were given",
            layout.numel(),
            x.len()
        )));
    }
    let rows = to_rows(layout, x);
    let k = format.block_size();
    let nb = layout.blocks_per_row(k);
    let mut codes = vec![0u8; x.len()];
    let mut stored = vec![StoredScale::E8m0(0); layout.outer * layout.inner * nb];
    let element = format.element();
    let tensor_scale = q.tensor_scale();
    if layout.len > 0 {
        // rows are independent: one task per group of rows
        let rows_per_task = (1usize << 14).div_ceil(layout.len).max(1);
        rows.par_chunks(layout.len * rows_per_task)
            .zip(codes.par_chunks_mut(layout.len * rows_per_task))
            .zip(stored.par_chunks_mut(nb * rows_per_task))
            .for_each(|((rows, codes), stored)| {
                let mut y = Vec::with_capacity(k);
                let blocks = rows
                    .chunks(layout.len)
                    .zip(codes.chunks_mut(layout.len))
                    .flat_map(|(r, c)| r.chunks(k).zip(c.chunks_mut(k)));
                for ((xb, cb), slot) in blocks.zip(stored.iter_mut()) {
                    *slot = encode_block(q, xb, cb, &mut y);
                }
            });
    }
    let codes = from_rows(layout, codes);
    // scales in row order [outer, inner, nb] -> [outer, nb, inner]
    let stored = from_rows(
        BlockLayout {
            outer: layout.outer,
            len: nb,
            inner: layout.inner,
        },
        stored,
    );
    let (mut bytes, mut floats) = (Vec::new(), Vec::new());
    for s in stored {
        match s {
            StoredScale::E8m0(b) | StoredScale::E4m3(b) => bytes.push(b),
            StoredScale::F32(v) => floats.push(v),
        }
    }
    let scales = match format.scale() {
        crate::format::ScaleFormat::E8m0 => BlockScales::E8m0(bytes),
        crate::format::ScaleFormat::E4m3 => BlockScales::E4m3(bytes),
        crate::format::ScaleFormat::F32 => BlockScales::F32(floats),
    };
    let codes = if element.n_bits() == 4 {
        pack_nibbles(&codes)
    } else {
        codes
    };
    Ok(BlockEncoding {
        codes,
        scales,
        tensor_scale,
        scale_shape: scale_shape(format, shape, axis)?,
    })
}

/// Encode one block `xb` into `cb`; returns the scale stored for it.
fn encode_block(q: &BlockQuantizer, xb: &[f32], cb: &mut [u8], y: &mut Vec<f32>) -> StoredScale {
    let element = q.format().element();
    let amax = xb.iter().fold(0f32, |m, v| {
        if v.is_nan() || m.is_nan() {
            f32::NAN
        } else {
            m.max(v.abs())
        }
    });
    let s = q.stored_scale(amax);
    let r = match s {
        StoredScale::E8m0(255) => None,
        StoredScale::E8m0(b) => Some(e8m0_reciprocal(b)),
        StoredScale::F32(0.0) => Some(0.0),
        StoredScale::F32(v) if !v.is_finite() => None,
        StoredScale::F32(v) => Some(1.0 / v), // marker only: F32 divides below
        StoredScale::E4m3(byte) => {
            let s_t = q.tensor_scale().expect("two-level");
            let s_b = StandardFp8::E4M3FN.decode(byte);
            if s_t == 0.0 {
                Some(0.0)
            } else if !(s_t.is_finite() && amax.is_finite() && s_b.is_finite()) {
                None
            } else {
                Some((1.0 / s_t) / s_b)
            }
        }
    };
    let Some(r) = r else {
        cb.fill(0);
        return s;
    };
    y.clear();
    let m = element.max_value() as f32;
    y.extend(xb.iter().map(|&v| match s {
        StoredScale::F32(d) if d != 0.0 => v / d,
        StoredScale::E4m3(_) => (v * r).clamp(-m, m),
        _ => v * r,
    }));
    let start = y.len();
    y.extend_from_within(..);
    let (ys, qv) = y.split_at_mut(start);
    q.element().quantize_inplace_serial(qv);
    element_codes(element, qv, ys, cb);
    s
}

/// [`element_code`] of each grid value `q[i]` with the sign of `y[i]`, with the element's
/// constants worked out once (FP elements and the standard encodings: branch-free bit
/// arithmetic).
pub fn element_codes(element: BlockElement, q: &[f32], y: &[f32], out: &mut [u8]) {
    let (m, bias, sign_shift) = match element {
        BlockElement::Fp(f) => (
            f.mantissa_bits(),
            (1i32 << (f.exponent_bits() - 1)) - 1,
            f.exponent_bits() + f.mantissa_bits(),
        ),
        // the IEEE-like encodings (an `fnuz` one has no -0: the scalar path)
        BlockElement::Standard(s) if !s.decode(0x80).is_nan() => (s.mantissa_bits(), s.bias() as i32, 7),
        BlockElement::Standard(_) | BlockElement::Int(_) => {
            for ((c, &yv), &qe) in out.iter_mut().zip(y).zip(q) {
                *c = element_code(element, qe, yv.is_sign_negative());
            }
            return;
        }
    };
    let rebias = ((127 - bias) as u32) << m;
    let min_normal = 2f32.powi(1 - bias).to_bits();
    let sub_mul = 2f32.powi(bias - 1 + m as i32);
    for ((c, &yv), &qe) in out.iter_mut().zip(y).zip(q) {
        let a = qe.to_bits() & 0x7fff_ffff;
        // normal: the f32 exponent and top mantissa bits, rebiased; subnormal: the multiple of
        // the smallest subnormal (a whole number below 2^23, read from the mantissa of k + 2^23)
        let normal = (a >> (23 - m)).wrapping_sub(rebias);
        let sub = (f32::from_bits(a) * sub_mul + 8_388_608.0).to_bits() & 0x7f_ffff;
        let body = if a >= min_normal { normal } else { sub };
        *c = (body | ((yv.to_bits() >> 31) << sign_shift)) as u8;
    }
}

/// Decode an encoding of a tensor of `shape` with blocks along `axis`.
pub fn decode_blocks(format: BlockFormat, enc: &BlockEncoding, shape: &[usize], axis: isize) -> Result<Vec<f32>> {
    check_element(format)?;
    let layout = BlockLayout::new(shape, axis)?;
    let n = layout.numel();
    let k = format.block_size();
    let nb = layout.blocks_per_row(k);
    let element = format.element();
    let want_codes = if element.n_bits() == 4 { n.div_ceil(2) } else { n };
    let want_scales = layout.outer * layout.inner * nb;
    if enc.codes.len() != want_codes || enc.scales.len() != want_scales {
        return Err(FormatError::Shape(format!(
            "{format} of shape {shape:?} has {want_codes} code bytes and {want_scales} scales; got {} and {}",
            enc.codes.len(),
            enc.scales.len()
        )));
    }
    let tensor_scale = match (format.scale(), enc.tensor_scale) {
        (crate::format::ScaleFormat::E4m3, Some(s)) => s,
        (crate::format::ScaleFormat::E4m3, None) => {
            return Err(FormatError::Invalid {
                what: "encoding",
                why: format!("{format} needs a tensor scale"),
            })
        }
        _ => 0.0,
    };
    let codes = if element.n_bits() == 4 {
        Cow::Owned(unpack_nibbles(&enc.codes, n))
    } else {
        Cow::Borrowed(&enc.codes[..])
    };
    let codes = to_rows(layout, &codes);
    let table: [f32; 256] = std::array::from_fn(|c| element_value(element, c as u8));
    let mut out = vec![0f32; n];
    if layout.len > 0 {
        codes
            .par_chunks(layout.len)
            .zip(out.par_chunks_mut(layout.len))
            .enumerate()
            .for_each(|(row, (crow, orow))| {
                for (blk, (cb, ob)) in crow.chunks(k).zip(orow.chunks_mut(k)).enumerate() {
                    // scales are stored [outer, nb, inner]; rows run [outer, inner]
                    let (o, i) = (row / layout.inner, row % layout.inner);
                    let si = (o * nb + blk) * layout.inner + i;
                    let scale = match &enc.scales {
                        BlockScales::E8m0(v) => e8m0_value(v[si]),
                        BlockScales::E4m3(v) => tensor_scale * StandardFp8::E4M3FN.decode(v[si]),
                        BlockScales::F32(v) => v[si],
                    };
                    for (c, o) in cb.iter().zip(ob.iter_mut()) {
                        *o = table[usize::from(*c)] * scale;
                    }
                }
            });
    }
    Ok(from_rows(layout, out))
}

fn pack_nibbles(codes: &[u8]) -> Vec<u8> {
    codes
        .chunks(2)
        .map(|p| (p[0] & 0xf) | (p.get(1).copied().unwrap_or(0) & 0xf) << 4)
        .collect()
}

fn unpack_nibbles(bytes: &[u8], n: usize) -> Vec<u8> {
    let mut v = vec![0u8; bytes.len() * 2];
    for (pair, &b) in v.chunks_exact_mut(2).zip(bytes) {
        pair[0] = b & 0xf;
        pair[1] = b >> 4;
    }
    v.truncate(n);
    v
}

/// `[outer, len, inner]` → `[outer, inner, len]` (`x` itself when `inner == 1`).
fn to_rows<T: Copy + Send + Sync>(l: BlockLayout, x: &[T]) -> Cow<'_, [T]> {
    if l.inner > 1 {
        let mut t = x.to_vec();
        transpose_to_rows(l, x, &mut t);
        Cow::Owned(t)
    } else {
        Cow::Borrowed(x)
    }
}

/// `[outer, inner, len]` → `[outer, len, inner]` (`t` itself when `inner == 1`).
fn from_rows<T: Copy + Send + Sync>(l: BlockLayout, t: Vec<T>) -> Vec<T> {
    if l.inner > 1 {
        let mut x = t.clone();
        transpose_from_rows(l, &t, &mut x);
        x
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::figures::block_element_values;
    use crate::quantizer::block_quantizer::quantize_blocks;

    /// Every code of every element decodes to a grid value and encodes back to itself.
    #[test]
    fn element_codes_are_exhaustive_bijections() {
        for f in [
            "mxfp4",
            "mxfp6_e2m3",
            "mxfp6_e3m2",
            "mxfp8_e4m3",
            "mxfp8_e5m2",
            "mxint8",
            "int4@32",
        ] {
            let e = f.parse::<BlockFormat>().unwrap().element();
            let grid = block_element_values(e);
            let n = e.n_bits();
            let mut seen = std::collections::BTreeSet::new();
            for code in 0..(1u32 << n) {
                let code = code as u8;
                let v = element_value(e, code);
                if !v.is_finite() || (matches!(e, BlockElement::Int(_)) && code == 1 << (n - 1)) {
                    continue; // NaN/Inf codes; INT's -2^(n-1) is unused
                }
                assert!(grid.contains(&(v as f64)), "{f}: code {code:#x} -> {v}");
                assert_eq!(element_code(e, v, v.is_sign_negative()), code, "{f} {v}");
                seen.insert(v.to_bits());
            }
            // every grid value has a code (±0 both count)
            assert!(seen.len() >= grid.len(), "{f}");
            // the slice form gives the same codes, for every grid value of both signs
            let q: Vec<f32> = grid.iter().flat_map(|&v| [v as f32, -(v as f32)]).collect();
            let mut codes = vec![0u8; q.len()];
            element_codes(e, &q, &q, &mut codes);
            for (v, c) in q.iter().zip(&codes) {
                assert_eq!(*c, element_code(e, *v, v.is_sign_negative()), "{f}: {v}");
            }
        }
        // OCP FP4 E2M1 codes: 0x1 = 0.5, 0x2 = 1, 0x7 = 6, 0xf = -6
        let e2m1 = "mxfp4".parse::<BlockFormat>().unwrap().element();
        assert_eq!(
            [0x1u8, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0xf].map(|c| element_value(e2m1, c)),
            [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -6.0]
        );
        let mxint8 = "mxint8".parse::<BlockFormat>().unwrap().element();
        assert_eq!(element_value(mxint8, 0x81), -127.0 / 64.0);
        assert_eq!(element_code(mxint8, -1.0, true), 0xc0);
    }

    #[test]
    fn decode_of_encode_is_the_quantized_tensor() {
        let shape = [3usize, 37, 5];
        let x: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|i| {
                let v = ((i as f32) * 0.7213).sin() * (1.0 + (i % 13) as f32 * 4.0);
                if i % 41 == 0 {
                    0.0
                } else {
                    v
                }
            })
            .collect();
        for f in [
            "mxfp4",
            "mxfp6_e2m3",
            "mxfp6_e3m2",
            "mxfp8_e4m3",
            "mxfp8_e5m2",
            "mxint8",
            "nvfp4",
            "int4@8/f32",
            "e2m1@5:rceil",
        ] {
            let format: BlockFormat = f.parse().unwrap();
            for axis in [-1isize, 1, 0] {
                let enc = encode_blocks(format, &x, &shape, axis).unwrap();
                let dec = decode_blocks(format, &enc, &shape, axis).unwrap();
                let mut q = vec![0f32; x.len()];
                quantize_blocks(format, &x, &shape, axis, &mut q).unwrap();
                assert_eq!(dec, q, "{f} axis {axis}");
                assert_eq!(enc.scale_shape, scale_shape(format, &shape, axis).unwrap());
            }
        }
        let f: BlockFormat = "mxfp4".parse().unwrap();
        let enc = encode_blocks(f, &x, &shape, -1).unwrap();
        assert_eq!(enc.scale_shape, vec![3, 37, 1]);
        assert!(decode_blocks(f, &enc, &[3, 37, 4], -1).is_err());
        assert!(encode_blocks(f, &x[..10], &shape, -1).is_err());
        assert!(encode_blocks("int16@32".parse().unwrap(), &x, &shape, -1).is_err());
    }
}
