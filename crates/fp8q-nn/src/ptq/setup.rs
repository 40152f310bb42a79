//! Where quantizers go and how each is configured (`docs/ptq.md`).
//!
//! [`plan`] lists, for a model and a [`PtqConfig`], every slot that gets a quantizer with its
//! bit width (and whether it quantizes its unit's input, `LSQ_paper`); [`install`] builds a
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

use fp8q_core::format::FpFormat;
use fp8q_core::manager::{int_method, QuantConfig, QuantManager, QuantizerState};
use fp8q_core::quantizer::QuantMethod;
use fp8q_core::range::RangeMethod;

use crate::error::{NnError, Result};
use crate::layers::SlotKind;
use crate::models::Model;
use crate::ptq::quantizer::{ManagedQuantizer, SlotHandle};

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
    type Err = NnError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "all" => QuantSetup::All,
            "FP_logits" => QuantSetup::FpLogits,
            "LSQ" => QuantSetup::Lsq,
            "LSQ_paper" => QuantSetup::LsqPaper,
            "fc4" => QuantSetup::Fc4,
            "fc4_dw8" => QuantSetup::Fc4Dw8,
            other => {
                return Err(NnError::invalid(
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
    type Err = NnError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "symmetric_uniform" => QMethodKind::SymmetricUniform,
            "asymmetric_uniform" => QMethodKind::AsymmetricUniform,
            "fp_quantizer" => QMethodKind::FpQuantizer,
            other => {
                return Err(NnError::invalid(
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
        }
    }
}

impl PtqConfig {
    /// A range method by the reference's name (`current_minmax`, `allminmax`,
    /// `running_minmax`, `MSE`).
    pub fn range_method(name: &str) -> Result<RangeMethod> {
        match name {
            "cross_entropy" => Err(NnError::invalid(
                "range method",
                "cross_entropy is not supported; use current_minmax, allminmax, running_minmax or MSE",
            )),
            other => RangeMethod::from_str(other).map_err(|e| NnError::invalid("range method", e.to_string())),
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
        let bad = |e: fp8q_core::FormatError| NnError::Quantizer {
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
                .ok_or_else(|| NnError::invalid("quantization method", kind.name())),
        }
    }

    /// The manager configuration of one planned slot.
    pub fn slot_config(&self, slot: &SlotPlan) -> Result<QuantConfig> {
        let weight = slot.kind == SlotKind::Weight;
        let kind = if weight {
            self.qmethod
        } else {
            self.qmethod_act.unwrap_or(self.qmethod)
        };
        let method = self.method(kind, slot.bits, &slot.unit)?;
        let is_fp = matches!(method, QuantMethod::Fp { .. });
        let range_method = match if weight {
            self.weight_quant_method
        } else {
            self.act_quant_method
        } {
            RangeMethod::Mse { .. } => RangeMethod::Mse {
                mantissa_search: is_fp && self.fp8_mse_include_mantissa_bits,
            },
            RangeMethod::RunningMinMax { momentum } => RangeMethod::RunningMinMax {
                momentum: if weight { momentum } else { self.act_momentum },
            },
            other => other,
        };
        Ok(QuantConfig {
            method,
            range_method,
            per_channel: weight && self.per_channel,
            fp_set_maxval: self.fp8_set_maxval,
            fp_maxval: self.fp8_maxval,
        })
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

/// The slots `cfg` quantizes in `model`, in execution order.
pub fn plan(model: &mut Model, cfg: &PtqConfig) -> Result<Vec<SlotPlan>> {
    let marks = landmarks(model);
    let setup = cfg.quant_setup;
    if setup == QuantSetup::Fc4Dw8 && marks.is_resnet {
        return Err(NnError::invalid(
            "quant setup",
            "fc4_dw8 is only defined for MobileNetV2 (ResNet has no depthwise convs); use fc4",
        ));
    }
    let act_bits = cfg.n_bits_act.unwrap_or(cfg.n_bits);
    let mut slots = Vec::new();
    model.visit_slots(&mut |unit, kind, _| slots.push((unit.to_string(), kind)));
    let mut out = Vec::new();
    for (unit, kind) in slots {
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
            out.push(SlotPlan {
                unit,
                kind,
                bits,
                quantize_input,
            });
        }
    }
    Ok(out)
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
        let manager = QuantManager::new(config).map_err(|e| NnError::Quantizer {
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
                .ok_or_else(|| NnError::Quantizer {
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
                return Err(NnError::Quantizer {
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

    /// Load every quantizer's state from `states` (read from `source`, named in errors) and fix
    /// them. Every installed quantizer needs an entry, and every entry an installed quantizer.
    pub fn load_states(&self, states: &UnitStates, source: &Path) -> Result<()> {
        let err = |why: String| NnError::invalid(format!("quantization parameters {}", source.display()), why);
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
            h.load_state(state)
                .map_err(|e| err(format!("unit '{}' {}: {e}", h.unit, h.role())))?;
        }
        Ok(())
    }

    /// Write the states as pretty JSON.
    pub fn save_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.states())
            .map_err(|e| NnError::invalid(path.display().to_string(), e.to_string()))?;
        std::fs::write(path, text).map_err(|err| NnError::Io {
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

/// Read a quantization-parameter file: a JSON object of unit → `{weight?, act?}` (as written by
/// `--save-quant-params`), or a whole run report whose `quantizers` member is one (our `--json`
/// output, or a reference run in the golden layout). Errors name the file and the unit.
pub fn read_states(path: &Path) -> Result<UnitStates> {
    let text = std::fs::read_to_string(path).map_err(|err| NnError::Io {
        path: path.to_path_buf(),
        err,
    })?;
    let what = || format!("quantization parameters {}", path.display());
    let mut raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| NnError::invalid(what(), format!("not a JSON object of unit name → {{weight, act}}: {e}")))?;
    if let Some(serde_json::Value::Object(units)) = raw.get("quantizers") {
        raw = units.clone().into_iter().collect();
    }
    raw.into_iter()
        .map(|(unit, v)| {
            let state: UnitState =
                serde_json::from_value(v).map_err(|e| NnError::invalid(what(), format!("unit '{unit}': {e}")))?;
            Ok((unit, state))
        })
        .collect()
}
