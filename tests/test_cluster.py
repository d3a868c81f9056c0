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


#: What sacct reports of each job: what it reserved and what it used.
SACCT_FIELDS = ("JobID", "State", "AllocCPUS", "ReqMem", "Timelimit", "Elapsed", "TotalCPU", "AllocTRES")


def sacct_jobs(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """``{job id: {sacct field: value}}`` from SLURM's accounting: the job's own row, whose
    TotalCPU is the CPU time of all its steps (``--allocations`` would report 0 for it)."""
    result = subprocess.run(
        ["sacct", "--noheader", "--parsable2", "--jobs", ",".join(job_ids), f"--format={','.join(SACCT_FIELDS)}"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [dict(zip(SACCT_FIELDS, line.split("|"))) for line in result.stdout.splitlines() if line]
    return {row["JobID"]: row for row in rows if "." not in row["JobID"]}


def slurm_seconds(text: str) -> float:
    """Seconds of a SLURM duration: ``[D-][HH:]MM:SS[.sss]``."""
    days, _, clock = text.rpartition("-")
    seconds = 0.0
    for part in clock.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds + 86400 * int(days or 0)


def tres(text: str) -> dict[str, str]:
    """``AllocTRES`` as ``{name: value}`` (``cpu``, ``mem``, ``gres/gpu``, ...)."""
    return dict(item.split("=", 1) for item in text.split(",") if "=" in item)


def megabytes(text: str) -> int:
    """SLURM's memory notation (``2000M``, ``4G``) in MB."""
    return int(float(text[:-1]) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[text[-1]])


def planned_job_resources(project, *args: str) -> dict[str, list[dict[str, int]]]:
    """``{rule: [{"threads", "mem_mb", "runtime", "gpu"} of each job]}`` as Snakemake plans them
    (a dry run, which lists every job on its own, bundled or not)."""
    result = run_snakemake(project, "--dry-run", *args)
    planned: dict[str, list[dict[str, int]]] = {}
    for block in re.split(r"\n(?=\s*(?:localrule|rule) \w+:)", result.stdout):
        rule = re.match(r"\s*(?:localrule|rule) (\w+):", block)
        # Snakemake leaves out the threads line of a one-thread job.
        threads = re.search(r"^\s+threads: (\d+)$", block, re.MULTILINE)
        resources = re.search(r"^\s+resources: (.*)$", block, re.MULTILINE)
        if not (rule and resources):
            continue
        values = dict(item.split("=", 1) for item in resources.group(1).split(", "))
        if not values["mem_mb"].isdigit():
            continue  # a target rule (all): no job to run, Snakemake's size-based default left open
        planned.setdefault(rule.group(1), []).append(
            {
                "threads": int(threads.group(1)) if threads else 1,
                "mem_mb": int(values["mem_mb"]),
                "runtime": int(values["runtime"]),
                "gpu": int(values.get("gpu", 0)),
            }
        )
    return planned


def test_demo_cohort_on_slurm_equals_the_local_run(tmp_path, demo_run):
    """The demo cohort through the shipped SLURM profile exactly as a user runs it (nothing on
    the command line changes bundles, cores or resources; the two options only make Snakemake
    ask SLURM about its jobs every few seconds instead of waiting 40 s first). Observed in
    SLURM's accounting: how many jobs, what each reserved (CPUs, memory, time limit, GPU) and
    how much of its CPUs it used. Run with ``-s`` to see the figures; the README quotes them.
    The local cluster's GPU is simulated (a device file stands in for it): the segment bundle
    gets its GPU from SLURM and runs on the CPU."""
    require_slurm()
    project = make_project(tmp_path)
    profile = ("--workflow-profile", "slurm")
    # A dry run caps every job's threads at --cores (1 unless given); a run on SLURM has no cap.
    planned = planned_job_resources(project, *profile, "--cores", "64")
    result = run_snakemake(
        project,
        *profile,
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
    print(f"\nslurm_jobs {len(submitted)} jobs")
    efficiency = {}
    for job_id, kind in sorted(submitted.items(), key=lambda item: int(item[0])):
        row = accounting[job_id]
        elapsed, cpu = slurm_seconds(row["Elapsed"]), slurm_seconds(row["TotalCPU"])
        efficiency[kind] = cpu / (elapsed * int(row["AllocCPUS"])) if elapsed else 0.0
        print(
            f"slurm_job {kind}: {row['State']}, reserved {row['AllocCPUS']} CPU, {row['ReqMem']} memory, "
            f"time limit {row['Timelimit']}, {tres(row['AllocTRES']).get('gres/gpu', '0')} GPU; "
            f"ran {row['Elapsed']}, CPU time {row['TotalCPU']}"
        )
        print(f"cpu_efficiency {efficiency[kind]:.2f} {kind}")
    assert {row["State"] for row in accounting.values()} == {"COMPLETED"}

    # Per-subject rules are bundled (group-components of the profile): for the 16 demo
    # subjects one job per rule, plus one per aggregate rule.
    per_subject = ("demo_phantom", "preprocess", "segment", "lesion_metrics")
    aggregates = ("evaluate_segmentation", "cohort_table", "statistics", "figures")
    kinds = sorted(submitted.values())
    assert kinds == sorted([f"group_{r}_{r}" for r in per_subject] + [f"rule_{r}" for r in aggregates]), kinds

    # A bundle runs its jobs one after another (the plugin starts Snakemake in it with --jobs 1),
    # so it reserves what one job uses, not a slot per job: the CPUs, memory and GPU of its
    # largest job, and the run times of its jobs added up.
    by_kind = {kind: accounting[job_id] for job_id, kind in submitted.items()}
    for rule in per_subject:
        jobs, row = planned[rule], by_kind[f"group_{rule}_{rule}"]
        assert len(jobs) == len(DEMO_SUBJECTS)
        assert int(row["AllocCPUS"]) == max(job["threads"] for job in jobs), rule
        assert megabytes(row["ReqMem"]) == max(job["mem_mb"] for job in jobs), rule
        assert slurm_seconds(row["Timelimit"]) == 60 * sum(job["runtime"] for job in jobs), rule
        assert int(tres(row["AllocTRES"]).get("gres/gpu", 0)) == max(job["gpu"] for job in jobs), rule
    gpu_jobs = [kind for kind, row in by_kind.items() if "gres/gpu" in tres(row["AllocTRES"])]
    assert gpu_jobs == ["group_segment_segment"], "only segmentation asks for the GPU"

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

    # The CPU bundles keep what they reserve busy. Their jobs run back to back, so what they
    # lose is the share of the CPU that other processes on the node take (this machine's two
    # cores are shared): the load average says how much.
    load = os.getloadavg()[0]
    print(f"load_average {load:.2f}")
    for rule in ("demo_phantom", "preprocess", "lesion_metrics"):
        assert efficiency[f"group_{rule}_{rule}"] >= 0.5, (
            f"{rule} bundle: CPU efficiency {efficiency[f'group_{rule}_{rule}']:.2f} at a load average of {load:.1f}"
        )


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
