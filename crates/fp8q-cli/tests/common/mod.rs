//! Helpers shared by the end-to-end tests of the `fp8q` binary.
#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;
use std::process::{Command, Output};

/// Run the built `fp8q` binary with `args`.
pub fn fp8q(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fp8q"))
        .args(args)
        .output()
        .expect("the fp8q binary runs")
}

/// Run the built `fp8q` binary with `args` and extra environment variables.
pub fn fp8q_env(args: &[&str], env: &[(&str, &std::path::Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fp8q"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the fp8q binary runs")
}

/// A fresh scratch folder for one test (unique per process and `name`).
pub fn tmpdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fp8q-cli-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A user error: exit code 2, every needle in stderr, no panic.
pub fn assert_user_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "expected '{n}' in: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}
