"""Every benchmark imports and runs on the current code, in a quick mode, and prints its figures.

A benchmark is run by hand, so a changed signature elsewhere would break it silently
(benchmarks/cohort.py once called cohort_job with an argument missing); here each one runs
with the smallest settings that still take every code path.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from conftest import REPO, require_flair_sample, require_isbi_sample, require_lesjak, require_reference_table

BENCHMARKS = sorted((REPO / "benchmarks").glob("*.py"))
#: Quick settings per benchmark: the fewest repeats and the smallest sizes.
QUICK_ARGS = {
    "bids_input": ["--repeats", "1", "--sizes", "20"],
    "cohort": ["--repeats", "1", "--subjects", "20"],
    "dag": ["--repeats", "1", "--sizes", "20"],
    "demo": ["--repeats", "1", "--subjects", "2"],
    "finetune": ["--epochs", "1", "--steps-per-epoch", "2"],
    "lesions": ["--passes", "1", "--subjects", "104252"],
    "longitudinal": ["--quick", "--patients", "01"],
    "preprocess": ["--passes", "1", "--subjects", "104252"],
    "segment": ["--repeats", "1", "--shipped-only"],
    "throughput": ["--subjects", "2", "--repeats", "1"],
}
NEEDS_SAMPLE = {"lesions", "preprocess", "segment"}
NEEDS_ISBI = {"finetune"}
NEEDS_REFERENCE_TABLE = {"cohort"}
NEEDS_LESJAK = {"longitudinal"}
FIGURE_LINE = re.compile(r"^[a-z0-9_]+ -?[0-9.]+(e[+-]?[0-9]+)? [A-Za-z%]+$")


def test_every_benchmark_has_quick_settings():
    assert sorted(QUICK_ARGS) == [path.stem for path in BENCHMARKS]


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_imports_without_side_effects(path):
    spec = importlib.util.spec_from_file_location(f"benchmark_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.main)


@pytest.mark.slow
@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_runs_and_prints_figures(path):
    if path.stem in NEEDS_SAMPLE:
        require_flair_sample()
    if path.stem in NEEDS_ISBI:
        require_isbi_sample()
    if path.stem in NEEDS_REFERENCE_TABLE:
        require_reference_table()
    if path.stem in NEEDS_LESJAK:
        require_lesjak()
    result = subprocess.run(
        [sys.executable, str(path), *QUICK_ARGS[path.stem]], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    assert lines, f"{path.name} printed no figures"
    bad = [line for line in lines if not FIGURE_LINE.match(line)]
    assert not bad, f"{path.name}: lines not of the form 'name value unit': {bad}"
