//! [`FeatureMap`]: an owned NCHW `f32` activation, the value that flows between units.
//!
//! Units transform feature maps in place where they can (BN, activation functions, quantizers),
//! which a shared, immutable candle `Tensor` would not allow without a copy per step. Conversion
//! to and from candle tensors sits at the model's edges.
//!
//! ```
//! use fp8q_tensors::feature_map::FeatureMap;
//! let x = FeatureMap::zeros(2, 3, 4, 4);
//! assert_eq!(x.data.len(), 2 * 3 * 4 * 4);
//! assert_eq!(x.plane(), 16);
//! ```

use candle_core::{DType, Device, Tensor};

use crate::error::{Result, TensorContext, TensorError};

/// An NCHW activation in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMap {
    /// Values, `n * c * h * w` of them.
    pub data: Vec<f32>,
    /// Batch size.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl FeatureMap {
    /// A feature map of zeros.
    pub fn zeros(n: usize, c: usize, h: usize, w: usize) -> Self {
        FeatureMap {
            data: vec![0.0; n * c * h * w],
            n,
            c,
            h,
            w,
        }
    }

    /// Wrap a vector; its length must be `n * c * h * w`.
    pub fn from_vec(data: Vec<f32>, n: usize, c: usize, h: usize, w: usize) -> Result<Self> {
        if data.len() != n * c * h * w {
            return Err(TensorError::invalid(
                "feature map",
                format!("{} values for shape [{n}, {c}, {h}, {w}]", data.len()),
            ));
        }
        Ok(FeatureMap { data, n, c, h, w })
    }

    /// Copy a rank-4 candle tensor (any float dtype) into a feature map.
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let (n, c, h, w) = t
            .dims4()
            .map_err(|_| TensorError::invalid("input", format!("expected NCHW, got shape {:?}", t.dims())))?;
        let data = t
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .at("input")?;
        Ok(FeatureMap { data, n, c, h, w })
    }

    /// Move into a candle tensor of shape `[n, c, h, w]`.
    pub fn into_tensor(self) -> Result<Tensor> {
        Tensor::from_vec(self.data, (self.n, self.c, self.h, self.w), &Device::Cpu).at("output")
    }

    /// `h * w`.
    pub fn plane(&self) -> usize {
        self.h * self.w
    }

    /// `[n, c, h, w]`.
    pub fn dims(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }
}

/// Run `f` on the contiguous `f32` values of a CPU tensor without copying them.
pub fn with_f32_slice<R>(t: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    if !t.is_contiguous() || t.dtype() != DType::F32 {
        let c = t.to_dtype(DType::F32).and_then(|t| t.contiguous()).at(what)?;
        return with_f32_slice(&c, what, f);
    }
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => {
            let all = cpu.as_slice::<f32>().at(what)?;
            let start = layout.start_offset();
            Ok(f(&all[start..start + t.elem_count()]))
        }
        #[allow(unreachable_patterns)]
        _ => Err(TensorError::invalid(what, "only CPU tensors are supported")),
    }
}
