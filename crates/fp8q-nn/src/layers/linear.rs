//! The final fully connected layer with its weight and logits quantizer slots.

use candle_core::Tensor;

use crate::error::{NnError, Result};
use crate::kernels::matmul::linear_rows;
use crate::layers::QuantSlot;
use crate::weights::WeightPath;
use fp8q_core::quantizer::BlockLayout;
use fp8q_tensors::feature_map::with_f32_slice;

/// A linear layer named by its checkpoint prefix (`fc`, `classifier.1`).
#[derive(Debug)]
pub struct Linear {
    /// Checkpoint prefix.
    pub name: String,
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Tensor,
    /// Quantizer of the weight (per output row when per-channel).
    pub weight_quantizer: QuantSlot,
    /// Quantizer of the output (the logits); of the input instead when `quantize_input` is set.
    pub act_quantizer: QuantSlot,
    /// Quantize the layer's input with `act_quantizer` instead of its output (`LSQ_paper`).
    pub quantize_input: bool,
}

impl Linear {
    /// Load `prefix.weight` `[out, in]` and `prefix.bias` `[out]`.
    pub fn load(vb: &WeightPath<'_>, in_features: usize, out_features: usize) -> Result<Self> {
        Ok(Linear {
            name: vb.prefix().to_string(),
            weight: vb.get("weight", &[out_features, in_features]),
            bias: vb.get("bias", &[out_features]),
            weight_quantizer: QuantSlot::empty(),
            act_quantizer: QuantSlot::empty(),
            quantize_input: false,
        })
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    /// `x · Wᵀ + b` for `x` of `n` rows of `in_features` values; returns `n · out` values.
    pub fn forward(&mut self, mut x: Vec<f32>, n: usize) -> Result<Vec<f32>> {
        let (out_f, in_f) = (self.out_features(), self.in_features());
        if x.len() != n * in_f {
            return Err(NnError::invalid(
                &self.name,
                format!("{} input values for {n} rows of {in_f}", x.len()),
            ));
        }
        if self.quantize_input {
            self.act_quantizer.apply(&mut x, 1, BlockLayout::rows(n, in_f), true)?;
        }
        let quantizer = &mut self.weight_quantizer;
        let y = with_f32_slice(&self.weight, &self.name, |w| {
            let quantized;
            let w = if quantizer.is_active() {
                let mut q = w.to_vec();
                quantizer.apply(&mut q, out_f, BlockLayout::rows(out_f, in_f), true)?;
                quantized = q;
                &quantized[..]
            } else {
                w
            };
            // each row on its own, so an image's logits do not depend on its batch
            Ok::<_, NnError>(linear_rows(&x, w, n, in_f, out_f))
        })??;
        let mut y = with_f32_slice(&self.bias, &self.name, |b| {
            let mut y = y;
            for row in y.chunks_mut(out_f.max(1)) {
                for (v, &b) in row.iter_mut().zip(b) {
                    *v += b;
                }
            }
            y
        })?;
        if !self.quantize_input {
            self.act_quantizer.apply(&mut y, 1, BlockLayout::rows(n, out_f), true)?;
        }
        Ok(y)
    }
}
