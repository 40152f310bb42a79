//! One weight `[out, in]` encoded in a deployed format: the tensors a layout stores for it, and
//! the values a reader dequantizes them to (what the export's SQNR measures and what the tests
//! compare with compressed-tensors' reader).
//!
//! The arithmetic is the serving stacks' (compressed-tensors and llm-compressor; see
//! `docs/export.md`), in `f32`:
//!
//! * **8-bit floats**: `scale = amax / max_finite` (per tensor, or per row with per-channel), the
//!   codes `encode(x / scale)` rounded to nearest even and saturated at `±max_finite`, the values
//!   `decode(code) · scale`. A zero scale (a row of zeros) becomes 2^-23, as compressed-tensors
//!   makes it. compressed-tensors has no `float8_e5m2` weights.
//! * **int8**: fp8q's symmetric grid, `scale = amax / 127` per row, codes
//!   `round_half_even(x / scale)` (in `[-127, 127]`), values `code · scale`; stored as
//!   compressed-tensors stores weight-only integers (`pack-quantized`: four offset-binary bytes
//!   to an `int32`, and the shape).
//! * **MX** (`mxfp8_e4m3`, `mxfp6_e2m3`, `mxfp4`; MXFP6 packs four codes in three bytes): fp8q's block quantizer, blocks of 32 along the row, E8M0
//!   scales by the format's rule (bit-identical to torchao's `to_mx`), values `element · 2^e`.
//! * **NVFP4, Model-Optimizer's layout**: fp8q's NVFP4 (bit-identical to torchao's `nvfp4_quantize`
//!   with `per_tensor_scale = amax / 2688`), the tensor scale stored as `weight_scale_2`, values
//!   `element · scale · tensor_scale`.
//! * **NVFP4, compressed-tensors' layout**: the compressed-tensors convention: `global_scale = 448 · 6 / amax`, each block of 16
//!   gets the E4M3 scale `encode(global_scale · block_amax / 6)`, its elements are
//!   `E2M1(x / (scale / global_scale))` (a zero scale is stored as 0.125), and the values
//!   `bf16(element · (scale / global_scale))`: compressed-tensors dequantizes NVFP4 in bf16.

use fp8q_core::format::{BlockElement, Overflow, StandardFp8};
use fp8q_core::quantizer::block_codes::{decode_blocks, element_codes, encode_blocks_with, BlockScales};
use fp8q_core::quantizer::block_quantizer::BlockQuantizer;
use fp8q_core::quantizer::fp8_cast::Fp8Cast;
use fp8q_core::quantizer::FpQuantizer;
use rayon::prelude::*;
use safetensors::Dtype;

use crate::error::{ExportError, Result};
use crate::format::ExportFormat;
use crate::layout::Layout;

/// A tensor a layout stores for a weight: its name suffix (`weight`, `weight_scale`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct PartSpec {
    /// The name after the module's (`weight_packed`).
    pub suffix: &'static str,
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
}

/// A stored tensor with its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// What it is.
    pub spec: PartSpec,
    /// Its little-endian bytes.
    pub data: Vec<u8>,
}

/// A weight encoded: the stored tensors (in the order of [`parts`]) and the dequantized values.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The stored tensors.
    pub parts: Vec<Part>,
    /// What a reader dequantizes them to, row-major `[out, in]`.
    pub values: Vec<f32>,
}

fn fp8_dtype(e: StandardFp8) -> Dtype {
    if e == StandardFp8::E5M2 {
        Dtype::F8_E5M2
    } else {
        Dtype::F8_E4M3
    }
}

/// The tensors `layout` stores for a weight of `shape` (`[out, in]`) in `format`, without
/// computing them (they fix the checkpoint's header). Checks that the weight can be exported.
pub fn parts(format: &ExportFormat, layout: Layout, name: &str, shape: &[usize]) -> Result<Vec<PartSpec>> {
    let bad = |why: String| ExportError::Tensor {
        name: name.to_string(),
        why,
    };
    let [out, cols] = *shape else {
        return Err(bad(format!(
            "{} is exported as a 2-D weight; its shape is {shape:?}",
            format.name()
        )));
    };
    let part = |suffix, dtype, shape: Vec<usize>| PartSpec { suffix, dtype, shape };
    if let Some(b) = format.block() {
        let k = b.block_size();
        if cols % k != 0 {
            return Err(bad(format!(
                "{} needs an input dimension that is a multiple of its block size {k}; shape {shape:?}",
                format.name()
            )));
        }
    }
    let scale_rows = if format.per_channel() { vec![out, 1] } else { vec![1] };
    Ok(match (layout, format) {
        (Layout::CompressedTensors, ExportFormat::Fp8 { encoding, .. }) => {
            if *encoding != StandardFp8::E4M3FN {
                return Err(ExportError::Format {
                    name: format.name(),
                    why: "compressed-tensors has no float8_e5m2 weights (an 8-bit float weight is float8_e4m3fn \
                          there); export float8_e4m3fn"
                        .into(),
                });
            }
            vec![
                part("weight", fp8_dtype(*encoding), vec![out, cols]),
                part("weight_scale", Dtype::F32, scale_rows),
            ]
        }
        (Layout::CompressedTensors, ExportFormat::Int8) => vec![
            part("weight_packed", Dtype::I32, vec![out, cols.div_ceil(4)]),
            part("weight_scale", Dtype::F32, scale_rows),
            part("weight_shape", Dtype::I64, vec![2]),
        ],
        (Layout::CompressedTensors, ExportFormat::Mx(b)) => {
            let scales = vec![out, cols / b.block_size()];
            if format.packed() {
                vec![
                    part("weight_packed", Dtype::U8, vec![out, cols / 2]),
                    part("weight_scale", Dtype::U8, scales),
                ]
            } else if format.element_bits() == 6 {
                vec![
                    part("weight_packed", Dtype::U8, vec![out, cols / 4 * 3]),
                    part("weight_scale", Dtype::U8, scales),
                ]
            } else {
                let e = format
                    .element_encoding()
                    .expect("8-bit MX elements are standard encodings");
                vec![
                    part("weight", fp8_dtype(e), vec![out, cols]),
                    part("weight_scale", Dtype::U8, scales),
                ]
            }
        }
        (Layout::CompressedTensors, ExportFormat::Nvfp4(b)) => vec![
            part("weight_packed", Dtype::U8, vec![out, cols / 2]),
            part("weight_scale", Dtype::F8_E4M3, vec![out, cols / b.block_size()]),
            part("weight_global_scale", Dtype::F32, vec![1]),
        ],
        (Layout::ModelOpt, ExportFormat::Nvfp4(b)) => vec![
            part("weight", Dtype::U8, vec![out, cols / 2]),
            part("weight_scale", Dtype::F8_E4M3, vec![out, cols / b.block_size()]),
            part("weight_scale_2", Dtype::F32, vec![]),
        ],
        (Layout::ModelOpt, _) => {
            return Err(ExportError::Format {
                name: format.name(),
                why: "the modelopt layout is written for NVFP4 weights (W4A16_NVFP4); export other formats with \
                      --layout compressed-tensors"
                    .into(),
            })
        }
    })
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Largest magnitude of `x`; an error naming the tensor on NaN or ±Inf. (With the sign
/// cleared, a finite float's bits grow with its magnitude, and NaN and ±Inf lie above them.)
pub fn finite_abs_max(name: &str, x: &[f32]) -> Result<f32> {
    let bits = x
        .par_chunks(1 << 16)
        .map(|c| c.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff)))
        .max()
        .unwrap_or(0);
    if bits >= 0x7f80_0000 {
        return Err(ExportError::Tensor {
            name: name.to_string(),
            why: "holds NaN or infinite values; they have no quantized code".into(),
        });
    }
    Ok(f32::from_bits(bits))
}

/// `amax / top` in `f32`; a zero scale (a zero row, or one that underflows) becomes `f32`'s
/// epsilon, 2^-23, as compressed-tensors' observers make it.
fn scale_of(amax: f32, top: f32) -> f32 {
    let s = amax / top;
    if s == 0.0 {
        f32::EPSILON
    } else {
        s
    }
}

/// Whether `format` needs the whole tensor's largest magnitude before its first piece (a
/// per-tensor scale: the 8-bit floats without per-channel, and NVFP4's tensor scale).
pub fn needs_tensor_amax(format: &ExportFormat) -> bool {
    match format {
        ExportFormat::Fp8 { per_channel, .. } => !per_channel,
        ExportFormat::Nvfp4(_) => true,
        ExportFormat::Int8 | ExportFormat::Mx(_) => false,
    }
}

/// What an encoder keeps between pieces.
enum Kind {
    Fp8 {
        encoding: StandardFp8,
        /// The per-tensor scale (`None`: one per row).
        scale: Option<f32>,
        cast: Fp8Cast,
    },
    Int8,
    /// fp8q's block quantizer (MX, and NVFP4 in Model-Optimizer's layout).
    Block(BlockQuantizer),
    /// NVFP4 in compressed-tensors' convention.
    Nvfp4Ct {
        global: f32,
        k: usize,
        unit: FpQuantizer,
        element: BlockElement,
    },
}

/// Encodes one weight piece by piece, so that a tensor is never held whole: the first stored
/// tensor of [`parts`] (the codes) is produced piece by piece, the others (scales) are kept and
/// given by [`WeightEncoder::finish`].
pub struct WeightEncoder {
    format: ExportFormat,
    layout: Layout,
    name: String,
    out: usize,
    cols: usize,
    /// Elements encoded so far.
    done: usize,
    kind: Kind,
    /// `f32` scales (per row, or the tensor's).
    scales: Vec<f32>,
    /// Byte scales (E8M0 or E4M3 block scales).
    scale_bytes: Vec<u8>,
    /// Model-Optimizer's NVFP4 tensor scale.
    tensor_scale: Option<f32>,
}

impl WeightEncoder {
    /// Ready a weight of `shape` (`[out, in]`); `tensor_amax` is the whole tensor's largest
    /// magnitude ([`finite_abs_max`]), needed when [`needs_tensor_amax`] says so.
    pub fn new(
        format: &ExportFormat,
        layout: Layout,
        name: &str,
        shape: &[usize],
        tensor_amax: Option<f32>,
    ) -> Result<Self> {
        parts(format, layout, name, shape)?;
        let (out, cols) = (shape[0], shape[1]);
        let fail = |e: fp8q_core::error::FormatError| ExportError::Tensor {
            name: name.to_string(),
            why: e.to_string(),
        };
        let amax = match tensor_amax {
            Some(a) if !a.is_finite() || a < 0.0 => {
                return Err(ExportError::Tensor {
                    name: name.to_string(),
                    why: "holds NaN or infinite values; they have no quantized code".into(),
                })
            }
            Some(a) => a,
            None if needs_tensor_amax(format) => {
                return Err(ExportError::Invalid(format!(
                    "{}: {} needs the tensor's largest magnitude before encoding",
                    name,
                    format.name()
                )))
            }
            None => 0.0,
        };
        let mut tensor_scale = None;
        let kind = match format {
            ExportFormat::Fp8 { encoding, per_channel } => Kind::Fp8 {
                encoding: *encoding,
                scale: (!per_channel).then(|| scale_of(amax, encoding.max_value())),
                cast: Fp8Cast::new(*encoding),
            },
            ExportFormat::Int8 => Kind::Int8,
            ExportFormat::Mx(b) => Kind::Block(BlockQuantizer::new(*b, 0.0)),
            ExportFormat::Nvfp4(b) if layout == Layout::ModelOpt => {
                // fp8q's NVFP4 (torchao's nvfp4_quantize with per_tensor_scale = amax / 2688),
                // which Model-Optimizer stores as is: the tensor scale multiplies
                let q = BlockQuantizer::new(*b, amax);
                tensor_scale = q.tensor_scale();
                Kind::Block(q)
            }
            ExportFormat::Nvfp4(b) => {
                let BlockElement::Fp(fp4) = b.element() else {
                    unreachable!("NVFP4 elements are E2M1")
                };
                let top = StandardFp8::E4M3FN.max_value() * 6.0;
                let global = top / amax.max(f32::MIN_POSITIVE);
                Kind::Nvfp4Ct {
                    global: if global.is_finite() { global } else { 1.0 },
                    k: b.block_size(),
                    unit: FpQuantizer::new(fp4, 6.0).map_err(fail)?,
                    element: b.element(),
                }
            }
        };
        let scales = match &kind {
            Kind::Fp8 { scale: Some(s), .. } => vec![*s],
            _ => Vec::new(),
        };
        Ok(WeightEncoder {
            format: *format,
            layout,
            name: name.to_string(),
            out,
            cols,
            done: 0,
            kind,
            scales,
            scale_bytes: Vec::new(),
            tensor_scale,
        })
    }

    /// A piece holds a multiple of this many elements (whole rows for per-row scales, whole
    /// blocks for block formats).
    pub fn piece_unit(&self) -> usize {
        match self.format {
            ExportFormat::Fp8 { per_channel: true, .. } | ExportFormat::Int8 => self.cols.max(1),
            ExportFormat::Fp8 { .. } => 1,
            ExportFormat::Mx(b) | ExportFormat::Nvfp4(b) => b.block_size(),
        }
    }

    /// Encode the next piece `x` (row-major, continuing where the last piece ended; a multiple of
    /// [`WeightEncoder::piece_unit`] elements): its stored bytes of the first part are appended
    /// to `stored`, and what a reader dequantizes them to is written to `values` (`x`'s length).
    /// Returns `(Σ x², Σ (x − value)²)` over the piece.
    pub fn encode_piece(&mut self, x: &[f32], stored: &mut Vec<u8>, values: &mut [f32]) -> Result<(f64, f64)> {
        let total = self.out * self.cols;
        if !x.len().is_multiple_of(self.piece_unit()) || self.done + x.len() > total || values.len() != x.len() {
            return Err(ExportError::Tensor {
                name: self.name.clone(),
                why: format!(
                    "a piece of {} values at element {} of {total} (pieces hold multiples of {})",
                    x.len(),
                    self.done,
                    self.piece_unit()
                ),
            });
        }
        let name = self.name.clone();
        let fail = |e: fp8q_core::error::FormatError| ExportError::Tensor {
            name: name.clone(),
            why: e.to_string(),
        };
        let cols = self.cols;
        let mut sums = None;
        match &self.kind {
            Kind::Fp8 { encoding, scale, cast } => {
                let encoding = *encoding;
                let row_scales: Vec<f32> = match scale {
                    Some(_) => Vec::new(),
                    None => row_amax(&name, x, cols)?
                        .into_iter()
                        .map(|a| scale_of(a, encoding.max_value()))
                        .collect(),
                };
                let at = stored.len();
                stored.resize(at + x.len(), 0);
                let piece = if scale.is_some() { 1 << 16 } else { cols.max(1) };
                let codes = &mut stored[at..];
                sums = Some(
                    codes
                        .par_chunks_mut(piece)
                        .zip(values.par_chunks_mut(piece))
                        .zip(x.par_chunks(piece))
                        .enumerate()
                        .map(|(r, ((c, v), xr))| cast.cast(xr, scale.unwrap_or_else(|| row_scales[r]), c, v))
                        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1)),
                );
                self.scales.extend(row_scales);
            }
            Kind::Int8 => {
                let scales: Vec<f32> = row_amax(&name, x, cols)?
                    .into_iter()
                    .map(|a| scale_of(a, 127.0))
                    .collect();
                let words = cols.div_ceil(4);
                let rows = x.len() / cols.max(1);
                let mut packed = vec![0u32; rows * words];
                packed
                    .par_chunks_mut(words.max(1))
                    .zip(values.par_chunks_mut(cols.max(1)))
                    .zip(x.par_chunks(cols.max(1)))
                    .zip(scales.par_iter())
                    .for_each(|(((p, v), xr), &s)| {
                        for (i, (v, &xv)) in v.iter_mut().zip(xr).enumerate() {
                            // round half to even by adding and taking away 1.5 · 2^23 (exact
                            // for |t| < 2^22; a vector-friendly round_ties_even)
                            let q = ((xv / s).clamp(-128.0, 127.0) + 12_582_912.0) - 12_582_912.0;
                            // offset binary, four to a little-endian int32, the first in the low byte
                            p[i / 4] |= ((q as i32 + 128) as u32) << (8 * (i % 4));
                            *v = q * s;
                        }
                    });
                stored.extend(packed.iter().flat_map(|w| w.to_le_bytes()));
                self.scales.extend(scales);
            }
            Kind::Block(q) => {
                finite_abs_max(&name, x)?;
                let b = q.format();
                let shape = [x.len() / b.block_size(), b.block_size()];
                let enc = encode_blocks_with(q, x, &shape, 1).map_err(fail)?;
                values.copy_from_slice(&decode_blocks(b, &enc, &shape, 1).map_err(fail)?);
                match enc.scales {
                    BlockScales::E8m0(v) | BlockScales::E4m3(v) => self.scale_bytes.extend(v),
                    BlockScales::F32(_) => unreachable!("deployed block formats have byte scales"),
                }
                if self.format.element_bits() == 6 {
                    // four 6-bit codes to three bytes, little-endian, the first in the low bits
                    stored.extend(enc.codes.chunks(4).flat_map(|c| {
                        let w = c
                            .iter()
                            .enumerate()
                            .fold(0u32, |w, (i, &v)| w | (u32::from(v & 0x3f) << (6 * i)));
                        [w as u8, (w >> 8) as u8, (w >> 16) as u8]
                    }));
                } else {
                    stored.extend(enc.codes);
                }
            }
            Kind::Nvfp4Ct {
                global,
                k,
                unit,
                element,
            } => {
                let (global, k, element) = (*global, *k, *element);
                let e4m3 = StandardFp8::E4M3FN;
                // a zero block scale is stored as 0.125, as compressed-tensors stores it
                let eighth = e4m3.encode(0.125, Overflow::Saturate);
                let mut elems = vec![0f32; x.len()];
                let mut scale_codes = vec![0u8; x.len() / k];
                elems
                    .par_chunks_mut(k)
                    .zip(values.par_chunks_mut(k))
                    .zip(scale_codes.par_iter_mut())
                    .zip(x.par_chunks(k))
                    .for_each(|(((e, v), sc), xb)| {
                        let bmax = xb.iter().fold(0f32, |m, &t| m.max(t.abs()));
                        *sc = e4m3.encode(global * (bmax / 6.0), Overflow::Saturate);
                        if e4m3.decode(*sc) == 0.0 {
                            *sc = eighth;
                        }
                        let s = e4m3.decode(*sc) / global;
                        for (e, &xv) in e.iter_mut().zip(xb) {
                            *e = xv / s;
                        }
                        unit.quantize_inplace_serial(e);
                        // compressed-tensors dequantizes in bf16: the product is rounded to bf16
                        for (e, v) in e.iter().zip(v.iter_mut()) {
                            *v = half::bf16::from_f32(*e * s).to_f32();
                        }
                    });
                let mut codes = vec![0u8; elems.len()];
                codes
                    .par_chunks_mut(1 << 16)
                    .zip(elems.par_chunks(1 << 16))
                    .for_each(|(c, e)| element_codes(element, e, e, c));
                stored.extend(
                    codes
                        .chunks(2)
                        .map(|p| (p[0] & 0xf) | (p.get(1).copied().unwrap_or(0) & 0xf) << 4),
                );
                self.scale_bytes.extend(scale_codes);
            }
        }
        self.done += x.len();
        Ok(sums.unwrap_or_else(|| error_sums(x, values)))
    }

    /// The stored tensors after the first (scales, the tensor scale, the shape), in the order of
    /// [`parts`]; an error unless every element was encoded.
    pub fn finish(self) -> Result<Vec<Vec<u8>>> {
        let total = self.out * self.cols;
        if self.done != total {
            return Err(ExportError::Tensor {
                name: self.name,
                why: format!("{} of its {total} values were encoded", self.done),
            });
        }
        let mut scales = self.scales;
        if self.format.per_channel() && self.cols == 0 {
            // rows without values: a zero scale each
            scales = vec![f32::EPSILON; self.out];
        }
        Ok(match (&self.kind, self.layout) {
            (Kind::Fp8 { .. }, _) => vec![f32_bytes(&scales)],
            (Kind::Int8, _) => vec![
                f32_bytes(&scales),
                [self.out as i64, self.cols as i64]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ],
            (Kind::Block(_), Layout::ModelOpt) => vec![
                self.scale_bytes,
                f32_bytes(&[self.tensor_scale.expect("NVFP4 has a tensor scale")]),
            ],
            (Kind::Block(_), _) => vec![self.scale_bytes],
            (Kind::Nvfp4Ct { global, .. }, _) => vec![self.scale_bytes, f32_bytes(&[*global])],
        })
    }
}

/// `(Σ x², Σ (x − q)²)`, in eight lanes of `f64` (so that the loop vectorizes).
fn error_sums(x: &[f32], q: &[f32]) -> (f64, f64) {
    x.par_chunks(1 << 16)
        .zip(q.par_chunks(1 << 16))
        .map(|(x, q)| {
            let (mut s, mut n) = ([0f64; 8], [0f64; 8]);
            for (xs, qs) in x.chunks(8).zip(q.chunks(8)) {
                for l in 0..xs.len() {
                    let (a, b) = (f64::from(xs[l]), f64::from(qs[l]));
                    s[l] += a * a;
                    n[l] += (a - b) * (a - b);
                }
            }
            (s.iter().sum::<f64>(), n.iter().sum::<f64>())
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// Largest magnitude of each row of `cols` values; an error on NaN or ±Inf.
fn row_amax(name: &str, x: &[f32], cols: usize) -> Result<Vec<f32>> {
    // the largest pattern with the sign cleared (NaN and ±Inf lie above every finite one)
    let bits: Vec<u32> = x
        .par_chunks(cols.max(1))
        .map(|r| r.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff)))
        .collect();
    if bits.iter().any(|&b| b >= 0x7f80_0000) {
        return Err(ExportError::Tensor {
            name: name.to_string(),
            why: "holds NaN or infinite values; they have no quantized code".into(),
        });
    }
    Ok(bits.into_iter().map(f32::from_bits).collect())
}

/// Encode a whole weight of `shape` (`[out, in]`, row-major `x`) as `layout` stores it in
/// `format` (one piece of a [`WeightEncoder`]).
pub fn encode(format: &ExportFormat, layout: Layout, name: &str, x: &[f32], shape: &[usize]) -> Result<Encoded> {
    let specs = parts(format, layout, name, shape)?;
    if x.len() != shape[0] * shape[1] {
        return Err(ExportError::Tensor {
            name: name.to_string(),
            why: format!("{} values for shape {shape:?}", x.len()),
        });
    }
    let amax = if needs_tensor_amax(format) {
        Some(finite_abs_max(name, x)?)
    } else {
        None
    };
    let mut enc = WeightEncoder::new(format, layout, name, shape, amax)?;
    let mut first = Vec::new();
    let mut values = vec![0f32; x.len()];
    if !x.is_empty() {
        enc.encode_piece(x, &mut first, &mut values)?;
    }
    let datas = std::iter::once(first).chain(enc.finish()?);
    let parts = specs
        .into_iter()
        .zip(datas)
        .map(|(spec, data)| Part { spec, data })
        .collect();
    Ok(Encoded { parts, values })
}
