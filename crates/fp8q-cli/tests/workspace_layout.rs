//! The workspace's architecture (docs/architecture.md), checked: each crate depends only on the
//! fp8q crates below it, and no crate holds more than 35% of the Rust source lines (`src/`,
//! tests and benches excluded).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every crate and the fp8q crates it may depend on (normal and dev dependencies alike).
const ALLOWED: &[(&str, &[&str])] = &[
    ("fp8q-core", &[]),
    ("fp8q-tensors", &[]),
    ("fp8q-images", &["fp8q-tensors"]),
    ("fp8q-nn", &["fp8q-core", "fp8q-tensors"]),
    ("fp8q-ptq", &["fp8q-core", "fp8q-tensors", "fp8q-images", "fp8q-nn"]),
    ("fp8q-export", &["fp8q-core", "fp8q-tensors"]),
    (
        "fp8q-cli",
        &[
            "fp8q-core",
            "fp8q-tensors",
            "fp8q-images",
            "fp8q-nn",
            "fp8q-ptq",
            "fp8q-export",
        ],
    ),
    (
        "fp8q-py",
        &[
            "fp8q-core",
            "fp8q-tensors",
            "fp8q-images",
            "fp8q-nn",
            "fp8q-ptq",
            "fp8q-export",
        ],
    ),
];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The fp8q crates named in any dependency table of a manifest.
fn fp8q_dependencies(manifest: &str) -> Vec<String> {
    let doc: toml::Table = manifest.parse().expect("Cargo.toml parses");
    let mut tables: Vec<&toml::Table> = Vec::new();
    for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(t) = doc.get(key).and_then(|v| v.as_table()) {
            tables.push(t);
        }
    }
    if let Some(targets) = doc.get("target").and_then(|v| v.as_table()) {
        for target in targets.values().filter_map(|v| v.as_table()) {
            for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
                if let Some(t) = target.get(key).and_then(|v| v.as_table()) {
                    tables.push(t);
                }
            }
        }
    }
    let mut deps: Vec<String> = tables
        .iter()
        .flat_map(|t| t.keys())
        .filter(|k| k.starts_with("fp8q"))
        .cloned()
        .collect();
    deps.sort();
    deps.dedup();
    deps
}

fn rust_lines(dir: &Path) -> usize {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            total += rust_lines(&path);
        } else if path.extension().is_some_and(|e| e == "rs") {
            total += std::fs::read_to_string(&path).unwrap().lines().count();
        }
    }
    total
}

/// The workspace's crates, as the folders under `crates/` holding a `Cargo.toml`.
fn workspace_crates() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(crates_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_crate_depends_only_on_crates_below_it() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut problems = Vec::new();
    for name in workspace_crates() {
        let Some(ok) = allowed.get(name.as_str()) else {
            problems.push(format!(
                "{name} is not placed in the layering: add it to ALLOWED and docs/architecture.md"
            ));
            continue;
        };
        let manifest = std::fs::read_to_string(crates_dir().join(&name).join("Cargo.toml")).unwrap();
        for dep in fp8q_dependencies(&manifest) {
            if !ok.contains(&dep.as_str()) {
                problems.push(format!("{name} depends on {dep}, which is not below it"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_crate_holds_more_than_35_percent_of_the_source() {
    let lines: Vec<(String, usize)> = workspace_crates()
        .into_iter()
        .map(|name| {
            let n = rust_lines(&crates_dir().join(&name).join("src"));
            (name, n)
        })
        .collect();
    let total: usize = lines.iter().map(|(_, n)| n).sum();
    assert!(total > 10_000, "only {total} lines found: wrong folder?");
    for (name, n) in &lines {
        let share = *n as f64 / total as f64;
        println!("{name}: {n} lines, {:.1}%", 100.0 * share);
        assert!(
            share <= 0.35,
            "{name} holds {:.1}% of the {total} source lines",
            100.0 * share
        );
    }
}

#[test]
fn the_dependency_check_sees_every_kind_of_table() {
    let manifest = r#"
        [dependencies]
        fp8q-core = { path = "x" }
        serde = "1"
        [dev-dependencies]
        fp8q-ptq.workspace = true
        [target.'cfg(unix)'.dependencies]
        fp8q-nn = "0"
    "#;
    assert_eq!(fp8q_dependencies(manifest), vec!["fp8q-core", "fp8q-nn", "fp8q-ptq"]);
}
