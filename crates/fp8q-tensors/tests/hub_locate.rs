//! Where the torchvision checkpoints are: the torch hub cache folder under each environment, the
//! hash prefix of a file name, and the table of torchvision files. Expected values come from
//! PyTorch itself (`tools/make_hub_fixture.py` → `tests/data/hub_cases.json`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use fp8q_tensors::hub::{hash_prefix, hub_checkpoint_dir_from, torchvision_weights, TORCHVISION_WEIGHTS};
use fp8q_tensors::TensorError;

fn cases() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hub_cases.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// An environment lookup over a fixed map.
fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
    move |name| map.get(name).cloned()
}

#[test]
#[cfg(unix)]
fn checkpoint_dir_is_where_torch_keeps_it() {
    let cases = cases();
    let cases = cases["checkpoint_dirs"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let env: Vec<(&str, &str)> = case["env"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
            .collect();
        let expected = PathBuf::from(case["dir"].as_str().unwrap());
        let got = hub_checkpoint_dir_from(lookup(&env)).unwrap();
        assert_eq!(got, expected, "environment {env:?}");
    }
}

#[test]
#[cfg(unix)]
fn unexpandable_home_is_an_error() {
    for env in [
        vec![("TORCH_HOME", "~/th")],
        vec![],
        vec![("XDG_CACHE_HOME", "~/c")],
        vec![("HOME", "/home/u"), ("TORCH_HOME", "~other/th")],
    ] {
        let err = hub_checkpoint_dir_from(lookup(&env)).expect_err("cannot expand");
        assert!(matches!(err, TensorError::Invalid { .. }), "{env:?}: {err:?}");
        assert!(
            err.to_string().contains("TORCH_HOME"),
            "{env:?}: the fix is not named: {err}"
        );
    }
    // Without `~`, HOME is not needed.
    assert_eq!(
        hub_checkpoint_dir_from(lookup(&[("XDG_CACHE_HOME", "/c")])).unwrap(),
        PathBuf::from("/c/torch/hub/checkpoints")
    );
}

#[test]
fn hash_prefix_is_found_as_torch_hub_finds_it() {
    let cases = cases();
    let cases = cases["hash_prefixes"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        assert_eq!(hash_prefix(name), case["prefix"].as_str(), "{name}");
    }
}

#[test]
fn torchvision_files_are_the_reference_ones() {
    let cases = cases();
    let expected = cases["torchvision"].as_object().unwrap();
    assert_eq!(expected.len(), TORCHVISION_WEIGHTS.len());
    for arch in ["resnet18", "resnet50", "mobilenet_v2"] {
        let w = torchvision_weights(arch).unwrap_or_else(|| panic!("no weights for {arch}"));
        let e = &expected[arch];
        assert_eq!(w.architecture, arch);
        assert_eq!(w.file_name, e["file_name"].as_str().unwrap(), "{arch}");
        assert_eq!(w.url, e["url"].as_str().unwrap(), "{arch}");
        assert!(hash_prefix(w.file_name).is_some_and(|p| p.len() >= 8), "{arch}");
    }
}
