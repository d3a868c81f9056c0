"""Placeholder cohorts of any size, for planning tests and benchmarks at cluster scale.

A placeholder cohort is a valid subject sheet whose FLAIR files exist but are empty: enough
for Snakemake to build and schedule the whole DAG (``snakemake -n``), never to run a job.

    python -m msprofile.synthetic.placeholder_cohort 13810 /scratch/placeholder_cohort
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import write_empty_file, write_tsv

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
    rng = np.random.default_rng(seed)
    ages = rng.integers(18, 80, n_subjects)
    sexes = np.where(rng.random(n_subjects) < 0.6, "F", "M")
    subject_ids = [placeholder_subject_id(index) for index in range(n_subjects)]
    for subject_id in subject_ids:
        write_empty_file(folder / "flair" / f"{subject_id}.nii.gz")
    sheet = pd.DataFrame(
        {
            "subject_id": subject_ids,
            "flair": [f"flair/{subject_id}.nii.gz" for subject_id in subject_ids],
            "group": ["MS" if index % 3 == 0 else "HC" for index in range(n_subjects)],
            "age": ages,
            "sex": sexes,
        }
    )
    write_tsv(sheet[list(SHEET_COLUMNS)], folder / SHEET_NAME)
    return folder / SHEET_NAME


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a placeholder cohort (empty FLAIR files) of any size.")
    parser.add_argument("n_subjects", type=int)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_placeholder_cohort(args.folder, args.n_subjects, args.seed))


if __name__ == "__main__":
    main()
