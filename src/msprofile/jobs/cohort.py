"""Jobs of ``cohort.smk``: every subject's small result files in, the cohort tables out."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..cohort import build_cohort_table, failures_table
from ..failures import is_placeholder, read_failure
from ..io import load_json, read_stacked_parquet, write_parquet, write_tsv
from ..qc import DEFAULT_QC_THRESHOLDS, QcThresholds

log = logging.getLogger(__name__)


def cohort_job(
    sheet: pd.DataFrame,
    metrics_paths,
    qc_paths,
    lesion_paths,
    cohort_path,
    lesions_path,
    failures_path,
    qc_thresholds: QcThresholds = DEFAULT_QC_THRESHOLDS,
) -> None:
    """Write ``cohort.parquet`` (one row per subject of ``sheet``,
    :func:`msprofile.cohort.build_cohort_table`), ``lesions.parquet`` (every lesion of every
    subject) and ``failures.tsv`` (the subjects that failed, with the step and the reason).

    ``metrics_paths``, ``qc_paths`` and ``lesion_paths`` are in the order of ``sheet``'s rows;
    a subject whose ``metrics.json`` is a placeholder failed, and its failure record says why.
    Each subject's QC flags are judged here under ``qc_thresholds`` (config group ``qc``), so
    that a changed threshold re-judges the cohort without reopening an image.
    """
    results = [_subject_result(Path(m), Path(q)) for m, q in zip(metrics_paths, qc_paths)]
    cohort = build_cohort_table(sheet, results, qc_thresholds)
    write_parquet(cohort, cohort_path)
    write_parquet(read_stacked_parquet(p for p in lesion_paths if not is_placeholder(p)), lesions_path)
    failures = failures_table(cohort)
    write_tsv(failures, failures_path)
    if len(failures):
        log.warning(
            "%d of %d subjects failed and are listed in %s: %s",
            len(failures),
            len(cohort),
            failures_path,
            ", ".join(failures["subject_id"]),
        )


def _subject_result(metrics_path: Path, qc_path: Path) -> dict:
    if is_placeholder(metrics_path):
        failure = read_failure(metrics_path.parent) or {
            "step": "unknown",
            "error": "no failure record; see the subject's logs",
        }
        return {"failure": failure}
    return {"metrics": load_json(metrics_path), "qc": load_json(qc_path)}
