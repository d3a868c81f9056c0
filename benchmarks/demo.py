"""The README's main command on the demo cohort: wall time of `snakemake --cores 2` from a
fresh project folder (phantoms generated, every subject preprocessed, segmented and measured,
the evaluation, cohort table, statistics and figures), after the install.

Prints one ``name value unit`` line per figure: median and minimum over ``--repeats`` fresh
runs. ``--subjects N`` runs only the first N demo subjects (for a quick check).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def demo_project(folder: Path, n_subjects: int | None) -> Path:
    """A user's project folder with the repository's config and models, as in the README."""
    shutil.copytree(REPO / "config", folder / "config")
    (folder / "resources").mkdir()
    (folder / "resources" / "models").symlink_to(REPO / "resources" / "models")
    if n_subjects is not None:
        sheet = folder / "config" / "subjects.tsv"
        lines = sheet.read_text().splitlines(keepends=True)
        sheet.write_text("".join(lines[: n_subjects + 1]))
    return folder


def run_seconds(folder: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(folder),
            "--cores",
            "2",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--subjects", type=int, default=None, help="only the first N demo subjects")
    args = parser.parse_args()
    seconds = []
    for k in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            seconds.append(run_seconds(demo_project(Path(tmp) / f"demo{k}", args.subjects)))
    label = "demo_run" if args.subjects is None else f"demo_run_{args.subjects}_subjects"
    print(f"{label}_seconds_median {statistics.median(seconds):.0f} s")
    print(f"{label}_seconds_min {min(seconds):.0f} s")


if __name__ == "__main__":
    main()
