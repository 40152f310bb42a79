//! Where quantizers go and how each is configured (`docs/ptq.md`).
//!
//! [`plan`] lists, for a model and a [`PtqConfig`], every slot that gets a quantizer with its
//! bit width (and whether it quantizes its unit's input, `LSQ_paper`; and its own format when
//! `--layer-formats` lists it, see [`crate::layer_formats`]); [`install`] builds a
//! [`QuantManager`] per planned slot, puts it into the model and returns the [`Installed`]
//! registry that fixes ranges and saves / loads the per-quantizer states.
//!
//! Quant setups (the reference's `--quant-setup`):
//! * `all`: every weight (per-channel if asked) and every activation slot (`docs/ptq.md`);
//! * `FP_logits`: as `all` without the logits quantizer;
//! * `LSQ`: as `all`, with the first conv's weight, the last conv's output (ResNet: also the last
//!   block's output; MobileNetV2: the output of `features.18`, which the average pool shares) and
//!   the FC weight in 8 bits, and no logits quantizer;
//! * `LSQ_paper`: no block-output quantizers; each conv / linear quantizes its **input** with its
//!   activation quantizer, except the first conv (unquantized input); the first conv's and the
//!   FC's weights and the FC's input in 8 bits; the average pool is not quantized;
//! * `fc4`: as `all`, with the first conv's weight in 8 bits and the FC weight in 4 bits;
//! * `fc4_dw8` (MobileNetV2 only): as `fc4`, plus every depthwise conv's weight in 8 bits.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use fp8q_core::format::{Format, FpFormat};
use fp8q_core::manager::{int_method, QuantConfig, QuantManager, QuantizerState};
use fp8q_core::quantizer::QuantMethod;
use fp8q_core::range::RangeMethod;

use crate::error::{PtqError, Result};
use crate::layer_formats::{role_of, LayerFormats};
use crate::quantizer::{ManagedQuantizer, SlotHandle};
use fp8q_nn::layers::SlotKind;
use fp8q_nn::models::Model;

/// `--quant-setup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuantSetup {
    /// Every quantizer (`docs/ptq.md`, quant setup `all`).
    #[default]
    All,
    /// No quantizer on the logits.
    FpLogits,
    /// First/last layers in 8 bits, logits unquantized.
    Lsq,
    /// LSQ as in its paper: input quantization.
    LsqPaper,
    /// First conv weight 8 bits, FC weight 4 bits.
    Fc4,
    /// `fc4` plus depthwise weights in 8 bits (MobileNetV2).
    Fc4Dw8,
}

impl QuantSetup {
    /// Every name, as the reference spells them.
    pub const NAMES: [&'static str; 6] = ["all", "FP_logits", "LSQ", "LSQ_paper", "fc4", "fc4_dw8"];

    /// The reference's name.
    pub fn name(self) -> &'static str {
        match self {
            QuantSetup::All => "all",
            QuantSetup::FpLogits => "FP_logits",
            QuantSetup::Lsq => "LSQ",
            QuantSetup::LsqPaper => "LSQ_paper",
            QuantSetup::Fc4 => "fc4",
            QuantSetup::Fc4Dw8 => "fc4_dw8",
        }
    }
}

impl FromStr for QuantSetup {
    type Err = PtqError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "all" => QuantSetup::All,
            "FP_logits" => QuantSetup::FpLogits,
            "LSQ" => QuantSetup::Lsq,
            "LSQ_paper" => QuantSetup::LsqPaper,
            "fc4" => QuantSetup::Fc4,
            "fc4_dw8" => QuantSetup::Fc4Dw8,
            other => {
                return Err(PtqError::invalid(
                    "quant setup",
                    format!("'{other}' is not one of {}", QuantSetup::NAMES.join(", ")),
                ))
            }
        })
    }
}

/// `--qmethod` / `--qmethod-act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QMethodKind {
    /// Symmetric uniform INT.
    SymmetricUniform,
    /// Asymmetric uniform INT.
    AsymmetricUniform,
    /// The paper's flexible-bias FP.
    FpQuantizer,
}

impl QMethodKind {
    /// The reference's name.
    pub fn name(self) -> &'static str {
        match self {
            QMethodKind::SymmetricUniform => "symmetric_uniform",
            QMethodKind::AsymmetricUniform => "asymmetric_uniform",
            QMethodKind::FpQuantizer => "fp_quantizer",
        }
    }
}

impl FromStr for QMethodKind {
    type Err = PtqError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "symmetric_uniform" => QMethodKind::SymmetricUniform,
            "asymmetric_uniform" => QMethodKind::AsymmetricUniform,
            "fp_quantizer" => QMethodKind::FpQuantizer,
            other => {
                return Err(PtqError::invalid(
                    "quantization method",
                    format!("'{other}' is not one of symmetric_uniform, asymmetric_uniform, fp_quantizer"),
                ))
            }
        })
    }
}

/// The quantization options of `validate-quantized` (`docs/ptq.md`), reference defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct PtqConfig {
    /// Weight method (`--qmethod`).
    pub qmethod: QMethodKind,
    /// Activation method (`--qmethod-act`, default: `qmethod`).
    pub qmethod_act: Option<QMethodKind>,
    /// Weight bits (`--n-bits`).
    pub n_bits: u32,
    /// Activation bits (`--n-bits-act`, default: `n_bits`).
    pub n_bits_act: Option<u32>,
    /// `--fp8-mantissa-bits`.
    pub fp8_mantissa_bits: u32,
    /// `--fp8-maxval`.
    pub fp8_maxval: Option<f64>,
    /// `--fp8-set-maxval`: the estimated range sets the FP maximum.
    pub fp8_set_maxval: bool,
    /// `--fp8-mse-include-mantissa-bits`: the MSE estimator also searches the mantissa bits
    /// (each quantizer chooses its own).
    pub fp8_mse_include_mantissa_bits: bool,
    /// `--fp8-allow-unsigned`.
    pub fp8_allow_unsigned: bool,
    /// `--weight-quant-method` (the MSE flag and the momentum are set from the options above).
    pub weight_quant_method: RangeMethod,
    /// `--act-quant-method`.
    pub act_quant_method: RangeMethod,
    /// `--act-momentum` of the running min-max activation estimator.
    pub act_momentum: f32,
    /// `--per-channel` (weights only).
    pub per_channel: bool,
    /// `--weight-quant`.
    pub weight_quant: bool,
    /// `--act-quant`.
    pub act_quant: bool,
    /// `--quant-setup`.
    pub quant_setup: QuantSetup,
    /// `--layer-formats`: per-slot formats in place of the global method and widths
    /// ([`crate::layer_formats`]); `None`: every slot follows the options above.
    pub layer_formats: Option<LayerFormats>,
    /// `--weight-format`: every weight slot's format (any fp8q format, block-scaled included),
    /// in place of `--qmethod`, `--n-bits` and `--fp8-mantissa-bits` (and of the quant setup's
    /// width changes); slots listed in `--layer-formats` keep theirs.
    pub weight_format: Option<Format>,
    /// `--act-format`: the same for activation slots.
    pub act_format: Option<Format>,
}

impl Default for PtqConfig {
    fn default() -> Self {
        PtqConfig {
            qmethod: QMethodKind::FpQuantizer,
            qmethod_act: None,
            n_bits: 8,
            n_bits_act: None,
            fp8_mantissa_bits: 4,
            fp8_maxval: None,
            fp8_set_maxval: false,
            fp8_mse_include_mantissa_bits: true,
            fp8_allow_unsigned: false,
            weight_quant_method: RangeMethod::CurrentMinMax,
            act_quant_method: RangeMethod::RunningMinMax {
                momentum: RangeMethod::DEFAULT_MOMENTUM,
            },
            act_momentum: RangeMethod::DEFAULT_MOMENTUM,
            per_channel: false,
            weight_quant: true,
            act_quant: true,
            quant_setup: QuantSetup::All,
            layer_formats: None,
            weight_format: None,
            act_format: None,
        }
    }
}

impl PtqConfig {
    /// A range method by the reference's name (`current_minmax`, `allminmax`,
    /// `running_minmax`, `MSE`).
    pub fn range_method(name: &str) -> Result<RangeMethod> {
        match name {
            "cross_entropy" => Err(PtqError::invalid(
                "range method",
                "cross_entropy is not supported; use current_minmax, allminmax, running_minmax or MSE",
            )),
            other => RangeMethod::from_str(other).map_err(|e| PtqError::invalid("range method", e.to_string())),
        }
    }

    /// Calibration batches actually run: the reference stops after one batch when activations
    /// are not quantized.
    pub fn calibration_batches(&self, num_est_batches: usize) -> usize {
        if self.act_quant {
            num_est_batches
        } else {
            num_est_batches.min(1)
        }
    }

    /// The FP mantissa bits of a `bits`-wide slot: `--fp8-mantissa-bits`, except that a slot
    /// narrower than that split allows (the 4-bit FC weight of `fc4` with the default m = 4)
    /// keeps one exponent bit: `min(m, bits - 2)` (E1M2 for 4 bits).
    pub fn fp_mantissa_bits(&self, bits: u32) -> u32 {
        self.fp8_mantissa_bits.min(bits.saturating_sub(2)).max(1)
    }

    fn method(&self, kind: QMethodKind, bits: u32, unit: &str) -> Result<QuantMethod> {
        let bad = |e: fp8q_core::FormatError| PtqError::Quantizer {
            unit: unit.to_string(),
            why: e.to_string(),
        };
        match kind {
            QMethodKind::FpQuantizer => {
                let mantissa_bits = self.fp_mantissa_bits(bits);
                // validate now (set-maxval slots build their format only on the first range)
                FpFormat::new(bits, mantissa_bits, true).map_err(bad)?;
                Ok(QuantMethod::Fp {
                    n_bits: bits,
                    mantissa_bits,
                    allow_unsigned: self.fp8_allow_unsigned,
                })
            }
            QMethodKind::SymmetricUniform | QMethodKind::AsymmetricUniform => int_method(kind.name(), bits)
                .map_err(bad)?
                .ok_or_else(|| PtqError::invalid("quantization method", kind.name())),
        }
    }

    /// The method of a slot listed in `--layer-formats`. An unsigned FP format falls back to the
    /// signed one of its mantissa bits on negative ranges, which must exist.
    fn listed_method(&self, format: Format, slot: &SlotPlan) -> Result<QuantMethod> {
        let method = QuantMethod::from_format(format);
        if let (
            Format::Fp(f),
            QuantMethod::Fp {
                n_bits, mantissa_bits, ..
            },
        ) = (format, method)
        {
            if !f.is_signed() && FpFormat::new(n_bits, mantissa_bits, true).is_err() {
                let what = self.layer_formats.as_ref().map(|l| l.what()).unwrap_or_default();
                return Err(PtqError::invalid(
                    what,
                    format!(
                        "unit '{}' {}: {format} has no signed counterpart with {mantissa_bits} mantissa bits in \
                         {n_bits} bits, which an unsigned slot uses for negative ranges",
                        slot.unit,
                        role_of(slot.kind)
                    ),
                ));
            }
        }
        Ok(method)
    }

    /// The manager configuration of one planned slot: its own format if the plan lists one
    /// (`--layer-formats`; the MSE estimator then keeps its mantissa bits), else the global
    /// method and width.
    pub fn slot_config(&self, slot: &SlotPlan) -> Result<QuantConfig> {
        let weight = slot.kind == SlotKind::Weight;
        let side = self.side_format(slot.kind);
        let kind = if weight {
            self.qmethod
        } else {
            self.qmethod_act.unwrap_or(self.qmethod)
        };
        let own = slot.format.or(side);
        let method = match own {
            Some(format) => self.listed_method(format, slot)?,
            None => self.method(kind, slot.bits, &slot.unit)?,
        };
        // a listed (or side-wide) format fixes the mantissa bits
        let search_mantissa =
            matches!(method, QuantMethod::Fp { .. }) && own.is_none() && self.fp8_mse_include_mantissa_bits;
        let range_method = match if weight {
            self.weight_quant_method
        } else {
            self.act_quant_method
        } {
            RangeMethod::Mse { .. } => RangeMethod::Mse {
                mantissa_search: search_mantissa,
            },
            RangeMethod::RunningMinMax { momentum } => RangeMethod::RunningMinMax {
                momentum: if weight { momentum } else { self.act_momentum },
            },
            other => other,
        };
        // With set-maxval off, the reference's FP quantizer keeps the maximum it computed at
        // construction, from the *configured* width (`--n-bits` / `--n-bits-act`) and mantissa
        // bits; a quant setup that later changes a slot's width (LSQ, LSQ_paper, fc4, fc4_dw8)
        // does not recompute it. So such a slot keeps that maximum, not its own format's default.
        let configured_bits = if weight {
            self.n_bits
        } else {
            self.n_bits_act.unwrap_or(self.n_bits)
        };
        let fp_maxval = match (self.fp8_maxval, method, own) {
            (None, QuantMethod::Fp { .. }, None) if slot.bits != configured_bits => Some(
                FpFormat::new(configured_bits, self.fp8_mantissa_bits, true)
                    .map_err(|e| PtqError::Quantizer {
                        unit: slot.unit.clone(),
                        why: e.to_string(),
                    })?
                    .max_value_default(),
            ),
            (given, _, _) => given,
        };
        Ok(QuantConfig {
            method,
            range_method,
            per_channel: weight && self.per_channel,
            fp_set_maxval: self.fp8_set_maxval,
            fp_maxval,
        })
    }
}

impl PtqConfig {
    /// The side-wide format of a slot kind (`--weight-format`, `--act-format`).
    pub fn side_format(&self, kind: SlotKind) -> Option<Format> {
        match kind {
            SlotKind::Weight => self.weight_format,
            SlotKind::Output | SlotKind::BlockOutput => self.act_format,
        }
    }
}

/// One slot that gets a quantizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPlan {
    /// The unit (checkpoint prefix).
    pub unit: String,
    /// Which slot.
    pub kind: SlotKind,
    /// Bit width.
    pub bits: u32,
    /// The activation quantizer acts on the unit's input (`LSQ_paper`).
    pub quantize_input: bool,
    /// The slot's own format (`--layer-formats`; `bits` is then its width), or `None` for the
    /// global options.
    pub format: Option<Format>,
}

/// Names the setups refer to.
struct Landmarks {
    first_conv: String,
    classifier: String,
    /// ResNet: the last block and its last conv; MobileNetV2: `features.18`.
    last_block: Option<String>,
    last_conv: String,
    depthwise: Vec<String>,
    is_resnet: bool,
}

fn landmarks(model: &mut Model) -> Landmarks {
    let depthwise = model
        .units_mut()
        .into_iter()
        .filter(|u| u.conv.groups > 1 && u.conv.groups == u.conv.in_channels)
        .map(|u| u.name.clone())
        .collect();
    match model {
        Model::ResNet(m) => {
            let last = m.layers.last().and_then(|s| s.last());
            Landmarks {
                first_conv: m.conv1.name.clone(),
                classifier: m.fc.name.clone(),
                last_block: last.map(|b| b.name.clone()),
                last_conv: last
                    .and_then(|b| b.units.last())
                    .map(|u| u.name.clone())
                    .unwrap_or_else(|| m.conv1.name.clone()),
                depthwise,
                is_resnet: true,
            }
        }
        Model::MobileNetV2(m) => Landmarks {
            first_conv: m.stem.name.clone(),
            classifier: m.classifier.name.clone(),
            last_block: None,
            last_conv: m.head.name.clone(),
            depthwise,
            is_resnet: false,
        },
    }
}

/// The slots `cfg` quantizes in `model`, in execution order. With layer formats, listed slots
/// carry their format, and a listed slot that is not planned (or not in the model) is an error
/// naming the file and the unit.
pub fn plan(model: &mut Model, cfg: &PtqConfig) -> Result<Vec<SlotPlan>> {
    let marks = landmarks(model);
    let setup = cfg.quant_setup;
    if setup == QuantSetup::Fc4Dw8 && marks.is_resnet {
        return Err(PtqError::invalid(
            "quant setup",
            "fc4_dw8 is only defined for MobileNetV2 (ResNet has no depthwise convs); use fc4",
        ));
    }
    let act_bits = cfg.n_bits_act.unwrap_or(cfg.n_bits);
    let mut slots = Vec::new();
    model.visit_slots(&mut |unit, kind, _| slots.push((unit.to_string(), kind)));
    let mut out = Vec::new();
    for (unit, kind) in slots.iter().cloned() {
        let is = |name: &str| unit == name;
        let first = is(&marks.first_conv);
        let fc = is(&marks.classifier);
        let (mut bits, mut active) = match kind {
            SlotKind::Weight => (cfg.n_bits, cfg.weight_quant),
            SlotKind::Output | SlotKind::BlockOutput => (act_bits, cfg.act_quant),
        };
        let mut quantize_input = false;
        match (setup, kind) {
            (QuantSetup::All, _) => {}
            (QuantSetup::FpLogits | QuantSetup::Lsq, SlotKind::Output) if fc => active = false,
            (QuantSetup::Lsq, SlotKind::Weight) if first || fc => bits = 8,
            (QuantSetup::Lsq, SlotKind::Output) if is(&marks.last_conv) => bits = 8,
            (QuantSetup::Lsq, SlotKind::BlockOutput) if marks.last_block.as_deref() == Some(unit.as_str()) => bits = 8,
            (QuantSetup::LsqPaper, SlotKind::BlockOutput) => active = false,
            (QuantSetup::LsqPaper, SlotKind::Output) => {
                quantize_input = true;
                if first {
                    active = false;
                } else if fc {
                    bits = 8;
                }
            }
            (QuantSetup::LsqPaper, SlotKind::Weight) if first || fc => bits = 8,
            (QuantSetup::Fc4 | QuantSetup::Fc4Dw8, SlotKind::Weight) if first => bits = 8,
            (QuantSetup::Fc4 | QuantSetup::Fc4Dw8, SlotKind::Weight) if fc => bits = 4,
            (QuantSetup::Fc4Dw8, SlotKind::Weight) if marks.depthwise.contains(&unit) => bits = 8,
            _ => {}
        }
        if active {
            let format = cfg.layer_formats.as_ref().and_then(|l| l.get(&unit, kind));
            out.push(SlotPlan {
                bits: format.or(cfg.side_format(kind)).map_or(bits, |f| f.n_bits()),
                unit,
                kind,
                quantize_input,
                format,
            });
        }
    }
    if let Some(formats) = &cfg.layer_formats {
        check_layer_formats(formats, &slots, &out, cfg)?;
    }
    Ok(out)
}

/// Every slot `formats` lists must be one the plan quantizes: errors name the file, the unit
/// and why (no such unit, no such slot, or the quant setup / options place no quantizer there).
fn check_layer_formats(
    formats: &LayerFormats,
    slots: &[(String, SlotKind)],
    planned: &[SlotPlan],
    cfg: &PtqConfig,
) -> Result<()> {
    let err = |why: String| PtqError::invalid(formats.what(), why);
    for (unit, role, format) in formats.slots() {
        let kinds: Vec<SlotKind> = slots.iter().filter(|(u, _)| u == unit).map(|(_, k)| *k).collect();
        if kinds.is_empty() {
            let mut examples: Vec<&str> = slots.iter().map(|(u, _)| u.as_str()).collect();
            examples.dedup();
            let n = slots
                .iter()
                .map(|(u, _)| u)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            return Err(err(format!(
                "unit '{unit}' is not in this model (its {n} units are named like {}{})",
                examples
                    .iter()
                    .take(4)
                    .map(|u| format!("'{u}'"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if n > 4 { ", …" } else { "" }
            )));
        }
        let Some(&kind) = kinds.iter().find(|k| role_of(**k) == role) else {
            return Err(err(format!(
                "unit '{unit}' has no {role} slot (it has only {})",
                kinds.iter().map(|k| role_of(*k)).collect::<Vec<_>>().join(", ")
            )));
        };
        if !planned.iter().any(|p| p.unit == unit && p.kind == kind) {
            let why = match kind {
                SlotKind::Weight if !cfg.weight_quant => "weight quantization is off (--no-weight-quant)".to_string(),
                SlotKind::Output | SlotKind::BlockOutput if !cfg.act_quant => {
                    "activation quantization is off (--no-act-quant)".to_string()
                }
                _ => format!("quant setup '{}' places no quantizer there", cfg.quant_setup.name()),
            };
            return Err(err(format!("unit '{unit}' {role} is listed as {format}, but {why}")));
        }
    }
    Ok(())
}

/// The states of a model's quantizers: unit name → `{weight?, act?}` (the golden files'
/// `quantizers` field).
pub type UnitStates = BTreeMap<String, UnitState>;

/// The quantizers of one unit.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitState {
    /// The weight quantizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<QuantizerState>,
    /// The output (or block-output, or `LSQ_paper` input) quantizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<QuantizerState>,
}

/// The quantizers installed in a model.
#[derive(Debug, Clone)]
pub struct Installed {
    /// One handle per quantizer, in execution order.
    pub slots: Vec<SlotHandle>,
    /// What was planned (same order).
    pub plan: Vec<SlotPlan>,
}

/// Put a fresh quantizer (estimate state) into every slot `cfg` plans; empty every other slot.
pub fn install(model: &mut Model, cfg: &PtqConfig) -> Result<Installed> {
    let plan = plan(model, cfg)?;
    let mut managers = BTreeMap::new();
    for p in &plan {
        let config = cfg.slot_config(p)?;
        let manager = QuantManager::new(config).map_err(|e| PtqError::Quantizer {
            unit: p.unit.clone(),
            why: e.to_string(),
        })?;
        managers.insert((p.unit.clone(), p.kind), manager);
    }
    // LSQ_paper: every conv / linear quantizes its input (the first conv's quantizer is off).
    let input_mode = cfg.quant_setup == QuantSetup::LsqPaper;
    for u in model.units_mut() {
        u.quantize_input = input_mode;
    }
    match model {
        Model::ResNet(m) => m.fc.quantize_input = input_mode,
        Model::MobileNetV2(m) => m.classifier.quantize_input = input_mode,
    }
    let mut handles = BTreeMap::new();
    model.visit_slots(&mut |unit, kind, slot| {
        slot.take();
        if let Some(manager) = managers.remove(&(unit.to_string(), kind)) {
            let (q, handle) = ManagedQuantizer::new(unit, kind, manager);
            slot.set(Box::new(q));
            handles.insert((unit.to_string(), kind), handle);
        }
    });
    let slots = plan
        .iter()
        .map(|p| {
            handles
                .remove(&(p.unit.clone(), p.kind))
                .ok_or_else(|| PtqError::Quantizer {
                    unit: p.unit.clone(),
                    why: "planned slot not found in the model".into(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Installed { slots, plan })
}

impl Installed {
    /// Fix every quantizer's range. Fails, naming the unit, if a quantizer never saw data.
    pub fn fix_all(&self) -> Result<()> {
        for h in &self.slots {
            if h.state().is_none() {
                return Err(PtqError::Quantizer {
                    unit: format!("{} ({})", h.unit, h.role()),
                    why: "no range was estimated (no calibration batch reached it)".into(),
                });
            }
            h.fix();
        }
        Ok(())
    }

    /// Every quantizer's current state, by unit.
    pub fn states(&self) -> UnitStates {
        let mut out = UnitStates::new();
        for h in &self.slots {
            let Some(state) = h.state() else { continue };
            let entry = out.entry(h.unit.clone()).or_default();
            match h.kind {
                SlotKind::Weight => entry.weight = Some(state),
                SlotKind::Output | SlotKind::BlockOutput => entry.act = Some(state),
            }
        }
        out
    }

    /// Whether some slot has its own format (`--layer-formats`).
    pub fn mixed(&self) -> bool {
        self.plan.iter().any(|p| p.format.is_some())
    }

    /// The format of every quantizer with a range, as a layer-formats table.
    pub fn formats(&self) -> LayerFormats {
        LayerFormats::from_states(&self.states())
    }

    /// Load every quantizer's state from `states` (read from `source`, named in errors) and fix
    /// them. Every installed quantizer needs an entry, and every entry an installed quantizer.
    ///
    /// Formats: a state that records its format (files written since formats are recorded) and
    /// that this run's slot cannot produce ([`QuantConfig::admits`]) is
    /// * applied when no slot has its own format (no `--layer-formats`): the slot is rebuilt in
    ///   the file's format, so the saved run is reproduced, mixed formats included;
    /// * refused, naming the unit, when the run lists formats: the file and `--layer-formats`
    ///   (or the global options, for an unlisted slot) disagree.
    ///
    /// States without a format load as before (an FP state sets the slot's FP split).
    pub fn load_states(&self, states: &UnitStates, source: &Path) -> Result<()> {
        let err = |why: String| PtqError::invalid(format!("quantization parameters {}", source.display()), why);
        for (unit, entry) in states {
            for (role, present) in [("weight", entry.weight.is_some()), ("act", entry.act.is_some())] {
                if present && !self.slots.iter().any(|h| &h.unit == unit && h.role() == role) {
                    return Err(err(format!(
                        "unit '{unit}' has a {role} quantizer in the file, but this model and setup \
                         have no such quantizer"
                    )));
                }
            }
        }
        for h in &self.slots {
            let entry = states.get(&h.unit);
            let state = entry.and_then(|e| match h.kind {
                SlotKind::Weight => e.weight.as_ref(),
                _ => e.act.as_ref(),
            });
            let Some(state) = state else {
                return Err(err(format!(
                    "no {} quantizer state for unit '{}'{}",
                    h.role(),
                    h.unit,
                    if entry.is_none() { " (unit missing)" } else { "" }
                )));
            };
            if let Some(format) = state.format() {
                let config = *h.manager().config();
                if !config.admits(format) {
                    if self.mixed() {
                        let planned = self.plan.iter().find(|p| p.unit == h.unit && p.kind == h.kind);
                        let source = match planned.and_then(|p| p.format) {
                            Some(_) => "from --layer-formats",
                            None => "from the global options",
                        };
                        return Err(err(format!(
                            "unit '{}' {}: the file's quantizer is {format}, but this run gives the slot {} \
                             ({source}); drop --layer-formats to apply the file's formats",
                            h.unit,
                            h.role(),
                            describe_config(&config)
                        )));
                    }
                    let range_method = match config.range_method {
                        RangeMethod::Mse { .. } => RangeMethod::Mse { mantissa_search: false },
                        other => other,
                    };
                    h.reconfigure(QuantConfig {
                        method: QuantMethod::from_format(format),
                        range_method,
                        ..config
                    })
                    .map_err(|e| err(e.to_string()))?;
                }
            }
            h.load_state(state)
                .map_err(|e| err(format!("unit '{}' {}: {e}", h.unit, h.role())))?;
        }
        Ok(())
    }

    /// Write the states as pretty JSON.
    pub fn save_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.states())
            .map_err(|e| PtqError::invalid(path.display().to_string(), e.to_string()))?;
        std::fs::write(path, text).map_err(|err| PtqError::Io {
            path: path.to_path_buf(),
            err,
        })
    }

    /// Read states written by [`Installed::save_json`] and load them (fixing every quantizer).
    pub fn load_json(&self, path: &Path) -> Result<()> {
        let states = read_states(path)?;
        self.load_states(&states, path)
    }
}

/// The formats a slot configuration produces, for messages: `e3m4`, `e3m4 (or ue4m4 on
/// non-negative ranges)`, `8-bit FP (mantissa bits searched)`, `int8`.
fn describe_config(config: &QuantConfig) -> String {
    match config.method {
        QuantMethod::Fp {
            n_bits,
            mantissa_bits,
            allow_unsigned,
        } => {
            if matches!(config.range_method, RangeMethod::Mse { mantissa_search: true }) {
                return format!("{n_bits}-bit FP (mantissa bits searched)");
            }
            let name = |signed| {
                FpFormat::new(n_bits, mantissa_bits, signed)
                    .map(|f| Format::Fp(f).to_string())
                    .unwrap_or_else(|_| format!("{n_bits}-bit FP with {mantissa_bits} mantissa bits"))
            };
            if allow_unsigned {
                format!("{} (or {} on non-negative ranges)", name(true), name(false))
            } else {
                name(true)
            }
        }
        QuantMethod::Int(f) => Format::Int(f).to_string(),
        QuantMethod::Standard(s) => Format::Standard(s).to_string(),
        QuantMethod::Block(b) => Format::Block(b).to_string(),
    }
}

/// Read a quantization-parameter file: a JSON object of unit → `{weight?, act?}` (as written by
/// `--save-quant-params`), or a whole run report whose `quantizers` member is one (our `--json`
/// output, or a reference run in the golden layout). Errors name the file and the unit.
pub fn read_states(path: &Path) -> Result<UnitStates> {
    let text = std::fs::read_to_string(path).map_err(|err| PtqError::Io {
        path: path.to_path_buf(),
        err,
    })?;
    let what = || format!("quantization parameters {}", path.display());
    let mut raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| PtqError::invalid(what(), format!("not a JSON object of unit name → {{weight, act}}: {e}")))?;
    if let Some(serde_json::Value::Object(units)) = raw.get("quantizers") {
        raw = units.clone().into_iter().collect();
    }
    raw.into_iter()
        .map(|(unit, v)| {
            let state: UnitState =
                serde_json::from_value(v).map_err(|e| PtqError::invalid(what(), format!("unit '{unit}': {e}")))?;
            Ok((unit, state))
        })
        .collect()
}
