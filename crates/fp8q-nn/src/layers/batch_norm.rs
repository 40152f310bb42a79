//! Batch normalization over NCHW feature maps, never folded into the conv.
//!
//! In inference it normalizes with the running statistics, as PyTorch's eval mode does
//! (`x · α + β`, `α = γ / sqrt(var + eps)`, `β = b - mean · α`). During BN re-estimation it
//! normalizes with the **batch** statistics (biased variance) and records each batch's mean and
//! **unbiased** variance; [`BatchNorm2d::finish_reestimation`] then sets the running statistics
//! to the average over the batches.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use fp8q_nn::layers::BatchNorm2d;
//! use fp8q_tensors::feature_map::FeatureMap;
//! let one = |v: f32| Tensor::new(&[v], &Device::Cpu).unwrap();
//! let mut bn = BatchNorm2d::new("bn1", one(2.0), one(1.0), one(3.0), one(4.0), 0.0).unwrap();
//! let mut x = FeatureMap::from_vec(vec![5.0], 1, 1, 1, 1).unwrap();
//! bn.forward(&mut x).unwrap();
//! assert_eq!(x.data, vec![2.0 * (5.0 - 3.0) / 2.0 + 1.0]);
//! ```

use candle_core::Tensor;
use fp8q_core::quantizer::Quantizer;

use crate::error::{NnError, Result};
use crate::kernels::elementwise::affine_act;
use crate::layers::Activation;
use crate::weights::WeightPath;
use fp8q_tensors::feature_map::{with_f32_slice, FeatureMap};

/// PyTorch's default epsilon.
pub const BN_EPS: f64 = 1e-5;

/// Batch statistics gathered during BN re-estimation.
#[derive(Debug, Clone, Default)]
struct Reestimation {
    /// Σ over batches of the batch mean, per channel.
    mean_sum: Vec<f64>,
    /// Σ over batches of the unbiased batch variance, per channel.
    var_sum: Vec<f64>,
    batches: usize,
}

/// A BN layer named by its checkpoint prefix (`layer1.0.bn1`, `features.3.conv.1`).
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    /// Checkpoint prefix.
    pub name: String,
    /// γ.
    pub weight: Vec<f32>,
    /// β.
    pub bias: Vec<f32>,
    /// Running mean.
    pub running_mean: Vec<f32>,
    /// Running variance.
    pub running_var: Vec<f32>,
    /// ε.
    pub eps: f64,
    reestimation: Option<Reestimation>,
}

fn vec_of(t: &Tensor, what: &str) -> Result<Vec<f32>> {
    Ok(with_f32_slice(t, what, |s| s.to_vec())?)
}

impl BatchNorm2d {
    /// From γ, β, running mean and variance (rank-1 tensors of equal length).
    pub fn new(
        name: &str,
        weight: Tensor,
        bias: Tensor,
        running_mean: Tensor,
        running_var: Tensor,
        eps: f64,
    ) -> Result<Self> {
        let bn = BatchNorm2d {
            name: name.to_string(),
            weight: vec_of(&weight, name)?,
            bias: vec_of(&bias, name)?,
            running_mean: vec_of(&running_mean, name)?,
            running_var: vec_of(&running_var, name)?,
            eps,
            reestimation: None,
        };
        let c = bn.weight.len();
        if bn.bias.len() != c || bn.running_mean.len() != c || bn.running_var.len() != c {
            return Err(NnError::invalid(name, "batch-norm parameters of different lengths"));
        }
        Ok(bn)
    }

    /// Load `weight`, `bias`, `running_mean`, `running_var` (and accept `num_batches_tracked`).
    pub fn load(vb: &WeightPath<'_>, channels: usize) -> Result<Self> {
        let s = [channels];
        let bn = Self::new(
            vb.prefix(),
            vb.get("weight", &s),
            vb.get("bias", &s),
            vb.get("running_mean", &s),
            vb.get("running_var", &s),
            BN_EPS,
        )?;
        vb.optional("num_batches_tracked");
        Ok(bn)
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.weight.len()
    }

    /// Normalize `x` in place (running statistics, or batch statistics while re-estimating).
    pub fn forward(&mut self, x: &mut FeatureMap) -> Result<()> {
        self.forward_act(x, Activation::Identity, None)
    }

    /// Normalize, apply `act` and (optionally) quantize with `post`, in one pass over the data
    /// (each piece is quantized while it is still in cache).
    pub fn forward_act(&mut self, x: &mut FeatureMap, act: Activation, post: Option<&Quantizer>) -> Result<()> {
        use rayon::prelude::*;
        let c = self.channels();
        if x.c != c {
            return Err(NnError::invalid(
                &self.name,
                format!("{} channels in, {c} expected", x.c),
            ));
        }
        let (mean, var) = match &mut self.reestimation {
            None => (
                self.running_mean.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                self.running_var.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            ),
            Some(r) => {
                let (mean, biased, unbiased) = batch_stats(x);
                for ch in 0..c {
                    r.mean_sum[ch] += mean[ch];
                    r.var_sum[ch] += unbiased[ch];
                }
                r.batches += 1;
                (mean, biased)
            }
        };
        let mut alpha = vec![0f32; c];
        let mut beta = vec![0f32; c];
        for ch in 0..c {
            let inv_std = 1.0 / (var[ch] + self.eps).sqrt();
            let a = self.weight[ch] as f64 * inv_std;
            alpha[ch] = a as f32;
            beta[ch] = (self.bias[ch] as f64 - mean[ch] * a) as f32;
        }
        // Runs of whole planes of at least ~16k values per task (small late-layer planes would
        // otherwise be one tiny task each).
        let plane = x.plane().max(1);
        let per_task = (16384 / plane).max(1);
        x.data
            .par_chunks_mut(plane * per_task)
            .enumerate()
            .for_each(|(t, run)| {
                for (j, p) in run.chunks_mut(plane).enumerate() {
                    let nc = t * per_task + j;
                    affine_act(p, alpha[nc % c], beta[nc % c], act);
                }
                if let Some(q) = post {
                    q.quantize_inplace_serial(run);
                }
            });
        Ok(())
    }

    /// Start BN re-estimation: from now on, normalize with batch statistics and record them.
    pub fn start_reestimation(&mut self) {
        let c = self.channels();
        self.reestimation = Some(Reestimation {
            mean_sum: vec![0.0; c],
            var_sum: vec![0.0; c],
            batches: 0,
        });
    }

    /// True while re-estimating.
    pub fn is_reestimating(&self) -> bool {
        self.reestimation.is_some()
    }

    /// End BN re-estimation: running statistics become the averages of the recorded batch
    /// statistics (unchanged if no batch was seen). Returns the number of batches averaged.
    pub fn finish_reestimation(&mut self) -> usize {
        match self.reestimation.take() {
            Some(r) if r.batches > 0 => {
                let n = r.batches as f64;
                for ch in 0..self.channels() {
                    self.running_mean[ch] = (r.mean_sum[ch] / n) as f32;
                    self.running_var[ch] = (r.var_sum[ch] / n) as f32;
                }
                r.batches
            }
            _ => 0,
        }
    }
}

/// Per-channel batch mean, biased and unbiased variance over `N·H·W` values (two-pass, f64).
fn batch_stats(x: &FeatureMap) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (c, plane) = (x.c, x.plane());
    let count = (x.n * plane) as f64;
    let mut mean = vec![0f64; c];
    for (nc, p) in x.data.chunks(plane.max(1)).enumerate() {
        mean[nc % c] += p.iter().map(|&v| v as f64).sum::<f64>();
    }
    mean.iter_mut().for_each(|m| *m /= count);
    let mut ss = vec![0f64; c];
    for (nc, p) in x.data.chunks(plane.max(1)).enumerate() {
        let m = mean[nc % c];
        ss[nc % c] += p.iter().map(|&v| (v as f64 - m) * (v as f64 - m)).sum::<f64>();
    }
    let biased = ss.iter().map(|s| s / count).collect();
    let unbiased = ss
        .iter()
        .map(|s| if count > 1.0 { s / (count - 1.0) } else { 0.0 })
        .collect();
    (mean, biased, unbiased)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    /// A toy layer: one channel, two batches of two 1x1 images; statistics worked by hand.
    #[test]
    fn reestimation_on_a_toy_layer() {
        let mut bn = BatchNorm2d::new("bn", t(&[1.0]), t(&[0.0]), t(&[100.0]), t(&[100.0]), 0.0).unwrap();
        bn.start_reestimation();
        // batch 1: values 1, 3 → mean 2, biased var 1, unbiased var 2; normalized: -1, +1
        let mut b1 = FeatureMap::from_vec(vec![1.0, 3.0], 2, 1, 1, 1).unwrap();
        bn.forward(&mut b1).unwrap();
        assert_eq!(b1.data, vec![-1.0, 1.0]);
        // batch 2: values 4, 8 → mean 6, biased var 4, unbiased var 8; normalized: -1, +1
        let mut b2 = FeatureMap::from_vec(vec![4.0, 8.0], 2, 1, 1, 1).unwrap();
        bn.forward(&mut b2).unwrap();
        assert_eq!(b2.data, vec![-1.0, 1.0]);
        assert_eq!(bn.finish_reestimation(), 2);
        assert_eq!(bn.running_mean, vec![4.0]); // (2 + 6) / 2
        assert_eq!(bn.running_var, vec![5.0]); // (2 + 8) / 2
                                               // back to inference: (x - 4) / sqrt(5)
        let mut x = FeatureMap::from_vec(vec![4.0 + 5f32.sqrt()], 1, 1, 1, 1).unwrap();
        bn.forward(&mut x).unwrap();
        assert!((x.data[0] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn statistics_span_batch_and_plane() {
        // 2 channels, 2 images of 1x2: channel 0 sees 0, 2, 4, 6 → mean 3, biased var 5
        let x = FeatureMap::from_vec(vec![0.0, 2.0, 10.0, 10.0, 4.0, 6.0, 10.0, 10.0], 2, 2, 1, 2).unwrap();
        let (m, b, u) = batch_stats(&x);
        assert_eq!(m, vec![3.0, 10.0]);
        assert_eq!(b, vec![5.0, 0.0]);
        assert_eq!(u, vec![20.0 / 3.0, 0.0]);
    }

    #[test]
    fn activation_is_fused() {
        let mut bn = BatchNorm2d::new("bn", t(&[1.0]), t(&[0.0]), t(&[0.0]), t(&[1.0]), 0.0).unwrap();
        let mut x = FeatureMap::from_vec(vec![-1.0, 3.0, 9.0], 1, 1, 1, 3).unwrap();
        bn.forward_act(&mut x, Activation::Relu6, None).unwrap();
        assert_eq!(x.data, vec![0.0, 3.0, 6.0]);
    }
}
