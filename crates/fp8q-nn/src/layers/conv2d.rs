//! A bias-free 2-D convolution: dense (groups = 1) through im2col + matmul, depthwise through
//! a direct kernel.

use candle_core::Tensor;

use crate::error::{NnError, Result};
use crate::kernels::{conv::conv2d, depthwise::depthwise_conv2d, Window};
use crate::weights::WeightPath;
use fp8q_tensors::feature_map::{with_f32_slice, FeatureMap};

/// A convolution named by its checkpoint prefix (`layer1.0.conv1`, `features.3.conv.3`).
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// Checkpoint prefix.
    pub name: String,
    /// `[out, in / groups, kh, kw]`.
    pub weight: Tensor,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// 1 (dense) or `in_channels` (depthwise).
    pub groups: usize,
    /// Kernel, stride, padding.
    pub window: Window,
}

impl Conv2d {
    /// Load `prefix.weight` of shape `[out, in / groups, k, k]`.
    pub fn load(
        vb: &WeightPath<'_>,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
        groups: usize,
    ) -> Result<Self> {
        if groups != 1 && !(groups == in_channels && groups == out_channels) {
            return Err(NnError::invalid(
                vb.prefix(),
                format!("groups = {groups}: only dense and depthwise convolutions are supported"),
            ));
        }
        let weight = vb.get("weight", &[out_channels, in_channels / groups, kernel, kernel]);
        Ok(Conv2d {
            name: vb.prefix().to_string(),
            weight,
            in_channels,
            out_channels,
            groups,
            window: Window {
                kh: kernel,
                kw: kernel,
                stride,
                pad,
            },
        })
    }

    /// True for a depthwise convolution.
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1
    }

    /// Convolve with the stored weight.
    pub fn forward(&self, x: &FeatureMap) -> Result<FeatureMap> {
        self.forward_with(x, &self.weight)
    }

    /// Convolve with another weight of the same shape (e.g. the quantized one).
    pub fn forward_with(&self, x: &FeatureMap, weight: &Tensor) -> Result<FeatureMap> {
        if x.c != self.in_channels {
            return Err(NnError::invalid(
                &self.name,
                format!("{} input channels, {} expected", x.c, self.in_channels),
            ));
        }
        if self.is_depthwise() {
            with_f32_slice(weight, &self.name, |w| depthwise_conv2d(x, w, self.window, &self.name))?
        } else {
            conv2d(x, weight, self.window, &self.name)
        }
    }
}
