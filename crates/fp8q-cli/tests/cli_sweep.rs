//! `fp8q sweep` on the in-repository fixture: a small plan through --list (also without a
//! results folder), --index (by flag and by each scheduler variable, one process per index),
//! --all (with the image cache) and --report; the table equals the individual reports; a killed
//! sweep resumes; sharded runs are merged by --report; bad plans are refused with the plan and
//! the problem named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{assert_user_error, tmpdir};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fp8q-ptq/tests/data/ptq_small")
}

fn sweep(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fp8q"));
    cmd.arg("sweep").args(args);
    for v in fp8q_ptq::sweep::INDEX_VARIABLES {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A plan of 3 runs (E4M3 and E3M4 on MobileNetV2, and INT8) on 8 validation images.
fn plan(dir: &Path, name: &str, shards: usize) -> PathBuf {
    let f = fixture();
    let text = format!(
        r#"
out = "{name}-results"
shards = {shards}
[base]
architecture = "mobilenet_v2"
model-dir = "{}"
images-dir = "{}"
batch-size = 3
max-val-images = 8
calib-transform = "val"
reestimate-bn-stats = false
fp8-set-maxval = true
[axes]
fp8-mantissa-bits = [3, 4]
[[runs]]
name = "INT8"
qmethod = "symmetric_uniform"
[report]
columns = "fp8-mantissa-bits"
"#,
        f.join("mobilenet_v2_narrow.pth.tar").display(),
        f.join("images").display()
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn read(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

const NAMES: [&str; 3] = ["fp8-mantissa-bits=3", "fp8-mantissa-bits=4", "INT8"];

#[test]
fn a_plan_by_index_all_and_report() {
    let dir = tmpdir("sweep");
    let p = plan(&dir, "a", 1);
    let ps = p.display().to_string();
    let out = dir.join("a-results");

    let list = ok(sweep(&[&ps, "--list"], &[]));
    for (i, n) in NAMES.iter().enumerate() {
        assert!(list.contains(&format!("{i}  {n}  [pending]")), "{list}");
    }
    // one process per index: the flag, then each scheduler variable
    ok(sweep(&[&ps, "--index", "0"], &[]));
    ok(sweep(&[&ps], &[("SLURM_ARRAY_TASK_ID", "1")]));
    ok(sweep(&[&ps], &[("JOB_COMPLETION_INDEX", "2")]));
    for n in NAMES {
        assert!(out.join(format!("{n}.json")).is_file(), "{n}");
    }
    assert!(ok(sweep(&[&ps, "--list"], &[])).contains("2  INT8  [done]"));
    // every index done: --all skips them all
    let again = ok(sweep(&[&ps, "--all"], &[]));
    assert_eq!(again.matches("skipped").count(), 3, "{again}");

    // the CSV table holds each report's numbers exactly
    let csv = ok(sweep(&[&ps, "--report", "--csv"], &[]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "index,run,fp8-mantissa-bits,status,images,top1,top5,loss");
    for (i, n) in NAMES.iter().enumerate() {
        let r = read(&out.join(format!("{n}.json")));
        let cells: Vec<&str> = lines[i + 1].split(',').collect();
        assert_eq!(cells[1], *n);
        assert_eq!(cells[3], "done");
        assert_eq!(cells[4], "8");
        for (k, key) in ["top1", "top5", "loss"].iter().enumerate() {
            assert_eq!(
                cells[5 + k].parse::<f64>().unwrap(),
                r[key].as_f64().unwrap(),
                "{n} {key}"
            );
        }
    }
    let md = ok(sweep(&[&ps, "--report"], &[]));
    let t1 = |n: &str| {
        format!(
            "{:.2}",
            100.0 * read(&out.join(format!("{n}.json")))["top1"].as_f64().unwrap()
        )
    };
    assert!(md.contains(&format!("| {} | {} |", t1(NAMES[0]), t1(NAMES[1]))), "{md}");
    assert!(md.contains("| 2 | `INT8` |"), "{md}");
    assert!(std::fs::read_to_string(out.join("report.svg"))
        .unwrap()
        .contains("<svg"));

    // --all in one process, with the image cache, gives the same reports
    let b = plan(&dir, "b", 1);
    let log = sweep(&[&b.display().to_string(), "--all", "--cache-mb", "64"], &[]);
    let stderr = String::from_utf8_lossy(&log.stderr).into_owned();
    ok(log);
    assert!(
        stderr.contains("image cache: 8 images") && stderr.contains("16 hits"),
        "{stderr}"
    );
    for n in NAMES {
        let (x, y) = (
            read(&out.join(format!("{n}.json"))),
            read(&dir.join(format!("b-results/{n}.json"))),
        );
        assert_eq!(x["logits"], y["logits"], "{n}");
    }

    // resume: a report lost and a temporary file left by a killed writer
    std::fs::remove_file(out.join("INT8.json")).unwrap();
    std::fs::write(out.join(".INT8.json.99999.tmp"), "{ half a rep").unwrap();
    let resumed = ok(sweep(&[&ps, "--all"], &[]));
    assert_eq!(resumed.matches("skipped").count(), 2, "{resumed}");
    assert_eq!(read(&out.join("INT8.json"))["images"], 8);
    ok(sweep(&[&ps, "--report"], &[]));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn list_without_a_results_folder() {
    let dir = tmpdir("sweep-no-out");
    let p = plan(&dir, "e", 1);
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replace("out = \"e-results\"\n", "")).unwrap();
    let ps = p.display().to_string();
    // no --out and no `out` in the plan: the runs are listed, their status unknown
    let list = ok(sweep(&[&ps, "--list"], &[]));
    for (i, n) in NAMES.iter().enumerate() {
        assert!(list.contains(&format!("{i}  {n}  [unknown]  mobilenet_v2 ")), "{list}");
    }
    assert_eq!(list.lines().count(), 3, "{list}");
    // with --out, as before: pending until the report is there
    let out = dir.join("given");
    let os = out.display().to_string();
    let list = ok(sweep(&[&ps, "--list", "--out", &os], &[]));
    assert!(list.contains("2  INT8  [pending]"), "{list}");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("INT8.json"), "{}").unwrap();
    let list = ok(sweep(&[&ps, "--list", "--out", &os], &[]));
    assert!(
        list.contains("2  INT8  [done]") && list.contains("0  fp8-mantissa-bits=3  [pending]"),
        "{list}"
    );
    // running or reporting still needs the folder
    for verb in [&["--index", "0"][..], &["--all"], &["--report"]] {
        let mut args = vec![ps.as_str()];
        args.extend_from_slice(verb);
        assert_user_error(&sweep(&args, &[]), &["no results folder", "--out", &ps]);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_killed_sweep_resumes_and_shards_merge() {
    let dir = tmpdir("sweep-kill");
    let p = plan(&dir, "c", 2);
    let ps = p.display().to_string();
    let out = dir.join("c-results");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fp8q"))
        .args(["sweep", &ps, "--all"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = out.join("fp8-mantissa-bits=3.shard-0-of-2.json");
    let start = std::time::Instant::now();
    while !first.is_file() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().ok();
    child.wait().unwrap();
    assert!(first.is_file());
    let done_before = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json"))
        .count();
    assert!(done_before < 6, "the sweep finished before it was killed");
    let resumed = ok(sweep(&[&ps, "--all"], &[]));
    assert_eq!(resumed.matches("skipped").count(), done_before, "{resumed}");
    assert_eq!(resumed.matches("done").count(), 6 - done_before, "{resumed}");
    // --report merges each run's two shards into NAME.json
    let csv = ok(sweep(&[&ps, "--report", "--csv"], &[]));
    assert_eq!(csv.matches(",done,8,").count(), 3, "{csv}");
    let merged = read(&out.join("INT8.json"));
    assert_eq!(merged["images"], 8);
    assert_eq!(merged["shards"].as_array().unwrap().len(), 2);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_plans_are_refused() {
    let dir = tmpdir("sweep-bad");
    let p = plan(&dir, "d", 1);
    let text = std::fs::read_to_string(&p).unwrap();
    let ps = p.display().to_string();
    for (edit, needles) in [
        (
            text.replace("batch-size = 3", "batch-sise = 3"),
            vec!["unknown option 'batch-sise'", "'batch-size'"],
        ),
        (
            text.replace("fp8-mantissa-bits = [3, 4]", "fp8-mantissa-bits = [3, 9]"),
            vec!["fp8-mantissa-bits=9", "--fp8-mantissa-bits 9"],
        ),
        (
            text.replace("fp8-mantissa-bits = [3, 4]", "fp8-mantissa-bits = []"),
            vec!["empty"],
        ),
        (
            text.replace("batch-size = 3", "batch-size = \"three\""),
            vec!["batch-size", "three"],
        ),
        (
            text.replace("reestimate-bn-stats = false", "reestimate-bn-stats = 2"),
            vec!["switch"],
        ),
    ] {
        std::fs::write(&p, edit).unwrap();
        let mut all = needles.clone();
        all.push(&ps);
        assert_user_error(&sweep(&[&ps, "--list"], &[]), &all);
    }
    std::fs::write(&p, text).unwrap();
    assert_user_error(&sweep(&[&ps, "--index", "3"], &[]), &["3 indexes"]);
    assert_user_error(&sweep(&[&ps], &[]), &["--index"]);
    assert_user_error(
        &sweep(&[&ps], &[("SLURM_ARRAY_TASK_ID", "x")]),
        &["SLURM_ARRAY_TASK_ID"],
    );
    std::fs::remove_dir_all(&dir).ok();
}
