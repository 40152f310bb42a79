//! Errors of the core library: every one names the parameter that is wrong and why.

use thiserror::Error;

/// An impossible format, range or quantizer setting.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FormatError {
    /// A floating-point format needs at least one exponent bit.
    #[error("format with {n_bits} bits, {sign_bits} sign bit(s) and {mantissa_bits} mantissa bits leaves {exponent_bits} exponent bits; at least 1 is needed")]
    NoExponentBits {
        n_bits: u32,
        sign_bits: u32,
        mantissa_bits: u32,
        exponent_bits: i64,
    },
    /// A floating-point format needs at least one mantissa bit.
    #[error("a floating-point format needs at least 1 mantissa bit (got {0})")]
    NoMantissaBits(u32),
    /// The total width is outside what the project supports.
    #[error("{what} must have between {min} and {max} bits (got {got})")]
    BitWidth {
        what: &'static str,
        got: u32,
        min: u32,
        max: u32,
    },
    /// A maximum value (range) that cannot define a grid.
    #[error("the maximum value must be positive and finite (got {0})")]
    BadMaxval(f64),
    /// A range whose minimum exceeds its maximum, or that is not finite.
    #[error("invalid range [{min}, {max}]: {why}")]
    BadRange { min: f64, max: f64, why: &'static str },
    /// A format name that could not be parsed.
    #[error("unknown format '{name}': {hint}")]
    UnknownFormat { name: String, hint: String },
    /// Per-channel parameters that do not match the tensor.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// Any other invalid parameter.
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
}

/// Result type of the core library.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
