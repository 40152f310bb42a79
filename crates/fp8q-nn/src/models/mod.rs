//! The supported networks and loading them from a checkpoint.
//!
//! ```no_run
//! use fp8q_nn::models::{Architecture, Model};
//! let arch: Architecture = "resnet18_quantized".parse().unwrap();
//! let mut model = Model::load(arch, "resnet18.pth").unwrap();
//! println!("{} classes", model.num_classes());
//! ```

pub mod block;
pub mod mobilenet_v2;
pub mod resnet;

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::error::{NnError, Result, TensorContext};
use crate::layers::{BatchNorm2d, ConvBnAct, QuantSlot, SlotKind};
use crate::weights::Weights;
use block::Block;
use fp8q_tensors::checkpoint::Checkpoint;
use fp8q_tensors::feature_map::FeatureMap;
use mobilenet_v2::MobileNetV2;
use resnet::{BlockKind, ResNet};

/// Where a forward pass can start: stage `stage` (see [`Model::forward_stage`]) from its input
/// when `step` is 0; inside a block stage, after its first `step` units, from the stage's input
/// and the output of unit `step - 1` ([`Model::resume_stage`]), which that unit's own output
/// quantizer first quantizes when `quantize_kept` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The stage.
    pub stage: usize,
    /// Units of the stage's block already run (0 outside blocks).
    pub step: usize,
    /// Quantize the kept output of unit `step - 1` with that unit's output quantizer.
    pub quantize_kept: bool,
}

impl Resume {
    /// The start of `stage`.
    pub fn stage(stage: usize) -> Self {
        Resume::inside(stage, 0)
    }

    /// Inside block stage `stage`, after `step` units.
    pub fn inside(stage: usize, step: usize) -> Self {
        Resume {
            stage,
            step,
            quantize_kept: false,
        }
    }

    /// The slots of a block's unit `step` (its weight, and its output quantizer when that acts
    /// on the unit's input) resume at the unit; an output quantizer acting on the unit's output
    /// resumes after the unit, from its kept output, quantized.
    pub fn for_unit_slot(stage: usize, step: usize, kind: SlotKind, quantize_input: bool) -> Self {
        if kind == SlotKind::Output && !quantize_input {
            Resume {
                stage,
                step: step + 1,
                quantize_kept: true,
            }
        } else {
            Resume::inside(stage, step)
        }
    }
}

/// A network architecture (`--architecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// ResNet-18 (torchvision).
    Resnet18,
    /// ResNet-50 (torchvision).
    Resnet50,
    /// MobileNetV2 (the paper's layout; torchvision's keys accepted).
    MobilenetV2,
}

impl Architecture {
    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Resnet18 => "resnet18",
            Architecture::Resnet50 => "resnet50",
            Architecture::MobilenetV2 => "mobilenet_v2",
        }
    }

    /// Every accepted name, canonical first.
    pub const NAMES: [&'static str; 6] = [
        "resnet18",
        "resnet50",
        "mobilenet_v2",
        "resnet18_quantized",
        "resnet50_quantized",
        "mobilenet_v2_quantized",
    ];
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Architecture {
    type Err = NnError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "resnet18" | "resnet18_quantized" => Ok(Architecture::Resnet18),
            "resnet50" | "resnet50_quantized" => Ok(Architecture::Resnet50),
            "mobilenet_v2" | "mobilenet_v2_quantized" | "mobilenetv2" => Ok(Architecture::MobilenetV2),
            other => Err(NnError::invalid(
                "architecture",
                format!("unknown '{other}'; expected one of {}", Architecture::NAMES.join(", ")),
            )),
        }
    }
}

/// How many shared leading key components [`Model::from_checkpoint`] drops at most.
pub const MAX_SHARED_PREFIXES: usize = 2;

/// The first key component (`model.`) and the tensors without it, when every key has the same
/// one (`model.conv1.weight`, `model.fc.bias`, …).
fn strip_shared_first_component(tensors: &BTreeMap<String, Tensor>) -> Option<(String, BTreeMap<String, Tensor>)> {
    let first = tensors.keys().next()?.split_once('.')?.0;
    let prefix = format!("{first}.");
    let stripped = tensors
        .iter()
        .map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_string(), v.clone())))
        .collect::<Option<_>>()?;
    Some((prefix, stripped))
}

/// A loaded network. (One exists per run, so the variants' size difference does not matter.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Model {
    /// ResNet-18 or -50.
    ResNet(ResNet),
    /// MobileNetV2.
    MobileNetV2(MobileNetV2),
}

impl Model {
    /// Load `arch` from a `.pth` or `.safetensors` checkpoint. A checkpoint that does not fit
    /// yields [`NnError::CheckpointMismatch`] listing every missing, unexpected and mis-shaped
    /// tensor.
    pub fn load(arch: Architecture, path: impl AsRef<Path>) -> Result<Self> {
        let ckpt = Checkpoint::load(path)?;
        Self::from_checkpoint(arch, ckpt)
    }

    /// Build `arch` from tensors already read.
    ///
    /// When the keys do not fit but all share a first component (`model.` of a PyTorch
    /// Lightning checkpoint, whose state dict holds the `LightningModule`'s attributes), that
    /// component is dropped and the build tried again (at most [`MAX_SHARED_PREFIXES`] times;
    /// no key of these networks has a component shared by all). If that does not fit either,
    /// the error is the attempt's with the fewest problems (a Lightning checkpoint with one
    /// mis-shaped tensor is reported as that, not as every key missing).
    pub fn from_checkpoint(arch: Architecture, ckpt: Checkpoint) -> Result<Self> {
        let first = Self::build(arch, &ckpt.path, ckpt.tensors.clone());
        let Err(mut best @ NnError::CheckpointMismatch { .. }) = first else {
            return first;
        };
        let problems = |e: &NnError| match e {
            NnError::CheckpointMismatch { mismatch: m, .. } => {
                m.missing.len() + m.unexpected.len() + m.mis_shaped.len()
            }
            _ => usize::MAX,
        };
        let mut tensors = ckpt.tensors;
        let mut dropped = String::new();
        for _ in 0..MAX_SHARED_PREFIXES {
            let Some((prefix, stripped)) = strip_shared_first_component(&tensors) else {
                break;
            };
            dropped.push_str(&prefix);
            match Self::build(arch, &ckpt.path, stripped.clone()) {
                Err(NnError::CheckpointMismatch { path, arch, mismatch }) => {
                    let e = NnError::CheckpointMismatch {
                        path,
                        arch: format!("{arch}, keys without the '{dropped}' they all start with"),
                        mismatch,
                    };
                    if problems(&e) < problems(&best) {
                        best = e;
                    }
                    tensors = stripped;
                }
                other => return other,
            }
        }
        Err(best)
    }

    fn build(arch: Architecture, path: &Path, tensors: BTreeMap<String, Tensor>) -> Result<Self> {
        let tv_names = (arch == Architecture::MobilenetV2 && mobilenet_v2::is_torchvision_layout(&tensors))
            .then(|| mobilenet_v2::TorchvisionNames::of(tensors.keys()));
        let tensors = match tv_names {
            Some(_) => mobilenet_v2::torchvision_to_paper(tensors),
            None => tensors,
        };
        let weights = Weights::new(path, tensors);
        let vb = weights.root();
        let model = match arch {
            Architecture::Resnet18 => Model::ResNet(ResNet::load(&vb, BlockKind::Basic, [2, 2, 2, 2])?),
            Architecture::Resnet50 => Model::ResNet(ResNet::load(&vb, BlockKind::Bottleneck, [3, 4, 6, 3])?),
            Architecture::MobilenetV2 => Model::MobileNetV2(MobileNetV2::load(&vb)?),
        };
        match (weights.finish(arch.name()), tv_names) {
            (Ok(()), _) => Ok(model),
            // name the keys as the file has them
            (
                Err(NnError::CheckpointMismatch {
                    path,
                    arch,
                    mut mismatch,
                }),
                Some(names),
            ) => {
                for k in mismatch.missing.iter_mut().chain(mismatch.unexpected.iter_mut()) {
                    *k = names.to_torchvision(k);
                }
                for m in mismatch.mis_shaped.iter_mut() {
                    m.key = names.to_torchvision(&m.key);
                }
                Err(NnError::CheckpointMismatch {
                    path,
                    arch: format!("{arch} (torchvision key layout)"),
                    mismatch,
                })
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Number of classes (rows of the final linear layer).
    pub fn num_classes(&self) -> usize {
        match self {
            Model::ResNet(m) => m.fc.out_features(),
            Model::MobileNetV2(m) => m.classifier.out_features(),
        }
    }

    /// Logits of an NCHW batch, as `n · classes` values.
    pub fn forward_fm(&mut self, x: FeatureMap) -> Result<Vec<f32>> {
        if x.c != 3 {
            return Err(NnError::invalid("input", format!("3 channels expected, got {}", x.c)));
        }
        match self {
            Model::ResNet(m) => m.forward(x),
            Model::MobileNetV2(m) => m.forward(x),
        }
    }

    /// Stages of [`Model::forward_stage`]; running them in turn is [`Model::forward_fm`].
    pub fn num_stages(&self) -> usize {
        match self {
            Model::ResNet(m) => m.num_stages(),
            Model::MobileNetV2(m) => m.num_stages(),
        }
    }

    /// Run one stage of the network (the stem, a block, the head): a later stage can be re-run
    /// from a stored input of it, without the stages before. The last stage returns the logits
    /// as an `n × classes × 1 × 1` map.
    pub fn forward_stage(&mut self, stage: usize, x: FeatureMap) -> Result<FeatureMap> {
        match self {
            Model::ResNet(m) => m.forward_stage(stage, x),
            Model::MobileNetV2(m) => m.forward_stage(stage, x),
        }
    }

    /// The block that is stage `stage`, if it is one.
    fn block_mut(&mut self, stage: usize) -> Option<&mut dyn Block> {
        match self {
            Model::ResNet(m) => m.block_mut(stage).map(|b| b as &mut dyn Block),
            Model::MobileNetV2(m) => m.block_mut(stage).map(|b| b as &mut dyn Block),
        }
    }

    /// [`Model::forward_stage`] from a borrowed input, pushing the output of each unit of a
    /// block stage onto `keep` (the inputs [`Model::resume_stage`] takes; nothing for other
    /// stages).
    pub fn forward_stage_keeping(
        &mut self,
        stage: usize,
        x: &FeatureMap,
        keep: &mut Vec<FeatureMap>,
    ) -> Result<FeatureMap> {
        match self.block_mut(stage) {
            Some(block) => block.forward_keeping(x, keep),
            None => self.forward_stage(stage, x.clone()),
        }
    }

    /// Finish block stage `at.stage` from its input `x` and `y`, the output of its first
    /// `at.step` units (`1 ..=` the block's units; the last runs only the join), quantized first
    /// by the output quantizer of unit `at.step - 1` when `at.quantize_kept` ([`Block::resume`]).
    pub fn resume_stage(&mut self, at: Resume, x: &FeatureMap, y: FeatureMap) -> Result<FeatureMap> {
        match self.block_mut(at.stage) {
            Some(block) => block.resume(x, at.step, y, at.quantize_kept),
            None => Err(NnError::invalid("stage", format!("{} is not a block", at.stage))),
        }
    }

    /// The latest point a forward pass can start from and still pass through each quantizer
    /// slot, as `(unit, kind, resume)`, in the order of [`Model::visit_slots`]: a block unit's
    /// slots from that unit on ([`Resume::for_unit_slot`]), a block's shortcut and output slots
    /// from its join.
    pub fn slot_stages(&mut self) -> Vec<(String, SlotKind, Resume)> {
        match self {
            Model::ResNet(m) => m.slot_stages(),
            Model::MobileNetV2(m) => m.slot_stages(),
        }
    }

    /// Logits `[n, classes]` of an NCHW tensor.
    pub fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let fm = FeatureMap::from_tensor(x)?;
        let n = fm.n;
        let classes = self.num_classes();
        let logits = self.forward_fm(fm)?;
        Tensor::from_vec(logits, (n, classes), &Device::Cpu).at("logits")
    }

    /// Every conv+BN unit in execution order.
    pub fn units_mut(&mut self) -> Vec<&mut ConvBnAct> {
        match self {
            Model::ResNet(m) => m.units_mut(),
            Model::MobileNetV2(m) => m.units_mut(),
        }
    }

    /// Visit every quantizer slot as `(unit name, kind, slot)` in execution order.
    pub fn visit_slots(&mut self, f: &mut dyn FnMut(&str, SlotKind, &mut QuantSlot)) {
        match self {
            Model::ResNet(m) => m.visit_slots(f),
            Model::MobileNetV2(m) => m.visit_slots(f),
        }
    }

    /// Visit every batch norm.
    pub fn visit_bns(&mut self, f: &mut dyn FnMut(&mut BatchNorm2d)) {
        match self {
            Model::ResNet(m) => m.visit_bns(f),
            Model::MobileNetV2(m) => m.visit_bns(f),
        }
    }
}
