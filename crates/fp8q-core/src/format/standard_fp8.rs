//! The deployed 8-bit floating-point encodings (SPEC §1.3). PLACEHOLDER: being implemented.

/// What a value beyond the largest finite one becomes when encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// Clamp to ±max (what quantization simulation wants); NaN stays NaN.
    Saturate,
    /// A plain cast: ±Inf where the format has infinities, NaN otherwise.
    Cast,
}

/// One of the standard 8-bit encodings as ml_dtypes / the OCP spec define them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StandardFp8 {
    /// `float8_e4m3fn`: bias 7, max 448, no Inf, NaN = S.1111.111.
    E4M3FN,
    /// `float8_e5m2`: bias 15, IEEE-like with Inf and NaN, max 57344.
    E5M2,
    /// `float8_e4m3fnuz`: bias 8, max 240, single NaN 0x80, no negative zero.
    E4M3FNUZ,
    /// `float8_e5m2fnuz`: bias 16, max 57344, single NaN 0x80, no negative zero.
    E5M2FNUZ,
}

impl StandardFp8 {
    /// All four encodings.
    pub const ALL: [StandardFp8; 4] = [Self::E4M3FN, Self::E5M2, Self::E4M3FNUZ, Self::E5M2FNUZ];

    /// The ml_dtypes name, e.g. `float8_e4m3fn`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::E4M3FN => "float8_e4m3fn",
            Self::E5M2 => "float8_e5m2",
            Self::E4M3FNUZ => "float8_e4m3fnuz",
            Self::E5M2FNUZ => "float8_e5m2fnuz",
        }
    }

    /// Parse an ml_dtypes name (lower case).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Exponent bits.
    pub fn exponent_bits(&self) -> u32 {
        match self {
            Self::E4M3FN | Self::E4M3FNUZ => 4,
            Self::E5M2 | Self::E5M2FNUZ => 5,
        }
    }
    /// Mantissa bits.
    pub fn mantissa_bits(&self) -> u32 {
        8 - 1 - self.exponent_bits()
    }
    /// Exponent bias.
    pub fn bias(&self) -> i64 {
        match self {
            Self::E4M3FN => 7,
            Self::E5M2 => 15,
            Self::E4M3FNUZ => 8,
            Self::E5M2FNUZ => 16,
        }
    }
    /// Largest finite value.
    pub fn max_value(&self) -> f32 {
        match self {
            Self::E4M3FN => 448.0,
            Self::E5M2 | Self::E5M2FNUZ => 57344.0,
            Self::E4M3FNUZ => 240.0,
        }
    }
}
