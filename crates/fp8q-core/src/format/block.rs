//! Block-scaled formats (`docs/formats.md`): an element format, a block size, a scale format and
//! a scale rule — OCP Microscaling v1.0 (MXFP8, MXFP6, MXFP4, MXINT8), NVIDIA's NVFP4 and any
//! generic combination.
//!
//! Spelling (case-insensitive): a named format, or `ELEMENT@K[/SCALE][:RULE]`.
//!
//! | name          | element          | block | scale                          |
//! |---------------|------------------|-------|--------------------------------|
//! | `mxfp8_e4m3`  | `float8_e4m3fn`  | 32    | E8M0                           |
//! | `mxfp8_e5m2`  | `float8_e5m2`    | 32    | E8M0                           |
//! | `mxfp6_e3m2`  | `e3m2` (max 28)  | 32    | E8M0                           |
//! | `mxfp6_e2m3`  | `e2m3` (max 7.5) | 32    | E8M0                           |
//! | `mxfp4`       | `e2m1` (max 6)   | 32    | E8M0                           |
//! | `mxint8`      | `int8` (k/64)    | 32    | E8M0                           |
//! | `nvfp4`       | `e2m1`           | 16    | E4M3 under an FP32 tensor scale|
//!
//! * `ELEMENT` is `eXmY` (a signed FP element with every code finite and the IEEE-style bias
//!   `2^(X-1) - 1`, as OCP's FP6 and FP4: `e2m1` has max 6), one of the standard 8-bit
//!   encodings (`float8_e4m3fn`, `float8_e5m2`, ...), or `intN` (OCP's fixed-point integer
//!   element: `k · 2^-(N-2)` for `|k| <= 2^(N-1) - 1`, so `int8` is MXINT8's element).
//! * `K` is the block size (at least 1).
//! * `SCALE` is `e8m0` (the default: a power of two, chosen by the rule), `e4m3` (an E4M3
//!   block scale under an FP32 tensor scale, NVFP4's two levels) or `f32` (a real block scale,
//!   as in GPTQ/AWQ groups).
//! * `RULE` (E8M0 only) is `floor` (the default, OCP v1.0), `ceil`, `even` or `rceil`.
//!
//! ```
//! use fp8q_core::format::{BlockFormat, ScaleFormat};
//! let f: BlockFormat = "mxfp4".parse().unwrap();
//! assert_eq!((f.block_size(), f.scale(), f.element().max_value()), (32, ScaleFormat::E8m0, 6.0));
//! let g: BlockFormat = "e2m1@16/e4m3".parse().unwrap();
//! assert_eq!(g.to_string(), "nvfp4");
//! assert_eq!("e3m4@32".parse::<BlockFormat>().unwrap().to_string(), "e3m4@32");
//! ```

use super::standard_fp8::StandardFp8;
use super::FpFormat;
use crate::error::{FormatError, Result};
use std::fmt;
use std::str::FromStr;

/// Largest block size accepted (a block is processed in one piece).
pub const MAX_BLOCK_SIZE: usize = 1 << 24;

/// The element format of a block-scaled format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockElement {
    /// A signed FP element with every code finite and bias `2^(e-1) - 1` (OCP FP6/FP4 style).
    Fp(FpFormat),
    /// A standard 8-bit encoding (its NaN/Inf codes are never produced).
    Standard(StandardFp8),
    /// A fixed-point integer element of `n` bits: `k · 2^-(n-2)`, `|k| <= 2^(n-1) - 1`.
    Int(u32),
}

impl BlockElement {
    /// Width in bits.
    pub fn n_bits(&self) -> u32 {
        match self {
            BlockElement::Fp(f) => f.n_bits(),
            BlockElement::Standard(_) => 8,
            BlockElement::Int(n) => *n,
        }
    }

    /// Mantissa bits (for INT, the fraction bits `n - 2`).
    pub fn mantissa_bits(&self) -> u32 {
        match self {
            BlockElement::Fp(f) => f.mantissa_bits(),
            BlockElement::Standard(s) => s.mantissa_bits(),
            BlockElement::Int(n) => n - 2,
        }
    }

    /// Exponent bits (0 for INT).
    pub fn exponent_bits(&self) -> u32 {
        match self {
            BlockElement::Fp(f) => f.exponent_bits(),
            BlockElement::Standard(s) => s.exponent_bits(),
            BlockElement::Int(_) => 0,
        }
    }

    /// `emax_elem`: the exponent of the largest power of two the element holds.
    pub fn emax(&self) -> i32 {
        match self {
            BlockElement::Fp(f) => 1 << (f.exponent_bits() - 1),
            BlockElement::Standard(s) => (s.max_value() as f64).log2().floor() as i32,
            BlockElement::Int(_) => 0,
        }
    }

    /// The largest element value.
    pub fn max_value(&self) -> f64 {
        match self {
            BlockElement::Fp(f) => (self.emax() as f64).exp2() * f.max_significand(),
            BlockElement::Standard(s) => s.max_value() as f64,
            BlockElement::Int(n) => ((1i64 << (n - 1)) - 1) as f64 / ((n - 2) as f64).exp2(),
        }
    }

    /// The smallest positive element value.
    pub fn min_positive(&self) -> f64 {
        match self {
            BlockElement::Fp(f) => {
                let bias = (1i64 << (f.exponent_bits() - 1)) - 1;
                ((1 - bias - f.mantissa_bits() as i64) as f64).exp2()
            }
            BlockElement::Standard(s) => s.min_subnormal() as f64,
            BlockElement::Int(n) => (-((n - 2) as f64)).exp2(),
        }
    }

    /// The parseable spelling.
    pub fn spelling(&self) -> String {
        match self {
            BlockElement::Fp(f) => format!("e{}m{}", f.exponent_bits(), f.mantissa_bits()),
            BlockElement::Standard(s) => s.name().to_string(),
            BlockElement::Int(n) => format!("int{n}"),
        }
    }

    fn parse(s: &str, whole: &str) -> Result<Self> {
        if let Some(std) = StandardFp8::from_name(s) {
            return Ok(BlockElement::Standard(std));
        }
        if let Some(bits) = s.strip_prefix("int") {
            if bits.ends_with("asym") {
                return Err(unknown(
                    whole,
                    "block elements are symmetric: an asymmetric INT has no place under a shared scale",
                ));
            }
            let n: u32 = bits.parse().map_err(|_| unknown(whole, BLOCK_HINT))?;
            if !(2..=16).contains(&n) {
                return Err(FormatError::BitWidth {
                    what: "an integer block element",
                    got: n,
                    min: 2,
                    max: 16,
                });
            }
            return Ok(BlockElement::Int(n));
        }
        if s.starts_with('u') {
            return Err(unknown(whole, "block elements are signed (no ueXmY)"));
        }
        if let Some((e, m)) = s.strip_prefix('e').and_then(|r| r.split_once('m')) {
            if let (Ok(e), Ok(m)) = (e.parse::<u32>(), m.parse::<u32>()) {
                let f = FpFormat::from_exponent_mantissa(e, m, true)?;
                if e > 7 {
                    return Err(FormatError::Invalid {
                        what: "block element",
                        why: format!("'{whole}': an element with {e} exponent bits has values beyond f32's range; at most 7 exponent bits"),
                    });
                }
                return Ok(BlockElement::Fp(f));
            }
        }
        Err(unknown(whole, BLOCK_HINT))
    }
}

/// How a block's shared scale is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScaleFormat {
    /// A power of two `2^(b - 127)`, `b` in `0..=254` (255 is NaN): OCP's E8M0.
    E8m0,
    /// A `float8_e4m3fn` block scale under an `f32` tensor scale (NVFP4's two levels).
    E4m3,
    /// An `f32` block scale, `amax / elem_max`.
    F32,
}

impl ScaleFormat {
    /// The spelling after `/`.
    pub fn spelling(&self) -> &'static str {
        match self {
            ScaleFormat::E8m0 => "e8m0",
            ScaleFormat::E4m3 => "e4m3",
            ScaleFormat::F32 => "f32",
        }
    }
    /// Bits per stored block scale.
    pub fn n_bits(&self) -> u32 {
        match self {
            ScaleFormat::E8m0 | ScaleFormat::E4m3 => 8,
            ScaleFormat::F32 => 32,
        }
    }
}

/// How an E8M0 scale is chosen from the block's largest magnitude `amax` (torchao's
/// `ScaleCalculationMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ScaleRule {
    /// OCP v1.0: `X = 2^(floor(log2 amax) - emax_elem)`; the block maximum may saturate.
    #[default]
    Floor,
    /// `X = 2^(ceil(log2 amax) - emax_elem)`: nothing saturates, small values may vanish.
    Ceil,
    /// `amax` first rounded to the element's mantissa width, then as `floor`.
    Even,
    /// The smallest power of two `>= amax / elem_max` (cuBLAS, torchao's RCEIL).
    Rceil,
}

impl ScaleRule {
    /// All rules.
    pub const ALL: [ScaleRule; 4] = [ScaleRule::Floor, ScaleRule::Ceil, ScaleRule::Even, ScaleRule::Rceil];

    /// The spelling (`floor`, `ceil`, `even`, `rceil`).
    pub fn name(&self) -> &'static str {
        match self {
            ScaleRule::Floor => "floor",
            ScaleRule::Ceil => "ceil",
            ScaleRule::Even => "even",
            ScaleRule::Rceil => "rceil",
        }
    }
}

impl FromStr for ScaleRule {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self> {
        let name = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| FormatError::Invalid {
                what: "scale rule",
                why: format!("'{s}': expected floor, ceil, even or rceil"),
            })
    }
}

impl fmt::Display for ScaleRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A block-scaled format: elements, block size, scale format and (for E8M0) the scale rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockFormat {
    element: BlockElement,
    block_size: usize,
    scale: ScaleFormat,
    rule: ScaleRule,
}

/// The named formats and their definitions.
pub const NAMED_BLOCK_FORMATS: [(&str, &str); 7] = [
    ("mxfp8_e4m3", "float8_e4m3fn@32"),
    ("mxfp8_e5m2", "float8_e5m2@32"),
    ("mxfp6_e3m2", "e3m2@32"),
    ("mxfp6_e2m3", "e2m3@32"),
    ("mxfp4", "e2m1@32"),
    ("mxint8", "int8@32"),
    ("nvfp4", "e2m1@16/e4m3"),
];

const BLOCK_HINT: &str = "expected a named block format (mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, mxint8, nvfp4) or ELEMENT@K[/SCALE][:RULE] with ELEMENT eXmY, float8_e4m3fn, float8_e5m2 or intN, K >= 1, SCALE e8m0 (default), e4m3 or f32, RULE floor (default), ceil, even or rceil (e.g. e3m4@32, e2m1@16/e4m3, int4@128/f32)";

fn unknown(name: &str, hint: &str) -> FormatError {
    FormatError::UnknownFormat {
        name: name.to_string(),
        hint: hint.to_string(),
    }
}

impl BlockFormat {
    /// A block format; the block size must be in `1..=MAX_BLOCK_SIZE`.
    pub fn new(element: BlockElement, block_size: usize, scale: ScaleFormat, rule: ScaleRule) -> Result<Self> {
        if block_size == 0 || block_size > MAX_BLOCK_SIZE {
            return Err(FormatError::Invalid {
                what: "block size",
                why: format!("must be between 1 and {MAX_BLOCK_SIZE} (got {block_size})"),
            });
        }
        if scale == ScaleFormat::E4m3 {
            // the tensor scale maps the largest block scale to 448; an element whose largest
            // value times 448 overflows f32 cannot be scaled this way
            let product = element.max_value() * StandardFp8::E4M3FN.max_value() as f64;
            if product.is_nan() || product >= f32::MAX as f64 {
                return Err(FormatError::Invalid {
                    what: "scale format",
                    why: format!(
                        "an E4M3 block scale cannot hold the scale of {} elements (448 × {} overflows f32)",
                        element.spelling(),
                        element.max_value()
                    ),
                });
            }
        }
        Ok(Self {
            element,
            block_size,
            scale,
            rule,
        })
    }

    /// The element format.
    pub fn element(&self) -> BlockElement {
        self.element
    }
    /// Elements per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }
    /// The scale format.
    pub fn scale(&self) -> ScaleFormat {
        self.scale
    }
    /// The E8M0 scale rule (unused by other scale formats).
    pub fn rule(&self) -> ScaleRule {
        self.rule
    }
    /// The same format with another block size.
    pub fn with_block_size(&self, k: usize) -> Result<Self> {
        Self::new(self.element, k, self.scale, self.rule)
    }
    /// The same format with another E8M0 rule.
    pub fn with_rule(&self, rule: ScaleRule) -> Self {
        Self { rule, ..*self }
    }
    /// Storage bits per element, the block scale's share included (the FP32 tensor scale of
    /// two-level formats is not counted).
    pub fn bits_per_element(&self) -> f64 {
        self.element.n_bits() as f64 + self.scale.n_bits() as f64 / self.block_size as f64
    }

    /// The generic spelling, `ELEMENT@K[/SCALE][:RULE]`.
    pub fn generic_spelling(&self) -> String {
        let mut s = format!("{}@{}", self.element.spelling(), self.block_size);
        if self.scale != ScaleFormat::E8m0 {
            s.push('/');
            s.push_str(self.scale.spelling());
        } else if self.rule != ScaleRule::Floor {
            s.push(':');
            s.push_str(self.rule.name());
        }
        s
    }

    /// The named format this is, if any.
    pub fn named(&self) -> Option<&'static str> {
        let generic = self.generic_spelling();
        NAMED_BLOCK_FORMATS
            .iter()
            .find(|(_, def)| *def == generic)
            .map(|(n, _)| *n)
    }

    /// Whether `s` (lower case, trimmed) looks like a block format spelling: a named one or one
    /// with `@`.
    pub fn is_block_spelling(s: &str) -> bool {
        let s = s.trim().to_ascii_lowercase();
        s.contains('@') || NAMED_BLOCK_FORMATS.iter().any(|(n, _)| *n == s)
    }
}

impl fmt::Display for BlockFormat {
    /// The name of a named format, else the generic spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.named() {
            Some(n) => f.write_str(n),
            None => f.write_str(&self.generic_spelling()),
        }
    }
}

impl FromStr for BlockFormat {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self> {
        let name = s.trim().to_ascii_lowercase();
        if let Some((_, def)) = NAMED_BLOCK_FORMATS.iter().find(|(n, _)| *n == name) {
            return def.parse();
        }
        let Some((element, rest)) = name.split_once('@') else {
            return Err(unknown(s, BLOCK_HINT));
        };
        let element = BlockElement::parse(element, s)?;
        let (rest, rule) = match rest.split_once(':') {
            Some((r, rule)) => (r, rule.parse::<ScaleRule>()?),
            None => (rest, ScaleRule::Floor),
        };
        let (k, scale) = match rest.split_once('/') {
            Some((k, sc)) => (
                k,
                match sc {
                    "e8m0" => ScaleFormat::E8m0,
                    "e4m3" | "float8_e4m3fn" => ScaleFormat::E4m3,
                    "f32" | "fp32" => ScaleFormat::F32,
                    other => {
                        let why = if other.parse::<super::Format>().is_ok() {
                            format!("'{other}' in '{s}' cannot hold a block scale (a scale is positive and spans many binades); use e8m0, e4m3 or f32")
                        } else {
                            format!("'{other}' in '{s}': expected e8m0, e4m3 or f32")
                        };
                        return Err(FormatError::Invalid {
                            what: "scale format",
                            why,
                        });
                    }
                },
            ),
            None => (rest, ScaleFormat::E8m0),
        };
        if rule != ScaleRule::Floor && scale != ScaleFormat::E8m0 {
            return Err(FormatError::Invalid {
                what: "scale rule",
                why: format!("'{s}': a scale rule applies to E8M0 scales only"),
            });
        }
        let k: usize = k.parse().map_err(|_| FormatError::Invalid {
            what: "block size",
            why: format!("'{k}' in '{s}' is not a whole number"),
        })?;
        BlockFormat::new(element, k, scale, rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_formats_have_the_spec_element_maxima() {
        let max = |n: &str| n.parse::<BlockFormat>().unwrap().element().max_value();
        assert_eq!(max("mxfp8_e4m3"), 448.0);
        assert_eq!(max("mxfp8_e5m2"), 57344.0);
        assert_eq!(max("mxfp6_e3m2"), 28.0);
        assert_eq!(max("mxfp6_e2m3"), 7.5);
        assert_eq!(max("mxfp4"), 6.0);
        assert_eq!(max("mxint8"), 127.0 / 64.0);
        assert_eq!(max("nvfp4"), 6.0);
        let emax = |n: &str| n.parse::<BlockFormat>().unwrap().element().emax();
        // torchao's *_MAX_POW2 constants
        assert_eq!(
            [
                emax("mxfp8_e4m3"),
                emax("mxfp8_e5m2"),
                emax("mxfp6_e2m3"),
                emax("mxfp6_e3m2"),
                emax("mxfp4"),
                emax("mxint8")
            ],
            [8, 15, 2, 4, 2, 0]
        );
        let min = |n: &str| n.parse::<BlockFormat>().unwrap().element().min_positive();
        assert_eq!(
            [min("mxfp4"), min("mxfp6_e2m3"), min("mxfp6_e3m2")],
            [0.5, 0.125, 0.0625]
        );
    }

    #[test]
    fn spellings_round_trip() {
        for s in [
            "mxfp8_e4m3",
            "mxfp8_e5m2",
            "mxfp6_e3m2",
            "mxfp6_e2m3",
            "mxfp4",
            "mxint8",
            "nvfp4",
            "e3m4@32",
            "e2m1@32/e4m3",
            "int4@128/f32",
            "e2m1@32:rceil",
            "float8_e4m3fn@16:even",
            "e4m3@1",
        ] {
            let f: BlockFormat = s.parse().unwrap();
            assert_eq!(f.to_string(), s);
            assert_eq!(f.to_string().parse::<BlockFormat>().unwrap(), f);
        }
        assert_eq!("E2M1@32".parse::<BlockFormat>().unwrap().to_string(), "mxfp4");
        assert_eq!(
            "mxfp4"
                .parse::<BlockFormat>()
                .unwrap()
                .with_block_size(16)
                .unwrap()
                .to_string(),
            "e2m1@16"
        );
        assert_eq!("nvfp4".parse::<BlockFormat>().unwrap().bits_per_element(), 4.5);
        assert_eq!("mxfp4".parse::<BlockFormat>().unwrap().bits_per_element(), 4.25);
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |s: &str| s.parse::<BlockFormat>().unwrap_err().to_string();
        assert!(err("e2m1@0").contains("block size"), "{}", err("e2m1@0"));
        assert!(err("e2m1@x").contains("block size"));
        assert!(err("mxfp5").contains("'mxfp5'"));
        assert!(err("e2m1@32/e5m5").contains("scale format"));
        assert!(err("e2m1@16/e4m3:rceil").contains("E8M0"));
        assert!(err("e2m1@32:up").contains("scale rule"));
        assert!(err("int8-asym@32").contains("symmetric"));
        assert!(err("ue4m4@32").contains("signed"));
        assert!(err("e9m2@32").contains("exponent"), "{}", err("e9m2@32"));
        assert!(err("e0m3@32").contains("exponent"));
        assert!(err("int1@32").contains("bits"));
        // a scale format that cannot hold the scale
        assert!(err("e2m1@16/int8").contains("cannot hold"), "{}", err("e2m1@16/int8"));
        assert!(err("e2m1@16/e5m2").contains("cannot hold"));
        assert!(err("e8m3@16").contains("f32"));
    }
}
