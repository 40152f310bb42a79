//! The fused paths give the same results as quantizing separately: a fixed output quantizer
//! inside the BN pass, the residual join with the block's quantizer, and the cached quantized
//! weight (renewed when the quantizer changes).

use fp8q_core::quantizer::BlockLayout;
use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use fp8q_core::manager::{QuantConfig, QuantManager};
use fp8q_core::quantizer::QuantMethod;
use fp8q_core::range::RangeMethod;
use fp8q_nn::kernels::elementwise::residual_join;
use fp8q_nn::layers::conv_bn_act::ConvSpec;
use fp8q_nn::layers::{Activation, ConvBnAct, QuantSlot, SlotKind, TensorQuantizer};
use fp8q_nn::weights::Weights;
use fp8q_ptq::{ManagedQuantizer, SlotHandle};
use fp8q_tensors::feature_map::FeatureMap;

fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
        })
        .collect()
}

fn e4m3_quantizer(unit: &str, kind: SlotKind, per_channel: bool) -> (ManagedQuantizer, SlotHandle) {
    let manager = QuantManager::new(QuantConfig {
        method: QuantMethod::Fp {
            n_bits: 8,
            mantissa_bits: 3,
            allow_unsigned: false,
        },
        range_method: RangeMethod::CurrentMinMax,
        per_channel,
        fp_set_maxval: true,
        fp_maxval: None,
    })
    .unwrap();
    ManagedQuantizer::new(unit, kind, manager)
}

fn unit(channels: usize) -> ConvBnAct {
    let t = |v: Vec<f32>, shape: &[usize]| Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
    let mut map = BTreeMap::new();
    map.insert(
        "c.weight".to_string(),
        t(values(channels * channels * 9, 1, 0.4), &[channels, channels, 3, 3]),
    );
    map.insert(
        "bn.weight".to_string(),
        t(values(channels, 2, 1.0).iter().map(|v| v + 1.0).collect(), &[channels]),
    );
    map.insert("bn.bias".to_string(), t(values(channels, 3, 0.5), &[channels]));
    map.insert("bn.running_mean".to_string(), t(values(channels, 4, 0.2), &[channels]));
    map.insert(
        "bn.running_var".to_string(),
        t(values(channels, 5, 0.5).iter().map(|v| v + 1.0).collect(), &[channels]),
    );
    let w = Weights::new("synthetic.pth", map);
    let spec = ConvSpec {
        cin: channels,
        cout: channels,
        k: 3,
        stride: 1,
        pad: 1,
        groups: 1,
    };
    ConvBnAct::load(&w.root().pp("c"), &w.root().pp("bn"), spec, Activation::Relu6).unwrap()
}

/// The weight the unit's conv uses this pass.
fn weight_values(u: &mut ConvBnAct) -> Vec<f32> {
    u.effective_weight()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn fixed_output_quantizer_fused_into_batch_norm() {
    let (c, hw) = (8, 40); // 8·40·40 values: several parallel pieces
    let x = FeatureMap::from_vec(values(2 * c * hw * hw, 9, 4.0), 2, c, hw, hw).unwrap();
    let mut fused = unit(c);
    let (q, handle) = e4m3_quantizer("c", SlotKind::Output, false);
    fused.act_quantizer.set(Box::new(q));
    fused.forward(&x).unwrap(); // calibrate
    handle.fix();
    assert!(fused.act_quantizer.fixed_elementwise().is_some());
    let got = fused.forward(&x).unwrap();

    // the same unit without a quantizer, then the quantizer on the whole tensor
    let mut plain = unit(c);
    let mut want = plain.forward(&x).unwrap();
    let (mut q2, h2) = e4m3_quantizer("c", SlotKind::Output, false);
    h2.load_state(&handle.state().unwrap()).unwrap();
    let layout = fp8q_nn::layers::channel_layout(&want);
    q2.quantize(&mut want.data, 1, layout, true).unwrap();
    assert_eq!(bits(&got.data), bits(&want.data));
    // and quantization did something
    assert_ne!(bits(&got.data), bits(&plain.forward(&x).unwrap().data));
}

#[test]
fn residual_join_fused_equals_separate() {
    let n = 100_003;
    let (y0, x) = (values(n, 11, 8.0), values(n, 12, 8.0));
    for act in [Activation::Identity, Activation::Relu] {
        let (q, handle) = e4m3_quantizer("b", SlotKind::BlockOutput, false);
        let mut slot = QuantSlot::empty();
        slot.set(Box::new(q));
        // estimating: add, then estimate on the whole and quantize
        let mut estimated = y0.clone();
        residual_join(&mut estimated, &x, act, &mut slot, BlockLayout::flat(n)).unwrap();
        handle.fix();
        let mut fused = y0.clone();
        residual_join(&mut fused, &x, act, &mut slot, BlockLayout::flat(n)).unwrap();
        let mut want: Vec<f32> = y0.iter().zip(&x).map(|(a, b)| act.apply(a + b)).collect();
        slot.apply(&mut want, 1, BlockLayout::flat(n), false).unwrap();
        assert_eq!(bits(&fused), bits(&want), "{act:?}");
        assert_eq!(
            bits(&estimated),
            bits(&want),
            "{act:?}: the calibrating pass quantizes too"
        );
    }
}

#[test]
fn cached_weight_follows_the_quantizer() {
    let c = 4;
    let x = FeatureMap::from_vec(values(c * 36, 21, 2.0), 1, c, 6, 6).unwrap();
    let mut u = unit(c);
    let (q, handle) = e4m3_quantizer("c", SlotKind::Weight, true);
    u.weight_quantizer.set(Box::new(q));
    u.forward(&x).unwrap();
    handle.fix();
    let w1 = weight_values(&mut u);
    let again = weight_values(&mut u);
    assert_eq!(bits(&w1), bits(&again));
    // a narrower range: the cached weight must not be reused
    let mut state = handle.state().unwrap();
    let json = serde_json::to_string(&state)
        .unwrap()
        .replace("\"mantissa_bits\":3", "\"mantissa_bits\":1")
        .replace("\"format\":\"e4m3\"", "\"format\":\"e6m1\"");
    state = serde_json::from_str(&json).unwrap();
    handle.load_state(&state).unwrap();
    let w2 = weight_values(&mut u);
    assert_ne!(bits(&w1), bits(&w2));
    // a new weight tensor: recomputed too
    let raw = u.conv.weight.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    u.conv.weight = Tensor::from_vec(
        raw.iter().map(|v| v * 0.5).collect::<Vec<_>>(),
        u.conv.weight.dims(),
        &Device::Cpu,
    )
    .unwrap();
    let w3 = weight_values(&mut u);
    assert_ne!(bits(&w2), bits(&w3));
}
