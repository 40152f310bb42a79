//! `fp8q validate-quantized --shard I/N` + `fp8q merge` on the in-repository fixture: the merged
//! report is the unsharded run's bit for bit (logits, labels, top-1, top-5, loss) for N = 1, 2,
//! 3 and 7, and every refusal names the offending files.

use std::path::{Path, PathBuf};

mod common;
use common::{assert_user_error, fp8q, tmpdir};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fp8q-ptq/tests/data/ptq_small")
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A quick ResNet-18 FP8 run on all 16 validation images, batches of 3 (so shards cut batches
/// differently from the unsharded run), deterministic calibration, no BN re-estimation.
fn args(extra: &[&str]) -> Vec<String> {
    let f = fixture();
    let mut a: Vec<String> = [
        "validate-quantized",
        "--architecture",
        "resnet18",
        "--model-dir",
        &s(&f.join("resnet18_narrow.pth")),
        "--images-dir",
        &s(&f.join("images")),
        "--batch-size",
        "3",
        "--calib-transform",
        "val",
        "--no-reestimate-bn-stats",
        "--fp8-mantissa-bits",
        "3",
        "--no-progress-bar",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

fn run_ok(a: &[String]) {
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = fp8q(&refs);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn read(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The logits as f32 bit patterns, parsed from the text as f32.
fn logit_bits(p: &Path) -> Vec<u32> {
    #[derive(serde::Deserialize)]
    struct L {
        logits: Vec<Vec<f32>>,
    }
    let l: L = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    l.logits.iter().flatten().map(|x| x.to_bits()).collect()
}

fn shards(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("s{i}of{n}.json"));
            run_ok(&args(&["--shard", &format!("{i}/{n}"), "--json", &s(&p)]));
            p
        })
        .collect()
}

fn merge(inputs: &[&Path], out: &Path) -> std::process::Output {
    let mut a = vec!["merge".to_string()];
    a.extend(inputs.iter().map(|p| s(p)));
    a.extend(["-o".to_string(), s(out)]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    fp8q(&refs)
}

#[test]
fn merged_shards_are_the_unsharded_run() {
    let dir = tmpdir("merge");
    let whole = dir.join("whole.json");
    run_ok(&args(&["--json", &s(&whole)]));
    let want = read(&whole);
    let want_bits = logit_bits(&whole);
    assert_eq!(want_bits.len(), 16 * 4);
    let mut by_n = Vec::new();
    for n in [1, 2, 3, 7] {
        let parts = shards(&dir, n);
        let merged = dir.join(format!("merged{n}.json"));
        // given in reverse order: the order of the files does not matter
        let refs: Vec<&Path> = parts.iter().rev().map(PathBuf::as_path).collect();
        let out = merge(&refs, &merged);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got = read(&merged);
        assert_eq!(logit_bits(&merged), want_bits, "logits, N = {n}");
        for key in [
            "top1",
            "top5",
            "loss",
            "labels",
            "indices",
            "images",
            "total_images",
            "quantizers",
        ] {
            assert_eq!(got[key], want[key], "{key}, N = {n}");
        }
        assert_eq!(
            got["loss"].as_f64().unwrap().to_bits(),
            want["loss"].as_f64().unwrap().to_bits()
        );
        by_n.push(parts);
    }

    // refusals, each naming the files
    let (two, three) = (&by_n[1], &by_n[2]);
    let out_path = dir.join("refused.json");
    // missing shard
    assert_user_error(
        &merge(&[&three[0], &three[2]], &out_path),
        &["missing", &s(&three[0]), &s(&three[2])],
    );
    // overlapping shards of different splits
    assert_user_error(
        &merge(&[&two[0], &three[0], &three[1], &three[2]], &out_path),
        &["overlapping", &s(&two[0])],
    );
    // the same file twice, the same shard twice
    assert_user_error(
        &merge(&[&two[0], &two[1], &two[1]], &out_path),
        &["duplicate", &s(&two[1])],
    );
    let copy = dir.join("copy.json");
    std::fs::copy(&two[1], &copy).unwrap();
    assert_user_error(
        &merge(&[&two[0], &two[1], &copy], &out_path),
        &["duplicate", &s(&copy), "1/2"],
    );
    // a different configuration
    let other = dir.join("other.json");
    run_ok(&args(&[
        "--shard",
        "1/2",
        "--fp8-mantissa-bits",
        "4",
        "--json",
        &s(&other),
    ]));
    assert_user_error(
        &merge(&[&two[0], &other], &out_path),
        &["different configurations", &s(&other), "fp8_mantissa_bits"],
    );
    // not a report
    std::fs::write(&copy, "{\"config\": {}}").unwrap();
    assert_user_error(&merge(&[&two[0], &copy], &out_path), &[&s(&copy)]);
    assert!(!out_path.exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// serde_json writes an f32 as its shortest decimal and reads it back, as an f32, to the same
/// bits (the merge relies on it), over a spread of bit patterns and the special values.
#[test]
fn f32_json_round_trip_is_exact() {
    let mut x: u32 = 0x9E37_79B9;
    let mut values: Vec<f32> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            f32::from_bits(x)
        })
        .filter(|v| v.is_finite())
        .collect();
    values.extend([
        0.0,
        -0.0,
        f32::MIN_POSITIVE,
        f32::MAX,
        f32::MIN,
        f32::EPSILON,
        1e-45,
        0.1,
        16777217.0,
    ]);
    let text = serde_json::to_string(&values).unwrap();
    let back: Vec<f32> = serde_json::from_str(&text).unwrap();
    assert_eq!(
        values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        back.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}
