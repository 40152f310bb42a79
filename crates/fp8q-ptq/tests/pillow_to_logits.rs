//! From the file to the logits: for a few JPEG photographs, decoding (fp8q-images) and the
//! validation transform give torchvision's tensor bit for bit, and the narrow ResNet-50 fixture's
//! FP32 logits on it are within 1e-5 relative L2 of PyTorch's forward pass on Pillow's image.
//! The expected values are in fp8q-images' `tests/data/images/expected.json`, made by
//! `tools/make_image_fixtures.py`.

use std::path::PathBuf;

use fp8q_images::decode::decode;
use fp8q_images::Transform;
use fp8q_nn::models::{Architecture, Model};
use fp8q_tensors::feature_map::FeatureMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn images(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fp8q-images/tests/data/images")
        .join(name)
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn expected() -> Value {
    let text = std::fs::read_to_string(images("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

/// decode + `Transform::val()` + the narrow ResNet-50 against torchvision's `Resize(248)`,
/// `CenterCrop(224)`, `ToTensor`, `Normalize` and PyTorch's forward pass on Pillow's image.
#[test]
fn val_transform_and_fp32_logits_match_torchvision_on_jpeg_photographs() {
    let exp = expected();
    let cases = exp["val_transform"].as_object().unwrap();
    assert!(cases.len() >= 3);
    let mut model = Model::load(Architecture::Resnet50, data("resnet50_narrow.pth")).unwrap();
    for (name, want) in cases {
        let img = decode(&images(name)).unwrap();
        let mut x = vec![0f32; 3 * 224 * 224];
        Transform::val().apply(&img, 0, &mut x);
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let first: Vec<f32> = want["tensor_first"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(&x[..first.len()], &first[..], "{name}: first tensor values");
        let sum: f64 = x.iter().map(|&v| v as f64).sum();
        let want_sum = want["tensor_sum"].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() <= 1e-9 * want_sum.abs().max(1.0),
            "{name}: tensor sum {sum} vs {want_sum}"
        );
        assert_eq!(
            hex(&Sha256::digest(&bytes)),
            want["tensor_sha256"].as_str().unwrap(),
            "{name}: tensor bytes"
        );

        let logits = model
            .forward_fm(FeatureMap::from_vec(x, 1, 3, 224, 224).unwrap())
            .unwrap();
        let want: Vec<f32> = want["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let err = rel_l2(&logits, &want);
        println!("{name}: FP32 logits relative L2 error vs PyTorch {err:e}");
        assert!(err <= 1e-5, "{name}: logits relative L2 error {err:e}");
    }
}
