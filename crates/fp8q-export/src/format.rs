//! What a tensor is exported as: the deployed formats serving stacks load, parsed from fp8q's
//! format names.
//!
//! | name | stored as |
//! | --- | --- |
//! | `float8_e4m3fn`, `float8_e5m2` | 8-bit codes and an `f32` scale per tensor (or per output channel) |
//! | `int8` | `int8` codes and an `f32` scale per output channel (symmetric) |
//! | `mxfp8_e4m3`, `mxfp6_e2m3`, `mxfp4` | OCP MX elements and an E8M0 scale per 32 values along the input dimension |
//! | `nvfp4` | E2M1 elements, an E4M3 scale per 16 values, and an `f32` tensor scale |
//!
//! The paper's names that a format recommendation (`fp8q analyze --write-layer-formats`) can
//! hold map to the deployed encoding with the same split: `e4m3` to `float8_e4m3fn`, `e5m2` to
//! `float8_e5m2`. Other splits (`e3m4`, `e2m5`, ...) have no dtype in serving stacks and are
//! refused.

use fp8q_core::format::{BlockElement, BlockFormat, Format, ScaleFormat, ScaleRule, StandardFp8};

use crate::error::{ExportError, Result};

/// A deployed format.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExportFormat {
    /// An 8-bit float encoding with an `f32` scale `amax / max_finite` per tensor or per row.
    Fp8 {
        /// `float8_e4m3fn` or `float8_e5m2`.
        encoding: StandardFp8,
        /// One scale per output channel (row).
        per_channel: bool,
    },
    /// Symmetric `int8` with an `f32` scale `amax / 127` per row.
    Int8,
    /// An OCP MX format (E8M0 scales, blocks of 32 along the rows).
    Mx(BlockFormat),
    /// NVFP4: E2M1 elements, E4M3 scales per 16 values, an `f32` tensor scale.
    Nvfp4(BlockFormat),
}

/// The names `--format` accepts.
pub const FORMAT_NAMES: &[&str] = &[
    "float8_e4m3fn",
    "float8_e5m2",
    "int8",
    "mxfp8_e4m3",
    "mxfp6_e2m3",
    "mxfp4",
    "nvfp4",
];

impl ExportFormat {
    /// Parse a format name (`float8_e4m3fn`, `mxfp4`, ... or a paper name with a deployed
    /// encoding, `e4m3`), with the per-channel choice of the 8-bit floats and the E8M0 scale rule
    /// of the MX formats.
    pub fn parse(name: &str, per_channel: bool, scale_rule: Option<ScaleRule>) -> Result<Self> {
        let key = name.trim().to_ascii_lowercase();
        let unsupported = |why: String| ExportError::Format {
            name: name.to_string(),
            why,
        };
        let deployed = match key.as_str() {
            "e4m3" => "float8_e4m3fn",
            "e5m2" => "float8_e5m2",
            k => k,
        };
        let format: Format = deployed.parse().map_err(|e| unsupported(format!("{e}")))?;
        let f = match format {
            Format::Standard(s) if matches!(s, StandardFp8::E4M3FN | StandardFp8::E5M2) => ExportFormat::Fp8 {
                encoding: s,
                per_channel,
            },
            Format::Int(i) if i.n_bits == 8 && deployed == "int8" => ExportFormat::Int8,
            Format::Block(b) => {
                let named = b.named().unwrap_or("");
                match (named, b.scale()) {
                    ("mxfp6_e3m2", _) => {
                        return Err(unsupported(
                            "compressed-tensors' 6-bit float weights are E2M3 only; export mxfp6_e2m3".into(),
                        ))
                    }
                    ("mxfp8_e4m3" | "mxfp6_e2m3" | "mxfp4", ScaleFormat::E8m0) => {
                        ExportFormat::Mx(scale_rule.map(|r| b.with_rule(r)).unwrap_or(b))
                    }
                    ("nvfp4", ScaleFormat::E4m3) => {
                        if scale_rule.is_some() {
                            return Err(unsupported("nvfp4's E4M3 scales have no scale rule".into()));
                        }
                        ExportFormat::Nvfp4(b)
                    }
                    _ => {
                        return Err(unsupported(format!(
                            "no serving-stack layout holds {b}; export one of {}",
                            FORMAT_NAMES.join(", ")
                        )))
                    }
                }
            }
            other => {
                return Err(unsupported(format!(
                    "{other} has no dtype in serving stacks; export one of {} (e4m3 and e5m2 export as \
                     float8_e4m3fn and float8_e5m2)",
                    FORMAT_NAMES.join(", ")
                )))
            }
        };
        if scale_rule.is_some() && !matches!(f, ExportFormat::Mx(_)) {
            return Err(unsupported(
                "--scale-rule applies to the MX formats (E8M0 scales)".into(),
            ));
        }
        Ok(f)
    }

    /// The format's name (`float8_e4m3fn`, `mxfp4`, ...).
    pub fn name(&self) -> String {
        match self {
            ExportFormat::Fp8 { encoding, .. } => encoding.name().to_string(),
            ExportFormat::Int8 => "int8".into(),
            ExportFormat::Mx(b) | ExportFormat::Nvfp4(b) => {
                b.named().map(String::from).unwrap_or_else(|| b.to_string())
            }
        }
    }

    /// Whether scales are per output channel (the 8-bit floats with `per_channel`, `int8`).
    pub fn per_channel(&self) -> bool {
        match self {
            ExportFormat::Fp8 { per_channel, .. } => *per_channel,
            ExportFormat::Int8 => true,
            ExportFormat::Mx(_) | ExportFormat::Nvfp4(_) => false,
        }
    }

    /// The block format of the MX formats and NVFP4.
    pub fn block(&self) -> Option<BlockFormat> {
        match self {
            ExportFormat::Mx(b) | ExportFormat::Nvfp4(b) => Some(*b),
            _ => None,
        }
    }

    /// Bits of one element.
    pub fn element_bits(&self) -> u32 {
        match self {
            ExportFormat::Fp8 { .. } | ExportFormat::Int8 => 8,
            ExportFormat::Mx(b) | ExportFormat::Nvfp4(b) => b.element().n_bits(),
        }
    }

    /// Whether the elements are packed two to a byte (4-bit elements).
    pub fn packed(&self) -> bool {
        self.element_bits() == 4
    }

    /// The standard 8-bit encoding the element codes are stored in (8-bit float elements).
    pub fn element_encoding(&self) -> Option<StandardFp8> {
        match self {
            ExportFormat::Fp8 { encoding, .. } => Some(*encoding),
            ExportFormat::Mx(b) => match b.element() {
                BlockElement::Standard(s) => Some(s),
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_to_deployed_formats() {
        let f = ExportFormat::parse("float8_e4m3fn", true, None).unwrap();
        assert_eq!(
            f,
            ExportFormat::Fp8 {
                encoding: StandardFp8::E4M3FN,
                per_channel: true
            }
        );
        assert_eq!(
            ExportFormat::parse("E4M3", false, None).unwrap().name(),
            "float8_e4m3fn"
        );
        assert_eq!(ExportFormat::parse("e5m2", false, None).unwrap().name(), "float8_e5m2");
        assert_eq!(ExportFormat::parse("int8", false, None).unwrap(), ExportFormat::Int8);
        assert!(ExportFormat::parse("int8", false, None).unwrap().per_channel());
        let mx = ExportFormat::parse("mxfp4", false, Some(ScaleRule::Rceil)).unwrap();
        assert_eq!(mx.block().unwrap().rule(), ScaleRule::Rceil);
        assert!(mx.packed());
        assert_eq!(
            ExportFormat::parse("mxfp8_e4m3", false, None)
                .unwrap()
                .element_encoding(),
            Some(StandardFp8::E4M3FN)
        );
        assert!(matches!(
            ExportFormat::parse("nvfp4", false, None).unwrap(),
            ExportFormat::Nvfp4(_)
        ));
    }

    #[test]
    fn formats_without_a_deployed_layout_are_refused() {
        for bad in [
            "e3m4",
            "e2m5",
            "int4",
            "uint8",
            "mxfp6_e3m2",
            "e3m4@32",
            "float8_e4m3fnuz",
            "nope",
            "",
        ] {
            let e = ExportFormat::parse(bad, false, None).unwrap_err().to_string();
            assert!(e.contains(bad.trim()), "{bad}: {e}");
        }
        assert!(ExportFormat::parse("nvfp4", false, Some(ScaleRule::Ceil)).is_err());
        assert!(ExportFormat::parse("float8_e4m3fn", false, Some(ScaleRule::Ceil)).is_err());
    }
}
