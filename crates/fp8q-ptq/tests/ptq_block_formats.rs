//! Block-scaled formats in PTQ (`--weight-format`, `--act-format`): blocks run along the
//! reduction dimension (dim 1 of conv and linear weights, the channels of NCHW activations), and
//! the quantizers in the network equal the library's `quantize_blocks` on the same tensors. Uses
//! the in-repository fixture `tests/data/ptq_small`.

use std::path::{Path, PathBuf};

use fp8q_core::format::Format;
use fp8q_core::manager::{QuantConfig, QuantManager};
use fp8q_core::quantizer::block_quantizer::quantize_blocks;
use fp8q_core::quantizer::QuantMethod;
use fp8q_core::range::RangeMethod;
use fp8q_images::{BatchLoader, ImageFolder, LoaderOptions, Transform};
use fp8q_nn::layers::{channel_layout, QuantSlot, SlotKind};
use fp8q_nn::models::{Architecture, Model};
use fp8q_ptq::evaluate::evaluate;
use fp8q_ptq::quantizer::ManagedQuantizer;
use fp8q_ptq::PtqConfig;
use fp8q_tensors::feature_map::{with_f32_slice, FeatureMap};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ptq_small")
}

fn split(name: &str) -> ImageFolder {
    ImageFolder::open(fixture().join("images").join(name)).unwrap()
}

fn fmt(s: &str) -> Format {
    s.parse().unwrap()
}

fn config(weight: &str, act: &str) -> PtqConfig {
    PtqConfig {
        weight_format: Some(fmt(weight)),
        act_format: Some(fmt(act)),
        per_channel: true,
        fp8_set_maxval: true,
        ..PtqConfig::default()
    }
}

fn logits(model: &mut Model) -> Vec<f32> {
    evaluate(
        model,
        BatchLoader::new(&split("val"), LoaderOptions::new(5, Transform::val())),
        |_| {},
    )
    .unwrap()
    .logits
}

/// Every conv weight in the network is exactly `quantize_blocks` along its input channels.
#[test]
fn network_weights_equal_the_library_function() {
    for (arch, file, f) in [
        (Architecture::Resnet18, "resnet18_narrow.pth", "mxfp4"),
        (Architecture::MobilenetV2, "mobilenet_v2_narrow.pth.tar", "nvfp4"),
    ] {
        let mut model = Model::load(arch, fixture().join(file)).unwrap();
        let raw: Vec<(Vec<f32>, Vec<usize>)> = model
            .units_mut()
            .into_iter()
            .map(|u| {
                let w = &u.conv.weight;
                (with_f32_slice(w, "w", |s| s.to_vec()).unwrap(), w.dims().to_vec())
            })
            .collect();
        let installed = fp8q_ptq::install(&mut model, &config(f, "mxfp8_e4m3")).unwrap();
        assert!(installed.slots.len() > 20);
        for (u, (w, dims)) in model.units_mut().into_iter().zip(raw) {
            let got = u.effective_weight().unwrap();
            let got = with_f32_slice(&got, "q", |s| s.to_vec()).unwrap();
            let mut want = vec![0f32; w.len()];
            quantize_blocks(fmt(f).as_block().unwrap(), &w, &dims, 1, &mut want).unwrap();
            assert_eq!(got, want, "{f} {}", u.name);
            assert_ne!(got, w, "{f} {}: quantization did something", u.name);
        }
    }
}

fn block_slot(f: &str) -> QuantSlot {
    let manager = QuantManager::new(QuantConfig {
        method: QuantMethod::from_format(fmt(f)),
        range_method: RangeMethod::CurrentMinMax,
        per_channel: false,
        fp_set_maxval: true,
        fp_maxval: None,
    })
    .unwrap();
    let mut slot = QuantSlot::empty();
    slot.set(Box::new(ManagedQuantizer::new("u", SlotKind::Output, manager).0));
    slot
}

/// An activation slot forms its blocks along the channels of an NCHW map, and an outlier
/// changes only its own block.
#[test]
fn activation_blocks_run_along_the_channels() {
    let (n, c, h, w) = (2, 40, 3, 5);
    let data: Vec<f32> = (0..n * c * h * w)
        .map(|i| ((i * 7919 % 113) as f32 - 56.0) * 0.013)
        .collect();
    let map = FeatureMap::from_vec(data.clone(), n, c, h, w).unwrap();
    for f in ["mxfp4", "mxfp6_e2m3", "nvfp4", "e2m1@8"] {
        let mut slot = block_slot(f);
        let mut got = map.clone();
        slot.apply(&mut got.data, 1, channel_layout(&map), true).unwrap();
        let mut want = vec![0f32; data.len()];
        quantize_blocks(fmt(f).as_block().unwrap(), &data, &[n, c, h, w], 1, &mut want).unwrap();
        assert_eq!(got.data, want, "{f}");
    }
    // an outlier at (0, 3, 1, 2) changes the block of channels 0..32 at that pixel only
    let mut spiked = data.clone();
    let at = |n_: usize, c_: usize, y: usize, x: usize| ((n_ * c + c_) * h + y) * w + x;
    spiked[at(0, 3, 1, 2)] = 500.0;
    let mut slot = block_slot("mxfp4");
    let (mut a, mut b) = (data.clone(), spiked.clone());
    slot.apply(&mut a, 1, channel_layout(&map), true).unwrap();
    slot.apply(&mut b, 1, channel_layout(&map), true).unwrap();
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                for img in 0..n {
                    let i = at(img, ch, y, x);
                    let same_block = img == 0 && ch < 32 && y == 1 && x == 2;
                    if !same_block {
                        assert_eq!(a[i], b[i], "({img}, {ch}, {y}, {x})");
                    }
                }
            }
        }
    }
    assert!((0..32).any(|ch| ch != 3 && a[at(0, ch, 1, 2)] != b[at(0, ch, 1, 2)]));
}

/// The whole network runs with block formats on both sides, and 4-bit weights lose more than
/// 6-bit ones.
#[test]
fn block_formats_evaluate_end_to_end() {
    let file = "resnet18_narrow.pth";
    let mut fp32 = Model::load(Architecture::Resnet18, fixture().join(file)).unwrap();
    let reference = logits(&mut fp32);
    let err = |w: &str, a: &str| {
        let mut model = Model::load(Architecture::Resnet18, fixture().join(file)).unwrap();
        fp8q_ptq::install(&mut model, &config(w, a)).unwrap();
        let got = logits(&mut model);
        assert!(got.iter().all(|v| v.is_finite()));
        let num: f64 = got
            .iter()
            .zip(&reference)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum();
        let den: f64 = reference.iter().map(|b| (*b as f64).powi(2)).sum();
        (num / den).sqrt()
    };
    // measured: MXFP8 0.18, MXFP6 (E2M3) 0.078, MXFP4 weights 0.40 — MXFP8's FLOOR scale
    // saturates every block maximum above 1.75·2^k (E4M3FN's top is 448 = 1.75·2^8)
    let (mx8, mx6, mx4) = (
        err("mxfp8_e4m3", "mxfp8_e4m3"),
        err("mxfp6_e2m3", "mxfp6_e2m3"),
        err("mxfp4", "mxfp6_e2m3"),
    );
    for (name, e) in [("MXFP8", mx8), ("MXFP6", mx6), ("MXFP4 weights", mx4)] {
        assert!(e > 0.0 && e < 0.5, "{name} rel L2 {e}");
    }
    assert!(mx4 > 2.0 * mx6, "MXFP4 weights {mx4} vs MXFP6 {mx6}");
}
