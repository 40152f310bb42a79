//! FP32 parity with the reference PyTorch pipeline (golden/ptq/runs/*__fp32.json): logits
//! relative L2 error ≤ 1e-4, the same labels and top-1. The golden folder comes from the
//! environment variable `FP8Q_GOLDEN_PTQ`; the test fails when it is unset or points nowhere.

use std::path::Path;

use fp8q_images::{BatchLoader, ImageFolder, LoaderOptions, Transform};
use fp8q_nn::models::{Architecture, Model};
use fp8q_ptq::metrics::{argmax, Metrics};

mod common;
use common::golden_dir;

struct Golden {
    labels: Vec<usize>,
    logits: Vec<Vec<f64>>,
    top1: f64,
    top5: f64,
    loss: f64,
}

fn read_golden(path: &Path) -> Golden {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let labels = v["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_u64().unwrap() as usize)
        .collect();
    let logits = v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
        .collect();
    Golden {
        labels,
        logits,
        top1: v["top1"].as_f64().unwrap(),
        top5: v["top5"].as_f64().unwrap(),
        loss: v["loss"].as_f64().unwrap(),
    }
}

/// Run the FP32 model over images/val and compare with the golden run.
fn check(arch: Architecture, weights: &str, run: &str) {
    let Some(dir) = golden_dir() else { return };
    let golden = read_golden(&dir.join("runs").join(run));
    let mut model = Model::load(arch, dir.join("weights").join(weights)).unwrap();
    assert_eq!(model.num_classes(), 10);
    let ds = ImageFolder::open(dir.join("images/val")).unwrap();
    assert_eq!(ds.len(), golden.labels.len());
    let classes = model.num_classes();
    let mut logits = Vec::new();
    let mut labels = Vec::new();
    let mut metrics = Metrics::default();
    for batch in BatchLoader::new(&ds, LoaderOptions::new(8, Transform::val())) {
        let batch = batch.unwrap();
        let out = model.forward_fm(batch.images).unwrap();
        metrics.update(&out, &batch.labels, classes);
        logits.extend(out);
        labels.extend(batch.labels);
    }
    assert_eq!(labels, golden.labels, "{weights}: labels (dataset order) differ");
    let want: Vec<f64> = golden.logits.iter().flatten().copied().collect();
    assert_eq!(logits.len(), want.len());
    let num: f64 = logits.iter().zip(&want).map(|(&a, &b)| (a as f64 - b).powi(2)).sum();
    let den: f64 = want.iter().map(|b| b * b).sum();
    let rel = (num / den).sqrt();
    eprintln!(
        "{weights}: logits rel L2 error {rel:.3e}, top-1 {:.4} (golden {:.4})",
        metrics.top1(),
        golden.top1
    );
    assert!(rel <= 1e-4, "{weights}: logits relative L2 error {rel:e} > 1e-4");
    for (i, (row, grow)) in logits.chunks(classes).zip(&golden.logits).enumerate() {
        let g: Vec<f32> = grow.iter().map(|&x| x as f32).collect();
        assert_eq!(argmax(row), argmax(&g), "{weights}: image {i}: argmax differs");
    }
    assert!(
        (metrics.top1() - golden.top1).abs() < 1e-6,
        "top-1 {} vs {}",
        metrics.top1(),
        golden.top1
    );
    assert!(
        (metrics.top5() - golden.top5).abs() < 1e-6,
        "top-5 {} vs {}",
        metrics.top5(),
        golden.top5
    );
    assert!(
        (metrics.loss() - golden.loss).abs() < 1e-4 * golden.loss.abs().max(1.0),
        "loss {} vs {}",
        metrics.loss(),
        golden.loss
    );
}

#[test]
fn resnet18_fp32_matches_reference() {
    check(Architecture::Resnet18, "resnet18_shapes10.pth", "resnet18__fp32.json");
}

#[test]
fn mobilenet_v2_paper_layout_fp32_matches_reference() {
    check(
        Architecture::MobilenetV2,
        "mobilenet_v2_shapes10.pth",
        "mobilenet_v2__fp32.json",
    );
}

#[test]
fn mobilenet_v2_safetensors_fp32_matches_reference() {
    check(
        Architecture::MobilenetV2,
        "mobilenet_v2_shapes10.safetensors",
        "mobilenet_v2__fp32.json",
    );
}

#[test]
fn mobilenet_v2_torchvision_layout_fp32_matches_reference() {
    check(
        Architecture::MobilenetV2,
        "mobilenet_v2_shapes10_torchvision_layout.pth",
        "mobilenet_v2__fp32.json",
    );
}

/// The three MobileNetV2 files hold the same network: identical logits on a synthetic batch.
#[test]
fn mobilenet_v2_files_agree_exactly() {
    let Some(dir) = golden_dir() else { return };
    let dir = dir.join("weights");
    let x: Vec<f32> = (0..2 * 3 * 224 * 224usize)
        .map(|i| ((i * 7919 % 1000) as f32) / 500.0 - 1.0)
        .collect();
    let run = |file: &str| {
        let mut m = Model::load(Architecture::MobilenetV2, dir.join(file)).unwrap();
        m.forward_fm(fp8q_tensors::feature_map::FeatureMap::from_vec(x.clone(), 2, 3, 224, 224).unwrap())
            .unwrap()
    };
    let a = run("mobilenet_v2_shapes10.pth");
    assert_eq!(a, run("mobilenet_v2_shapes10.safetensors"));
    assert_eq!(a, run("mobilenet_v2_shapes10_torchvision_layout.pth"));
}

/// Loading a checkpoint into the wrong architecture lists the problems and names the file.
#[test]
fn wrong_architecture_lists_mismatches() {
    let Some(dir) = golden_dir() else { return };
    let dir = dir.join("weights");
    let err = Model::load(Architecture::Resnet50, dir.join("resnet18_shapes10.pth"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("resnet18_shapes10.pth"), "{err}");
    assert!(
        err.contains("missing tensor(s)") && err.contains("layer1.0.conv3.weight"),
        "{err}"
    );
    assert!(
        err.contains("mis-shaped") && err.contains("layer1.0.conv1.weight"),
        "{err}"
    );
    let err = Model::load(Architecture::Resnet18, dir.join("mobilenet_v2_shapes10.pth"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unexpected tensor(s)") && err.contains("features.0.0.weight"),
        "{err}"
    );
}
