//! One weight `[out, in]` encoded in a deployed format: the tensors a layout stores for it, and
//! the values a reader dequantizes them to (what the export's SQNR measures and what the tests
//! compare with compressed-tensors' reader).
//!
//! The arithmetic is the serving stacks' (compressed-tensors and llm-compressor; see
//! `docs/export.md`), in `f32`:
//!
//! * **8-bit floats**: `scale = amax / max_finite` (per tensor, or per row with per-channel), the
//!   codes `encode(x / scale)` rounded to nearest even and saturated at `±max_finite`, the values
//!   `decode(code) · scale`. A row (or tensor) of zeros gets the scale 1.
//! * **int8**: `scale = amax / 127` per row, codes `round_half_even(x / scale)` clamped to
//!   `[-128, 127]`, values `code · scale`.
//! * **MX** (`mxfp8_e4m3`, `mxfp4`): fp8q's block quantizer, blocks of 32 along the row, E8M0
//!   scales by the format's rule (bit-identical to torchao's `to_mx`), values `element · 2^e`.
//! * **NVFP4**: the compressed-tensors convention: `global_scale = 448 · 6 / amax`, each block of 16
//!   gets the E4M3 scale `encode(global_scale · block_amax / 6)`, its elements are
//!   `E2M1(x / (scale / global_scale))`, and the values `element · (scale / global_scale)`.

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
    let bad = |why: String| ExportError::Tensor { name: name.to_string(), why };
    let [out, cols] = *shape else {
        return Err(bad(format!("{} is exported as a 2-D weight; its shape is {shape:?}", format.name())));
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
        (Layout::CompressedTensors, ExportFormat::Fp8 { encoding, .. }) => vec![
            part("weight", fp8_dtype(*encoding), vec![out, cols]),
            part("weight_scale", Dtype::F32, scale_rows),
        ],
        (Layout::CompressedTensors, ExportFormat::Int8) => vec![
            part("weight", Dtype::I8, vec![out, cols]),
            part("weight_scale", Dtype::F32, scale_rows),
        ],
        (Layout::CompressedTensors, ExportFormat::Mx(b)) => {
            let scales = vec![out, cols / b.block_size()];
            if format.packed() {
                vec![
                    part("weight_packed", Dtype::U8, vec![out, cols / 2]),
                    part("weight_scale", Dtype::U8, scales),
                ]
            } else {
                let e = format.element_encoding().expect("8-bit MX elements are standard encodings");
                vec![part("weight", fp8_dtype(e), vec![out, cols]), part("weight_scale", Dtype::U8, scales)]
            }
        }
        (Layout::CompressedTensors, ExportFormat::Nvfp4(b)) => vec![
            part("weight_packed", Dtype::U8, vec![out, cols / 2]),
            part("weight_scale", Dtype::F8_E4M3, vec![out, cols / b.block_size()]),
            part("weight_global_scale", Dtype::F32, vec![1]),
        ],
        (Layout::ModelOpt, _) => {
            return Err(ExportError::Invalid(format!(
                "the modelopt layout is not written yet; export {} with --layout compressed-tensors",
                format.name()
            )))
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
        .map(|r| r.iter().fold(0f32, |m, &v| if v.is_finite() { m.max(v.abs()) } else { f32::NAN }))
        .collect();
    if amax.iter().any(|a| a.is_nan()) {
        return Err(ExportError::Tensor {
            name: name.to_string(),
            why: "holds NaN or infinite values; they have no quantized code".into(),
        });
    }
    Ok(if x.is_empty() { vec![0.0; rows] } else { amax })
}

/// `amax / top` in `f32`; 1 for a zero row, the smallest positive `f32` when it underflows.
fn scale_of(amax: f32, top: f32) -> f32 {
    if amax == 0.0 {
        1.0
    } else {
        (amax / top).max(f32::from_bits(1))
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
    let fail = |e: fp8q_core::error::FormatError| ExportError::Tensor { name: name.to_string(), why: e.to_string() };
    let row_len = cols.max(1);
    let (datas, values): (Vec<Vec<u8>>, Vec<f32>) = match format {
        ExportFormat::Fp8 { encoding, per_channel } => {
            let rows = if *per_channel { out } else { 1 };
            let scales: Vec<f32> =
                amax_rows(name, x, rows)?.iter().map(|&a| scale_of(a, encoding.max_value())).collect();
            let per_row = |r: usize| scales[if *per_channel { r } else { 0 }];
            let mut codes = vec![0u8; x.len()];
            let mut values = vec![0f32; x.len()];
            codes
                .par_chunks_mut(row_len)
                .zip(values.par_chunks_mut(row_len))
                .zip(x.par_chunks(row_len))
                .enumerate()
                .for_each(|(r, ((c, v), xr))| {
                    let s = per_row(r);
                    for ((c, v), &xv) in c.iter_mut().zip(v.iter_mut()).zip(xr) {
                        *c = encoding.encode(xv / s, Overflow::Saturate);
                        *v = encoding.decode(*c) * s;
                    }
                });
            (vec![codes, f32_bytes(&scales)], values)
        }
        ExportFormat::Int8 => {
            let scales: Vec<f32> = amax_rows(name, x, out)?.iter().map(|&a| scale_of(a, 127.0)).collect();
            let mut codes = vec![0u8; x.len()];
            let mut values = vec![0f32; x.len()];
            codes
                .par_chunks_mut(row_len)
                .zip(values.par_chunks_mut(row_len))
                .zip(x.par_chunks(row_len))
                .zip(scales.par_iter())
                .for_each(|(((c, v), xr), &s)| {
                    for ((c, v), &xv) in c.iter_mut().zip(v.iter_mut()).zip(xr) {
                        let q = (xv / s).round_ties_even().clamp(-128.0, 127.0);
                        *c = (q as i8) as u8;
                        *v = q * s;
                    }
                });
            (vec![codes, f32_bytes(&scales)], values)
        }
        ExportFormat::Mx(b) => {
            amax_rows(name, x, 1)?;
            let enc = encode_blocks(*b, x, shape, 1).map_err(fail)?;
            let values = decode_blocks(*b, &enc, shape, 1).map_err(fail)?;
            let BlockScales::E8m0(scales) = enc.scales else {
                unreachable!("MX formats have E8M0 scales")
            };
            (vec![enc.codes, scales], values)
        }
        ExportFormat::Nvfp4(b) => {
            let amax = amax_rows(name, x, 1)?[0];
            let BlockElement::Fp(fp4) = b.element() else {
                unreachable!("NVFP4 elements are E2M1")
            };
            let e4m3 = StandardFp8::E4M3FN;
            let top = e4m3.max_value() * 6.0;
            let global = if amax == 0.0 { 1.0 } else { top / amax };
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
                    let s = e4m3.decode(*sc) / global;
                    for ((e, v), &xv) in e.iter_mut().zip(v.iter_mut()).zip(xb) {
                        *e = if s == 0.0 { 0.0 } else { xv / s };
                        *v = 0.0;
                    }
                    unit.quantize_inplace_serial(e);
                    for (e, v) in e.iter().zip(v.iter_mut()) {
                        *v = *e * s;
                    }
                });
            let mut packed = vec![0u8; x.len() / 2];
            for (p, pair) in packed.iter_mut().zip(elems.chunks(2)) {
                let code = |q: f32| fp8q_core::quantizer::block_codes::element_code(b.element(), q, q.is_sign_negative());
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
