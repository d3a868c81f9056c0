"""Cohort stage speed: statistics and figures on the real 1,380-subject reference table, and
rebuilding the cohort table of 1,381 subjects after one subject changed.

Prints one ``name value unit`` line per figure, medians and minimums over ``--repeats``
runs (one warm-up first). ``statistics_and_figures_seconds`` is what the ``statistics`` and
``figures`` rules cost one after the other on one core: two fresh Python processes, each
with its imports, reading the table and writing its outputs (TSVs; PNG at 300 dpi + PDF);
``..._two_cores_seconds`` the same two processes side by side, as ``snakemake --cores 2`` runs
them (they do not depend on each other).
The in-process times are the two jobs' functions alone. The cohort rebuild is what the
``cohort_table`` rule does: read every subject's small ``metrics.json``,
``preprocess_qc.json`` and ``lesions.parquet`` and write the two Parquet tables; the
per-subject files are made up here (realistic keys and sizes), since no image is involved.

Target (issue 15): statistics + figures at most 5.0 s on the project's 2-core machine, 0.4x the
reference script's 12.5 s measured there (which wrote six PNGs and printed most results).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / ".." / "shared" / "data" / "cohort_seed" / "brain_mri_analysis_results_PROCESSED_updated.csv"


def timed(function, repeats: int) -> list[float]:
    function()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return seconds


STAGE_SCRIPT = """
import sys
from msprofile.jobs.statistics import load_cohort_table, write_figures, write_statistics
job = write_statistics if sys.argv[1] == "statistics" else write_figures
job(load_cohort_table(sys.argv[2]), sys.argv[3], remove_outliers=sys.argv[4] == "1")
"""


def stage_processes(out_dir: Path, remove_outliers: bool, *, concurrent: bool = False) -> None:
    """The two rules' work as two fresh single-threaded processes, one after the other, or side
    by side (``concurrent``) as Snakemake runs them with two cores."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "agg"}
    started = []
    for stage in ("statistics", "figures"):
        started.append(
            subprocess.Popen(
                [sys.executable, "-c", STAGE_SCRIPT, stage, str(REFERENCE), str(out_dir), str(int(remove_outliers))],
                env=env,
                stderr=subprocess.DEVNULL,
            )
        )
        if not concurrent:
            started[-1].wait()
    for process in started:
        if process.wait() != 0:
            raise subprocess.CalledProcessError(process.returncode, process.args)


def fake_subject_files(folder: Path, n_subjects: int) -> tuple[pd.DataFrame, list[Path], list[Path], list[Path]]:
    rng = np.random.default_rng(0)
    rows, metrics_paths, qc_paths, lesion_paths = [], [], [], []
    keys = [
        "intracranial_area_mm2",
        "ventricle_area_mm2",
        "lesion_area_mm2",
        "pewmh_area_mm2",
        "pawmh_area_mm2",
        "jcwmh_area_mm2",
        "intracranial_volume_ml",
        "lesion_volume_ml",
    ]
    counts = ["n_lesions_3d", "n_slices"]
    for i in range(n_subjects):
        subject_id = f"sub{i:05d}"
        metrics = {
            "subject_id": subject_id,
            **{k: float(rng.uniform(1, 1000)) for k in keys},
            **{k: int(rng.integers(0, 40)) for k in counts},
            "intracranial_area_mm2_reference_window": None,
            "segmentation_model": "m",
            "segmentation_model_sha256": "0" * 64,
        }
        qc = {
            "intracranial_volume_ml": 1400.0,
            "brain_z_extent_mm": 120.0,
            "brain_slices": 20,
            "max_slice_area_cm2": 150.0,
            "brain_to_head_area_ratio": 0.7,
            "brain_touches_image_edge": False,
            "brain_larger_than_model_grid": False,
            "skull_stripped_input": False,
            "header": {"affine_source": "sform", "qform_sform_rotation_deg": None, "qform_sform_shift_mm": None},
            "msprofile_version": "0.1.0",
        }
        paths = [folder / f"{subject_id}_{name}" for name in ("metrics.json", "qc.json", "lesions.parquet")]
        paths[0].write_text(json.dumps(metrics))
        paths[1].write_text(json.dumps(qc))
        n = int(rng.integers(0, 30))
        pd.DataFrame(
            {"subject_id": [subject_id] * n, "kind": ["2d"] * n, "area_mm2": rng.uniform(1, 50, n)}
        ).to_parquet(paths[2])
        metrics_paths.append(paths[0])
        qc_paths.append(paths[1])
        lesion_paths.append(paths[2])
        rows.append(
            {
                "scan_id": subject_id,
                "subject_id": subject_id,
                "session": "",
                "group": "MS" if i % 3 else "HC",
                "age": 40.0,
                "sex": "F",
            }
        )
    return pd.DataFrame(rows).set_index("scan_id"), metrics_paths, qc_paths, lesion_paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--subjects", type=int, default=1381, help="subjects of the cohort-table rebuild")
    args = parser.parse_args()
    from msprofile.jobs.cohort import cohort_job
    from msprofile.jobs.statistics import load_cohort_table, write_figures, write_statistics

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if REFERENCE.is_file():
            table = load_cohort_table(REFERENCE)
            for remove_outliers in (False, True):
                seconds = timed(
                    partial(write_statistics, table, tmp / f"stats_{remove_outliers}", remove_outliers=remove_outliers),
                    args.repeats,
                )
                label = "statistics_outliers_removed" if remove_outliers else "statistics"
                print(f"{label}_seconds_1380_subjects_median {statistics.median(seconds):.2f} s")
                print(f"{label}_seconds_1380_subjects_min {min(seconds):.2f} s")
                seconds = timed(
                    partial(write_figures, table, tmp / f"figures_{remove_outliers}", remove_outliers=remove_outliers),
                    args.repeats,
                )
                label = "figures_outliers_removed" if remove_outliers else "figures"
                print(f"{label}_in_process_seconds_1380_subjects_median {statistics.median(seconds):.2f} s")
                print(f"{label}_in_process_seconds_1380_subjects_min {min(seconds):.2f} s")
                seconds = timed(
                    partial(stage_processes, tmp / f"stage_{remove_outliers}", remove_outliers), args.repeats
                )
                label = "statistics_and_figures_outliers_removed" if remove_outliers else "statistics_and_figures"
                print(f"{label}_seconds_1380_subjects_median {statistics.median(seconds):.2f} s")
                print(f"{label}_seconds_1380_subjects_min {min(seconds):.2f} s")
                print(f"{label}_target 5.00 s")
                seconds = timed(
                    partial(stage_processes, tmp / f"two_cores_{remove_outliers}", remove_outliers, concurrent=True),
                    args.repeats,
                )
                print(f"{label}_two_cores_seconds_1380_subjects_median {statistics.median(seconds):.2f} s")
                print(f"{label}_two_cores_seconds_1380_subjects_min {min(seconds):.2f} s")
        else:
            print(f"# reference table not found at {REFERENCE.resolve()}: statistics not timed")

        sheet, metrics_paths, qc_paths, lesion_paths = fake_subject_files(tmp, args.subjects)
        rebuild = partial(
            cohort_job,
            sheet,
            metrics_paths,
            qc_paths,
            lesion_paths,
            tmp / "cohort.parquet",
            tmp / "cohort.tsv",
            tmp / "lesions.parquet",
            tmp / "failures.tsv",
        )
        seconds = timed(rebuild, args.repeats)
        print(f"cohort_table_rebuild_seconds_{args.subjects}_subjects_median {statistics.median(seconds):.2f} s")
        print(f"cohort_table_rebuild_seconds_{args.subjects}_subjects_min {min(seconds):.2f} s")
    # The machine is shared: say how busy it was (figures are only comparable at a low load).
    print(f"load_average_1min {os.getloadavg()[0]:.2f} load")


if __name__ == "__main__":
    main()
