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
use fp8q_core::quantizer::block_codes::{decode_blocks, encode_blocks, BlockScales};
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

/// Largest magnitude of each row (one row: the whole tensor); an error on NaN or ±Inf.
fn amax_rows(name: &str, x: &[f32], rows: usize) -> Result<Vec<f32>> {
    let len = x.len() / rows.max(1);
    let amax: Vec<f32> = x
        .par_chunks(len.max(1))
        .map(|r| {
            r.iter()
                .fold(0f32, |m, &v| if v.is_finite() { m.max(v.abs()) } else { f32::NAN })
        })
        .collect();
    if amax.iter().any(|a| a.is_nan()) {
        return Err(ExportError::Tensor {
            name: name.to_string(),
            why: "holds NaN or infinite values; they have no quantized code".into(),
        });
    }
    Ok(if x.is_empty() { vec![0.0; rows] } else { amax })
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

/// Encode a weight of `shape` (`[out, in]`, row-major `x`) as `layout` stores it in `format`.
pub fn encode(format: &ExportFormat, layout: Layout, name: &str, x: &[f32], shape: &[usize]) -> Result<Encoded> {
    let specs = parts(format, layout, name, shape)?;
    let (out, cols) = (shape[0], shape[1]);
    if x.len() != out * cols {
        return Err(ExportError::Tensor {
            name: name.to_string(),
            why: format!("{} values for shape {shape:?}", x.len()),
        });
    }
    let fail = |e: fp8q_core::error::FormatError| ExportError::Tensor {
        name: name.to_string(),
        why: e.to_string(),
    };
    let row_len = cols.max(1);
    let (datas, values): (Vec<Vec<u8>>, Vec<f32>) = match format {
        ExportFormat::Fp8 { encoding, per_channel } => {
            let rows = if *per_channel { out } else { 1 };
            let scales: Vec<f32> = amax_rows(name, x, rows)?
                .iter()
                .map(|&a| scale_of(a, encoding.max_value()))
                .collect();
            let per_row = |r: usize| scales[if *per_channel { r } else { 0 }];
            let mut codes = vec![0u8; x.len()];
            let mut values = vec![0f32; x.len()];
            let lut: Vec<f32> = (0..=255u8).map(|c| encoding.decode(c)).collect();
            // per-tensor scales: split rows into pieces anyway, so both cores work on one row
            let piece = if *per_channel { row_len } else { 1 << 16 };
            codes
                .par_chunks_mut(piece)
                .zip(values.par_chunks_mut(piece))
                .zip(x.par_chunks(piece))
                .enumerate()
                .for_each(|(r, ((c, v), xr))| {
                    let s = per_row(r);
                    for ((c, v), &xv) in c.iter_mut().zip(v.iter_mut()).zip(xr) {
                        *c = encoding.encode(xv / s, Overflow::Saturate);
                        *v = lut[*c as usize] * s;
                    }
                });
            (vec![codes, f32_bytes(&scales)], values)
        }
        ExportFormat::Int8 => {
            let scales: Vec<f32> = amax_rows(name, x, out)?.iter().map(|&a| scale_of(a, 127.0)).collect();
            let words = cols.div_ceil(4);
            let mut packed = vec![0u32; out * words];
            let mut values = vec![0f32; x.len()];
            packed
                .par_chunks_mut(words.max(1))
                .zip(values.par_chunks_mut(row_len))
                .zip(x.par_chunks(row_len))
                .zip(scales.par_iter())
                .for_each(|(((p, v), xr), &s)| {
                    for (i, (v, &xv)) in v.iter_mut().zip(xr).enumerate() {
                        let q = (xv / s).clamp(-128.0, 127.0).round_ties_even();
                        // offset binary, four to a little-endian int32, the first in the low byte
                        p[i / 4] |= ((q as i32 + 128) as u32) << (8 * (i % 4));
                        *v = q * s;
                    }
                });
            let shape_bytes: Vec<u8> = [out as i64, cols as i64].iter().flat_map(|v| v.to_le_bytes()).collect();
            let words: Vec<u8> = packed.iter().flat_map(|w| w.to_le_bytes()).collect();
            (vec![words, f32_bytes(&scales), shape_bytes], values)
        }
        ExportFormat::Mx(b) => {
            amax_rows(name, x, 1)?;
            let enc = encode_blocks(*b, x, shape, 1).map_err(fail)?;
            let values = decode_blocks(*b, &enc, shape, 1).map_err(fail)?;
            let BlockScales::E8m0(scales) = enc.scales else {
                unreachable!("MX formats have E8M0 scales")
            };
            let codes = if format.element_bits() == 6 {
                // four 6-bit codes to three bytes, little-endian, the first in the low bits
                enc.codes
                    .chunks(4)
                    .flat_map(|c| {
                        let w = c
                            .iter()
                            .enumerate()
                            .fold(0u32, |w, (i, &v)| w | (u32::from(v & 0x3f) << (6 * i)));
                        [w as u8, (w >> 8) as u8, (w >> 16) as u8]
                    })
                    .collect()
            } else {
                enc.codes
            };
            (vec![codes, scales], values)
        }
        ExportFormat::Nvfp4(b) if layout == Layout::ModelOpt => {
            // fp8q's NVFP4 (torchao's nvfp4_quantize with per_tensor_scale = amax / 2688), which
            // Model-Optimizer stores as is: the tensor scale multiplies
            amax_rows(name, x, 1)?;
            let enc = encode_blocks(*b, x, shape, 1).map_err(fail)?;
            let values = decode_blocks(*b, &enc, shape, 1).map_err(fail)?;
            let BlockScales::E4m3(scales) = enc.scales else {
                unreachable!("NVFP4 has E4M3 block scales")
            };
            let tensor_scale = enc.tensor_scale.expect("NVFP4 has a tensor scale");
            (vec![enc.codes, scales, f32_bytes(&[tensor_scale])], values)
        }
        ExportFormat::Nvfp4(b) => {
            let amax = amax_rows(name, x, 1)?[0];
            let BlockElement::Fp(fp4) = b.element() else {
                unreachable!("NVFP4 elements are E2M1")
            };
            let e4m3 = StandardFp8::E4M3FN;
            let top = e4m3.max_value() * 6.0;
            let global = top / amax.max(f32::MIN_POSITIVE);
            let global = if global.is_finite() { global } else { 1.0 };
            // a zero block scale is stored as 0.125, as compressed-tensors stores it
            let eighth = e4m3.encode(0.125, Overflow::Saturate);
            let k = b.block_size();
            let unit = FpQuantizer::new(fp4, 6.0).map_err(fail)?;
            let mut elems = vec![0f32; x.len()];
            let mut scale_codes = vec![0u8; x.len() / k];
            let mut values = vec![0f32; x.len()];
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
            let mut packed = vec![0u8; x.len() / 2];
            for (p, pair) in packed.iter_mut().zip(elems.chunks(2)) {
                let code =
                    |q: f32| fp8q_core::quantizer::block_codes::element_code(b.element(), q, q.is_sign_negative());
                *p = code(pair[0]) | (code(pair[1]) << 4);
            }
            (vec![packed, scale_codes, f32_bytes(&[global])], values)
        }
    };
    let parts = specs
        .into_iter()
        .zip(datas)
        .map(|(spec, data)| Part { spec, data })
        .collect();
    Ok(Encoded { parts, values })
}
