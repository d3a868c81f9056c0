"""Placeholder cohorts of any size, for planning tests and benchmarks at cluster scale.

A placeholder cohort is a valid subject sheet whose FLAIR files exist but are empty: enough
for Snakemake to build and schedule the whole DAG (``snakemake -n``), never to run a job.

    python -m msprofile.scale 13810 /scratch/placeholder_cohort
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

SHEET_NAME = "subjects.tsv"
SHEET_COLUMNS = ("subject_id", "flair", "group", "age", "sex")


def placeholder_subject_id(index: int) -> str:
    """The ``index``-th placeholder subject's ID (``sub-000000``, ``sub-000001``, ...)."""
    return f"sub-{index:06d}"


def write_placeholder_cohort(folder: str | os.PathLike, n_subjects: int, seed: int = 0) -> Path:
    """Write ``folder/subjects.tsv`` listing ``n_subjects`` subjects, each with an empty
    ``folder/flair/<subject_id>.nii.gz``; return the sheet's path.

    Groups alternate HC and MS (one in three MS, about the reference cohort's share); ages
    (years, 18 to 79) and sexes are drawn with ``seed``. Paths in the sheet are relative to
    its folder, as a user would write them, so the folder can be moved.
    """
    if n_subjects < 1:
        raise ValueError(f"a cohort needs at least one subject, not {n_subjects}")
    folder = Path(folder)
    (folder / "flair").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ages = rng.integers(18, 80, n_subjects)
    sexes = np.where(rng.random(n_subjects) < 0.6, "F", "M")
    lines = ["\t".join(SHEET_COLUMNS)]
    for index in range(n_subjects):
        subject_id = placeholder_subject_id(index)
        (folder / "flair" / f"{subject_id}.nii.gz").touch()
        group = "MS" if index % 3 == 0 else "HC"
        lines.append(f"{subject_id}\tflair/{subject_id}.nii.gz\t{group}\t{ages[index]}\t{sexes[index]}")
    sheet = folder / SHEET_NAME
    sheet.write_text("\n".join(lines) + "\n")
    return sheet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a placeholder cohort (empty FLAIR files) of any size.")
    parser.add_argument("n_subjects", type=int)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_placeholder_cohort(args.folder, args.n_subjects, args.seed))


if __name__ == "__main__":
    main()
