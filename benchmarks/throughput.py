"""Per-subject cost of a cohort on a workstation: preprocess, segment and lesion metrics of N
demo subjects through the workflow with ``snakemake --cores 2``.

Prints one ``name value unit`` line per figure. The subjects are the demo cohort's phantoms
(:func:`msprofile.synthetic.demo_cohort.phantom_for`), repeated with further seeds beyond the
16 demo subjects; generating them is not timed. Each of ``--repeats`` runs is a fresh
Snakemake process on an empty results folder that plans and runs the ``3 N`` per-subject jobs
(``preprocess``, ``segment``, ``lesion_metrics``; no cohort table or statistics), so the wall
time holds everything a user waits for: Snakemake's start and planning, its scheduling, one
fresh Python process per job with its imports, and the work itself.

* ``wall_seconds_per_subject_median`` / ``_min``: the run's wall time over N;
* ``extrapolated_hours_1381_subjects``: the median per-subject time times 1,381 (the
  reference cohort), in hours, on the same cores;
* ``cpu_seconds_per_subject_median``: CPU time of all the run's processes over N, which
  other processes' load inflates far less than wall time;
* ``snakemake_cpu_seconds_per_subject_median``: the part of it spent in the main Snakemake
  process (planning, scheduling, bookkeeping), CPU the jobs cannot use;
* ``<rule>_job_seconds_median``: the work inside one job (from the job's log: after its
  imports, before the process exits), the median over the run's jobs; the difference to the
  wall time is what starting processes and Snakemake cost.

Target (issue 15): at most 1.8 s of wall time per subject on 2 cores (1,381 subjects in 42
minutes).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PER_SUBJECT_RULES = ("preprocess", "segment", "lesion_metrics")
#: Where each per-subject rule's log says how long its work took (msprofile.workflow.logged).
DONE_LINE = re.compile(r": done in ([0-9.]+) s$", re.MULTILINE)
TARGET_SECONDS_PER_SUBJECT = 1.8


def write_cohort(folder: Path, n_subjects: int, seed: int) -> Path:
    """N phantom subjects under ``folder`` and their sheet; returns the sheet's path."""
    from msprofile.jobs.demo import write_phantom
    from msprofile.synthetic.demo_cohort import DEMO_SUBJECTS, phantom_for

    rows = ["subject_id\tflair\tgroup\tage\tsex"]
    for index in range(n_subjects):
        demo = DEMO_SUBJECTS[index % len(DEMO_SUBJECTS)]
        subject_id = f"bench-{index:04d}"
        write_phantom(phantom_for(demo.subject_id, seed + index // len(DEMO_SUBJECTS)), folder / subject_id)
        age = "" if demo.age_years is None else f"{demo.age_years:g}"
        rows.append(f"{subject_id}\t{subject_id}/flair.nii.gz\t{demo.group}\t{age}\t{demo.sex}")
    sheet = folder / "subjects.tsv"
    sheet.write_text("\n".join(rows) + "\n")
    return sheet


#: Runs Snakemake as ``python -m snakemake`` does and writes its own CPU seconds (not its
#: jobs') to the file named by the first argument when it exits.
SNAKEMAKE_WITH_OWN_CPU = (
    "import atexit, pathlib, resource, runpy, sys\n"
    "out = pathlib.Path(sys.argv.pop(1))\n"
    "def own_cpu():\n"
    "    usage = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    out.write_text(str(usage.ru_utime + usage.ru_stime))\n"
    "atexit.register(own_cpu)\n"
    "sys.argv[0] = 'snakemake'\n"
    "runpy.run_module('snakemake', run_name='__main__')\n"
)


def run_cohort(project: Path, sheet: Path, n_subjects: int, cores: int) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (all processes: Snakemake and its jobs) and the main Snakemake
    process's own CPU seconds of one Snakemake run of the per-subject jobs into an empty results
    folder."""
    results = project / "results"
    shutil.rmtree(results, ignore_errors=True)
    targets = [f"results/subjects/bench-{index:04d}/metrics.json" for index in range(n_subjects)]
    own_cpu_file = project / "snakemake_cpu_seconds.txt"
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SNAKEMAKE_WITH_OWN_CPU,
            str(own_cpu_file),
            *targets,
            "-s",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(project),
            "--cores",
            str(cores),
            "--config",
            f"subjects={sheet}",
            "--quiet",
            "all",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed ({result.returncode}):\n{result.stderr[-4000:]}")
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    return wall, cpu, float(own_cpu_file.read_text())


def job_seconds(project: Path, rule: str) -> list[float]:
    """The work time of each job of ``rule`` in the last run, from its log."""
    logs = sorted((project / "results" / "logs" / rule).glob("*.log"))
    return [float(m.group(1)) for log in logs for m in DONE_LINE.finditer(log.read_text())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=24, help="subjects of the cohort (the target is for 24+)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        project = tmp / "project"
        shutil.copytree(REPO / "config", project / "config")
        (project / "resources").mkdir()
        (project / "resources" / "models").symlink_to(REPO / "resources" / "models")
        sheet = write_cohort(tmp / "cohort", args.subjects, args.seed)
        seconds, cpu_seconds, snakemake_cpu_seconds = [], [], []
        work = {rule: [] for rule in PER_SUBJECT_RULES}
        for _ in range(args.repeats):
            wall, cpu, snakemake_cpu = run_cohort(project, sheet, args.subjects, args.cores)
            seconds.append(wall)
            cpu_seconds.append(cpu)
            snakemake_cpu_seconds.append(snakemake_cpu)
            for rule in PER_SUBJECT_RULES:
                work[rule].extend(job_seconds(project, rule))
    per_subject = [s / args.subjects for s in seconds]
    median = statistics.median(per_subject)
    print(f"throughput_subjects {args.subjects} subjects")
    print(f"throughput_cores {args.cores} cores")
    print(f"wall_seconds_per_subject_median {median:.2f} s")
    print(f"wall_seconds_per_subject_min {min(per_subject):.2f} s")
    print(f"wall_seconds_per_subject_target {TARGET_SECONDS_PER_SUBJECT:.2f} s")
    print(f"extrapolated_hours_1381_subjects {median * 1381 / 3600:.2f} h")
    # CPU time does not grow with other processes' load as wall time does: compare runs by it
    # on a shared machine.
    print(f"cpu_seconds_per_subject_median {statistics.median(cpu_seconds) / args.subjects:.2f} s")
    print(f"snakemake_cpu_seconds_per_subject_median {statistics.median(snakemake_cpu_seconds) / args.subjects:.2f} s")
    for rule, values in work.items():
        if values:
            print(f"{rule}_job_seconds_median {statistics.median(values):.2f} s")
    print(f"load_average_1min {os.getloadavg()[0]:.2f} load")


if __name__ == "__main__":
    main()
