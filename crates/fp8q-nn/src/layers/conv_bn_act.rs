//! The conv + BN (+ activation) unit with its two quantizer slots, the building block of both
//! ResNet and MobileNetV2.
//!
//! Order of operations (`docs/ptq.md`): quantize the conv weight (weight slot), convolve, apply BN
//! in f32 (running statistics, or batch statistics while re-estimating), the activation
//! function, then the output-activation slot.

use candle_core::{Device, Tensor, TensorId};

use crate::error::{Result, TensorContext};
use crate::layers::{channel_layout, Activation, BatchNorm2d, Conv2d, QuantSlot};
use crate::weights::WeightPath;
use fp8q_core::quantizer::BlockLayout;
use fp8q_tensors::feature_map::{with_f32_slice, FeatureMap};

/// A conv+BN(+act) unit, named by the checkpoint prefix of its conv (`layer1.0.conv1`,
/// `layer2.0.downsample.0`, `features.3.conv.3`).
#[derive(Debug)]
pub struct ConvBnAct {
    /// The conv's checkpoint prefix; the unit's name everywhere.
    pub name: String,
    /// The convolution.
    pub conv: Conv2d,
    /// Its batch norm (own prefix, e.g. `layer1.0.bn1`).
    pub bn: BatchNorm2d,
    /// Activation after BN.
    pub act: Activation,
    /// Quantizer of the conv weight (per output channel when per-channel).
    pub weight_quantizer: QuantSlot,
    /// Quantizer of the unit's output (after the activation, or after BN when there is none);
    /// of its input instead when `quantize_input` is set.
    pub act_quantizer: QuantSlot,
    /// Quantize the unit's input with `act_quantizer` instead of its output (quant setup
    /// `LSQ_paper`).
    pub quantize_input: bool,
    /// The quantized weight, kept while the weight tensor and its fixed quantizer stay the same.
    weight_cache: Option<(TensorId, u64, Tensor)>,
}

/// Geometry of a conv: `(in, out, kernel, stride, pad, groups)`.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel size.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Padding.
    pub pad: usize,
    /// Groups (1 or `cin` for depthwise).
    pub groups: usize,
}

impl ConvBnAct {
    /// Load a unit from the conv's and the BN's paths.
    pub fn load(conv_vb: &WeightPath<'_>, bn_vb: &WeightPath<'_>, spec: ConvSpec, act: Activation) -> Result<Self> {
        let conv = Conv2d::load(conv_vb, spec.cin, spec.cout, spec.k, spec.stride, spec.pad, spec.groups)?;
        let bn = BatchNorm2d::load(bn_vb, spec.cout)?;
        Ok(ConvBnAct {
            name: conv_vb.prefix().to_string(),
            conv,
            bn,
            act,
            weight_quantizer: QuantSlot::empty(),
            act_quantizer: QuantSlot::empty(),
            quantize_input: false,
            weight_cache: None,
        })
    }

    /// The weight the conv uses this pass: the stored one, or its quantized copy.
    pub fn effective_weight(&mut self) -> Result<Tensor> {
        if !self.weight_quantizer.is_active() {
            return Ok(self.conv.weight.clone());
        }
        let version = self.weight_quantizer.fixed_version();
        if let (Some(v), Some((id, cached_v, w))) = (version, &self.weight_cache) {
            if *id == self.conv.weight.id() && *cached_v == v {
                return Ok(w.clone());
            }
        }
        let mut w = with_f32_slice(&self.conv.weight, &self.name, |s| s.to_vec())?;
        // blocks along the input channels: [out, in/groups, kh, kw]
        let dims = self.conv.weight.dims();
        let layout = BlockLayout {
            outer: dims[0],
            len: dims.get(1).copied().unwrap_or(1),
            inner: dims.iter().skip(2).product(),
        };
        self.weight_quantizer
            .apply(&mut w, self.conv.out_channels, layout, true)?;
        let w = Tensor::from_vec(w, self.conv.weight.dims(), &Device::Cpu).at(&self.name)?;
        self.weight_cache = version.map(|v| (self.conv.weight.id(), v, w.clone()));
        Ok(w)
    }

    /// Run the unit.
    pub fn forward(&mut self, x: &FeatureMap) -> Result<FeatureMap> {
        let w = self.effective_weight()?;
        let mut y = if self.quantize_input && self.act_quantizer.is_active() {
            let mut xq = x.clone();
            let layout = channel_layout(&xq);
            self.act_quantizer.apply(&mut xq.data, 1, layout, true)?;
            self.conv.forward_with(&xq, &w)?
        } else {
            self.conv.forward_with(x, &w)?
        };
        // a fixed output quantizer runs inside the BN pass; otherwise (estimating) on the whole
        let fused = if self.quantize_input {
            None
        } else {
            self.act_quantizer.fixed_elementwise()
        };
        self.bn.forward_act(&mut y, self.act, fused.as_ref())?;
        if !self.quantize_input && fused.is_none() {
            let layout = channel_layout(&y);
            self.act_quantizer.apply(&mut y.data, 1, layout, true)?;
        }
        Ok(y)
    }
}
