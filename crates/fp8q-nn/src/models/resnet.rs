//! ResNet-18 and ResNet-50 in torchvision's layout and key names (`conv1`, `bn1`,
//! `layer{1-4}.{i}.conv{1,2,3}`, `.bn*`, `.downsample.0/1`, `fc`), BasicBlock and Bottleneck
//! (stride on the 3×3 conv), with the quantizer slots of `docs/ptq.md`.

use crate::error::{NnError, Result};
use crate::kernels::elementwise::residual_join;
use crate::kernels::{pool, Window};
use crate::layers::conv_bn_act::ConvSpec;
use crate::layers::{channel_layout, Activation, BatchNorm2d, ConvBnAct, Linear, QuantSlot, SlotKind};
use crate::models::block::Block;
use crate::models::Resume;
use crate::weights::WeightPath;
use fp8q_tensors::feature_map::FeatureMap;

/// Which block a ResNet is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convs (ResNet-18/34), expansion 1.
    Basic,
    /// 1×1, 3×3, 1×1 (ResNet-50/101/152), expansion 4.
    Bottleneck,
}

impl BlockKind {
    fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// A residual block named by its prefix (`layer1.0`): `relu(units(x) + shortcut)`, then the
/// block's own output quantizer.
#[derive(Debug)]
pub struct ResidualBlock {
    /// Checkpoint prefix.
    pub name: String,
    /// The two or three conv+BN units in sequence (all but the last with ReLU).
    pub units: Vec<ConvBnAct>,
    /// `downsample.0` / `.1`, when the shape changes.
    pub downsample: Option<ConvBnAct>,
    /// The block's output quantizer (after the ReLU).
    pub output_quantizer: QuantSlot,
}

impl ResidualBlock {
    fn load(vb: &WeightPath<'_>, kind: BlockKind, cin: usize, planes: usize, stride: usize) -> Result<Self> {
        let cout = planes * kind.expansion();
        let unit = |i: usize, spec: ConvSpec, act: Activation| {
            ConvBnAct::load(&vb.pp(format!("conv{i}")), &vb.pp(format!("bn{i}")), spec, act)
        };
        let spec = |cin, cout, k, stride, pad| ConvSpec {
            cin,
            cout,
            k,
            stride,
            pad,
            groups: 1,
        };
        let units = match kind {
            BlockKind::Basic => vec![
                unit(1, spec(cin, planes, 3, stride, 1), Activation::Relu)?,
                unit(2, spec(planes, planes, 3, 1, 1), Activation::Identity)?,
            ],
            BlockKind::Bottleneck => vec![
                unit(1, spec(cin, planes, 1, 1, 0), Activation::Relu)?,
                unit(2, spec(planes, planes, 3, stride, 1), Activation::Relu)?,
                unit(3, spec(planes, cout, 1, 1, 0), Activation::Identity)?,
            ],
        };
        let downsample = if stride != 1 || cin != cout {
            let d = vb.pp("downsample");
            Some(ConvBnAct::load(
                &d.pp(0),
                &d.pp(1),
                spec(cin, cout, 1, stride, 0),
                Activation::Identity,
            )?)
        } else {
            None
        };
        Ok(ResidualBlock {
            name: vb.prefix().to_string(),
            units,
            downsample,
            output_quantizer: QuantSlot::empty(),
        })
    }
}

impl Block for ResidualBlock {
    fn name(&self) -> &str {
        &self.name
    }

    fn units_mut(&mut self) -> &mut [ConvBnAct] {
        &mut self.units
    }

    /// `relu(y + shortcut(x))`, then the block's output quantizer.
    fn join(&mut self, x: &FeatureMap, mut y: FeatureMap) -> Result<FeatureMap> {
        let projected;
        let shortcut = match &mut self.downsample {
            Some(d) => {
                projected = d.forward(x)?;
                &projected
            }
            None => x,
        };
        if shortcut.dims() != y.dims() {
            return Err(NnError::invalid(
                &self.name,
                format!("shortcut {:?} and residual {:?} differ", shortcut.dims(), y.dims()),
            ));
        }
        let layout = channel_layout(&y);
        residual_join(
            &mut y.data,
            &shortcut.data,
            Activation::Relu,
            &mut self.output_quantizer,
            layout,
        )?;
        Ok(y)
    }
}

/// A ResNet.
#[derive(Debug)]
pub struct ResNet {
    /// Stem: `conv1` + `bn1` + ReLU.
    pub conv1: ConvBnAct,
    /// `layer1` … `layer4`.
    pub layers: Vec<Vec<ResidualBlock>>,
    /// `fc`.
    pub fc: Linear,
}

impl ResNet {
    /// Load a ResNet with `blocks` per stage; the number of classes is read from `fc.weight`, the
    /// base width (64 in torchvision's models; stage `i` has `base·2^i` planes) from
    /// `conv1.weight`.
    pub fn load(vb: &WeightPath<'_>, kind: BlockKind, blocks: [usize; 4]) -> Result<Self> {
        let base = vb
            .pp("conv1")
            .shape_of("weight")
            .and_then(|s| s.first().copied())
            .filter(|&w| w > 0)
            .unwrap_or(64);
        let conv1 = ConvBnAct::load(
            &vb.pp("conv1"),
            &vb.pp("bn1"),
            ConvSpec {
                cin: 3,
                cout: base,
                k: 7,
                stride: 2,
                pad: 3,
                groups: 1,
            },
            Activation::Relu,
        )?;
        let mut cin = base;
        let mut layers = Vec::new();
        for (stage, &n) in blocks.iter().enumerate() {
            let planes = base << stage;
            let lvb = vb.pp(format!("layer{}", stage + 1));
            let mut stage_blocks = Vec::new();
            for i in 0..n {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                stage_blocks.push(ResidualBlock::load(&lvb.pp(i), kind, cin, planes, stride)?);
                cin = planes * kind.expansion();
            }
            layers.push(stage_blocks);
        }
        let classes = vb
            .pp("fc")
            .shape_of("weight")
            .and_then(|s| s.first().copied())
            .unwrap_or(1000);
        let fc = Linear::load(&vb.pp("fc"), cin, classes)?;
        Ok(ResNet { conv1, layers, fc })
    }

    /// Logits (`n · classes` values) of a batch: the stages in turn.
    pub fn forward(&mut self, x: FeatureMap) -> Result<Vec<f32>> {
        let mut y = x;
        for stage in 0..self.num_stages() {
            y = self.forward_stage(stage, y)?;
        }
        Ok(y.data)
    }

    /// Stages of [`ResNet::forward_stage`]: the stem, one per residual block, the head.
    pub fn num_stages(&self) -> usize {
        self.blocks_count() + 2
    }

    fn blocks_count(&self) -> usize {
        self.layers.iter().map(Vec::len).sum()
    }

    /// Run one stage: 0 is `conv1` + max pool, `1 ..=B` the residual blocks in order, `B + 1`
    /// the global average pool (quantized by the last block's output quantizer, without
    /// updating it) and `fc`, whose logits come back as an `n × classes × 1 × 1` map.
    pub fn forward_stage(&mut self, stage: usize, x: FeatureMap) -> Result<FeatureMap> {
        let blocks = self.blocks_count();
        if stage == 0 {
            let y = self.conv1.forward(&x)?;
            drop(x);
            return pool::max_pool2d(
                &y,
                Window {
                    kh: 3,
                    kw: 3,
                    stride: 2,
                    pad: 1,
                },
                "maxpool",
            );
        }
        if stage <= blocks {
            let block = self
                .layers
                .iter_mut()
                .flatten()
                .nth(stage - 1)
                .ok_or_else(|| NnError::invalid("stage", format!("{stage} of {blocks} blocks")))?;
            return block.forward(x);
        }
        if stage != blocks + 1 {
            return Err(NnError::invalid("stage", format!("{stage}: ResNet has {}", blocks + 2)));
        }
        let n = x.n;
        let mut pooled = pool::global_avg_pool(&x);
        drop(x);
        // The pool's output shares the last block's quantizer (same range, not updated).
        if let Some(last) = self.layers.last_mut().and_then(|s| s.last_mut()) {
            let layout = channel_layout(&pooled);
            last.output_quantizer.apply(&mut pooled.data, 1, layout, false)?;
        }
        let classes = self.fc.out_features();
        Ok(FeatureMap::from_vec(
            self.fc.forward(pooled.data, n)?,
            n,
            classes,
            1,
            1,
        )?)
    }

    /// Where a forward pass must start for each quantizer slot to act, as `(unit, kind, resume)`
    /// in execution order.
    pub fn slot_stages(&mut self) -> Vec<(String, SlotKind, Resume)> {
        let mut out = Vec::new();
        visit_unit(&mut self.conv1, &mut |u, k, _| {
            out.push((u.to_string(), k, Resume::stage(0)))
        });
        for (b, block) in self.layers.iter_mut().flatten().enumerate() {
            let stage = b + 1;
            let end = block.units.len();
            for (step, u) in block.units.iter_mut().enumerate() {
                let input = u.quantize_input;
                visit_unit(u, &mut |n, k, _| {
                    out.push((n.to_string(), k, Resume::for_unit_slot(stage, step, k, input)))
                });
            }
            // the shortcut and the join run after every unit
            if let Some(d) = &mut block.downsample {
                visit_unit(d, &mut |n, k, _| {
                    out.push((n.to_string(), k, Resume::inside(stage, end)))
                });
            }
            out.push((block.name.clone(), SlotKind::BlockOutput, Resume::inside(stage, end)));
        }
        let head = Resume::stage(self.blocks_count() + 1);
        out.push((self.fc.name.clone(), SlotKind::Weight, head));
        out.push((self.fc.name.clone(), SlotKind::Output, head));
        out
    }

    /// The block that is stage `stage`, if it is one.
    pub fn block_mut(&mut self, stage: usize) -> Option<&mut ResidualBlock> {
        stage
            .checked_sub(1)
            .and_then(|b| self.layers.iter_mut().flatten().nth(b))
    }

    /// Every conv+BN unit in execution order.
    pub fn units_mut(&mut self) -> Vec<&mut ConvBnAct> {
        let mut out = vec![&mut self.conv1];
        for block in self.layers.iter_mut().flatten() {
            out.extend(block.units.iter_mut());
            out.extend(block.downsample.as_mut());
        }
        out
    }

    /// Visit every quantizer slot as `(unit name, kind, slot)`, in execution order.
    pub fn visit_slots(&mut self, f: &mut dyn FnMut(&str, SlotKind, &mut QuantSlot)) {
        visit_unit(&mut self.conv1, f);
        for block in self.layers.iter_mut().flatten() {
            for u in &mut block.units {
                visit_unit(u, f);
            }
            if let Some(d) = &mut block.downsample {
                visit_unit(d, f);
            }
            f(&block.name, SlotKind::BlockOutput, &mut block.output_quantizer);
        }
        f(&self.fc.name, SlotKind::Weight, &mut self.fc.weight_quantizer);
        f(&self.fc.name, SlotKind::Output, &mut self.fc.act_quantizer);
    }

    /// Visit every batch norm.
    pub fn visit_bns(&mut self, f: &mut dyn FnMut(&mut BatchNorm2d)) {
        for u in self.units_mut() {
            f(&mut u.bn);
        }
    }
}

pub(crate) fn visit_unit(u: &mut ConvBnAct, f: &mut dyn FnMut(&str, SlotKind, &mut QuantSlot)) {
    f(&u.name, SlotKind::Weight, &mut u.weight_quantizer);
    f(&u.name, SlotKind::Output, &mut u.act_quantizer);
}
