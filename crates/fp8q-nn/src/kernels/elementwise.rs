//! Per-channel affine transform followed by an activation function, in place: the inference
//! batch norm's `act(x · α + β)`, vectorized for the CPU it runs on.

use crate::layers::Activation;

/// `v ← act(v · a + b)` for every value of `x` (a multiply then an add, not a fused
/// multiply-add, so results are the same on every CPU).
pub fn affine_act(x: &mut [f32], a: f32, b: f32, act: Activation) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { affine_act_avx512(x, a, b, act) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { affine_act_avx2(x, a, b, act) };
            return;
        }
    }
    affine_act_impl(x, a, b, act);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn affine_act_avx512(x: &mut [f32], a: f32, b: f32, act: Activation) {
    affine_act_impl(x, a, b, act);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn affine_act_avx2(x: &mut [f32], a: f32, b: f32, act: Activation) {
    affine_act_impl(x, a, b, act);
}

#[inline(always)]
fn affine_act_impl(x: &mut [f32], a: f32, b: f32, act: Activation) {
    // One loop per activation, each free of branches the vectorizer cannot turn into selects.
    match act {
        Activation::Identity => x.iter_mut().for_each(|v| *v = *v * a + b),
        Activation::Relu => x.iter_mut().for_each(|v| {
            let y = *v * a + b;
            *v = if y < 0.0 { 0.0 } else { y };
        }),
        Activation::Relu6 => x.iter_mut().for_each(|v| {
            let y = *v * a + b;
            let y = if y < 0.0 { 0.0 } else { y };
            *v = if y > 6.0 { 6.0 } else { y };
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_as_scalar_definition() {
        let x: Vec<f32> = (0..1037)
            .map(|i| ((i * 37 % 101) as f32) / 7.0 - 7.0)
            .chain([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0])
            .collect();
        for act in [Activation::Identity, Activation::Relu, Activation::Relu6] {
            let mut got = x.clone();
            affine_act(&mut got, 1.5, -0.25, act);
            for (g, v) in got.iter().zip(&x) {
                let want = act.apply(v * 1.5 - 0.25);
                assert!(
                    g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                    "{act:?} {v}: {g} vs {want}"
                );
            }
        }
    }
}
