"""Release hygiene: one version everywhere, the licence, the citation and the changelog, and the
README's BIDS example."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from msprofile.bids_input import load_bids_scans
from msprofile.synthetic.demo_cohort import DEMO_BIDS_SCANS

from conftest import REPO, make_project, run_snakemake

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_version_is_set_once_in_pyproject():
    version = PYPROJECT["project"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    # Nothing in the code writes a version of its own: it comes from the package metadata.
    for path in (REPO / "src").rglob("*.py"):
        assert version not in path.read_text(), f"{path} spells out the version"
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["version"] == version
    assert f"## {version}" in (REPO / "CHANGELOG.md").read_text()


def test_licence_and_citation():
    licence = (REPO / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in licence
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    reference = citation["references"][0]
    assert reference["repository-code"] == "https://github.com/Mahdi-Bashiri/MS-DeepBrain-Study"
    assert "Neuroanatomical Profiling" in reference["title"] and "Multiple Sclerosis" in reference["title"]
    assert PYPROJECT["project"]["scripts"]["msprofile"] == "msprofile.cli:main"


@pytest.mark.slow
def test_readme_bids_example(tmp_path):
    """`snakemake demo_bids` writes a BIDS dataset the workflow reads; `msprofile` plans it."""
    project = make_project(tmp_path)
    run_snakemake(project, "--cores", "2", "demo_bids")
    dataset = project / "resources" / "demo_bids"
    scans = load_bids_scans(dataset)
    assert len(scans) == len(DEMO_BIDS_SCANS) and scans["subject_id"].nunique() == len(DEMO_BIDS_SCANS) - 1
    assert set(scans["session"]) == {"01", "02"} and not scans["age"].isna().any()
    plan = subprocess.run(
        [sys.executable, "-m", "msprofile.cli", str(dataset), str(project / "results_bids"), "participant"]
        + ["--cores", "2", "--dry-run", "--quiet", "rules"],
        capture_output=True,
        text=True,
        cwd=project,
    )
    output = plan.stdout + plan.stderr
    assert plan.returncode == 0, output[-3000:]
    assert re.search(r"preprocess\s+5\b", output) and re.search(r"bids_derivatives\s+1\b", output)
