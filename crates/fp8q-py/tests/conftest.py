"""Shared fixtures of the fp8q Python tests.

* Golden data: the reference's outputs, committed in ``crates/fp8q-core/tests/data`` (copied from
  the project's golden folder). ``FP8Q_GOLDEN_DIR`` points elsewhere (e.g. ``../shared/golden``).
  Like the Rust golden tests, these tests fail (they do not skip) when the files are missing.
* The ``fp8q`` binary, for comparing with the command line: ``FP8Q_CLI``, else
  ``$CARGO_TARGET_DIR/release/fp8q`` or ``<repo>/target/release/fp8q``; the tests that need it
  skip when none exists.
* torch: the tests of ``fp8q.torch`` skip when torch cannot be imported.
"""

import json
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]


def golden_dir():
    return pathlib.Path(os.environ.get("FP8Q_GOLDEN_DIR", REPO / "crates" / "fp8q-core" / "tests" / "data"))


@pytest.fixture(scope="session")
def golden():
    def load(name):
        path = golden_dir() / name
        if not path.is_file():
            pytest.fail(f"golden data {path} is missing (set FP8Q_GOLDEN_DIR)")
        return json.loads(path.read_text())

    return load


@pytest.fixture(scope="session")
def cli():
    candidates = [os.environ.get("FP8Q_CLI")]
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(pathlib.Path(os.environ["CARGO_TARGET_DIR"]) / "release" / "fp8q")
    candidates.append(REPO / "target" / "release" / "fp8q")
    for c in candidates:
        if c and pathlib.Path(c).is_file() and os.access(c, os.X_OK):
            return str(c)
    pytest.skip("no fp8q binary (set FP8Q_CLI or build it with cargo build --release -p fp8q-cli)")
