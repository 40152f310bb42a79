//! Per-channel affine transform followed by an activation function, in place: the inference
//! batch norm's `act(x · α + β)`, vectorized for the CPU it runs on.

use crate::layers::Activation;

dispatch_by_cpu! {
    /// `v ← act(v · a + b)` for every value of `x` (a multiply then an add, not a fused
    /// multiply-add, so results are the same on every CPU).
    pub fn affine_act(x: &mut [f32], a: f32, b: f32, act: Activation) => affine_act_impl;
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
