"""Planning at cluster scale: `snakemake --dry-run` on placeholder cohorts of 1,381 and
13,810 subjects, and the number of SLURM jobs the SLURM profile's bundles make of them.

Prints one ``name value unit`` line per figure: median and minimum seconds over
``--repeats`` dry runs (``--repeats-large`` for the large cohort), each a fresh Snakemake
process that parses the workflow, validates the sheet and builds the whole DAG. The SLURM
job counts follow from the profile's ``group-components`` (one job per bundle of a
per-subject rule, one per aggregate rule); no cluster is needed.

Target (issue 15): at most 10 s for 1,381 subjects and 100 s for 13,810 on the project's 2-core
machine. Where planning spends its time is Snakemake's own per-job work (building the DAG,
checking each job's script, printing each job); the workflow keeps its share small: no
resource that depends on input sizes (Snakemake's default disk_mb reads every input's size),
no SciPy import while planning, dict lookups for the sheet's values.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from msprofile.synthetic.placeholder_cohort import write_placeholder_cohort

REPO = Path(__file__).resolve().parents[1]
PER_SUBJECT_RULES = ("preprocess", "segment", "lesion_metrics")
AGGREGATE_RULES = ("cohort_table", "statistics", "figures")


def dry_run_seconds(project: Path, sheet: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(project),
            "--dry-run",
            "--quiet",
            "all",
            "--config",
            f"subjects={sheet}",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def slurm_jobs(n_subjects: int) -> int:
    """SLURM jobs of a full run under workflow/profiles/slurm (no demo, no evaluation)."""
    profile = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    components = dict(item.split("=") for item in profile["group-components"])
    groups = dict(item.split("=") for item in profile["groups"])
    bundled = sum(math.ceil(n_subjects / int(components[groups[rule]])) for rule in PER_SUBJECT_RULES)
    return bundled + len(AGGREGATE_RULES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repeats-large", type=int, default=1)
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1381, 13810],
        help="cohort sizes to plan; the first gets --repeats, the others --repeats-large",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        project = tmp / "project"
        (project / "resources").mkdir(parents=True)
        shutil.copytree(REPO / "config", project / "config")
        (project / "resources" / "models").symlink_to(REPO / "resources" / "models")
        for n_subjects, repeats in zip(args.sizes, [args.repeats] + [args.repeats_large] * len(args.sizes)):
            sheet = write_placeholder_cohort(tmp / f"cohort_{n_subjects}", n_subjects)
            seconds = [dry_run_seconds(project, sheet) for _ in range(repeats)]
            jobs = len(PER_SUBJECT_RULES) * n_subjects + len(AGGREGATE_RULES) + 1
            print(f"dry_run_jobs_{n_subjects}_subjects {jobs} jobs")
            print(f"dry_run_seconds_{n_subjects}_subjects_median {statistics.median(seconds):.1f} s")
            print(f"dry_run_seconds_{n_subjects}_subjects_min {min(seconds):.1f} s")
            print(f"slurm_jobs_{n_subjects}_subjects {slurm_jobs(n_subjects)} jobs")
    # The machine is shared: say how busy it was (figures are only comparable at a low load).
    print(f"load_average_1min {os.getloadavg()[0]:.2f} load")


if __name__ == "__main__":
    main()
