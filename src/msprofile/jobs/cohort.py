"""Jobs of ``cohort.smk``: every subject's small result files in, the cohort tables out."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..cohort import build_cohort_table, failures_table, lesions_by_scan
from ..failures import is_placeholder, read_failure
from ..io import load_json, read_stacked_parquet, write_parquet, write_tsv
from ..qc import DEFAULT_QC_THRESHOLDS, QcThresholds

#: Missing values in ``cohort.tsv``, as in the statistics tables (R and pandas read it as missing).
TSV_NA_REP = "NA"

log = logging.getLogger(__name__)


def cohort_job(
    scans: pd.DataFrame,
    metrics_paths,
    qc_paths,
    lesion_paths,
    cohort_path,
    cohort_tsv_path,
    lesions_path,
    failures_path,
    qc_thresholds: QcThresholds = DEFAULT_QC_THRESHOLDS,
) -> None:
    """Write ``cohort.parquet`` and the same table as ``cohort.tsv`` (one row per scan of
    ``scans``, :func:`msprofile.cohort.build_cohort_table`), ``lesions.parquet`` (every lesion
    of every scan, :func:`msprofile.cohort.lesions_by_scan`) and ``failures.tsv`` (the scans
    that failed, with the step and the reason).

    ``metrics_paths``, ``qc_paths`` and ``lesion_paths`` are in the order of ``scans``' rows;
    a scan whose ``metrics.json`` is a placeholder failed, and its failure record says why.
    Each scan's QC flags are judged here under ``qc_thresholds`` (config group ``qc``), so
    that a changed threshold re-judges the cohort without reopening an image.
    """
    results = [_subject_result(Path(m), Path(q)) for m, q in zip(metrics_paths, qc_paths)]
    cohort = build_cohort_table(scans, results, qc_thresholds)
    write_parquet(cohort, cohort_path)
    write_tsv(cohort, cohort_tsv_path, na_rep=TSV_NA_REP)
    lesions = read_stacked_parquet(p for p in lesion_paths if not is_placeholder(p))
    write_parquet(lesions_by_scan(lesions, scans), lesions_path)
    failures = failures_table(cohort)
    write_tsv(failures, failures_path)
    if len(failures):
        log.warning(
            "%d of %d scans failed and are listed in %s: %s",
            len(failures),
            len(cohort),
            failures_path,
            ", ".join(failures["scan_id"]),
        )


def _subject_result(metrics_path: Path, qc_path: Path) -> dict:
    if is_placeholder(metrics_path):
        failure = read_failure(metrics_path.parent) or {
            "step": "unknown",
            "error": "no failure record; see the subject's logs",
        }
        return {"failure": failure}
    return {"metrics": load_json(metrics_path), "qc": load_json(qc_path)}
