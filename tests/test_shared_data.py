"""Real-data tests skip where ../shared/data is absent, except under CI, where they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from conftest import REPO

REAL_DATA_TEST = "tests/test_sheet.py::test_sample_cohort_sheet_is_valid"


def run_without_shared_data(tmp_path, ci: bool) -> subprocess.CompletedProcess:
    """Run one real-data test from a copy of the tests in a folder with no ../shared beside it."""
    copy = tmp_path / "checkout"
    shutil.copytree(REPO / "tests", copy / "tests")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(REPO / "src")
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", REAL_DATA_TEST, "-rs", "-p", "no:cacheprovider"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )


def test_missing_shared_data_fails_under_ci_and_names_it(tmp_path):
    result = run_without_shared_data(tmp_path, ci=True)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "CI is set but real FLAIR sample not found at" in output
    assert str(tmp_path.resolve() / "shared" / "data" / "flair_sample") in output


def test_missing_shared_data_skips_locally(tmp_path):
    result = run_without_shared_data(tmp_path, ci=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 skipped" in output and "real FLAIR sample not found" in output
