//! The quantization manager: one quantizer slot in a network (a layer's weight, or an activation).
//!
//! It ties together a grid family ([`QuantMethod`]), a [`RangeEstimator`] and the policies of
//! `docs/range-estimators.md` that decide how a range becomes a quantizer:
//!
//! * FP with *set-maxval* on: `α = max(|x_min|, |x_max|)` per channel; with it off, `α` stays at the
//!   user's maximum or else at the default-bias maximum of the current format, and the range only
//!   decides the sign bit (and, through the MSE estimator, the mantissa bits).
//! * FP with *allow-unsigned*: a range whose `x_min >= 0` (every channel) drops the sign bit; it
//!   stays dropped for the rest of the estimation.
//! * INT and standard encodings: the range sets the grid directly.
//!
//! A slot is in one of two states: [`SlotState::Estimate`] (each [`QuantManager::forward`]
//! updates the range from the data, then quantizes with it — sequential calibration) or
//! [`SlotState::Fixed`] (quantize with the stored quantizers). Its state can be saved and loaded as
//! a serde value ([`QuantizerState`]) whose fields match the golden files' `quantizers` entries.
//!
//! ```
//! use fp8q_core::manager::{QuantConfig, QuantManager};
//! use fp8q_core::quantizer::QuantMethod;
//! use fp8q_core::range::RangeMethod;
//! let config = QuantConfig {
//!     method: QuantMethod::Fp { n_bits: 8, mantissa_bits: 3, allow_unsigned: false },
//!     range_method: RangeMethod::CurrentMinMax,
//!     per_channel: false,
//!     fp_set_maxval: true,
//!     fp_maxval: None,
//! };
//! let mut slot = QuantManager::new(config).unwrap();
//! let mut x = vec![0.3f32, -1.7, 2.0];
//! slot.forward(&mut x, 3).unwrap();       // estimates α = 2 and quantizes
//! slot.fix();
//! let mut y = vec![5.0f32];
//! slot.forward(&mut y, 1).unwrap();
//! assert_eq!(y[0], 2.0);                  // the fixed range clips
//! ```

use crate::error::{FormatError, Result};
use crate::format::{BlockFormat, Format, FpFormat, IntFormat, IntGrid, IntKind, StandardFp8};
use crate::quantizer::{
    quantize_channels, BlockLayout, BlockQuantizer, FpQuantizer, IntQuantizer, QuantMethod, Quantizer,
};
use crate::range::{Range, RangeEstimator, RangeMethod};

/// Configuration of one slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantConfig {
    /// Grid family (the MSE estimator may change an FP method's mantissa bits).
    pub method: QuantMethod,
    /// How the range is estimated.
    pub range_method: RangeMethod,
    /// One range per index of dimension 0.
    pub per_channel: bool,
    /// FP: the estimated range sets the maximum value `α`.
    pub fp_set_maxval: bool,
    /// FP: the maximum value when set-maxval is off (default: the default-bias maximum).
    pub fp_maxval: Option<f64>,
}

/// Whether a slot still learns its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotState {
    /// Every forward pass updates the range, then quantizes with it.
    Estimate,
    /// Ranges are fixed.
    Fixed,
}

/// The saved state of a slot: what a quantizer does, per channel. Field names follow the golden
/// files (`kind`, `maxval`, `mantissa_bits`, `sign_bits`; `delta`, `zero_point`), which are also
/// read: there, counts may be written as floats (`3.0`), FP states have no `n_bits` (the slot's
/// is used), INT states no `int_min`/`int_max` (derived for asymmetric grids) and one zero point
/// may stand for every channel. Each state also records its `format` (`e3m4`, `ue4m4`, `int8`,
/// `int8-asym`, `float8_e4m3fn`): the format of the stored quantizers. Older files (and the golden
/// ones) have none; when present, it must agree with the other fields.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QuantizerState {
    /// Flexible-bias FP.
    Fp {
        /// The format of the quantizers (`None` in files written before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<Format>,
        /// Total bits (`None`: the slot's).
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "whole_opt")]
        n_bits: Option<u32>,
        /// Maximum value per channel (one entry per tensor).
        maxval: Vec<f64>,
        /// Mantissa bits.
        #[serde(deserialize_with = "whole")]
        mantissa_bits: u32,
        /// 1 signed, 0 unsigned.
        #[serde(deserialize_with = "whole")]
        sign_bits: u32,
    },
    /// Uniform INT.
    Int {
        /// The format of the quantizers (`None` in files written before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<Format>,
        /// Total bits.
        #[serde(deserialize_with = "whole")]
        n_bits: u32,
        /// Step per channel.
        delta: Vec<f32>,
        /// Zero point per channel (0 for symmetric), or one for all channels.
        zero_point: Vec<f32>,
        /// Smallest integer (`None`: derived from the slot's grid kind, asymmetric only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        int_min: Option<i64>,
        /// Largest integer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        int_max: Option<i64>,
    },
    /// A block-scaled format: its scales come from each block of the data, so the format is
    /// the whole state.
    Block {
        /// The block format.
        format: Format,
    },
    /// A standard 8-bit encoding, scaled per channel.
    Standard {
        /// The format of the quantizers (`None` in files written before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<Format>,
        /// ml_dtypes name.
        encoding: String,
        /// Scale per channel.
        scale: Vec<f64>,
    },
}

impl QuantizerState {
    /// The format the state records (`None` in older files).
    pub fn format(&self) -> Option<Format> {
        match self {
            QuantizerState::Fp { format, .. }
            | QuantizerState::Int { format, .. }
            | QuantizerState::Standard { format, .. } => *format,
            QuantizerState::Block { format } => Some(*format),
        }
    }
}

impl QuantConfig {
    /// Whether a slot of this configuration can end up with quantizers of `format`: the same
    /// family and width; for FP the configured mantissa bits (any, when the MSE estimator searches
    /// them) and the signed format (or the unsigned one of the same mantissa bits, when unsigned
    /// formats are allowed); for INT the same kind; for a standard encoding the same encoding.
    pub fn admits(&self, format: Format) -> bool {
        match (self.method, format) {
            (
                QuantMethod::Fp {
                    n_bits,
                    mantissa_bits,
                    allow_unsigned,
                },
                Format::Fp(f),
            ) => {
                let searched = matches!(self.range_method, RangeMethod::Mse { mantissa_search: true });
                f.n_bits() == n_bits
                    && (searched || f.mantissa_bits() == mantissa_bits)
                    && (f.is_signed() || allow_unsigned)
            }
            (QuantMethod::Int(a), Format::Int(b)) => a == b,
            (QuantMethod::Standard(a), Format::Standard(b)) => a == b,
            (QuantMethod::Block(a), Format::Block(b)) => a == b,
            _ => false,
        }
    }
}

/// A non-negative whole number written as an integer or as an integral float (`3` or `3.0`).
fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u32, D::Error> {
    let v = <f64 as serde::Deserialize>::deserialize(d)?;
    if v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
        Ok(v as u32)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a non-negative whole number, got {v}"
        )))
    }
}

fn whole_opt<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    whole(d).map(Some)
}

/// One quantizer slot.
#[derive(Debug, Clone)]
pub struct QuantManager {
    config: QuantConfig,
    method: QuantMethod,
    estimator: RangeEstimator,
    range: Option<Range>,
    quantizers: Vec<Quantizer>,
    state: SlotState,
    /// FP with allow-unsigned: a range with `x_min >= 0` has dropped the sign bit, and it stays
    /// dropped for later ranges of this estimation (as in the reference, whose quantizer only
    /// ever switches from signed to unsigned).
    unsigned: bool,
}

impl QuantManager {
    /// A slot in the estimate state. FP slots with set-maxval off are usable at once (their `α` is
    /// known); others need a forward pass in the estimate state (or a loaded state) first.
    pub fn new(config: QuantConfig) -> Result<Self> {
        if let Some(a) = config.fp_maxval {
            crate::format::fp_format::check_maxval(a)?;
        }
        let mut slot = Self {
            config,
            method: config.method,
            estimator: RangeEstimator::new(config.range_method, config.per_channel),
            range: None,
            quantizers: Vec::new(),
            state: SlotState::Estimate,
            unsigned: false,
        };
        if matches!(config.method, QuantMethod::Fp { .. }) && !config.fp_set_maxval {
            let alpha = slot.fixed_alpha()?;
            let format = slot.fp_format(true)?;
            slot.quantizers = vec![Quantizer::Fp(FpQuantizer::new(format, alpha)?)];
            // the MSE estimator scores its candidates with the maximum the slot will keep
            slot.estimator.set_fixed_fp_maxval(Some(alpha));
        }
        Ok(slot)
    }

    /// The configuration.
    pub fn config(&self) -> &QuantConfig {
        &self.config
    }
    /// The current grid family (mantissa bits as chosen so far).
    pub fn method(&self) -> QuantMethod {
        self.method
    }
    /// The latest range, if estimated.
    pub fn range(&self) -> Option<&Range> {
        self.range.as_ref()
    }
    /// Estimate or fixed.
    pub fn slot_state(&self) -> SlotState {
        self.state
    }
    /// The quantizer, when the slot is fixed and per-tensor: quantizing with it is then exactly
    /// what [`QuantManager::forward`] does, element by element, so callers may fuse it into their
    /// own loops.
    pub fn fixed_quantizer(&self) -> Option<&Quantizer> {
        match (self.state, self.quantizers.as_slice()) {
            (SlotState::Fixed, [q]) => Some(q),
            _ => None,
        }
    }
    /// Stop learning: keep the current quantizers.
    pub fn fix(&mut self) {
        self.state = SlotState::Fixed;
    }
    /// Learn again from scratch on the next forward pass.
    pub fn estimate(&mut self) {
        self.state = SlotState::Estimate;
        self.estimator.reset();
        self.unsigned = false;
    }

    /// Update the range from `data` (estimate state) and quantize `data` in place. `dim0` is the
    /// size of dimension 0 (the channels for per-channel slots).
    pub fn forward(&mut self, data: &mut [f32], dim0: usize) -> Result<()> {
        self.forward_in(data, dim0, BlockLayout::flat(data.len()))
    }

    /// [`QuantManager::forward`] for a tensor laid out as `layout` around its reduction axis:
    /// a block-scaled slot quantizes blocks along `layout.len` (and has no range to update);
    /// other slots ignore the layout.
    pub fn forward_in(&mut self, data: &mut [f32], dim0: usize, layout: BlockLayout) -> Result<()> {
        if let QuantMethod::Block(b) = self.method {
            return quantize_blocks_in(b, data, layout);
        }
        if self.state == SlotState::Estimate {
            let range = self.estimator.update(data, dim0, &mut self.method)?;
            self.set_range(range)?;
        }
        self.quantize(data)
    }

    /// Quantize with the current quantizers without touching the range (a quantizer shared by a
    /// later tensor, e.g. the average pool reusing the last block's).
    pub fn quantize(&self, data: &mut [f32]) -> Result<()> {
        self.quantize_in(data, BlockLayout::flat(data.len()))
    }

    /// [`QuantManager::quantize`] for a tensor laid out as `layout` (see
    /// [`QuantManager::forward_in`]).
    pub fn quantize_in(&self, data: &mut [f32], layout: BlockLayout) -> Result<()> {
        if let QuantMethod::Block(b) = self.method {
            return quantize_blocks_in(b, data, layout);
        }
        if self.quantizers.is_empty() {
            return Err(FormatError::Invalid {
                what: "quantizer state",
                why: "no range yet: run calibration (or load quantization parameters) first".into(),
            });
        }
        quantize_channels(&self.quantizers, data)
    }

    /// Set the range and derive the quantizers from it (`docs/range-estimators.md`, "From a range to a quantizer").
    pub fn set_range(&mut self, range: Range) -> Result<()> {
        self.quantizers = match self.method {
            QuantMethod::Fp { allow_unsigned, .. } => {
                self.unsigned |= allow_unsigned && range.min.iter().all(|&m| m >= 0.0);
                let signed = !self.unsigned;
                let format = self.fp_format(signed)?;
                if self.config.fp_set_maxval {
                    range
                        .min
                        .iter()
                        .zip(&range.max)
                        .map(|(lo, hi)| {
                            let alpha = lo.abs().max(hi.abs()) as f64;
                            FpQuantizer::new_allow_zero(format, alpha).map(Quantizer::Fp)
                        })
                        .collect::<Result<_>>()?
                } else {
                    vec![Quantizer::Fp(FpQuantizer::new(format, self.fixed_alpha()?)?)]
                }
            }
            _ => range.quantizers(&self.method)?,
        };
        self.range = Some(range);
        Ok(())
    }

    fn fp_format(&self, signed: bool) -> Result<FpFormat> {
        match self.method {
            QuantMethod::Fp {
                n_bits, mantissa_bits, ..
            } => FpFormat::new(n_bits, mantissa_bits, signed),
            _ => unreachable!("fp_format is only asked of FP slots"),
        }
    }

    /// `α` when set-maxval is off: the user's, or the default-bias maximum of the signed format
    /// with the *configured* mantissa bits (as the reference, which fixes it at construction).
    fn fixed_alpha(&self) -> Result<f64> {
        match (self.config.fp_maxval, self.config.method) {
            (Some(a), _) => Ok(a),
            (
                None,
                QuantMethod::Fp {
                    n_bits, mantissa_bits, ..
                },
            ) => Ok(FpFormat::new(n_bits, mantissa_bits, true)?.max_value_default()),
            _ => unreachable!("fixed_alpha is only asked of FP slots"),
        }
    }

    /// The slot's current quantizers as a serializable state.
    pub fn state(&self) -> Option<QuantizerState> {
        if let QuantMethod::Block(b) = self.method {
            return Some(QuantizerState::Block {
                format: Format::Block(b),
            });
        }
        if self.quantizers.is_empty() {
            return None;
        }
        Some(match self.quantizers[0] {
            Quantizer::Fp(first) => match self.method {
                QuantMethod::Standard(s) => QuantizerState::Standard {
                    format: Some(Format::Standard(s)),
                    encoding: s.name().into(),
                    scale: self
                        .fp_quantizers()
                        .map(|q| q.maxval() / s.max_value() as f64)
                        .collect(),
                },
                _ => QuantizerState::Fp {
                    format: Some(Format::Fp(first.format())),
                    n_bits: Some(first.format().n_bits()),
                    maxval: self.fp_quantizers().map(|q| q.maxval()).collect(),
                    mantissa_bits: first.format().mantissa_bits(),
                    sign_bits: first.format().sign_bits(),
                },
            },
            Quantizer::Int(first) => {
                let grids: Vec<IntGrid> = self
                    .quantizers
                    .iter()
                    .filter_map(|q| match q {
                        Quantizer::Int(i) => Some(i.grid()),
                        _ => None,
                    })
                    .collect();
                QuantizerState::Int {
                    format: match self.method {
                        QuantMethod::Int(f) => Some(Format::Int(f)),
                        _ => None,
                    },
                    n_bits: self.method.n_bits(),
                    delta: grids.iter().map(|g| g.delta).collect(),
                    zero_point: grids.iter().map(|g| g.zero_point).collect(),
                    int_min: Some(first.grid().int_min),
                    int_max: Some(first.grid().int_max),
                }
            }
        })
    }

    fn fp_quantizers(&self) -> impl Iterator<Item = &FpQuantizer> {
        self.quantizers.iter().filter_map(|q| match q {
            Quantizer::Fp(f) => Some(f),
            _ => None,
        })
    }

    /// Replace the quantizers with a saved state and fix the slot. The state's kind must match
    /// the slot's method family.
    pub fn load_state(&mut self, state: &QuantizerState) -> Result<()> {
        let mismatch = |why: String| FormatError::Invalid {
            what: "saved quantizer state",
            why,
        };
        if let (QuantizerState::Block { format }, method) = (state, self.method) {
            if QuantMethod::from_format(*format) != method {
                return Err(mismatch(format!(
                    "a saved {format} quantizer cannot be loaded into a slot of {method:?}"
                )));
            }
            self.state = SlotState::Fixed;
            return Ok(());
        }
        self.quantizers = match (state, self.method) {
            (
                QuantizerState::Fp {
                    format: recorded,
                    n_bits,
                    maxval,
                    mantissa_bits,
                    sign_bits,
                },
                QuantMethod::Fp {
                    allow_unsigned,
                    n_bits: slot_bits,
                    ..
                },
            ) => {
                let n_bits = n_bits.unwrap_or(slot_bits);
                let format = FpFormat::new(n_bits, *mantissa_bits, *sign_bits == 1)?;
                if let Some(f) = recorded.filter(|f| *f != Format::Fp(format)) {
                    return Err(mismatch(format!(
                        "the recorded format {f} does not match its fields ({n_bits} bits, {mantissa_bits} \
                         mantissa bits, {sign_bits} sign bit: {})",
                        Format::Fp(format)
                    )));
                }
                self.method = QuantMethod::Fp {
                    n_bits,
                    mantissa_bits: *mantissa_bits,
                    allow_unsigned,
                };
                self.unsigned = *sign_bits == 0;
                maxval
                    .iter()
                    .map(|&a| FpQuantizer::new_allow_zero(format, a).map(Quantizer::Fp))
                    .collect::<Result<_>>()?
            }
            (
                QuantizerState::Int {
                    format: recorded,
                    n_bits,
                    delta,
                    zero_point,
                    int_min,
                    int_max,
                },
                QuantMethod::Int(f),
            ) => {
                if let Some(r) = recorded.filter(|r| *r != Format::Int(f)) {
                    return Err(mismatch(format!(
                        "a saved {r} quantizer cannot be loaded into a {} slot",
                        Format::Int(f)
                    )));
                }
                let broadcast = zero_point.len() == 1 && delta.len() > 1;
                if *n_bits != f.n_bits || (delta.len() != zero_point.len() && !broadcast) {
                    return Err(mismatch(format!(
                        "INT state with {n_bits} bits and {} steps / {} zero points does not fit an INT{} slot",
                        delta.len(),
                        zero_point.len(),
                        f.n_bits
                    )));
                }
                let (int_min, int_max) = match (int_min, int_max, f.kind) {
                    (Some(lo), Some(hi), _) => (*lo, *hi),
                    (None, None, IntKind::Asymmetric) => (0, (1i64 << f.n_bits) - 1),
                    _ => {
                        return Err(mismatch(
                            "a symmetric INT state needs int_min and int_max (whether the grid is signed \
                             is not recorded otherwise)"
                                .into(),
                        ))
                    }
                };
                delta
                    .iter()
                    .zip(zero_point.iter().cycle())
                    .map(|(&d, &z)| {
                        if !(d.is_finite() && d > 0.0) {
                            return Err(mismatch(format!("step {d} is not positive")));
                        }
                        Ok(Quantizer::Int(IntQuantizer::new(IntGrid {
                            delta: d,
                            zero_point: z,
                            int_min,
                            int_max,
                        })))
                    })
                    .collect::<Result<_>>()?
            }
            (
                QuantizerState::Standard {
                    format: recorded,
                    encoding,
                    scale,
                },
                QuantMethod::Standard(s),
            ) => {
                if StandardFp8::from_name(encoding) != Some(s) || recorded.is_some_and(|r| r != Format::Standard(s)) {
                    return Err(mismatch(format!("encoding {encoding} does not match {}", s.name())));
                }
                scale
                    .iter()
                    .map(|&c| FpQuantizer::standard(s, c).map(Quantizer::Fp))
                    .collect::<Result<_>>()?
            }
            (state, method) => {
                return Err(mismatch(format!(
                    "a saved {} quantizer cannot be loaded into a slot of {method:?}",
                    match state {
                        QuantizerState::Fp { .. } => "FP",
                        QuantizerState::Int { .. } => "INT",
                        QuantizerState::Standard { .. } => "standard-encoding",
                        QuantizerState::Block { .. } => "block-scaled",
                    }
                )))
            }
        };
        if self.quantizers.is_empty() {
            return Err(mismatch("no channels".into()));
        }
        self.state = SlotState::Fixed;
        Ok(())
    }
}

/// Quantize `data` laid out as `layout` with the block format `b` (blocks along `layout.len`).
fn quantize_blocks_in(b: BlockFormat, data: &mut [f32], layout: BlockLayout) -> Result<()> {
    let q = BlockQuantizer::for_tensor(b, data);
    let x = data.to_vec();
    q.quantize(layout, &x, data)
}

/// The INT method of a `--qmethod` name (`symmetric_uniform`, `asymmetric_uniform`).
pub fn int_method(name: &str, n_bits: u32) -> Result<Option<QuantMethod>> {
    Ok(match name {
        "symmetric_uniform" => Some(QuantMethod::Int(IntFormat::new(n_bits, IntKind::Symmetric)?)),
        "asymmetric_uniform" => Some(QuantMethod::Int(IntFormat::new(n_bits, IntKind::Asymmetric)?)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp_config(set_maxval: bool) -> QuantConfig {
        QuantConfig {
            method: QuantMethod::Fp {
                n_bits: 8,
                mantissa_bits: 3,
                allow_unsigned: true,
            },
            range_method: RangeMethod::AllMinMax,
            per_channel: true,
            fp_set_maxval: set_maxval,
            fp_maxval: None,
        }
    }

    /// As the reference's quantizer, a slot that has dropped its sign bit keeps it dropped when a
    /// later batch has negative values (they then quantize to 0), until estimation restarts.
    #[test]
    fn a_dropped_sign_bit_stays_dropped() {
        let mut config = fp_config(true);
        config.range_method = RangeMethod::CurrentMinMax;
        config.per_channel = false;
        let mut slot = QuantManager::new(config).unwrap();
        slot.forward(&mut [0.5f32, 3.0], 1).unwrap();
        assert_eq!(slot.state().unwrap().format().unwrap().to_string(), "ue5m3");
        let mut x = [-1.0f32, 2.0];
        slot.forward(&mut x, 1).unwrap();
        assert_eq!(slot.state().unwrap().format().unwrap().to_string(), "ue5m3");
        assert_eq!(x, [0.0, 2.0]);
        slot.estimate();
        let mut x = [-1.0f32, 2.0];
        slot.forward(&mut x, 1).unwrap();
        assert_eq!(slot.state().unwrap().format().unwrap().to_string(), "e4m3");
        assert_eq!(x, [-1.0, 2.0]);
    }

    #[test]
    fn set_maxval_off_keeps_the_default_range_but_drops_the_sign() {
        let mut slot = QuantManager::new(fp_config(false)).unwrap();
        let mut x = vec![0.5f32, 300.0, 0.0, 1.0];
        slot.forward(&mut x, 2).unwrap();
        assert_eq!(x[1], 240.0);
        match slot.state().unwrap() {
            QuantizerState::Fp { maxval, sign_bits, .. } => {
                assert_eq!(maxval, vec![240.0]);
                assert_eq!(sign_bits, 0);
            }
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn per_channel_state_round_trips() {
        let mut slot = QuantManager::new(fp_config(true)).unwrap();
        let mut x = vec![-0.5f32, 0.25, 3.0, -2.0];
        slot.forward(&mut x, 2).unwrap();
        let state = slot.state().unwrap();
        let json = serde_json::to_string(&state).unwrap();
        assert!(json.contains("\"kind\":\"fp\""), "{json}");
        let back: QuantizerState = serde_json::from_str(&json).unwrap();
        let mut other = QuantManager::new(fp_config(true)).unwrap();
        other.load_state(&back).unwrap();
        assert_eq!(other.slot_state(), SlotState::Fixed);
        let mut a = vec![0.3f32, -0.4, 2.9, 1.1];
        let mut b = a.clone();
        slot.quantize(&mut a).unwrap();
        other.quantize(&mut b).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn load_rejects_a_mismatched_state() {
        let mut slot = QuantManager::new(fp_config(true)).unwrap();
        let int_state = QuantizerState::Int {
            format: None,
            n_bits: 8,
            delta: vec![0.1],
            zero_point: vec![0.0],
            int_min: Some(-128),
            int_max: Some(127),
        };
        let err = slot.load_state(&int_state).unwrap_err().to_string();
        assert!(err.contains("INT"), "{err}");
        let unestimated = QuantManager::new(QuantConfig {
            fp_set_maxval: true,
            ..fp_config(true)
        })
        .unwrap();
        assert!(unestimated
            .quantize(&mut [1.0])
            .unwrap_err()
            .to_string()
            .contains("calibration"));
    }

    /// Per-channel symmetric INT: one sign decision for the whole tensor (the reference's rule).
    #[test]
    fn per_channel_symmetric_int_signs_the_whole_tensor() {
        let config = |per_channel| QuantConfig {
            method: QuantMethod::Int(IntFormat::new(8, IntKind::Symmetric).unwrap()),
            range_method: RangeMethod::CurrentMinMax,
            per_channel,
            fp_set_maxval: true,
            fp_maxval: None,
        };
        let deltas = |data: &[f32], per_channel: bool| {
            let mut slot = QuantManager::new(config(per_channel)).unwrap();
            slot.forward(&mut data.to_vec(), 2).unwrap();
            match slot.state().unwrap() {
                QuantizerState::Int { delta, zero_point, .. } => (delta, zero_point),
                s => panic!("{s:?}"),
            }
        };
        // channel 0 non-negative, channel 1 with a negative value: both get the signed grid
        let (delta, _) = deltas(&[0.0, 2.54, -1.0, 1.27], true);
        assert_eq!(delta, vec![2.54f32 / 127.0, 1.27f32 / 127.0]);
        // all channels non-negative: each keeps the unsigned grid
        let (delta, _) = deltas(&[0.0, 2.55, 0.5, 1.275], true);
        assert_eq!(delta, vec![2.55f32 / 255.0, 1.275f32 / 255.0]);
    }

    /// States in the golden files' spelling load: float counts, no `n_bits` for FP, no integer
    /// range for asymmetric INT, one zero point for all channels; a symmetric INT state without
    /// its integer range is refused (its sign is unknown).
    #[test]
    fn golden_style_states_load() {
        let mut fp = QuantManager::new(fp_config(true)).unwrap();
        let state: QuantizerState =
            serde_json::from_str(r#"{"kind": "fp", "maxval": [2.0, 4.0], "mantissa_bits": 2.0, "sign_bits": 1}"#)
                .unwrap();
        fp.load_state(&state).unwrap();
        match fp.state().unwrap() {
            QuantizerState::Fp {
                n_bits,
                mantissa_bits,
                maxval,
                ..
            } => {
                assert_eq!((n_bits, mantissa_bits), (Some(8), 2));
                assert_eq!(maxval, vec![2.0, 4.0]);
            }
            s => panic!("{s:?}"),
        }
        assert!(serde_json::from_str::<QuantizerState>(
            r#"{"kind": "fp", "maxval": [1.0], "mantissa_bits": 2.5, "sign_bits": 1}"#
        )
        .is_err());

        let int_config = |kind| QuantConfig {
            method: QuantMethod::Int(IntFormat::new(8, kind).unwrap()),
            range_method: RangeMethod::CurrentMinMax,
            per_channel: true,
            fp_set_maxval: true,
            fp_maxval: None,
        };
        let int_state: QuantizerState =
            serde_json::from_str(r#"{"kind": "int", "n_bits": 8.0, "delta": [0.5, 0.25], "zero_point": [3.0]}"#)
                .unwrap();
        let mut asym = QuantManager::new(int_config(IntKind::Asymmetric)).unwrap();
        asym.load_state(&int_state).unwrap();
        let mut x = vec![-1.5f32, 200.0, -1.0, 200.0];
        asym.quantize(&mut x).unwrap();
        // channel 0: Δ 0.5, z 3 → [-1.5, 126]; channel 1: Δ 0.25, z 3 → [-0.75, 63]
        assert_eq!(x, vec![-1.5, 126.0, -0.75, 63.0]);
        let mut sym = QuantManager::new(int_config(IntKind::Symmetric)).unwrap();
        let err = sym.load_state(&int_state).unwrap_err().to_string();
        assert!(err.contains("int_min"), "{err}");
    }

    /// States record their format; a recorded format that contradicts the fields, or an INT kind
    /// other than the slot's, is refused; `admits` follows the configuration's freedoms.
    #[test]
    fn states_record_their_format() {
        let mut slot = QuantManager::new(fp_config(true)).unwrap();
        slot.forward(&mut [0.5f32, 3.0, 0.0, 1.0], 2).unwrap();
        let state = slot.state().unwrap();
        // non-negative data, unsigned allowed: 8 bits with 3 mantissa bits and no sign
        assert_eq!(state.format().unwrap().to_string(), "ue5m3");
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["format"], "ue5m3");
        let mut lying = json.clone();
        lying["format"] = "e4m3".into();
        let lying: QuantizerState = serde_json::from_value(lying).unwrap();
        let err = QuantManager::new(fp_config(true))
            .unwrap()
            .load_state(&lying)
            .unwrap_err()
            .to_string();
        assert!(err.contains("e4m3") && err.contains("ue5m3"), "{err}");

        let int_config = |kind| QuantConfig {
            method: QuantMethod::Int(IntFormat::new(8, kind).unwrap()),
            range_method: RangeMethod::CurrentMinMax,
            per_channel: false,
            fp_set_maxval: true,
            fp_maxval: None,
        };
        let mut asym = QuantManager::new(int_config(IntKind::Asymmetric)).unwrap();
        asym.forward(&mut [-1.0f32, 2.0], 2).unwrap();
        let state = asym.state().unwrap();
        assert_eq!(state.format().unwrap().to_string(), "int8-asym");
        let err = QuantManager::new(int_config(IntKind::Symmetric))
            .unwrap()
            .load_state(&state)
            .unwrap_err()
            .to_string();
        assert!(err.contains("int8-asym") && err.contains("int8 slot"), "{err}");

        let f = |s: &str| s.parse::<Format>().unwrap();
        let fp = fp_config(true); // E4M3 (8 bits, m = 3), unsigned allowed, no MSE search
        assert!(fp.admits(f("e4m3")) && fp.admits(f("ue5m3")));
        assert!(!fp.admits(f("e3m4")) && !fp.admits(f("int8")) && !fp.admits(f("e3m3")));
        let searched = QuantConfig {
            range_method: RangeMethod::Mse { mantissa_search: true },
            method: QuantMethod::Fp {
                n_bits: 8,
                mantissa_bits: 3,
                allow_unsigned: false,
            },
            ..fp
        };
        assert!(searched.admits(f("e3m4")) && !searched.admits(f("ue4m4")));
        assert!(int_config(IntKind::Symmetric).admits(f("int8")));
        assert!(!int_config(IntKind::Symmetric).admits(f("int8-asym")));
    }
}
