//! ResNet-50 against PyTorch: torchvision's ResNet-50 structure (Bottleneck blocks [3, 4, 6, 3],
//! stride on the 3×3 conv, downsample branches, torchvision key names) at 1/16 of the width, with
//! random weights and BN statistics, checkpoint and logits made by
//! `tools/make_resnet50_fixture.py` (PyTorch, eval mode) and kept in `tests/data/` (0.5 MB).

use std::path::PathBuf;

use fp8q_nn::models::{Architecture, Model};
use fp8q_ptq::{install, PtqConfig};
use fp8q_tensors::feature_map::FeatureMap;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn input() -> FeatureMap {
    FeatureMap::from_vec(read_f32("resnet50_narrow_input.f32"), 2, 3, 96, 96).unwrap()
}

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

#[test]
fn resnet50_fp32_logits_match_pytorch() {
    let mut model = Model::load(Architecture::Resnet50, data("resnet50_narrow.pth")).unwrap();
    let want = read_f32("resnet50_narrow_logits.f32");
    let got = model.forward_fm(input()).unwrap();
    assert_eq!(got.len(), want.len());
    let err = rel_l2(&got, &want);
    println!("ResNet-50 (narrow) FP32 logits relative L2 error vs PyTorch: {err:e}");
    assert!(err <= 1e-4, "logits relative L2 error {err:e}");
    // the architecture name as the seed's CLI spells it
    assert_eq!("resnet50".parse::<Architecture>().unwrap(), Architecture::Resnet50);
}

#[test]
fn resnet50_quantized_runs_close_to_fp32() {
    let mut model = Model::load(Architecture::Resnet50, data("resnet50_narrow.pth")).unwrap();
    let installed = install(&mut model, &PtqConfig::default()).unwrap();
    model.forward_fm(input()).unwrap(); // calibration
    installed.fix_all().unwrap();
    let got = model.forward_fm(input()).unwrap();
    let fp32 = read_f32("resnet50_narrow_logits.f32");
    let err = rel_l2(&got, &fp32);
    // 8-bit fake quantization moves the logits, but not far
    assert!(
        err > 1e-4 && err < 0.2,
        "quantized logits relative L2 error vs FP32 {err:e}"
    );
}
