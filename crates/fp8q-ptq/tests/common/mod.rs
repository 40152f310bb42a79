//! Helpers shared by the golden parity tests.

use std::path::PathBuf;

/// The golden PTQ folder named by `FP8Q_GOLDEN_PTQ` (about 85 MB of models, images and reference
/// runs kept outside the repository; `.ci/run` sets it and fails without it).
///
/// `None` when the variable is unset: the test then returns early, saying so, so that
/// `cargo test` passes on a fresh clone with nothing beside it (the in-repository fixture
/// `tests/data/ptq_small` covers the pipeline end to end there). When the variable is set, the
/// folder must hold `runs/`, `weights/` and `images/{train,val}/`, or the test fails: the parity
/// tests must not pass by finding nothing.
pub fn golden_dir() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("FP8Q_GOLDEN_PTQ") else {
        eprintln!("FP8Q_GOLDEN_PTQ is not set: golden PTQ parity test not run (see docs/ptq.md)");
        return None;
    };
    let dir = PathBuf::from(dir);
    assert!(
        ["runs", "weights", "images/train", "images/val"]
            .iter()
            .all(|d| dir.join(d).is_dir()),
        "FP8Q_GOLDEN_PTQ={} does not hold runs/, weights/ and images/{{train,val}}/",
        dir.display()
    );
    Some(dir)
}
