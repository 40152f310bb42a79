//! Activation functions, applied in place.

/// The activation after a conv+BN unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None (a block's last conv, a downsample branch).
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

impl Activation {
    /// Apply to one value. NaN passes through, as in PyTorch.
    #[inline]
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Identity => v,
            Activation::Relu => {
                if v < 0.0 {
                    0.0
                } else {
                    v
                }
            }
            Activation::Relu6 => v.clamp(0.0, 6.0),
        }
    }

    /// Apply in place.
    pub fn apply_slice(self, x: &mut [f32]) {
        if self != Activation::Identity {
            x.iter_mut().for_each(|v| *v = self.apply(*v));
        }
    }
}
