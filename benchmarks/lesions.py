"""Lesion metrics speed: the lesion_metrics job per subject on the real sample, one thread.

Prints one ``name value unit`` line per figure: median and minimum seconds per subject over
``--passes`` passes of the four real sample subjects (../shared/data/flair_sample), one warm-up
pass first. Each call is what a lesion_metrics job does after its interpreter has started:
read the segmentation (here the expert masks as a segmentation), the FLAIR and the brain mask,
class every lesion (2-D rule and 3-D lesions), and write the class volume, the lesion table
and the metrics.
"""

from __future__ import annotations

import argparse
import os

if __name__ == "__main__":  # before NumPy is imported; importing this module changes nothing
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "flair_sample"
SUBJECTS = ("104252", "105074", "105465", "105755")


def prepare(subject_id: str, folder: Path) -> dict[str, Path]:
    """The subject's expert labels as a segmentation and its brain mask, as the earlier jobs write them."""
    import numpy as np

    from msprofile.io import load_manual_labels, save_json, save_nifti
    from msprofile.jobs.preprocess import preprocess_subject
    from msprofile.preprocess import PreprocessSettings

    names = ("seg.nii.gz", "uncertainty.nii.gz", "brain.nii.gz", "card.json")
    paths = {name: folder / subject_id / f"{name}" for name in names}
    preprocess_subject(
        subject_id,
        SAMPLE / subject_id / "flair.nii.gz",
        skull_stripped=False,
        settings=PreprocessSettings(),
        brain_mask_path=paths["brain.nii.gz"],
        flair_preproc_path=folder / subject_id / "flair_preproc.nii.gz",
        qc_json_path=folder / subject_id / "qc.json",
        qc_png_path=folder / subject_id / "qc.png",
    )
    labels, grid, _ = load_manual_labels(
        subject_id, SAMPLE / subject_id / "wmh_manual.nii.gz", SAMPLE / subject_id / "ventricles_manual.nii.gz"
    )
    save_nifti(labels.astype(np.uint8), grid.affine, paths["seg.nii.gz"])
    save_nifti(np.zeros(labels.shape, np.float32), grid.affine, paths["uncertainty.nii.gz"])
    save_json({"name": "expert masks", "files": {}}, paths["card.json"])
    return paths


def time_subject(subject_id: str, paths: dict[str, Path], out: Path) -> float:
    from msprofile.jobs.lesions import lesion_metrics_subject

    started = time.perf_counter()
    lesion_metrics_subject(
        subject_id,
        paths["seg.nii.gz"],
        paths["uncertainty.nii.gz"],
        SAMPLE / subject_id / "flair.nii.gz",
        paths["brain.nii.gz"],
        paths["card.json"],
        out / "lesions.parquet",
        out / "classes.nii.gz",
        out / "metrics.json",
        stats_path=out / "lesion_stats.tsv",
        qc_png_path=out / "qc.png",
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--subjects", nargs="+", default=list(SUBJECTS), choices=SUBJECTS)
    args = parser.parse_args()
    if not (SAMPLE / "subjects.tsv").is_file():
        raise SystemExit(f"real sample not found at {SAMPLE.resolve()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = {s: prepare(s, tmp) for s in args.subjects}
        for s in args.subjects:
            time_subject(s, inputs[s], tmp / s)
        seconds = [time_subject(s, inputs[s], tmp / s) for _ in range(args.passes) for s in args.subjects]
    print(f"lesion_metrics_seconds_per_subject_median {statistics.median(seconds):.3f} s")
    print(f"lesion_metrics_seconds_per_subject_min {min(seconds):.3f} s")
    print(f"lesion_metrics_timed_subjects {len(seconds)} count")


if __name__ == "__main__":
    main()
