//! End-to-end checks of `fp8q validate-quantized` through the built binary: a run with every
//! output file, reloading its quantization parameters, each kind of bad input and the seed
//! README's command verbatim, on the in-repository fixture (`fp8q-ptq/tests/data/ptq_small`:
//! JPEG photographs, a narrow MobileNetV2 in the paper's legacy `.pth.tar` format, a narrow
//! ResNet-18); and the README command against the reference's own run on the golden PTQ data
//! (`FP8Q_GOLDEN_PTQ`; not run when unset, failing when it points nowhere).

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{assert_user_error, fp8q, fp8q_env, tmpdir};

/// The small PTQ fixture kept in the repository.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fp8q-ptq/tests/data/ptq_small")
}

/// The golden PTQ folder, or `None` (the test then does not run) when `FP8Q_GOLDEN_PTQ` is unset.
fn golden() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("FP8Q_GOLDEN_PTQ") else {
        eprintln!("FP8Q_GOLDEN_PTQ is not set: golden PTQ test not run (see docs/ptq.md)");
        return None;
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("weights").is_dir() && dir.join("images/val").is_dir(),
        "FP8Q_GOLDEN_PTQ={} does not hold weights/ and images/",
        dir.display()
    );
    Some(dir)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A quick MobileNetV2 FP8 run on the fixture's images: 8 validation images, one deterministic
/// calibration batch, no BN re-estimation.
fn quick_args(images: &Path) -> Vec<String> {
    [
        "validate-quantized",
        "--architecture",
        "mobilenet_v2",
        "--model-dir",
        &s(&fixture().join("mobilenet_v2_narrow.pth.tar")),
        "--images-dir",
        &s(images),
        "--batch-size",
        "4",
        "--max-val-images",
        "8",
        "--num-est-batches",
        "1",
        "--calib-transform",
        "val",
        "--no-reestimate-bn-stats",
        "--fp8-mantissa-bits",
        "3",
        "--fp8-set-maxval",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// `args` with the value after `flag` replaced.
fn replaced(args: &[String], flag: &str, value: &str) -> Vec<String> {
    let mut a = args.to_vec();
    let i = a.iter().position(|x| x == flag).unwrap();
    a[i + 1] = value.to_string();
    a
}

fn run(args: &[String], extra: &[&str]) -> Output {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    fp8q(&all)
}

fn logits_of(report: &Path) -> Vec<f64> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect()
}

#[test]
fn run_writes_reports_and_reloads_its_ranges() {
    let dir = tmpdir("run");
    let args = quick_args(&fixture().join("images"));
    let (report, logits, params) = (dir.join("run.json"), dir.join("logits.npy"), dir.join("q.json"));
    let out = run(
        &args,
        &[
            "--json",
            &s(&report),
            "--save-logits",
            &s(&logits),
            "--save-quant-params",
            &s(&params),
        ],
    );
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for key in ["top1", "top5", "loss", "labels", "logits", "config", "quantizers"] {
        assert!(v.get(key).is_some(), "report lacks {key}: {v}");
    }
    assert_eq!(v["logits"].as_array().unwrap().len(), 8);
    assert_eq!(v["quantizers"]["features.0.0"]["weight"]["kind"], "fp");
    // the .npy: a float32 [8, 10] array
    let npy = std::fs::read(&logits).unwrap();
    let header = String::from_utf8_lossy(&npy[10..npy.len().min(128)]);
    assert!(
        header.contains("'descr': '<f4'") && header.contains("(8, 4)"),
        "{header}"
    );
    let first = logits_of(&report);

    // the saved ranges, or the whole report, reproduce the run without calibrating
    for source in [&params, &report] {
        let again = dir.join("again.json");
        let out = run(&args, &["--load-quant-params", &s(source), "--json", &s(&again)]);
        assert_ok(&out);
        assert_eq!(logits_of(&again), first, "reloaded from {}", source.display());
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_names_the_problem() {
    let g = fixture();
    let dir = tmpdir("bad");
    let args = quick_args(&g.join("images"));
    let with = |flag: &str, value: &str| replaced(&args, flag, value);

    let missing = dir.join("nope.pth");
    assert_user_error(&run(&with("--model-dir", &s(&missing)), &[]), &[&s(&missing)]);
    let no_images = dir.join("no-images");
    assert_user_error(&run(&with("--images-dir", &s(&no_images)), &[]), &[&s(&no_images)]);
    // ResNet-18 weights read as MobileNetV2: the mismatch is listed, with the file
    let r18 = g.join("resnet18_narrow.pth");
    assert_user_error(
        &run(&with("--model-dir", &s(&r18)), &[]),
        &[&s(&r18), "features.0.0.weight"],
    );
    assert_user_error(&run(&args, &["--fp8-maxval=-1"]), &["--fp8-maxval"]);
    // a negative number after a space is a value, as in click (not an unknown option)
    assert_user_error(&run(&args, &["--fp8-maxval", "-1"]), &["invalid --fp8-maxval -1"]);
    assert_user_error(
        &run(&args, &["--act-momentum", "-0.5"]),
        &["invalid --act-momentum -0.5"],
    );
    let no_params = dir.join("params.json");
    assert_user_error(&run(&args, &["--load-quant-params", &s(&no_params)]), &[&s(&no_params)]);
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "{\"conv1\": 3}").unwrap();
    assert_user_error(&run(&args, &["--load-quant-params", &s(&garbage)]), &[&s(&garbage)]);

    // a corrupt image among the validation images: an error naming it, unless skipped
    let images = dir.join("images");
    let val = images.join("val");
    for class in std::fs::read_dir(g.join("images/val")).unwrap() {
        let class = class.unwrap().path();
        let name = class.file_name().unwrap();
        std::fs::create_dir_all(val.join(name)).unwrap();
        let first = std::fs::read_dir(&class)
            .unwrap()
            .map(|e| e.unwrap().path())
            .min()
            .unwrap();
        std::fs::copy(&first, val.join(name).join(first.file_name().unwrap())).unwrap();
    }
    let first_class = std::fs::read_dir(&val)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let bad = first_class.join("zz_corrupt.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really a png").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(g.join("images/train"), images.join("train")).unwrap();
    #[cfg(not(unix))]
    return;
    let args = replaced(&quick_args(&images), "--max-val-images", "11");
    assert_user_error(&run(&args, &[]), &["zz_corrupt.png"]);
    let report = dir.join("skip.json");
    let out = run(&args, &["--skip-bad-images", "--json", &s(&report)]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("zz_corrupt.png"));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(v["skipped"].as_array().unwrap().len(), 1, "{}", v["skipped"]);
    assert_eq!(v["logits"].as_array().unwrap().len(), 4);
    std::fs::remove_dir_all(&dir).ok();
}

/// The FP split is only checked against the widths that use the FP quantizer: INT4 weights with
/// the default `--fp8-mantissa-bits 4` run; FP4 weights with it are refused; `fc4` with FP gives
/// its 4-bit FC weight one exponent bit and says so.
#[test]
fn fp_split_checked_only_where_fp_is_used() {
    let args = replaced(&quick_args(&fixture().join("images")), "--max-val-images", "4");
    assert_ok(&run(&args, &["--qmethod", "symmetric_uniform", "--n-bits", "4"]));
    assert_user_error(
        &run(&args, &["--n-bits", "4"]),
        &["--fp8-mantissa-bits 3", "m ≤ 2 with --n-bits 4"],
    );
    let args = replaced(&args, "--fp8-mantissa-bits", "4");
    let out = run(&args, &["--quant-setup", "fc4"]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("classifier.1 (weight) is 4-bit: FP split E1M2"));
}

/// The seed README's command, verbatim, with `weights` standing in for its
/// `mobilenet_v2.pth.tar` and `images` for ImageNet.
fn readme_command(weights: &Path, images: &Path) -> Vec<String> {
    let (weights, images) = (s(weights), s(images));
    format!(
        "validate-quantized --images-dir {images} --architecture mobilenet_v2_quantized --batch-size 64 --seed 10 \
         --model-dir {weights} --n-bits 8 --cuda --load-type fp32 --quant-setup all --qmethod fp_quantizer \
         --per-channel --fp8-mantissa-bits=5 --fp8-set-maxval --no-fp8-mse-include-mantissa-bits \
         --weight-quant-method=current_minmax --act-quant-method=allminmax --num-est-batches=1"
    )
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

/// The README's command runs as printed on the fixture (the paper's legacy checkpoint format,
/// JPEG images). With the golden runs' deterministic calibration appended (`--batch-size 8
/// --calib-transform val`: the later `--batch-size` wins, as in click) it reproduces the
/// reference's run of the same command on the golden data (below).
#[test]
fn the_readme_command_runs_verbatim() {
    let g = fixture();
    let args = readme_command(&g.join("mobilenet_v2_narrow.pth.tar"), &g.join("images"));
    let out = run(&args, &[]);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("note: --cuda has no effect here: fp8q runs on the CPU"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("mobilenet_v2 W8 fp_quantizer / A8 fp_quantizer (fp8 mantissa bits 5)")
            && stdout.contains("(16 images"),
        "{stdout}"
    );
}

/// On the golden data, the README command with the golden runs' deterministic calibration
/// reproduces the reference's run of the same command.
#[test]
fn the_readme_command_matches_the_reference_run() {
    let Some(g) = golden() else { return };
    let dir = tmpdir("readme");
    let args = readme_command(&g.join("weights/mobilenet_v2_shapes10.pth"), &g.join("images"));

    let report = dir.join("readme.json");
    let out = run(
        &args,
        &["--batch-size", "8", "--calib-transform", "val", "--json", &s(&report)],
    );
    assert_ok(&out);
    let ours: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(g.join("runs/mobilenet_v2__fp8_e2m5_readme.json")).unwrap())
            .unwrap();
    for (k, v) in reference["config"].as_object().unwrap() {
        assert_eq!(&ours["config"][k], v, "config {k}");
    }
    let (a, b) = (logits_of(&report), {
        let rows = reference["logits"].as_array().unwrap();
        rows.iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
            .collect::<Vec<f64>>()
    });
    assert_eq!(a.len(), b.len());
    let err: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    assert!(err / norm <= 0.05, "logits rel L2 {}", err / norm);
    let argmax = |v: &[f64]| -> Vec<usize> {
        v.chunks(10)
            .map(|r| (0..10).max_by(|&i, &j| r[i].total_cmp(&r[j])).unwrap())
            .collect()
    };
    let agree = argmax(&a).iter().zip(argmax(&b)).filter(|(x, y)| **x == *y).count();
    assert!(
        agree * 100 >= 95 * argmax(&b).len(),
        "top-1 agreement {agree}/{}",
        argmax(&b).len()
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Without `--model-dir`, a ResNet reads torchvision's IMAGENET1K_V1 file from the torch hub cache
/// (`$TORCH_HOME/hub/checkpoints`), as the reference does; nothing is downloaded when it is there.
/// With an empty cache and no way out (proxies pointed at a closed local port: the test never
/// reaches the internet), the error says which file to put where.
#[test]
fn no_model_dir_uses_the_torch_hub_cache() {
    let dir = tmpdir("hub");
    let home = dir.join("torch");
    let ckpts = home.join("hub/checkpoints");
    std::fs::create_dir_all(&ckpts).unwrap();
    // a stand-in under torchvision's file name (the hash of a cached file is not re-checked, as in torch)
    std::fs::copy(
        fixture().join("resnet18_narrow.pth"),
        ckpts.join("resnet18-f37072fd.pth"),
    )
    .unwrap();
    let images = s(&fixture().join("images"));
    let args = [
        "validate-quantized",
        "--architecture",
        "resnet18_quantized",
        "--images-dir",
        &images,
        "--batch-size",
        "8",
        "--calib-transform=val",
        "--no-reestimate-bn-stats",
        "--max-val-images",
        "4",
    ];
    let out = fp8q_env(&args, &[("TORCH_HOME", &home)]);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("resnet18-f37072fd.pth") && !stderr.contains("downloading"),
        "{stderr}"
    );

    let empty = dir.join("empty");
    let closed = Path::new("http://127.0.0.1:9");
    let out = fp8q_env(
        &args,
        &[
            ("TORCH_HOME", &empty),
            ("HTTPS_PROXY", closed),
            ("https_proxy", closed),
            ("ALL_PROXY", closed),
        ],
    );
    let want = empty.join("hub/checkpoints/resnet18-f37072fd.pth");
    assert_user_error(&out, &["resnet18-f37072fd.pth", &s(&want)]);
    assert!(!want.exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// Cheap checks before expensive work: without `--model-dir` and with an empty torch hub cache,
/// a missing images folder (or a missing `val/`, or `train/` when the run calibrates) is named
/// before the checkpoint is downloaded; nothing is written to the cache. The same for `analyze`'s
/// network mode. A `train/` the run does not read need not exist.
#[test]
fn missing_images_are_named_before_any_download() {
    let dir = tmpdir("images-first");
    let home = dir.join("torch");
    std::fs::create_dir_all(&home).unwrap();
    // were a download tried, it would fail at once (and never reach the internet)
    let closed = Path::new("http://127.0.0.1:9");
    let env = [
        ("TORCH_HOME", home.as_path()),
        ("HTTPS_PROXY", closed),
        ("https_proxy", closed),
        ("ALL_PROXY", closed),
    ];
    let nothing_downloaded = |out: &Output| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("resnet18-f37072fd") && !stderr.contains("download"),
            "{stderr}"
        );
        assert_eq!(
            std::fs::read_dir(&home).unwrap().count(),
            0,
            "the hub cache was written to"
        );
    };
    let vq = |images: &Path, extra: &[&str]| {
        let images = s(images);
        let mut args = vec![
            "validate-quantized",
            "--architecture",
            "resnet18_quantized",
            "--images-dir",
            &images,
            "--batch-size",
            "4",
            "--max-val-images",
            "4",
        ];
        args.extend_from_slice(extra);
        fp8q_env(&args, &env)
    };

    let missing = dir.join("no-images");
    let out = vq(&missing, &[]);
    assert_user_error(&out, &[&s(&missing), "--images-dir"]);
    nothing_downloaded(&out);
    let out = fp8q_env(
        &["analyze", "--architecture", "resnet18", "--images-dir", &s(&missing)],
        &env,
    );
    assert_user_error(&out, &[&s(&missing)]);
    nothing_downloaded(&out);

    #[cfg(unix)]
    {
        let g = fixture().join("images");
        // train/ only: val/ is named
        let train_only = dir.join("train-only");
        std::fs::create_dir_all(&train_only).unwrap();
        std::os::unix::fs::symlink(g.join("train"), train_only.join("train")).unwrap();
        let out = vq(&train_only, &[]);
        assert_user_error(&out, &[&s(&train_only.join("val"))]);
        nothing_downloaded(&out);
        // val/ only: train/ is named when the run calibrates or re-estimates BN …
        let val_only = dir.join("val-only");
        std::fs::create_dir_all(&val_only).unwrap();
        std::os::unix::fs::symlink(g.join("val"), val_only.join("val")).unwrap();
        for extra in [
            &["--no-reestimate-bn-stats"][..],
            &["--no-weight-quant", "--no-act-quant"],
        ] {
            let out = vq(&val_only, extra);
            assert_user_error(&out, &[&s(&val_only.join("train"))]);
            nothing_downloaded(&out);
        }
        // … and need not exist when it does neither
        let r18 = s(&fixture().join("resnet18_narrow.pth"));
        let out = vq(
            &val_only,
            &[
                "--model-dir",
                &r18,
                "--no-weight-quant",
                "--no-act-quant",
                "--no-reestimate-bn-stats",
            ],
        );
        assert_ok(&out);
    }
    std::fs::remove_dir_all(&dir).ok();
}
