//! The figures of a format that `fp8q formats` prints and `fp8q.Format` exposes: bits, bias,
//! largest and smallest values, the smallest normal and subnormal, the number of distinct values
//! and the grid — with the format's default bias, or scaled to a maximum value (flexible FP: the
//! real-valued bias that makes it the largest value; INT: the step `maxval/int_max`; standard
//! encodings: scaled by `maxval/max`).
//!
//! ```
//! use fp8q_core::format::{figures, Format};
//! let f: Format = "e4m3".parse().unwrap();
//! let e4m3 = figures(f, None).unwrap();
//! assert_eq!((e4m3.max, e4m3.bias), (240.0, Some(8.0)));
//! assert_eq!(figures(f, Some(1.0)).unwrap().max, 1.0);
//! ```

use serde::Serialize;

use super::{BlockElement, Format, IntKind};
use crate::error::{FormatError, Result};

/// What [`figures`] gives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormatFigures {
    /// Display name (`E4M3`, `INT8`, `float8_e4m3fn`).
    pub name: String,
    /// Parseable spelling (`e4m3`, `int8`).
    pub spec: String,
    /// `fp`, `int`, `standard` or `block` (a block format's figures are its element's, on the
    /// unit grid: the values a block scale multiplies).
    pub kind: &'static str,
    /// Total bits.
    pub n_bits: u32,
    /// Exponent bits (`None` for INT).
    pub exponent_bits: Option<u32>,
    /// Mantissa bits (`None` for INT).
    pub mantissa_bits: Option<u32>,
    /// Bias (real-valued when a maximum is given; `None` for INT).
    pub bias: Option<f64>,
    /// Largest value.
    pub max: f64,
    /// Smallest (most negative) value.
    pub min: f64,
    /// Smallest positive normal value (FP) or the step (INT).
    pub min_normal: f64,
    /// Smallest positive subnormal (FP).
    pub min_subnormal: Option<f64>,
    /// Number of distinct values (standard encodings: finite values).
    pub distinct_values: u64,
    /// Every distinct value, ascending.
    #[serde(skip)]
    pub values: Vec<f64>,
    /// Block formats: elements per block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_size: Option<usize>,
    /// Block formats: the scale format (`e8m0`, `e4m3` under an FP32 tensor scale, `f32`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<&'static str>,
    /// Block formats: the E8M0 scale rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_rule: Option<&'static str>,
    /// Storage bits per element (a block format's scale included).
    pub bits_per_element: f64,
}

/// The figures of `format`, with its default bias or scaled to `maxval` (positive, finite).
pub fn figures(format: Format, maxval: Option<f64>) -> Result<FormatFigures> {
    if let Some(a) = maxval {
        if !(a.is_finite() && a > 0.0) {
            return Err(FormatError::Invalid {
                what: "maxval",
                why: format!("must be positive and finite (got {a})"),
            });
        }
    }
    let spec = format.to_string();
    let mut fig = match format {
        Format::Fp(fp) => {
            let scaled = match maxval {
                Some(a) => fp.with_maxval(a)?,
                None => fp.with_default_bias(),
            };
            let values = scaled.grid();
            FormatFigures {
                name: fp.name(),
                spec,
                kind: "fp",
                n_bits: fp.n_bits(),
                exponent_bits: Some(fp.exponent_bits()),
                mantissa_bits: Some(fp.mantissa_bits()),
                bias: Some(scaled.bias()),
                max: scaled.maxval,
                min: values[0],
                min_normal: scaled.min_normal(),
                min_subnormal: Some(scaled.min_subnormal()),
                distinct_values: fp.num_distinct_values(),
                values,
                block_size: None,
                scale: None,
                scale_rule: None,
                bits_per_element: 0.0,
            }
        }
        Format::Int(int) => {
            let alpha = maxval.unwrap_or(((1i64 << (int.n_bits - 1)) - 1) as f64);
            let grid = match int.kind {
                IntKind::Symmetric | IntKind::Asymmetric => int.grid_for_range(-alpha as f32, alpha as f32),
            };
            let (lo, hi) = grid.bounds();
            FormatFigures {
                name: int.name(),
                spec,
                kind: "int",
                n_bits: int.n_bits,
                exponent_bits: None,
                mantissa_bits: None,
                bias: None,
                max: hi,
                min: lo,
                min_normal: grid.delta as f64,
                min_subnormal: None,
                distinct_values: int.num_distinct_values(),
                values: grid.values(),
                block_size: None,
                scale: None,
                scale_rule: None,
                bits_per_element: 0.0,
            }
        }
        Format::Standard(s) => {
            let scale = maxval.map_or(1.0, |a| a / s.max_value() as f64);
            let values: Vec<f64> = s.values().iter().map(|&v| v as f64 * scale).collect();
            FormatFigures {
                name: s.name().to_string(),
                spec,
                kind: "standard",
                n_bits: 8,
                exponent_bits: Some(s.exponent_bits()),
                mantissa_bits: Some(s.mantissa_bits()),
                // a scale s shifts the bias by -log2(s)
                bias: Some(s.bias() as f64 - scale.log2()),
                max: s.max_value() as f64 * scale,
                min: -(s.max_value() as f64) * scale,
                min_normal: s.min_normal() as f64 * scale,
                min_subnormal: Some(s.min_subnormal() as f64 * scale),
                distinct_values: values.len() as u64,
                values,
                block_size: None,
                scale: None,
                scale_rule: None,
                bits_per_element: 0.0,
            }
        }
        Format::Block(b) => {
            if maxval.is_some() {
                return Err(FormatError::Invalid {
                    what: "maxval",
                    why: format!("{b} is block-scaled: each block's scale sets its range"),
                });
            }
            let element = b.element();
            let values: Vec<f64> = block_element_values(element);
            FormatFigures {
                name: b.to_string(),
                spec,
                kind: "block",
                n_bits: element.n_bits(),
                exponent_bits: Some(element.exponent_bits()).filter(|&e| e > 0),
                mantissa_bits: Some(element.mantissa_bits()).filter(|_| element.exponent_bits() > 0),
                bias: match element {
                    BlockElement::Fp(f) => Some(((1i64 << (f.exponent_bits() - 1)) - 1) as f64),
                    BlockElement::Standard(s) => Some(s.bias() as f64),
                    BlockElement::Int(_) => None,
                },
                max: element.max_value(),
                min: -element.max_value(),
                min_normal: match element {
                    BlockElement::Fp(f) => ((2 - (1i64 << (f.exponent_bits() - 1))) as f64).exp2(),
                    BlockElement::Standard(s) => s.min_normal() as f64,
                    BlockElement::Int(_) => element.min_positive(),
                },
                min_subnormal: Some(element.min_positive()).filter(|_| element.exponent_bits() > 0),
                distinct_values: values.len() as u64,
                values,
                block_size: Some(b.block_size()),
                scale: Some(b.scale().spelling()),
                scale_rule: (b.scale() == super::ScaleFormat::E8m0).then(|| b.rule().name()),
                bits_per_element: b.bits_per_element(),
            }
        }
    };
    if fig.block_size.is_none() {
        fig.bits_per_element = fig.n_bits as f64;
    }
    Ok(fig)
}

/// The distinct values of a block element on its unit grid, ascending.
pub fn block_element_values(element: BlockElement) -> Vec<f64> {
    let mut v: Vec<f64> = match element {
        BlockElement::Fp(f) => f.with_maxval(element.max_value()).expect("positive").grid(),
        BlockElement::Standard(s) => s.values().iter().map(|&v| v as f64).collect(),
        BlockElement::Int(n) => {
            let k = (1i64 << (n - 1)) - 1;
            let step = element.min_positive();
            (-k..=k).map(|i| i as f64 * step).collect()
        }
    };
    v.dedup();
    v
}
