"""Preprocessing speed on the real sample, on one core.

Prints one ``name value unit`` line per figure. Each pass preprocesses the four real
subjects of ../shared/data/flair_sample end to end, exactly as the `preprocess` rule does
(load, reorient, denoise, brain mask, normalise, resample, write two NIfTI files, the QC
JSON and the QC PNG); one warm-up pass, then ``--passes`` timed ones. The process is pinned
to one CPU and its numeric libraries to one thread before they are imported.

Target (issue 2): median at most 0.75 s per 256 x 256 x 20 subject, four times faster than
the reference's own preprocessing (3.06 s per subject, measured on the project's 2-core machine).
Target (issue 15 item 5): at most 0.52 s, with the outputs' voxel data unchanged.
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

from msprofile.jobs.preprocess import preprocess_subject  # noqa: E402
from msprofile.preprocess import PreprocessSettings  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "flair_sample"
SUBJECTS = ("104252", "105074", "105465", "105755")
REFERENCE_SECONDS_PER_SUBJECT = 3.06


def time_subject(subject_id: str, out_dir: Path, settings: PreprocessSettings) -> float:
    started = time.perf_counter()
    preprocess_subject(
        subject_id,
        SAMPLE / subject_id / "flair.nii.gz",
        skull_stripped=False,
        settings=settings,
        brain_mask_path=out_dir / "brain_mask.nii.gz",
        flair_preproc_path=out_dir / "flair_preproc.nii.gz",
        qc_json_path=out_dir / "qc.json",
        qc_png_path=out_dir / "qc.png",
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--subjects", nargs="+", default=list(SUBJECTS), choices=SUBJECTS)
    args = parser.parse_args()
    if not (SAMPLE / "subjects.tsv").is_file():
        raise SystemExit(f"real sample not found at {SAMPLE.resolve()}")
    settings = PreprocessSettings()
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        for subject_id in args.subjects:
            time_subject(subject_id, out_dir, settings)
        seconds = [time_subject(s, out_dir, settings) for _ in range(args.passes) for s in args.subjects]
    median = statistics.median(seconds)
    print(f"preprocess_seconds_per_subject_median {median:.3f} s")
    print(f"preprocess_seconds_per_subject_min {min(seconds):.3f} s")
    print(f"preprocess_seconds_per_subject_max {max(seconds):.3f} s")
    print(f"preprocess_timed_subjects {len(seconds)} count")
    print(f"preprocess_speedup_vs_reference {REFERENCE_SECONDS_PER_SUBJECT / median:.2f} ratio")


if __name__ == "__main__":
    main()
