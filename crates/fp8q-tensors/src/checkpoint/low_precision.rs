//! Low-precision checkpoints as serving stacks store them, read back as `f32` weights: the
//! layouts `fp8q export` writes (compressed-tensors and Model-Optimizer) and the same layouts
//! written by other tools. A module `M` whose weight is stored as codes and scales gets one
//! tensor `M.weight`, dequantized with the reader's own arithmetic (compressed-tensors' for its
//! layouts, Model-Optimizer's for its), and its parts (`M.weight_scale`, `M.weight_packed`, ...)
//! are consumed. Recognised, by names, dtypes and shapes (`[out, in]` weights):
//!
//! | parts | layout | value |
//! | --- | --- | --- |
//! | `weight` F8_E4M3/F8_E5M2, `weight_scale` F32/BF16 `[1]`, `[]`, `[out, 1]` or `[out, in/g]` | FP8 | `code · scale` (in the scale's dtype) |
//! | `weight` F8_E4M3, `weight_scale` U8 `[out, in/32]` | MXFP8 | `code · 2^(s-127)` |
//! | `weight_packed` U8 `[out, in/2]`, `weight_scale` U8 `[out, in/32]` | MXFP4 | `e2m1 · 2^(s-127)` |
//! | `weight_packed` U8 `[out, 3·in/4]`, `weight_scale` U8 `[out, in/32]` | MXFP6 (E2M3) | `e2m3 · 2^(s-127)` |
//! | `weight_packed` U8, `weight_scale` F8_E4M3 `[out, in/16]`, `weight_global_scale` F32 | NVFP4 (compressed-tensors) | `bf16(e2m1 · (s / global))` |
//! | `weight` U8, `weight_scale` F8_E4M3, `weight_scale_2` F32 | NVFP4 (Model-Optimizer) | `e2m1 · s · s2` |
//! | `weight_packed` I32, `weight_scale`, `weight_shape` I64 | packed INT (8, 4 or 2 bits) | `(field - 2^(b-1)) · scale` |
//! | `weight` I8, `weight_scale` | INT8 | `code · scale` |
//!
//! Anything else is left as stored. A layout whose parts disagree (shapes, dtypes) is an error
//! naming the module.

use std::collections::{BTreeMap, BTreeSet};

use ::safetensors::tensor::TensorView;
use ::safetensors::Dtype;

/// A stored tensor: dtype, shape, little-endian bytes.
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a> {
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: &'a [usize],
    /// Bytes.
    pub data: &'a [u8],
}

/// A weight read back from its codes and scales.
#[derive(Debug, Clone, PartialEq)]
pub struct Dequantized {
    /// `M.weight`.
    pub name: String,
    /// `[out, in]`.
    pub shape: Vec<usize>,
    /// The values.
    pub values: Vec<f32>,
    /// The stored tensors it was read from.
    pub parts: Vec<String>,
    /// Which layout it was (`float8_e4m3fn`, `mxfp4`, `nvfp4`, `int8`, ...).
    pub layout: &'static str,
}

const E2M1: [f32; 8] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];

/// The value of a float8 byte (`F8_E4M3` is OCP E4M3FN: no infinities, `S.1111.111` is NaN).
fn f8(dtype: Dtype, b: u8) -> f32 {
    let (e_bits, m_bits, bias) = if dtype == Dtype::F8_E5M2 { (5, 2, 15) } else { (4, 3, 7) };
    let sign = if b & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let e = ((b >> m_bits) & ((1 << e_bits) - 1)) as i32;
    let m = (b & ((1 << m_bits) - 1)) as f32;
    let top = (1 << e_bits) - 1;
    if dtype == Dtype::F8_E5M2 && e == top {
        return if m == 0.0 { sign * f32::INFINITY } else { f32::NAN };
    }
    if dtype != Dtype::F8_E5M2 && e == top && m as i32 == 7 {
        return f32::NAN;
    }
    let mag = if e == 0 {
        m * 2f32.powi(1 - bias - m_bits)
    } else {
        (1.0 + m / (1 << m_bits) as f32) * 2f32.powi(e - bias)
    };
    sign * mag
}

fn e8m0(b: u8) -> f32 {
    if b == 255 {
        f32::NAN
    } else {
        2f32.powi(b as i32 - 127)
    }
}

fn e2m1(nibble: u8) -> f32 {
    let v = E2M1[(nibble & 7) as usize];
    if nibble & 8 != 0 {
        -v
    } else {
        v
    }
}

/// An E2M3 code (sign in bit 5; bias 1, three mantissa bits, every code finite).
fn e2m3(code: u8) -> f32 {
    let (e, m) = (((code >> 3) & 3) as i32, (code & 7) as f32);
    let v = if e == 0 {
        m / 8.0
    } else {
        (1.0 + m / 8.0) * 2f32.powi(e - 1)
    };
    if code & 0x20 != 0 {
        -v
    } else {
        v
    }
}

fn floats(r: &Raw<'_>) -> Option<Vec<f32>> {
    Some(match r.dtype {
        Dtype::F32 => r
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::BF16 => r
            .data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F16 => r
            .data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F8_E4M3 => r.data.iter().map(|&b| f8(Dtype::F8_E4M3, b)).collect(),
        _ => return None,
    })
}

/// The scale of element `(r, c)` of an `[out, cols]` weight: one scale, one per row, or one per
/// group of `cols / groups` columns.
fn scale_index(n_scales: usize, out: usize, cols: usize) -> Option<impl Fn(usize, usize) -> usize> {
    let per = if n_scales == 1 {
        (0usize, 0usize)
    } else if out > 0 && n_scales >= out && n_scales.is_multiple_of(out) && cols.is_multiple_of(n_scales / out) {
        (n_scales / out, cols / (n_scales / out))
    } else {
        return None;
    };
    Some(move |r: usize, c: usize| if per.0 == 0 { 0 } else { r * per.0 + c / per.1 })
}

/// A safetensors file's tensors as [`Raw`] views (no data is read).
pub fn raw_map<'a>(views: &'a [(String, TensorView<'_>)]) -> BTreeMap<String, Raw<'a>> {
    views
        .iter()
        .map(|(n, v)| {
            (
                n.clone(),
                Raw {
                    dtype: v.dtype(),
                    shape: v.shape(),
                    data: v.data(),
                },
            )
        })
        .collect()
}

/// [`dequantize`] over a safetensors file's tensors: the weights, and the names of the stored
/// tensors they were read from (which the readers then skip).
pub fn from_views(views: &[(String, TensorView<'_>)]) -> Result<(Vec<Dequantized>, BTreeSet<String>), String> {
    let weights = dequantize(&raw_map(views))?;
    let consumed = weights.iter().flat_map(|d| d.parts.iter().cloned()).collect();
    Ok((weights, consumed))
}

/// Find and dequantize every low-precision weight among `tensors` (see the module's table).
pub fn dequantize(tensors: &BTreeMap<String, Raw<'_>>) -> Result<Vec<Dequantized>, String> {
    let mut out = Vec::new();
    for m in modules(tensors) {
        out.extend(dequantize_module(tensors, m)?);
    }
    Ok(out)
}

/// The modules that may hold a low-precision weight (those with an `M.weight_scale`), without
/// reading any data: dequantize them one at a time with [`dequantize_module`].
pub fn modules<'t>(tensors: &'t BTreeMap<String, Raw<'_>>) -> impl Iterator<Item = &'t str> {
    tensors.keys().filter_map(|n| n.strip_suffix(".weight_scale"))
}

/// The weight of module `m` read back from its codes and scales; `None` if its tensors are
/// not a layout of the module's table.
pub fn dequantize_module(tensors: &BTreeMap<String, Raw<'_>>, m: &str) -> Result<Option<Dequantized>, String> {
    let Some(scale) = tensors.get(&format!("{m}.weight_scale")) else {
        return Ok(None);
    };
    let get = |s: &str| tensors.get(&format!("{m}.{s}"));
    let bad = |why: String| format!("{m}: {why}");
    let parts = |names: &[&str]| names.iter().map(|s| format!("{m}.{s}")).collect::<Vec<_>>();
    if let (Some(packed), Some(shape)) = (get("weight_packed"), get("weight_shape")) {
        if packed.dtype != Dtype::I32 || shape.dtype != Dtype::I64 || packed.shape.len() != 2 {
            return Ok(None);
        }
        let dims: Vec<i64> = shape
            .data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let [o, i] = dims[..] else {
            return Err(bad(format!("weight_shape {dims:?} is not [out, in]")));
        };
        if o < 0 || i <= 0 || o as usize != packed.shape[0] {
            return Err(bad(format!(
                "weight_shape {dims:?} does not fit weight_packed {:?}",
                packed.shape
            )));
        }
        let (o, i) = (o as usize, i as usize);
        let words = packed.shape[1];
        let Some(bits) = [8usize, 4, 2]
            .into_iter()
            .find(|b| i.checked_mul(*b).map(|n| n.div_ceil(32)) == Some(words))
        else {
            return Err(bad(format!(
                "weight_packed {:?} holds no 8, 4 or 2-bit codes of {i} columns",
                packed.shape
            )));
        };
        let s = floats(scale).ok_or_else(|| bad(format!("weight_scale is {:?}", scale.dtype)))?;
        let at = scale_index(s.len(), o, i)
            .ok_or_else(|| bad(format!("weight_scale {:?} fits no grouping", scale.shape)))?;
        let w: Vec<u32> = packed
            .data
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let per_word = 32 / bits;
        let mut values = vec![0f32; o * i];
        for r in 0..o {
            for c in 0..i {
                let field = (w[r * words + c / per_word] >> (bits * (c % per_word))) & ((1 << bits) - 1);
                let v = (field as i32 - (1 << (bits - 1))) as f32 * s[at(r, c)];
                // the product is computed in the scale's dtype
                values[r * i + c] = if scale.dtype == Dtype::BF16 {
                    half::bf16::from_f32(v).to_f32()
                } else {
                    v
                };
            }
        }
        let layout = match bits {
            8 => "int8",
            4 => "int4",
            _ => "int2",
        };
        return Ok(Some(Dequantized {
            name: format!("{m}.weight"),
            shape: vec![o, i],
            values,
            parts: parts(&["weight_packed", "weight_scale", "weight_shape"]),
            layout,
        }));
    }
    let packed = get("weight_packed")
        .map(|p| (p, true))
        .or_else(|| get("weight").map(|p| (p, false)));
    let Some((w, is_packed)) = packed else { return Ok(None) };
    if w.shape.len() != 2 {
        return Ok(None);
    }
    let out_rows = w.shape[0];
    // MXFP6 (E2M3): four 6-bit codes in three bytes under E8M0 scales per 32
    if is_packed
        && w.dtype == Dtype::U8
        && scale.dtype == Dtype::U8
        && scale.shape.len() == 2
        && scale.shape[0] == out_rows
        && w.shape[1] * 4 == scale.shape[1] * 32 * 3
    {
        let cols = scale.shape[1] * 32;
        let mut values = Vec::with_capacity(out_rows * cols);
        for (k, b) in w.data.chunks_exact(3).enumerate() {
            let word = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
            for i in 0..4 {
                let e = k * 4 + i;
                let s = e8m0(scale.data[(e / cols) * scale.shape[1] + (e % cols) / 32]);
                values.push(e2m3(((word >> (6 * i)) & 0x3f) as u8) * s);
            }
        }
        return Ok(Some(Dequantized {
            name: format!("{m}.weight"),
            shape: vec![out_rows, cols],
            values,
            parts: parts(&["weight_packed", "weight_scale"]),
            layout: "mxfp6_e2m3",
        }));
    }
    let nibbles = w.dtype == Dtype::U8 && (is_packed || get("weight_scale_2").is_some());
    let cols = if nibbles { w.shape[1] * 2 } else { w.shape[1] };
    let fail = |what: &str| {
        bad(format!(
            "{what} (weight {:?} {:?}, weight_scale {:?} {:?})",
            w.dtype, w.shape, scale.dtype, scale.shape
        ))
    };
    // the element values, row-major [out, cols]
    let elems: Vec<f32> = if nibbles {
        w.data.iter().flat_map(|&b| [e2m1(b & 0xf), e2m1(b >> 4)]).collect()
    } else {
        match w.dtype {
            Dtype::F8_E4M3 | Dtype::F8_E5M2 => w.data.iter().map(|&b| f8(w.dtype, b)).collect(),
            Dtype::I8 => w.data.iter().map(|&b| b as i8 as f32).collect(),
            _ => return Ok(None),
        }
    };
    let (values, layout, names): (Vec<f32>, &'static str, Vec<&str>) = match (nibbles, scale.dtype) {
        // block scales: E8M0 bytes per 32 (MX), E4M3 per 16 under a tensor scale (NVFP4)
        (_, Dtype::U8) => {
            let at = scale_index(scale.data.len(), out_rows, cols).filter(|_| scale.shape.len() == 2 && scale.shape[1] * 32 == cols).ok_or_else(|| fail("not a layout fp8q reads back: MXFP8 and MXFP4 have E8M0 scales [out, in/32] for weight [out, in] or weight_packed [out, in/2]"))?;
            let v = (0..out_rows * cols)
                .map(|k| elems[k] * e8m0(scale.data[at(k / cols, k % cols)]))
                .collect();
            let layout = if nibbles { "mxfp4" } else { "mxfp8" };
            (
                v,
                layout,
                vec![if is_packed { "weight_packed" } else { "weight" }, "weight_scale"],
            )
        }
        (true, Dtype::F8_E4M3) => {
            let s8: Vec<f32> = scale.data.iter().map(|&b| f8(Dtype::F8_E4M3, b)).collect();
            let at = scale_index(s8.len(), out_rows, cols).ok_or_else(|| fail("NVFP4 scales must be [out, in/16]"))?;
            let one = |n: &str| get(n).and_then(floats).filter(|v| v.len() == 1).map(|v| v[0]);
            if let Some(g) = one("weight_global_scale") {
                let v = (0..out_rows * cols)
                    .map(|k| half::bf16::from_f32(elems[k] * (s8[at(k / cols, k % cols)] / g)).to_f32())
                    .collect();
                (v, "nvfp4", vec!["weight_packed", "weight_scale", "weight_global_scale"])
            } else if let Some(s2) = one("weight_scale_2") {
                let v = (0..out_rows * cols)
                    .map(|k| elems[k] * s8[at(k / cols, k % cols)] * s2)
                    .collect();
                (v, "nvfp4", vec!["weight", "weight_scale", "weight_scale_2"])
            } else {
                return Err(fail("NVFP4 needs weight_global_scale or weight_scale_2"));
            }
        }
        (false, Dtype::F32 | Dtype::BF16 | Dtype::F16) => {
            let s = floats(scale).expect("a float dtype");
            let at =
                scale_index(s.len(), out_rows, cols).ok_or_else(|| fail("scales fit no grouping of the weight"))?;
            let bf16 = scale.dtype == Dtype::BF16;
            let v = (0..out_rows * cols)
                .map(|k| {
                    let p = elems[k] * s[at(k / cols, k % cols)];
                    if bf16 {
                        half::bf16::from_f32(p).to_f32()
                    } else {
                        p
                    }
                })
                .collect();
            let layout = match w.dtype {
                Dtype::F8_E5M2 => "float8_e5m2",
                Dtype::I8 => "int8",
                _ => "float8_e4m3fn",
            };
            (v, layout, vec!["weight", "weight_scale"])
        }
        _ => return Ok(None),
    };
    Ok(Some(Dequantized {
        name: format!("{m}.weight"),
        shape: vec![out_rows, cols],
        values,
        parts: parts(&names),
        layout,
    }))
}
