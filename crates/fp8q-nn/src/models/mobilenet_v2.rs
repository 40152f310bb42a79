//! MobileNetV2 in the layout the paper used (tonylins/pytorch-mobilenet-v2, `docs/ptq.md`), with
//! torchvision's key layout mapped onto it at load time.
//!
//! Paper layout: `features.0.{0,1}` stem (3×3 s2, 32 ch, BN, ReLU6); `features.1..=17` inverted
//! residual blocks whose `conv` is a flat sequence — t = 1: `[dw, BN, ReLU6, pw, BN]`
//! (`conv.0, .1, .3, .4`), else `[pw, BN, ReLU6, dw, BN, ReLU6, pw, BN]` (`conv.0, .1, .3, .4,
//! .6, .7`); `features.18.{0,1}` 1×1 to 1280 + BN + ReLU6; AvgPool2d(7); `classifier.1`.

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::error::{NnError, Result};
use crate::kernels::elementwise::residual_join;
use crate::kernels::pool;
use crate::layers::conv_bn_act::ConvSpec;
use crate::layers::{channel_layout, Activation, BatchNorm2d, ConvBnAct, Linear, QuantSlot, SlotKind};
use crate::models::block::Block;
use crate::models::resnet::visit_unit;
use crate::models::Resume;
use crate::weights::WeightPath;
use fp8q_tensors::feature_map::FeatureMap;

/// `(t, c, n, s)`: expansion, output channels, repeats, first stride.
pub const SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// An inverted residual block named by its prefix (`features.3`).
#[derive(Debug)]
pub struct InvertedResidual {
    /// Checkpoint prefix.
    pub name: String,
    /// Its conv+BN units in sequence (the last without activation).
    pub units: Vec<ConvBnAct>,
    /// `stride == 1 && in == out`.
    pub residual: bool,
    /// `quantize(x + conv(x))` for a residual block; unused otherwise (the last unit's output
    /// quantizer already acts).
    pub output_quantizer: QuantSlot,
}

impl InvertedResidual {
    /// Load the block; `cout` and the expanded width default to the width-1.0 settings but are
    /// read from the checkpoint when present (width multipliers other than 1.0).
    fn load(vb: &WeightPath<'_>, cin: usize, cout: usize, stride: usize, t: usize) -> Result<Self> {
        let c = vb.pp("conv");
        let out_channels = |i: usize, default: usize| {
            c.pp(i)
                .shape_of("weight")
                .and_then(|s| s.first().copied())
                .unwrap_or(default)
        };
        let hidden = if t == 1 { cin } else { out_channels(0, cin * t) };
        let cout = out_channels(if t == 1 { 3 } else { 6 }, cout);
        let unit = |i: usize, spec: ConvSpec, act| ConvBnAct::load(&c.pp(i), &c.pp(i + 1), spec, act);
        let pw = |cin, cout| ConvSpec {
            cin,
            cout,
            k: 1,
            stride: 1,
            pad: 0,
            groups: 1,
        };
        let dw = |ch| ConvSpec {
            cin: ch,
            cout: ch,
            k: 3,
            stride,
            pad: 1,
            groups: ch,
        };
        let units = if t == 1 {
            vec![
                unit(0, dw(hidden), Activation::Relu6)?,
                unit(3, pw(hidden, cout), Activation::Identity)?,
            ]
        } else {
            vec![
                unit(0, pw(cin, hidden), Activation::Relu6)?,
                unit(3, dw(hidden), Activation::Relu6)?,
                unit(6, pw(hidden, cout), Activation::Identity)?,
            ]
        };
        Ok(InvertedResidual {
            name: vb.prefix().to_string(),
            units,
            residual: stride == 1 && cin == cout,
            output_quantizer: QuantSlot::empty(),
        })
    }

    /// Output channels of the block (those of its last unit).
    pub fn out_channels(&self) -> usize {
        self.units.last().map_or(0, |u| u.conv.out_channels)
    }
}

impl Block for InvertedResidual {
    fn name(&self) -> &str {
        &self.name
    }

    fn units_mut(&mut self) -> &mut [ConvBnAct] {
        &mut self.units
    }

    /// `quantize(x + y)` in a residual block; `y` otherwise.
    fn join(&mut self, x: &FeatureMap, mut y: FeatureMap) -> Result<FeatureMap> {
        if self.residual {
            let layout = channel_layout(&y);
            residual_join(
                &mut y.data,
                &x.data,
                Activation::Identity,
                &mut self.output_quantizer,
                layout,
            )?;
        }
        Ok(y)
    }
}

/// MobileNetV2. The block structure is fixed ([`SETTINGS`]); the channel counts are read from
/// the checkpoint, so any width multiplier loads (the paper's and torchvision's 1.0 included).
#[derive(Debug)]
pub struct MobileNetV2 {
    /// `features.0`.
    pub stem: ConvBnAct,
    /// `features.1` … `features.17`.
    pub blocks: Vec<InvertedResidual>,
    /// `features.18`.
    pub head: ConvBnAct,
    /// `classifier.1`.
    pub classifier: Linear,
}

impl MobileNetV2 {
    /// Load from paper-layout keys; the number of classes is read from `classifier.1.weight`.
    pub fn load(vb: &WeightPath<'_>) -> Result<Self> {
        let f = vb.pp("features");
        let out_channels = |unit: &WeightPath<'_>, default: usize| {
            unit.shape_of("weight")
                .and_then(|s| s.first().copied())
                .unwrap_or(default)
        };
        let stem_out = out_channels(&f.pp(0).pp(0), 32);
        let stem = ConvBnAct::load(
            &f.pp(0).pp(0),
            &f.pp(0).pp(1),
            ConvSpec {
                cin: 3,
                cout: stem_out,
                k: 3,
                stride: 2,
                pad: 1,
                groups: 1,
            },
            Activation::Relu6,
        )?;
        let mut cin = stem_out;
        let mut blocks = Vec::new();
        for &(t, c, n, s) in &SETTINGS {
            for i in 0..n {
                let idx = blocks.len() + 1;
                let block = InvertedResidual::load(&f.pp(idx), cin, c, if i == 0 { s } else { 1 }, t)?;
                cin = block.out_channels();
                blocks.push(block);
            }
        }
        let head_idx = blocks.len() + 1;
        let head_out = out_channels(&f.pp(head_idx).pp(0), 1280);
        let head = ConvBnAct::load(
            &f.pp(head_idx).pp(0),
            &f.pp(head_idx).pp(1),
            ConvSpec {
                cin,
                cout: head_out,
                k: 1,
                stride: 1,
                pad: 0,
                groups: 1,
            },
            Activation::Relu6,
        )?;
        let cl = vb.pp("classifier").pp(1);
        let classes = cl.shape_of("weight").and_then(|s| s.first().copied()).unwrap_or(1000);
        let classifier = Linear::load(&cl, head_out, classes)?;
        Ok(MobileNetV2 {
            stem,
            blocks,
            head,
            classifier,
        })
    }

    /// Logits (`n · classes` values) of a batch of 224×224 images: the stages in turn.
    pub fn forward(&mut self, x: FeatureMap) -> Result<Vec<f32>> {
        let mut y = x;
        for stage in 0..self.num_stages() {
            y = self.forward_stage(stage, y)?;
        }
        Ok(y.data)
    }

    /// Stages of [`MobileNetV2::forward_stage`]: the stem, one per block, the head conv, the
    /// classifier.
    pub fn num_stages(&self) -> usize {
        self.blocks.len() + 3
    }

    /// Run one stage: 0 is `features.0`, `1 ..=B` the inverted-residual blocks, `B + 1` the
    /// head conv (`features.18`), `B + 2` the 7×7 average pool (quantized by `features.18`'s
    /// quantizer without updating it, except in `LSQ_paper`) and the classifier, whose logits
    /// come back as an `n × classes × 1 × 1` map.
    pub fn forward_stage(&mut self, stage: usize, x: FeatureMap) -> Result<FeatureMap> {
        let blocks = self.blocks.len();
        if stage == 0 {
            return self.stem.forward(&x);
        }
        if stage <= blocks {
            return self.blocks[stage - 1].forward(x);
        }
        if stage == blocks + 1 {
            return self.head.forward(&x);
        }
        if stage != blocks + 2 {
            return Err(NnError::invalid(
                "stage",
                format!("{stage}: MobileNetV2 has {}", blocks + 3),
            ));
        }
        let n = x.n;
        if x.h != 7 || x.w != 7 {
            return Err(NnError::invalid(
                "features.19",
                format!("AvgPool2d(7) needs a 7×7 map (224×224 input), got {}×{}", x.h, x.w),
            ));
        }
        let mut pooled = pool::global_avg_pool(&x);
        drop(x);
        // AvgPool2d(7) reuses features.18's quantizer without updating it (unless that quantizer
        // quantizes features.18's input, LSQ_paper, where the pool is not quantized).
        if !self.head.quantize_input {
            let layout = channel_layout(&pooled);
            self.head.act_quantizer.apply(&mut pooled.data, 1, layout, false)?;
        }
        let classes = self.classifier.out_features();
        Ok(FeatureMap::from_vec(
            self.classifier.forward(pooled.data, n)?,
            n,
            classes,
            1,
            1,
        )?)
    }

    /// Where a forward pass must start for each quantizer slot to act, as `(unit, kind, resume)`
    /// in execution order (the slots [`MobileNetV2::visit_slots`] visits).
    pub fn slot_stages(&mut self) -> Vec<(String, SlotKind, Resume)> {
        let mut out = Vec::new();
        visit_unit(&mut self.stem, &mut |u, k, _| {
            out.push((u.to_string(), k, Resume::stage(0)))
        });
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let stage = i + 1;
            for (step, u) in b.units.iter_mut().enumerate() {
                let input = u.quantize_input;
                visit_unit(u, &mut |n, k, _| {
                    out.push((n.to_string(), k, Resume::for_unit_slot(stage, step, k, input)))
                });
            }
            if b.residual {
                let step = b.units.len();
                out.push((b.name.clone(), SlotKind::BlockOutput, Resume::inside(stage, step)));
            }
        }
        let head = self.blocks.len() + 1;
        visit_unit(&mut self.head, &mut |u, k, _| {
            out.push((u.to_string(), k, Resume::stage(head)))
        });
        out.push((self.classifier.name.clone(), SlotKind::Weight, Resume::stage(head + 1)));
        out.push((self.classifier.name.clone(), SlotKind::Output, Resume::stage(head + 1)));
        out
    }

    /// The block that is stage `stage`, if it is one.
    pub fn block_mut(&mut self, stage: usize) -> Option<&mut InvertedResidual> {
        stage.checked_sub(1).and_then(|b| self.blocks.get_mut(b))
    }

    /// Every conv+BN unit in execution order.
    pub fn units_mut(&mut self) -> Vec<&mut ConvBnAct> {
        let mut out = vec![&mut self.stem];
        for b in &mut self.blocks {
            out.extend(b.units.iter_mut());
        }
        out.push(&mut self.head);
        out
    }

    /// Visit every quantizer slot as `(unit name, kind, slot)`, in execution order. A
    /// non-residual block's output slot is not visited (it never acts).
    pub fn visit_slots(&mut self, f: &mut dyn FnMut(&str, SlotKind, &mut QuantSlot)) {
        visit_unit(&mut self.stem, f);
        for b in &mut self.blocks {
            for u in &mut b.units {
                visit_unit(u, f);
            }
            if b.residual {
                f(&b.name, SlotKind::BlockOutput, &mut b.output_quantizer);
            }
        }
        visit_unit(&mut self.head, f);
        f(
            &self.classifier.name,
            SlotKind::Weight,
            &mut self.classifier.weight_quantizer,
        );
        f(
            &self.classifier.name,
            SlotKind::Output,
            &mut self.classifier.act_quantizer,
        );
    }

    /// Visit every batch norm.
    pub fn visit_bns(&mut self, f: &mut dyn FnMut(&mut BatchNorm2d)) {
        for u in self.units_mut() {
            f(&mut u.bn);
        }
    }
}

/// True when the keys are in torchvision's MobileNetV2 layout (`features.1.conv.0.0.weight`).
pub fn is_torchvision_layout(tensors: &BTreeMap<String, Tensor>) -> bool {
    tensors.contains_key("features.1.conv.0.0.weight")
}

/// Rename torchvision's MobileNetV2 keys to the paper's layout. Blocks with expansion 1 are
/// recognised by having no `conv.1.0` (their `conv` is `[ConvBNReLU(dw), pw, BN]`).
pub fn torchvision_to_paper(tensors: BTreeMap<String, Tensor>) -> BTreeMap<String, Tensor> {
    let names = TorchvisionNames::of(tensors.keys());
    tensors
        .into_iter()
        .map(|(k, v)| (names.to_paper(&k).unwrap_or(k), v))
        .collect()
}

/// torchvision's `conv` sub-keys and the paper's, for blocks with and without expansion.
const EXPANDED: [(&str, &str); 6] = [
    ("0.0.", "0."),
    ("0.1.", "1."),
    ("1.0.", "3."),
    ("1.1.", "4."),
    ("2.", "6."),
    ("3.", "7."),
];
const NOT_EXPANDED: [(&str, &str); 4] = [("0.0.", "0."), ("0.1.", "1."), ("1.", "3."), ("2.", "4.")];

/// The renaming between torchvision's MobileNetV2 keys and the paper's, for one checkpoint
/// (which blocks have an expansion conv), both ways: errors about a torchvision-layout
/// checkpoint name its keys as the file has them.
#[derive(Debug, Clone, Default)]
pub struct TorchvisionNames {
    expanded: std::collections::BTreeSet<String>,
    renamed: BTreeMap<String, String>,
}

impl TorchvisionNames {
    /// The renaming for a checkpoint with these (torchvision-layout) keys.
    pub fn of<'a>(keys: impl Iterator<Item = &'a String>) -> Self {
        let keys: Vec<&String> = keys.collect();
        let expanded = keys
            .iter()
            .filter_map(|k| {
                let rest = k.strip_prefix("features.")?;
                let (idx, tail) = rest.split_once('.')?;
                tail.starts_with("conv.1.0.").then(|| idx.to_string())
            })
            .collect();
        let mut names = TorchvisionNames {
            expanded,
            renamed: BTreeMap::new(),
        };
        for k in keys {
            if let Some(p) = names.rename(k, false) {
                names.renamed.insert(p, k.clone());
            }
        }
        names
    }

    fn rename(&self, key: &str, to_torchvision: bool) -> Option<String> {
        let rest = key.strip_prefix("features.")?;
        let (idx, tail) = rest.split_once('.')?;
        let tail = tail.strip_prefix("conv.")?;
        let map: &[(&str, &str)] = if self.expanded.contains(idx) {
            &EXPANDED
        } else {
            &NOT_EXPANDED
        };
        map.iter().find_map(|&(tv, paper)| {
            let (from, to) = if to_torchvision { (paper, tv) } else { (tv, paper) };
            tail.strip_prefix(from)
                .map(|param| format!("features.{idx}.conv.{to}{param}"))
        })
    }

    /// The paper's name of a torchvision key, if it is renamed.
    pub fn to_paper(&self, key: &str) -> Option<String> {
        self.rename(key, false)
    }

    /// The torchvision name of a paper key: the checkpoint's own key when it was renamed from
    /// one, else the name torchvision gives it (for a key the checkpoint lacks).
    pub fn to_torchvision(&self, key: &str) -> String {
        self.renamed
            .get(key)
            .cloned()
            .or_else(|| self.rename(key, true))
            .unwrap_or_else(|| key.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn torchvision_keys_map_to_paper_keys() {
        let z = Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap();
        let keys = [
            "features.0.0.weight",
            "features.1.conv.0.0.weight",
            "features.1.conv.0.1.running_var",
            "features.1.conv.1.weight",
            "features.1.conv.2.bias",
            "features.2.conv.0.0.weight",
            "features.2.conv.1.0.weight",
            "features.2.conv.1.1.weight",
            "features.2.conv.2.weight",
            "features.2.conv.3.num_batches_tracked",
            "classifier.1.weight",
        ];
        let map: BTreeMap<_, _> = keys.iter().map(|k| (k.to_string(), z.clone())).collect();
        assert!(is_torchvision_layout(&map));
        let got: Vec<String> = torchvision_to_paper(map).into_keys().collect();
        let mut want = vec![
            "features.0.0.weight",
            "features.1.conv.0.weight",
            "features.1.conv.1.running_var",
            "features.1.conv.3.weight",
            "features.1.conv.4.bias",
            "features.2.conv.0.weight",
            "features.2.conv.3.weight",
            "features.2.conv.4.weight",
            "features.2.conv.6.weight",
            "features.2.conv.7.num_batches_tracked",
            "classifier.1.weight",
        ];
        let in_order = want.clone();
        want.sort();
        assert_eq!(got, want);
        // and back, for error messages, including keys the checkpoint lacks
        let map: BTreeMap<_, _> = keys.iter().map(|k| (k.to_string(), z.clone())).collect();
        let names = TorchvisionNames::of(map.keys());
        for (tv, paper) in keys.iter().zip(&in_order) {
            assert_eq!(names.to_paper(tv).as_deref().unwrap_or(tv), *paper);
        }
        for k in keys {
            let p = names.to_paper(k).unwrap_or(k.to_string());
            assert_eq!(names.to_torchvision(&p), k);
        }
        assert_eq!(
            names.to_torchvision("features.2.conv.7.weight"),
            "features.2.conv.3.weight"
        );
        assert_eq!(
            names.to_torchvision("features.1.conv.4.weight"),
            "features.1.conv.2.weight"
        );
        assert_eq!(names.to_torchvision("classifier.1.bias"), "classifier.1.bias");
    }
}
