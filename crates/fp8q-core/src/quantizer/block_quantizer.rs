//! Quantize–dequantize and encode/decode for block-scaled formats (`docs/formats.md`).
//!
//! Blocks of `K` consecutive elements along one axis (the last by default) share a scale; a
//! dimension that is not a multiple of `K` ends with a shorter block. Per block, with
//! `amax = max |x|` over the block:
//!
//! * **E8M0** (power of two `X`, chosen by the [`ScaleRule`]): elements `x / X`, saturated to
//!   ±elem_max and rounded to nearest even (subnormal elements kept); value `q · X`. The scale
//!   is clamped to E8M0's range `2^-127 ..= 2^127`; an all-zero block gets `2^-127` and stays 0.
//! * **E4M3 under an FP32 tensor scale** (NVFP4, torchao's `nvfp4_quantize` with
//!   `per_tensor_scale = amax_tensor / (448 · elem_max)`): block scale
//!   `s_b = e4m3(clamp((amax / elem_max) / s_t, 2^-6, 448))`, elements
//!   `clamp(x · ((1 / s_t) / s_b), ±elem_max)` rounded, value `q · (s_t · s_b)`, all in `f32`.
//! * **F32**: `s = amax / elem_max`, elements `x / s` rounded, value `q · s`.
//!
//! **NaN and ±Inf.** As the OCP spec has it for E8M0 (a NaN scale), a block holding a NaN or an
//! infinity becomes all NaN, for every scale format; for the two-level format the tensor scale
//! sees the whole tensor, so one non-finite value makes the whole tensor NaN. An all-zero
//! tensor stays zero (torchao's NVFP4 would divide 0 by 0 there).

use super::element_kernel::{dispatch_by_cpu, BlockScaling, ElementKernel};
use super::{FpQuantizer, IntQuantizer, Quantizer};
use crate::error::{FormatError, Result};
use crate::format::{BlockElement, BlockFormat, IntGrid, Overflow, ScaleFormat, ScaleRule, StandardFp8};
use rayon::prelude::*;

/// Smallest normal `float8_e4m3fn` value, torch's `finfo(float8_e4m3fn).tiny`: the lower clamp
/// of an NVFP4 block scale.
pub const E4M3_TINY: f32 = 0.015625;

/// Where the blocks run in a tensor: `outer × len × inner`, blocks along `len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLayout {
    /// Product of the dimensions before the block axis.
    pub outer: usize,
    /// Length of the block axis.
    pub len: usize,
    /// Product of the dimensions after the block axis.
    pub inner: usize,
}

impl BlockLayout {
    /// The layout of a tensor of `shape` with blocks along `axis` (negative counts from the end).
    pub fn new(shape: &[usize], axis: isize) -> Result<Self> {
        let rank = shape.len() as isize;
        let a = if axis < 0 { axis + rank } else { axis };
        if rank == 0 || a < 0 || a >= rank {
            return Err(FormatError::Invalid {
                what: "block axis",
                why: format!("axis {axis} is out of range for a tensor of shape {shape:?}"),
            });
        }
        let a = a as usize;
        let prod = |d: &[usize]| d.iter().try_fold(1usize, |p, &n| p.checked_mul(n));
        let overflow = || FormatError::Shape(format!("shape {shape:?} has too many elements"));
        Ok(Self {
            outer: prod(&shape[..a]).ok_or_else(overflow)?,
            len: shape[a],
            inner: prod(&shape[a + 1..]).ok_or_else(overflow)?,
        })
    }
    /// A flat tensor of `n` elements, blocks along it.
    pub fn flat(n: usize) -> Self {
        Self {
            outer: 1,
            len: n,
            inner: 1,
        }
    }
    /// `outer` rows of `len` (blocks along each row).
    pub fn rows(outer: usize, len: usize) -> Self {
        Self { outer, len, inner: 1 }
    }
    /// Elements in the tensor.
    pub fn numel(&self) -> usize {
        self.outer * self.len * self.inner
    }
    /// Blocks along the axis for block size `k`.
    pub fn blocks_per_row(&self, k: usize) -> usize {
        self.len.div_ceil(k)
    }
}

/// A block format made ready: the element quantizer on the unit grid and the tensor scale.
#[derive(Debug, Clone, Copy)]
pub struct BlockQuantizer {
    format: BlockFormat,
    element: Quantizer,
    elem_max: f32,
    /// Rounding to `float8_e4m3fn` (saturating, nearest even), for two-level block scales.
    e4m3: FpQuantizer,
    /// `(s_t, 1 / s_t)` of a two-level format (`s_t = 0` for an all-zero tensor, or one so
    /// small that `amax / (448 · elem_max)` underflows).
    tensor_scale: Option<(f32, f32)>,
}

/// The unit-grid quantizer of a block element.
pub fn element_quantizer(element: BlockElement) -> Quantizer {
    match element {
        BlockElement::Fp(f) => Quantizer::Fp(FpQuantizer::new(f, element.max_value()).expect("positive maxval")),
        BlockElement::Standard(s) => Quantizer::Fp(FpQuantizer::standard(s, 1.0).expect("unit scale")),
        BlockElement::Int(n) => {
            let k = (1i64 << (n - 1)) - 1;
            Quantizer::Int(IntQuantizer::new(IntGrid {
                delta: (-((n - 2) as f32)).exp2(),
                zero_point: 0.0,
                int_min: -k,
                int_max: k,
            }))
        }
    }
}

/// The biased E8M0 scale of a block with largest magnitude `amax` (255 = NaN), as torchao
/// computes it from `amax`'s `f32` bits.
pub fn e8m0_scale(amax: f32, rule: ScaleRule, element: BlockElement) -> u8 {
    let mbits = element.mantissa_bits().min(22);
    e8m0_byte(amax, rule, element.emax(), mbits, element.max_value() as f32) as u8
}

/// `2^(b - 127)` as `f32` (`2^-127` is subnormal and exact); NaN for 255.
pub fn e8m0_value(b: u8) -> f32 {
    match b {
        255 => f32::NAN,
        0 => f32::from_bits(0x0040_0000),
        b => f32::from_bits(u32::from(b) << 23),
    }
}

/// `2^(127 - b)`, the exact reciprocal of [`e8m0_value`].
pub(crate) fn e8m0_reciprocal(b: u8) -> f32 {
    match b {
        255 => f32::NAN,
        254 => f32::from_bits(0x0040_0000),
        b => f32::from_bits((254 - u32::from(b)) << 23),
    }
}

/// The per-block multipliers: `(into elements, back to values)`.
#[derive(Clone, Copy)]
enum BlockScale {
    /// `x · r`, then `q · x_scale` (E8M0: both exact powers of two).
    Mul(f32, f32),
    /// `x / s`, then `q · s` (F32 scales).
    Div(f32),
    /// `clamp(x · r, ±elem_max)`, then `q · back` (two-level).
    MulClamp(f32, f32),
    /// An all-zero block under a zero scale.
    Zero,
}

/// The scale a block gets, and what the encoding stores for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StoredScale {
    /// A biased E8M0 byte.
    E8m0(u8),
    /// A `float8_e4m3fn` byte.
    E4m3(u8),
    /// An `f32` scale.
    F32(f32),
}

impl BlockQuantizer {
    /// Ready `format` for a tensor whose largest magnitude is `tensor_amax` (used by two-level
    /// formats only; NaN or ±Inf there makes the whole tensor NaN).
    pub fn new(format: BlockFormat, tensor_amax: f32) -> Self {
        let element = format.element();
        let elem_max = element.max_value() as f32;
        let tensor_scale = (format.scale() == ScaleFormat::E4m3).then(|| {
            let s_t = tensor_amax / (StandardFp8::E4M3FN.max_value() * elem_max);
            (s_t, 1.0 / s_t)
        });
        Self {
            format,
            element: element_quantizer(element),
            e4m3: FpQuantizer::standard(StandardFp8::E4M3FN, 1.0).expect("unit scale"),
            elem_max,
            tensor_scale,
        }
    }

    /// Ready `format` for the tensor `x` (its largest magnitude sets a two-level tensor scale).
    pub fn for_tensor(format: BlockFormat, x: &[f32]) -> Self {
        let amax = if format.scale() == ScaleFormat::E4m3 {
            abs_max(x)
        } else {
            0.0
        };
        Self::new(format, amax)
    }

    /// The format.
    pub fn format(&self) -> BlockFormat {
        self.format
    }

    /// The FP32 tensor scale `s_t` of a two-level format.
    pub fn tensor_scale(&self) -> Option<f32> {
        self.tensor_scale.map(|(s, _)| s)
    }

    /// The unit-grid element quantizer.
    pub fn element(&self) -> Quantizer {
        self.element
    }

    /// The stored scale of a block with largest magnitude `amax` (NaN if a value is NaN or ±Inf).
    pub fn stored_scale(&self, amax: f32) -> StoredScale {
        match self.format.scale() {
            ScaleFormat::E8m0 => StoredScale::E8m0(e8m0_scale(amax, self.format.rule(), self.format.element())),
            ScaleFormat::F32 => StoredScale::F32(amax / self.elem_max),
            ScaleFormat::E4m3 => {
                let (s_t, _) = self.tensor_scale.expect("two-level");
                let raw = (amax / self.elem_max) / s_t;
                // NaN passes the clamp (torch.clamp keeps NaN)
                let clamped = if raw.is_nan() { raw } else { raw.clamp(E4M3_TINY, 448.0) };
                StoredScale::E4m3(StandardFp8::E4M3FN.encode(clamped, Overflow::Saturate))
            }
        }
    }

    fn block_scale(&self, amax: f32) -> BlockScale {
        match self.format.scale() {
            ScaleFormat::E8m0 => {
                let (r, x) = e8m0_pair(u32::from(e8m0_scale(amax, self.format.rule(), self.format.element())));
                BlockScale::Mul(r, x)
            }
            ScaleFormat::F32 => {
                let s = amax / self.elem_max;
                if s == 0.0 {
                    BlockScale::Zero
                } else {
                    BlockScale::Div(if amax.is_finite() { s } else { f32::NAN })
                }
            }
            ScaleFormat::E4m3 => {
                let (s_t, inv_t) = self.tensor_scale.expect("two-level");
                if s_t == 0.0 {
                    return BlockScale::Zero;
                }
                let raw = (amax / self.elem_max) / s_t;
                let s_b = if raw.is_nan() {
                    raw
                } else {
                    self.e4m3.quantize_value(raw.clamp(E4M3_TINY, 448.0))
                };
                if !amax.is_finite() || !s_t.is_finite() {
                    return BlockScale::Mul(f32::NAN, f32::NAN);
                }
                BlockScale::MulClamp(inv_t / s_b, s_t * s_b)
            }
        }
    }

    /// Quantize one contiguous row (blocks of `K` from its start, the last one possibly shorter)
    /// into `out`, on the calling thread.
    pub fn quantize_row(&self, row: &[f32], out: &mut [f32]) {
        assert_eq!(row.len(), out.len(), "row and output lengths differ");
        const GROUP: usize = 64;
        let k = self.format.block_size();
        // up to GROUP blocks at a time: scale into elements, round them all, scale back; each
        // pass is a vectorized loop over the group (in cache)
        let group = k.saturating_mul(GROUP);
        let (mut amax, mut into, mut back) = ([0f32; GROUP], [0f32; GROUP], [0f32; GROUP + 1]);
        let scale = self.format.scale();
        if scale == ScaleFormat::E8m0 {
            // one pass: block maximum, scale and values while the block is in L1
            let e = self.format.element();
            let p = E8m0Params {
                rule: self.format.rule(),
                emax: e.emax(),
                mbits: e.mantissa_bits().min(22),
                elem_max: self.elem_max,
            };
            match &self.element {
                Quantizer::Fp(q) => q.map_blocks_e8m0(row, out, k, &p),
                Quantizer::Int(q) => q.map_blocks_e8m0(row, out, k, &p),
            }
            return;
        }
        for (row, out) in row.chunks(group).zip(out.chunks_mut(group)) {
            let nb = row.len().div_ceil(k);
            block_amaxes(row, k, &mut amax[..nb]);
            if scale == ScaleFormat::E8m0 {
                let e = self.format.element();
                e8m0_multipliers(
                    &amax[..nb],
                    &mut into[..nb],
                    &mut back[..nb],
                    self.format.rule(),
                    e.emax(),
                    e.mantissa_bits().min(22),
                    self.elem_max,
                );
            } else if let (ScaleFormat::E4m3, Some((s_t, inv_t))) = (scale, self.tensor_scale) {
                // the group's block scales in vector loops: raw scale, clamp, E4M3 rounding
                let (amax, into, back) = (&amax[..nb], &mut into[..nb], &mut back[..nb]);
                let m = self.elem_max;
                for (a, r) in amax.iter().zip(into.iter_mut()) {
                    let raw = (a / m) / s_t;
                    // NaN passes (as torch.clamp keeps it)
                    *r = raw.clamp(E4M3_TINY, 448.0);
                }
                self.e4m3.quantize_inplace_serial(into);
                let dead = s_t == 0.0;
                let bad = !s_t.is_finite();
                for ((a, r), x) in amax.iter().zip(into.iter_mut()).zip(back.iter_mut()) {
                    let s_b = *r;
                    let nan = bad || !a.is_finite();
                    // an underflowed tensor scale: zero, keeping each value's sign (x·0, q·0)
                    (*r, *x) = if dead {
                        (0.0, 0.0)
                    } else if nan {
                        (f32::NAN, f32::NAN)
                    } else {
                        (inv_t / s_b, s_t * s_b)
                    };
                }
            } else {
                for b in 0..nb {
                    (into[b], back[b]) = match self.block_scale(amax[b]) {
                        BlockScale::Mul(r, x) | BlockScale::MulClamp(r, x) => (r, x),
                        BlockScale::Div(d) => (d, d),
                        // zero, keeping each value's sign: x·0 (or x/∞), then q·0
                        BlockScale::Zero if scale == ScaleFormat::F32 => (f32::INFINITY, 0.0),
                        BlockScale::Zero => (0.0, 0.0),
                    };
                }
            }
            let scaling = match scale {
                ScaleFormat::E8m0 => BlockScaling::Mul,
                ScaleFormat::F32 => BlockScaling::Div,
                ScaleFormat::E4m3 => {
                    back[nb] = self.elem_max; // the clamp's bound travels after the scales
                    BlockScaling::MulClamp
                }
            };
            let back = &back[..nb + usize::from(scaling == BlockScaling::MulClamp)];
            match &self.element {
                Quantizer::Fp(q) => q.map_blocks(scaling, row, out, k, &into[..nb], back),
                Quantizer::Int(q) => q.map_blocks(scaling, row, out, k, &into[..nb], back),
            }
        }
    }

    /// Quantize a tensor laid out as `layout` into `out`.
    pub fn quantize(&self, layout: BlockLayout, x: &[f32], out: &mut [f32]) -> Result<()> {
        check_lengths(layout, x.len(), out.len())?;
        if layout.numel() == 0 {
            return Ok(());
        }
        if layout.inner == 1 {
            self.quantize_rows(layout.len, x, out);
        } else {
            let mut t = vec![0f32; x.len()];
            transpose_to_rows(layout, x, &mut t);
            let mut q = vec![0f32; x.len()];
            self.quantize_rows(layout.len, &t, &mut q);
            transpose_from_rows(layout, &q, out);
        }
        Ok(())
    }

    /// Rows of `row_len`, in parallel: whole rows, or whole blocks of one long row.
    fn quantize_rows(&self, row_len: usize, x: &[f32], out: &mut [f32]) {
        const TASK: usize = 1 << 14;
        let k = self.format.block_size();
        // a task is a run of whole rows, or a run of whole blocks inside a row
        let piece = if row_len >= TASK {
            (TASK / k).max(1) * k
        } else {
            row_len * (TASK / row_len).max(1)
        };
        let run = |(x, o): (&[f32], &mut [f32])| {
            if row_len >= TASK {
                self.quantize_row(x, o);
            } else {
                x.chunks(row_len)
                    .zip(o.chunks_mut(row_len))
                    .for_each(|(x, o)| self.quantize_row(x, o));
            }
        };
        if row_len >= TASK {
            // split each row at block boundaries
            x.par_chunks(row_len)
                .zip(out.par_chunks_mut(row_len))
                .for_each(|(xr, or)| {
                    xr.par_chunks(piece).zip(or.par_chunks_mut(piece)).for_each(run);
                });
        } else if x.len() <= TASK {
            run((x, out));
        } else {
            x.par_chunks(piece).zip(out.par_chunks_mut(piece)).for_each(run);
        }
    }

    /// `Σ (q(x) - x)²` in `f64` over a tensor laid out as `layout`.
    pub fn sum_sq_error(&self, layout: BlockLayout, x: &[f32]) -> Result<f64> {
        let mut q = vec![0f32; x.len()];
        self.quantize(layout, x, &mut q)?;
        Ok(x.iter().zip(&q).map(|(&a, &b)| (b as f64 - a as f64).powi(2)).sum())
    }
}

/// Quantize–dequantize `x` (shape `shape`, blocks along `axis`) with `format` into `out`.
///
/// ```
/// use fp8q_core::format::BlockFormat;
/// use fp8q_core::quantizer::block_quantizer::quantize_blocks;
/// let f: BlockFormat = "mxfp4".parse().unwrap();
/// let x = [0.1f32, -3.0, 0.74, 2.9];
/// let mut q = [0f32; 4];
/// quantize_blocks(f, &x, &[4], -1, &mut q).unwrap();
/// // amax 3 -> X = 2^(1 - 2) = 0.5; elements 0.2, -6, 1.48, 5.8 -> 0, -6, 1.5, 6
/// assert_eq!(q, [0.0, -3.0, 0.75, 3.0]);
/// ```
pub fn quantize_blocks(format: BlockFormat, x: &[f32], shape: &[usize], axis: isize, out: &mut [f32]) -> Result<()> {
    let layout = BlockLayout::new(shape, axis)?;
    BlockQuantizer::for_tensor(format, x).quantize(layout, x, out)
}

/// [`quantize_blocks`] in place.
pub fn quantize_blocks_inplace(format: BlockFormat, data: &mut [f32], shape: &[usize], axis: isize) -> Result<()> {
    let layout = BlockLayout::new(shape, axis)?;
    let q = BlockQuantizer::for_tensor(format, data);
    let x = data.to_vec();
    q.quantize(layout, &x, data)
}

fn check_lengths(layout: BlockLayout, x: usize, out: usize) -> Result<()> {
    if x != layout.numel() || out != x {
        return Err(FormatError::Shape(format!(
            "a tensor of {} elements was expected; got {x} in and {out} out",
            layout.numel()
        )));
    }
    Ok(())
}

/// The largest magnitude, NaN if any value is NaN.
pub fn abs_max(x: &[f32]) -> f32 {
    x.par_chunks(1 << 16)
        .map(|c| {
            let mut a = [0f32];
            block_amaxes(c, c.len(), &mut a);
            a[0]
        })
        .reduce(
            || 0.0,
            |a, b| if a.is_nan() || b.is_nan() { f32::NAN } else { a.max(b) },
        )
}

/// The largest magnitude of a block, NaN if any value is NaN.
#[inline(always)]
fn block_amax(x: &[f32]) -> f32 {
    // 16 lanes with plain compares (no NaN-aware max), so the loop vectorizes
    const L: usize = 16;
    let (mut m, mut nan) = ([0f32; L], [0u32; L]);
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        for i in 0..L {
            let a = c[i].abs();
            m[i] = if a > m[i] { a } else { m[i] };
            nan[i] |= u32::from(c[i].is_nan());
        }
    }
    let mut top = 0f32;
    let mut bad = nan.iter().any(|&n| n != 0);
    for &v in chunks.remainder() {
        bad |= v.is_nan();
        top = if v.abs() > top { v.abs() } else { top };
    }
    for v in m {
        top = if v > top { v } else { top };
    }
    if bad {
        f32::NAN
    } else {
        top
    }
}

#[inline(always)]
fn block_amaxes_generic(x: &[f32], k: usize, out: &mut [f32]) {
    match k {
        16 => block_amaxes_fixed::<16>(x, out),
        32 => block_amaxes_fixed::<32>(x, out),
        _ => {
            for (b, o) in x.chunks(k).zip(out.iter_mut()) {
                *o = block_amax(b);
            }
        }
    }
}

#[inline(always)]
fn block_amaxes_fixed<const B: usize>(x: &[f32], out: &mut [f32]) {
    let mut xs = x.chunks_exact(B);
    let mut n = 0;
    for (x, o) in (&mut xs).zip(out.iter_mut()) {
        let x: &[f32; B] = x.try_into().expect("block");
        let (mut m, mut nan) = (0f32, 0u32);
        for v in x {
            let a = v.abs();
            m = if a > m { a } else { m };
            nan |= u32::from(v.is_nan());
        }
        *o = if nan != 0 { f32::NAN } else { m };
        n += 1;
    }
    if !xs.remainder().is_empty() {
        out[n] = block_amax(xs.remainder());
    }
}

/// The biased E8M0 byte of a block maximum, branch-free so that it vectorizes: from `amax`'s
/// `f32` bits as torchao computes it, clamped to `2^-127 ..= 2^127` (a finite block never gets
/// the NaN byte 255; a NaN or infinite maximum does).
#[inline(always)]
fn e8m0_byte(amax: f32, rule: ScaleRule, emax: i32, mbits: u32, elem_max: f32) -> u32 {
    let bits = amax.to_bits();
    let finite = (bits & 0x7f80_0000) != 0x7f80_0000;
    let b = match rule {
        ScaleRule::Rceil => {
            let d = (amax / elem_max).to_bits();
            let (exp, mant) = ((d >> 23) & 0xff, d & 0x7f_ffff);
            let up = if exp == 0 { mant > 0x40_0000 } else { mant != 0 };
            let b = exp + u32::from(up);
            if b > 254 {
                254
            } else {
                b
            }
        }
        _ => {
            // EVEN: amax rounded to the element's mantissa width first; near f32::MAX this carries
            // into the exponent field 255, which is 2^128 here (a finite amax), not an infinity
            // (torchao 0.18 gives this byte too; torchao's main branch gives NaN)
            let r = if rule == ScaleRule::Even {
                bits.wrapping_add(1 << (23 - mbits - 1)) & 0xff80_0000
            } else {
                bits
            };
            let up = i32::from(rule == ScaleRule::Ceil && r & 0x7f_ffff != 0);
            let e = ((r >> 23) & 0xff) as i32 - 127 + up - emax;
            (e.clamp(-127, 127) + 127) as u32
        }
    };
    if finite {
        b
    } else {
        255
    }
}

/// What a fused E8M0 block pass needs besides the element kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct E8m0Params {
    rule: ScaleRule,
    emax: i32,
    mbits: u32,
    elem_max: f32,
}

/// `2^(127 - b)` and `2^(b - 127)` for a biased E8M0 byte (NaN for 255), branch-free.
#[inline(always)]
fn e8m0_pair(b: u32) -> (f32, f32) {
    let r = if b == 254 {
        0x0040_0000
    } else {
        (254u32.wrapping_sub(b) & 0xff) << 23
    };
    let x = if b == 0 { 0x0040_0000 } else { b << 23 };
    if b == 255 {
        (f32::NAN, f32::NAN)
    } else {
        (f32::from_bits(r), f32::from_bits(x))
    }
}

/// One pass over blocks of `k`: each block's maximum, its E8M0 scale, and
/// `q(x · 2^(127-b)) · 2^(b-127)` for its values, while the block is in L1.
#[inline(always)]
fn blocks_e8m0_generic<K: ElementKernel>(x: &[f32], out: &mut [f32], k: usize, p: &E8m0Params, kern: &K) {
    // the common block sizes get loops of a known length (fully unrolled, no remainder)
    match k {
        32 => blocks_e8m0_fixed::<K, 32>(x, out, p, kern),
        16 => blocks_e8m0_fixed::<K, 16>(x, out, p, kern),
        _ => blocks_e8m0_any(x, out, k, p, kern),
    }
}

#[inline(always)]
fn blocks_e8m0_any<K: ElementKernel>(x: &[f32], out: &mut [f32], k: usize, p: &E8m0Params, kern: &K) {
    for (x, o) in x.chunks(k).zip(out.chunks_mut(k)) {
        let b = e8m0_byte(block_amax(x), p.rule, p.emax, p.mbits, p.elem_max);
        let (r, back) = e8m0_pair(b);
        for (x, o) in x.iter().zip(o.iter_mut()) {
            *o = kern.qdq(x * r) * back;
        }
    }
}

#[inline(always)]
fn blocks_e8m0_fixed<K: ElementKernel, const B: usize>(x: &[f32], out: &mut [f32], p: &E8m0Params, kern: &K) {
    // four blocks at a time: their maxima and scales are independent chains the core overlaps,
    // then their values
    const G: usize = 4;
    let mut xs = x.chunks_exact(B * G);
    let mut os = out.chunks_exact_mut(B * G);
    for (x, o) in (&mut xs).zip(&mut os) {
        let mut scales = [(0f32, 0f32); G];
        for (g, s) in scales.iter_mut().enumerate() {
            let xb: &[f32; B] = x[g * B..(g + 1) * B].try_into().expect("block");
            let (mut m, mut nan) = (0f32, 0u32);
            for v in xb {
                let a = v.abs();
                m = if a > m { a } else { m };
                nan |= u32::from(v.is_nan());
            }
            let amax = if nan != 0 { f32::NAN } else { m };
            *s = e8m0_pair(e8m0_byte(amax, p.rule, p.emax, p.mbits, p.elem_max));
        }
        for (g, (r, back)) in scales.into_iter().enumerate() {
            let xb: &[f32; B] = x[g * B..(g + 1) * B].try_into().expect("block");
            let ob: &mut [f32; B] = (&mut o[g * B..(g + 1) * B]).try_into().expect("block");
            for i in 0..B {
                ob[i] = kern.qdq(xb[i] * r) * back;
            }
        }
    }
    blocks_e8m0_any(xs.remainder(), os.into_remainder(), B, p, kern);
}

dispatch_by_cpu! {
    /// [`blocks_e8m0_generic`] for the CPU.
    pub(crate) fn blocks_e8m0<K: ElementKernel>(x: &[f32], out: &mut [f32], k: usize, p: &E8m0Params, kern: &K) => blocks_e8m0_generic;
}

#[inline(always)]
fn e8m0_multipliers_generic(
    amax: &[f32],
    into: &mut [f32],
    back: &mut [f32],
    rule: ScaleRule,
    emax: i32,
    mbits: u32,
    elem_max: f32,
) {
    for ((&a, i), o) in amax.iter().zip(into.iter_mut()).zip(back.iter_mut()) {
        // bytes 0 and 254 give the subnormal 2^-127; 255 is NaN
        (*i, *o) = e8m0_pair(e8m0_byte(a, rule, emax, mbits, elem_max));
    }
}

dispatch_by_cpu! {
    /// The E8M0 multipliers (into elements, back to values) of each block maximum.
    fn e8m0_multipliers(
        amax: &[f32],
        into: &mut [f32],
        back: &mut [f32],
        rule: ScaleRule,
        emax: i32,
        mbits: u32,
        elem_max: f32,
    ) => e8m0_multipliers_generic;
}

dispatch_by_cpu! {
    /// The largest magnitude of each block of `k` in `x` (NaN for a block with a NaN).
    fn block_amaxes(x: &[f32], k: usize, out: &mut [f32]) => block_amaxes_generic;
}
/// `[outer, len, inner]` → `[outer, inner, len]` (blocks along `len` become contiguous rows).
pub(crate) fn transpose_to_rows<T: Copy + Send + Sync>(l: BlockLayout, x: &[T], t: &mut [T]) {
    let plane = l.len * l.inner;
    if plane == 0 {
        return;
    }
    x.par_chunks(plane).zip(t.par_chunks_mut(plane)).for_each(|(x, t)| {
        for j in 0..l.len {
            for i in 0..l.inner {
                t[i * l.len + j] = x[j * l.inner + i];
            }
        }
    });
}

/// `[outer, inner, len]` → `[outer, len, inner]`, the inverse of [`transpose_to_rows`].
pub(crate) fn transpose_from_rows<T: Copy + Send + Sync>(l: BlockLayout, t: &[T], x: &mut [T]) {
    let plane = l.len * l.inner;
    if plane == 0 {
        return;
    }
    t.par_chunks(plane).zip(x.par_chunks_mut(plane)).for_each(|(t, x)| {
        for j in 0..l.len {
            for i in 0..l.inner {
                x[j * l.inner + i] = t[i * l.len + j];
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(s: &str) -> BlockFormat {
        s.parse().unwrap()
    }

    fn qdq(f: &str, x: &[f32]) -> Vec<f32> {
        let mut q = vec![0f32; x.len()];
        quantize_blocks(fmt(f), x, &[x.len()], -1, &mut q).unwrap();
        q
    }

    #[test]
    fn floor_scale_saturates_and_keeps_subnormals() {
        // amax 7.9 -> floor(log2) = 2 -> X = 2^(2-2) = 1: 7.9 saturates to 6, 0.26 -> 0.5 (subnormal element)
        let q = qdq("mxfp4", &[7.9, 0.26, -0.24, 2.5]);
        assert_eq!(q, [6.0, 0.5, 0.0, 2.0]);
        // ceil: X = 2 -> 7.9/2 = 3.95 -> 4 -> 8
        let q = qdq("e2m1@32:ceil", &[7.9, 0.26, -0.24, 2.5]);
        assert_eq!(q, [8.0, 0.0, 0.0, 2.0]);
        // rceil: smallest 2^k >= 7.9/6 -> 2: same as ceil here
        assert_eq!(qdq("e2m1@32:rceil", &[7.9, 2.5]), [8.0, 2.0]);
        // even: 7.9 rounded to 1 mantissa bit is 8 -> floor(log2) = 3 -> X = 2
        assert_eq!(qdq("e2m1@32:even", &[7.9, 2.5]), [8.0, 2.0]);
    }

    #[test]
    fn zero_blocks_nan_blocks_and_ragged_ends() {
        let x = [0.0f32, 0.0, 1.0, f32::NAN, 5.0];
        let mut q = vec![0f32; 5];
        quantize_blocks(fmt("e2m1@2"), &x, &[5], -1, &mut q).unwrap();
        assert_eq!(&q[..2], &[0.0, 0.0]);
        assert!(q[2].is_nan() && q[3].is_nan());
        assert_eq!(q[4], 4.0); // a block of one: amax 5 -> X = 1 -> 5 -> 4 (tie to even)
        let inf = [1.0f32, f32::INFINITY, 1.0];
        for f in ["e2m1@2", "e2m1@2/f32", "e2m1@2:rceil"] {
            let mut q = vec![0f32; 3];
            quantize_blocks(fmt(f), &inf, &[3], -1, &mut q).unwrap();
            assert!(q[0].is_nan() && q[1].is_nan() && q[2] == 1.0, "{f} {q:?}");
        }
        // an all-zero tensor stays zero under every scale format
        for f in ["mxfp4", "nvfp4", "int4@4/f32", "mxint8"] {
            assert_eq!(qdq(f, &[0.0; 40]), vec![0.0; 40], "{f}");
        }
    }

    #[test]
    fn an_outlier_changes_only_its_own_block() {
        let x: Vec<f32> = (0..96).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.01).collect();
        let mut y = x.clone();
        y[40] = 1000.0;
        let (a, b) = (qdq("mxfp6_e2m3", &x), qdq("mxfp6_e2m3", &y));
        for i in 0..96 {
            if !(32..64).contains(&i) {
                assert_eq!(a[i], b[i], "{i}");
            }
        }
        assert!((32..64).any(|i| a[i] != b[i]));
    }

    #[test]
    fn block_axis_equals_a_transpose() {
        // [2, 5, 3] with blocks along axis 1 equals the transposed tensor with blocks along its last axis
        let x: Vec<f32> = (0..30).map(|i| ((i * 7919 % 31) as f32 - 15.0) / 3.0).collect();
        let mut q = vec![0f32; 30];
        quantize_blocks(fmt("e2m1@2"), &x, &[2, 5, 3], 1, &mut q).unwrap();
        let mut t = vec![0f32; 30];
        for o in 0..2 {
            for j in 0..5 {
                for i in 0..3 {
                    t[o * 15 + i * 5 + j] = x[o * 15 + j * 3 + i];
                }
            }
        }
        let mut qt = vec![0f32; 30];
        quantize_blocks(fmt("e2m1@2"), &t, &[2, 3, 5], -1, &mut qt).unwrap();
        for o in 0..2 {
            for j in 0..5 {
                for i in 0..3 {
                    assert_eq!(q[o * 15 + j * 3 + i], qt[o * 15 + i * 5 + j]);
                }
            }
        }
        assert!(BlockLayout::new(&[2, 3], 2).is_err());
        assert!(BlockLayout::new(&[2, 3], -3).is_err());
        assert!(BlockLayout::new(&[], 0).is_err());
    }

    #[test]
    fn parallel_rows_and_long_rows_equal_the_serial_row() {
        let n = 3 * (1 << 15) + 17;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i as f32) * 0.618).sin() * (1.0 + (i % 97) as f32))
            .collect();
        for f in ["mxfp8_e4m3", "nvfp4", "int4@128/f32"] {
            let q = BlockQuantizer::for_tensor(fmt(f), &x);
            let mut serial = vec![0f32; n];
            q.quantize_row(&x, &mut serial);
            let mut par = vec![0f32; n];
            q.quantize(BlockLayout::new(&[n], 0).unwrap(), &x, &mut par).unwrap();
            assert_eq!(serial, par, "{f}");
            // many short rows
            let rows = BlockLayout::new(&[n / 48, 48], 1).unwrap();
            let m = rows.numel();
            let mut par = vec![0f32; m];
            q.quantize(rows, &x[..m], &mut par).unwrap();
            for (r, p) in x[..m].chunks(48).zip(par.chunks(48)) {
                let mut s = vec![0f32; 48];
                q.quantize_row(r, &mut s);
                assert_eq!(s, p, "{f}");
            }
        }
    }

    #[test]
    fn even_rounding_up_to_2_pow_128_is_a_finite_scale() {
        // f32::MAX rounded to 3 mantissa bits carries into the exponent field 255: that is 2^128,
        // not an infinity, so X = 2^(128 - 8) (torchao's EVEN gives the same byte)
        let e4m3 = fmt("mxfp8_e4m3").element();
        assert_eq!(e8m0_scale(f32::MAX, ScaleRule::Even, e4m3), 127 + 120);
        let q = qdq("float8_e4m3fn@32:even", &[f32::MAX, 1e37, -3e36]);
        assert!(q.iter().all(|v| !v.is_nan()), "{q:?}");
        assert_eq!(q[0], f32::INFINITY); // 448 · 2^120 is past f32
        assert_eq!(q[1], 7.5 * 2f32.powi(120));
        // an element whose emax is 0 (INT8) would need 2^128: the scale saturates at 2^127
        let int8 = fmt("mxint8").element();
        for rule in ScaleRule::ALL {
            assert_eq!(e8m0_scale(f32::MAX, rule, int8), 254, "{rule}");
        }
        assert!(qdq("int8@32:even", &[f32::MAX, 1.0]).iter().all(|v| v.is_finite()));
    }

    #[test]
    fn a_zero_scale_keeps_the_sign_of_zero() {
        // NVFP4's tensor scale underflows to 0 for a tiny tensor: values flush to signed zeros
        let x = [-1e-44f32, 2e-44, -0.0, 0.0];
        let q = BlockQuantizer::for_tensor(fmt("nvfp4"), &x);
        assert_eq!(q.tensor_scale(), Some(0.0));
        let bits: Vec<u32> = qdq("nvfp4", &x).iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, [0x8000_0000, 0, 0x8000_0000, 0]);
        // an all-zero block under an F32 scale
        let bits: Vec<u32> = qdq("e2m1@4/f32", &[-0.0, 0.0, -0.0, -0.0])
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(bits, [0x8000_0000, 0, 0x8000_0000, 0x8000_0000]);
    }

    #[test]
    fn e8m0_bytes() {
        let e4m3 = fmt("mxfp8_e4m3").element();
        // 448 = 1.75 · 2^8 -> 2^0 -> 127; 2^-140 -> clamped to 2^-127 -> 0
        assert_eq!(e8m0_scale(448.0, ScaleRule::Floor, e4m3), 127);
        assert_eq!(e8m0_scale(0.0, ScaleRule::Floor, e4m3), 0);
        assert_eq!(e8m0_scale(f32::NAN, ScaleRule::Floor, e4m3), 255);
        assert_eq!(e8m0_scale(f32::INFINITY, ScaleRule::Ceil, e4m3), 255);
        assert_eq!(e8m0_scale(f32::MAX, ScaleRule::Floor, e4m3), 127 + 127 - 8);
        // rceil: 448/448 = 1 -> 127; 449/448 -> 2 -> 128
        assert_eq!(e8m0_scale(448.0, ScaleRule::Rceil, e4m3), 127);
        assert_eq!(e8m0_scale(449.0, ScaleRule::Rceil, e4m3), 128);
        assert_eq!(e8m0_value(0), 2f32.powi(-127));
        assert_eq!(e8m0_value(254), 2f32.powi(127));
        for b in 0..=254u8 {
            assert_eq!(e8m0_value(b) * e8m0_reciprocal(b), 1.0, "{b}");
        }
    }
}
