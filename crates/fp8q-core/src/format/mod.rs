//! Number formats: the flexible-bias FP format of the paper, INT formats and the deployed
//! 8-bit interchange encodings; [`Format`] names any of them and parses the CLI spelling.

pub mod block;
pub mod figures;
pub mod fp_format;
pub mod int_format;
pub mod standard_fp8;

pub use block::{BlockElement, BlockFormat, ScaleFormat, ScaleRule, NAMED_BLOCK_FORMATS};
pub use figures::{figures, FormatFigures};
pub use fp_format::{FpFormat, ScaledFpFormat};
pub use int_format::{IntFormat, IntGrid, IntKind};
pub use standard_fp8::{Overflow, StandardFp8};

use crate::error::FormatError;
use std::fmt;
use std::str::FromStr;

/// Any format the project knows.
///
/// Spellings (case-insensitive): `eXmY` (signed flexible-bias FP of `1+X+Y` bits), `ueXmY`
/// (unsigned, `X+Y` bits), `intN` (symmetric INT), `intN-asym` (asymmetric INT), and the
/// standard encodings `float8_e4m3fn`, `float8_e5m2`, `float8_e4m3fnuz`, `float8_e5m2fnuz`.
///
/// ```
/// use fp8q_core::format::Format;
/// let f: Format = "e4m3".parse().unwrap();
/// assert_eq!(f.to_string(), "e4m3");
/// assert!("e0m7".parse::<Format>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Flexible-bias floating point.
    Fp(FpFormat),
    /// Uniform integer.
    Int(IntFormat),
    /// A deployed 8-bit encoding.
    Standard(StandardFp8),
    /// A block-scaled format (MX, NVFP4 or generic).
    Block(BlockFormat),
}

impl Format {
    /// Total width in bits.
    pub fn n_bits(&self) -> u32 {
        match self {
            Format::Fp(f) => f.n_bits(),
            Format::Int(f) => f.n_bits,
            Format::Standard(_) => 8,
            Format::Block(b) => b.element().n_bits(),
        }
    }
    /// The format with `--block-size` and `--scale-rule` applied: a block format takes the
    /// given block size and E8M0 rule (a rule leaves E4M3 and F32 scales alone); any other
    /// format is returned unchanged.
    pub fn with_block_options(&self, block_size: Option<usize>, rule: Option<ScaleRule>) -> Result<Self, FormatError> {
        match self {
            Format::Block(b) => {
                let mut b = match block_size {
                    Some(k) => b.with_block_size(k)?,
                    None => *b,
                };
                if let (Some(r), ScaleFormat::E8m0) = (rule, b.scale()) {
                    b = b.with_rule(r);
                }
                Ok(Format::Block(b))
            }
            other => Ok(*other),
        }
    }
    /// The block-scaled format, if this is one.
    pub fn as_block(&self) -> Option<BlockFormat> {
        match self {
            Format::Block(b) => Some(*b),
            _ => None,
        }
    }
    /// Human-readable name (`E4M3`, `INT8`, `float8_e4m3fn`).
    pub fn display_name(&self) -> String {
        match self {
            Format::Fp(f) => f.name(),
            Format::Int(f) => f.name(),
            Format::Standard(s) => s.name().to_string(),
            Format::Block(b) => b.to_string(),
        }
    }
}

impl fmt::Display for Format {
    /// The parseable spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Fp(x) => write!(
                f,
                "{}e{}m{}",
                if x.is_signed() { "" } else { "u" },
                x.exponent_bits(),
                x.mantissa_bits()
            ),
            Format::Int(x) => match x.kind {
                IntKind::Symmetric => write!(f, "int{}", x.n_bits),
                IntKind::Asymmetric => write!(f, "int{}-asym", x.n_bits),
            },
            Format::Standard(s) => f.write_str(s.name()),
            Format::Block(b) => write!(f, "{b}"),
        }
    }
}

/// Written as its parseable spelling (`"e4m3"`, `"int8-asym"`, `"float8_e4m3fn"`).
impl serde::Serialize for Format {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Read from any spelling [`Format::from_str`] accepts; the parser's message on failure.
impl<'de> serde::Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = <String as serde::Deserialize>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

const FORMAT_HINT: &str = "expected eXmY (signed FP with X exponent and Y mantissa bits, e.g. e4m3), ueXmY (unsigned FP), intN (symmetric INT, e.g. int8), intN-asym, one of float8_e4m3fn, float8_e5m2, float8_e4m3fnuz, float8_e5m2fnuz, a block format (mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, mxint8, nvfp4) or ELEMENT@K[/SCALE][:RULE] (e.g. e3m4@32, e2m1@16/e4m3, int4@128/f32)";

impl FromStr for Format {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        let unknown = |hint: String| FormatError::UnknownFormat {
            name: s.to_string(),
            hint,
        };
        if let Some(std) = StandardFp8::from_name(&name) {
            return Ok(Format::Standard(std));
        }
        if BlockFormat::is_block_spelling(&name) {
            return s.parse().map(Format::Block);
        }
        if let Some(rest) = name.strip_prefix("int") {
            let (bits, kind) = match rest.strip_suffix("-asym").or_else(|| rest.strip_suffix("_asym")) {
                Some(b) => (b, IntKind::Asymmetric),
                None => (rest, IntKind::Symmetric),
            };
            let n: u32 = bits.parse().map_err(|_| unknown(FORMAT_HINT.into()))?;
            return IntFormat::new(n, kind).map(Format::Int);
        }
        let (signed, body) = match name.strip_prefix('u') {
            Some(b) => (false, b),
            None => (true, name.as_str()),
        };
        if let Some(rest) = body.strip_prefix('e') {
            if let Some((e, m)) = rest.split_once('m') {
                if let (Ok(e), Ok(m)) = (e.parse::<u32>(), m.parse::<u32>()) {
                    return FpFormat::from_exponent_mantissa(e, m, signed).map(Format::Fp);
                }
            }
        }
        Err(unknown(FORMAT_HINT.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips() {
        for s in [
            "e4m3",
            "e5m2",
            "e2m5",
            "e1m6",
            "ue4m4",
            "int8",
            "int4-asym",
            "float8_e4m3fn",
            "float8_e5m2fnuz",
            "e5m10",
            "mxfp4",
            "nvfp4",
            "e3m4@32",
            "int4@128/f32",
        ] {
            let f: Format = s.parse().unwrap();
            assert_eq!(f.to_string(), s);
        }
        assert_eq!("E4M3".parse::<Format>().unwrap().n_bits(), 8);
        assert_eq!("ue4m4".parse::<Format>().unwrap().n_bits(), 8);
    }

    #[test]
    fn parse_errors_name_the_input() {
        for bad in ["e0m7", "e4m0", "int1", "int99", "fp8", "e4", "", "e9m9"] {
            let err = bad.parse::<Format>().unwrap_err();
            let msg = err.to_string();
            assert!(!msg.is_empty(), "{bad}");
        }
        assert!("e2m1@0"
            .parse::<Format>()
            .unwrap_err()
            .to_string()
            .contains("block size"));
        let msg = "fp8".parse::<Format>().unwrap_err().to_string();
        assert!(msg.contains("'fp8'") && msg.contains("e4m3"), "{msg}");
    }

    #[test]
    fn serde_uses_the_spelling() {
        let f: Format = serde_json::from_str("\"int4-asym\"").unwrap();
        assert_eq!(serde_json::to_string(&f).unwrap(), "\"int4-asym\"");
        let err = serde_json::from_str::<Format>("\"fp8\"").unwrap_err().to_string();
        assert!(err.contains("'fp8'"), "{err}");
        assert!(serde_json::from_str::<Format>("8").is_err());
    }
}
