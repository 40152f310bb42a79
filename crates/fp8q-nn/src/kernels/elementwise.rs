//! Element-wise kernels, in place and vectorized for the CPU they run on: the inference batch
//! norm's per-channel `act(x · α + β)`, and the residual join `act(y + x)` with the block's
//! output quantizer.

use crate::error::Result;
use crate::layers::{Activation, QuantSlot};

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

dispatch_by_cpu! {
    /// `y ← act(y + x)` (same lengths).
    pub fn add_act(y: &mut [f32], x: &[f32], act: Activation) => add_act_impl;
}

#[inline(always)]
fn add_act_impl(y: &mut [f32], x: &[f32], act: Activation) {
    match act {
        Activation::Identity => y.iter_mut().zip(x).for_each(|(a, b)| *a += b),
        Activation::Relu => y.iter_mut().zip(x).for_each(|(a, b)| {
            let v = *a + b;
            *a = if v < 0.0 { 0.0 } else { v };
        }),
        Activation::Relu6 => y.iter_mut().zip(x).for_each(|(a, b)| {
            let v = *a + b;
            let v = if v < 0.0 { 0.0 } else { v };
            *a = if v > 6.0 { 6.0 } else { v };
        }),
    }
}

/// A residual join: `y ← act(y + x)` then `quantizer` on `y`, in parallel pieces of 16k values;
/// a fixed quantizer runs on each piece while it is in cache.
/// `layout` places the channels for a block-scaled quantizer.
pub fn residual_join(
    y: &mut [f32],
    x: &[f32],
    act: Activation,
    quantizer: &mut QuantSlot,
    layout: fp8q_core::quantizer::BlockLayout,
) -> Result<()> {
    use rayon::prelude::*;
    const PIECE: usize = 1 << 14;
    assert_eq!(y.len(), x.len(), "residual join of different lengths");
    let fused = quantizer.fixed_elementwise();
    y.par_chunks_mut(PIECE).zip(x.par_chunks(PIECE)).for_each(|(y, x)| {
        add_act(y, x, act);
        if let Some(q) = &fused {
            q.quantize_inplace_serial(y);
        }
    });
    if fused.is_none() {
        quantizer.apply(y, 1, layout, true)?;
    }
    Ok(())
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
