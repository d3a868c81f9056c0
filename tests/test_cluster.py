"""Cluster scale: a real SLURM run with the SLURM profile, and planning at cohort scale.

The SLURM test needs a running SLURM (``../shared/tools/slurm-local-up.sh up`` brings up a
single-node one; ``.ci/run`` does so before the tests). Without one it skips, unless the
environment variable ``CI`` is set: then it fails, so that CI cannot pass without it.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest

from msprofile.synthetic.demo_cohort import DEMO_SUBJECTS
from msprofile.synthetic.placeholder_cohort import placeholder_subject_id, write_placeholder_cohort

from conftest import make_project, planned_jobs, run_snakemake

pytestmark = pytest.mark.slow


def slurm_problem() -> str | None:
    """Why this machine cannot run SLURM jobs now, or None when it can."""
    if not (shutil.which("sbatch") and shutil.which("sacct") and shutil.which("sinfo")):
        return "SLURM's commands (sbatch, sacct, sinfo) are not installed"
    state = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True)
    if state.returncode != 0 or not {"idle", "mixed", "allocated"} & set(state.stdout.split()):
        return f"no SLURM node is up (sinfo: {(state.stdout + state.stderr).strip() or 'no output'})"
    return None


def require_slurm() -> None:
    problem = slurm_problem()
    if problem is None:
        return
    hint = "bring one up with `../shared/tools/slurm-local-up.sh up` (as root)"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {problem}: .ci/run must start SLURM before the tests; {hint}")
    pytest.skip(f"{problem}; {hint}")


def sacct_jobs(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """``{job id: {"state": ..., "tres": ...}}`` from SLURM's accounting."""
    result = subprocess.run(
        [
            "sacct",
            "--allocations",
            "--noheader",
            "--parsable2",
            "--jobs",
            ",".join(job_ids),
            "--format=JobID,State,AllocTRES",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split("|") for line in result.stdout.splitlines() if line]
    return {job_id: {"state": state, "tres": tres} for job_id, state, tres in rows}


def test_demo_cohort_on_slurm_equals_the_local_run(tmp_path, demo_run):
    require_slurm()
    project = make_project(tmp_path)
    # The local cluster's one node has 2 CPUs; everything else comes from the profile.
    result = run_snakemake(
        project,
        "--workflow-profile",
        "slurm",
        "--cores",
        "2",
        "--jobs",
        "10",
        "--slurm-init-seconds-before-status-checks",
        "5",
        "--seconds-between-status-checks",
        "3",
    )

    # Which SLURM job ran which rule: Snakemake names each job's log .../slurm_logs/<rule or group>/<job id>.log
    submitted = dict(
        re.findall(r"SLURM jobid (\d+) \(log: \S*/slurm_logs/(\w+)/\d+\.log\)", result.stdout + result.stderr)
    )
    assert submitted, "Snakemake submitted no SLURM job"
    accounting = sacct_jobs(sorted(submitted))
    assert set(accounting) == set(submitted), "every submitted job is in SLURM's accounting"
    assert {row["state"] for row in accounting.values()} == {"COMPLETED"}
    kinds = sorted(submitted.values())
    # Per-subject rules are bundled: one job per rule for the 16 demo subjects, plus the aggregates.
    assert kinds == sorted(
        [
            "group_demo_phantom_demo_phantom",
            "group_preprocess_preprocess",
            "group_segment_segment",
            "group_lesion_metrics_lesion_metrics",
            "rule_evaluate_segmentation",
            "rule_cohort_table",
            "rule_statistics",
            "rule_figures",
        ]
    ), kinds
    gpu_jobs = [job for job, kind in submitted.items() if "gres/gpu=1" in accounting[job]["tres"]]
    assert [submitted[job] for job in gpu_jobs] == ["group_segment_segment"], "only segmentation asks for the GPU"

    local, remote = demo_run / "results", project / "results"
    for folder in ("cohort", "stats"):
        names = sorted(p.name for p in (local / folder).iterdir())
        assert names == sorted(p.name for p in (remote / folder).iterdir())
        for name in names:
            assert filecmp.cmp(local / folder / name, remote / folder / name, shallow=False), f"{folder}/{name}"
    for subject in DEMO_SUBJECTS:
        for name in ("segmentation.nii.gz", "lesion_classes.nii.gz", "brain_mask.nii.gz"):
            a = np.asarray(nib.load(local / "subjects" / subject.subject_id / name).dataobj)
            b = np.asarray(nib.load(remote / "subjects" / subject.subject_id / name).dataobj)
            assert np.array_equal(a, b), f"{subject.subject_id} {name}"
        metrics = [
            json.loads((root / "subjects" / subject.subject_id / "metrics.json").read_text())
            for root in (local, remote)
        ]
        assert metrics[0] == metrics[1]


def test_dry_run_of_1381_subjects(tmp_path):
    sheet = write_placeholder_cohort(tmp_path / "cohort", 1381)
    project = make_project(tmp_path / "project")
    jobs = planned_jobs(project, "--config", f"subjects={sheet}")
    assert jobs == {
        "preprocess": 1381,
        "segment": 1381,
        "lesion_metrics": 1381,
        "cohort_table": 1,
        "statistics": 1,
        "figures": 1,
        "all": 1,
    }


def test_placeholder_cohort(tmp_path):
    sheet = write_placeholder_cohort(tmp_path, 7, seed=3)
    lines = sheet.read_text().splitlines()
    assert lines[0].split("\t") == ["subject_id", "flair", "group", "age", "sex"] and len(lines) == 8
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows] == [placeholder_subject_id(i) for i in range(7)]
    assert [r[2] for r in rows] == ["MS", "HC", "HC", "MS", "HC", "HC", "MS"]
    assert all((tmp_path / r[1]).is_file() and (tmp_path / r[1]).stat().st_size == 0 for r in rows)
    assert all(18 <= int(r[3]) < 80 and r[4] in ("F", "M") for r in rows)
    assert write_placeholder_cohort(tmp_path / "again", 7, seed=3).read_text() == sheet.read_text()
    with pytest.raises(ValueError):
        write_placeholder_cohort(tmp_path, 0)
