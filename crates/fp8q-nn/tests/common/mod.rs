//! Helpers shared by the golden parity tests.

use std::path::PathBuf;

/// The golden PTQ folder named by `FP8Q_GOLDEN_PTQ`, checked to hold `runs/`, `weights/` and
/// `images/train` + `images/val`. Panics, saying what is wrong, when the variable is unset or
/// points anywhere else: the parity tests must not pass by finding nothing.
pub fn golden_dir() -> PathBuf {
    let dir = std::env::var("FP8Q_GOLDEN_PTQ").unwrap_or_else(|_| {
        panic!("FP8Q_GOLDEN_PTQ is not set: point it at the golden PTQ folder (e.g. ../shared/golden/ptq)")
    });
    let dir = PathBuf::from(dir);
    assert!(
        ["runs", "weights", "images/train", "images/val"]
            .iter()
            .all(|d| dir.join(d).is_dir()),
        "FP8Q_GOLDEN_PTQ={} does not hold runs/, weights/ and images/{{train,val}}/",
        dir.display()
    );
    dir
}
