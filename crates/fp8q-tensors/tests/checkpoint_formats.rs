//! Every checkpoint format reads to exactly the tensors PyTorch reads from it.
//!
//! The fixtures and `expected.json` (f32 bit patterns of `torch.load`'s tensors, converted by
//! torch) are written by `tools/make_checkpoint_fixtures.py`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fp8q_tensors::checkpoint::Checkpoint;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/checkpoints")
}

#[derive(serde::Deserialize)]
struct Expected {
    shape: Vec<usize>,
    bits: Vec<u32>,
}

fn expected() -> BTreeMap<String, BTreeMap<String, Expected>> {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Load `name` and compare every tensor bit for bit, and the key set exactly.
fn check(name: &str) {
    let all = expected();
    let want = all.get(name).unwrap_or_else(|| panic!("{name} not in expected.json"));
    let ckpt = Checkpoint::load(dir().join(name)).unwrap_or_else(|e| panic!("{e}"));
    let got_keys: Vec<&String> = ckpt.tensors.keys().collect();
    let want_keys: Vec<&String> = want.keys().collect();
    assert_eq!(got_keys, want_keys, "{name}: keys");
    for (key, e) in want {
        let t = &ckpt.tensors[key];
        assert_eq!(t.dims(), e.shape.as_slice(), "{name}: {key} shape");
        let v: Vec<u32> = t
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        assert_eq!(v, e.bits, "{name}: {key} values");
    }
}

#[test]
fn zip_format() {
    check("tensors_zip.pth");
}

#[test]
fn zip_format_protocol_5() {
    check("tensors_zip_p5.pth");
}

#[test]
fn legacy_format() {
    check("tensors_legacy.pth");
}

#[test]
fn legacy_format_protocol_4() {
    check("tensors_legacy_p4.pth");
}

/// Protocol 1 writes the magic number as a text `LONG`: the stream does not start with `PROTO`.
#[test]
fn legacy_format_protocol_1() {
    check("tensors_legacy_p1.pth");
}

#[test]
fn safetensors_format() {
    check("tensors.safetensors");
}

/// Storage views (view_metadata), the pre-0.4 `_rebuild_tensor`, a CUDA storage class and a
/// Python 2 style OrderedDict.
#[test]
fn legacy_storage_views_and_old_records() {
    check("views_legacy_crafted.pth");
}

/// The ImageNet example's checkpoint: `state_dict` found, `module.` dropped, `best_acc1` and the
/// optimizer's momentum buffers ignored.
#[test]
fn training_checkpoints_are_unwrapped() {
    check("train_imagenet_zip.pth.tar");
    check("train_imagenet_legacy.pth.tar");
    check("model_key_legacy.pth");
}

/// `torch.compile(DataParallel(model))`: keys start with `_orig_mod.module.`, both dropped.
#[test]
fn compiled_model_prefix_is_dropped() {
    check("compiled_zip.pth");
}

/// f16 NaNs keep their sign and payload (quieted), as torch's `.float()` gives them, in every
/// container.
#[test]
fn half_nans_keep_sign_and_payload() {
    for name in [
        "tensors_zip.pth",
        "tensors_legacy.pth",
        "tensors_legacy_p1.pth",
        "tensors.safetensors",
    ] {
        let t = &Checkpoint::load(dir().join(name)).unwrap().tensors["half_nan"];
        let bits: Vec<u32> = t.to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect();
        assert_eq!(
            bits[..6],
            [
                0x7fc0_0000,
                0xffc0_0000,
                0x7fc0_2000,
                0xffea_a000,
                0x7fff_e000,
                0xffc0_2000
            ],
            "{name}"
        );
    }
}

/// The same tensors whatever the container.
#[test]
fn formats_agree() {
    let load = |n: &str| Checkpoint::load(dir().join(n)).unwrap().tensors;
    let zip = load("tensors_zip.pth");
    for other in [
        "tensors_legacy.pth",
        "tensors_legacy_p4.pth",
        "tensors_legacy_p1.pth",
        "tensors_zip_p5.pth",
        "tensors.safetensors",
    ] {
        let o = load(other);
        assert_eq!(zip.keys().collect::<Vec<_>>(), o.keys().collect::<Vec<_>>(), "{other}");
        for (k, t) in &zip {
            let a = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = o[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let a: Vec<u32> = a.iter().map(|x| x.to_bits()).collect();
            let b: Vec<u32> = b.iter().map(|x| x.to_bits()).collect();
            assert_eq!(a, b, "{other}: {k}");
        }
    }
}

/// The format is chosen by content: a legacy stream named `.safetensors` and a zip named
/// `.npy` still load.
#[test]
fn format_is_chosen_by_content_not_name() {
    let tmp = std::env::temp_dir().join(format!("fp8q_ckpt_fmt_{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for (src, dst) in [
        ("tensors_legacy.pth", "renamed.safetensors"),
        ("tensors_zip.pth", "renamed.npy"),
        ("tensors.safetensors", "renamed.pth"),
    ] {
        let p = tmp.join(dst);
        std::fs::copy(dir().join(src), &p).unwrap();
        let c = Checkpoint::load(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.tensors.len(), expected()[src].len());
    }
    std::fs::remove_dir_all(tmp).unwrap();
}

/// Opt-in check of a real model (not a fixture, too large for the repository): set
/// `FP8Q_CKPT_COMPARE=a.pth,b.pth` to two files holding the same state dict in different
/// formats (e.g. a golden zip-format `.pth` and its legacy re-save) and check that they read to
/// identical tensors.
#[test]
fn opt_in_compare_two_files() {
    let Ok(pair) = std::env::var("FP8Q_CKPT_COMPARE") else {
        return;
    };
    let (a, b) = pair.split_once(',').expect("FP8Q_CKPT_COMPARE=a,b");
    let a = Checkpoint::load(a).unwrap().tensors;
    let b = Checkpoint::load(b).unwrap().tensors;
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let mut n = 0;
    for (k, t) in &a {
        let x = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let y = b[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(t.dims(), b[k].dims(), "{k}");
        assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()), "{k}");
        n += x.len();
    }
    eprintln!("{} tensors, {n} values identical", a.len());
}
