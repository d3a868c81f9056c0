"""The cohort table: one row per subject of the sheet (docs/method.md section 5).

Built from each subject's metrics and QC records (the small per-subject JSON files), never
from images, so that adding one subject to a 1,381-subject sheet costs one pass over small
files; :mod:`msprofile.jobs.cohort` reads them.
"""

from __future__ import annotations

import pandas as pd

from . import __version__
from .lesions import REFERENCE_COLUMNS
from .qc import DEFAULT_QC_THRESHOLDS, QcThresholds, qc_flags

DEMOGRAPHIC_COLUMNS = ("subject_id", "group", "age_years", "sex")
FAILURE_COLUMNS = ("subject_id", "group", "failed_step", "error")


def subject_row(metrics: dict, qc: dict, thresholds: QcThresholds = DEFAULT_QC_THRESHOLDS) -> dict:
    """One cohort row (without demographics) from a subject's ``metrics.json`` and
    ``preprocess_qc.json``: the reference-compatible areas (mm^2), every metric, QC measures,
    the QC flags judged under ``thresholds`` (:func:`msprofile.qc.qc_flags`), and what
    produced them."""
    row = {column: metrics[key] for column, key in REFERENCE_COLUMNS.items()}
    row.update({key: value for key, value in metrics.items() if key not in ("subject_id",)})
    flags = qc_flags(qc, thresholds)
    row.update(
        {
            "icv_ml_preprocess": qc["intracranial_volume_ml"],
            "brain_z_extent_mm": qc["brain_z_extent_mm"],
            "qc_pass": not flags,
            "qc_flags": ";".join(flags),
            "preprocess_version": qc["msprofile_version"],
        }
    )
    return row


def build_cohort_table(
    sheet: pd.DataFrame, results, qc_thresholds: QcThresholds = DEFAULT_QC_THRESHOLDS
) -> pd.DataFrame:
    """The cohort table: ``sheet`` (indexed by subject_id, with ``group``, ``age`` in years and
    ``sex``) joined with each subject's results, in sheet order.

    ``results`` holds one entry per row of ``sheet``, in its order: ``{"metrics": ...,
    "qc": ...}`` (the subject's ``metrics.json`` and ``preprocess_qc.json``) or, for a subject
    whose processing failed under ``on_error: record``, ``{"failure": ...}`` (its failure
    record, ``{"step", "error"}``). QC flags are judged under ``qc_thresholds``. A failed
    subject keeps its row, with ``status``
    ``failed``, the step that failed and the error, and no metrics; the others have
    ``status`` ``ok``. Counts are nullable integers and ``qc_pass`` a nullable boolean, so
    that failed rows change no column type.
    """
    rows = []
    for subject_id, result in zip(sheet.index, results):
        demographics = {
            "subject_id": subject_id,
            "group": sheet.at[subject_id, "group"],
            "age_years": sheet.at[subject_id, "age"],
            "sex": sheet.at[subject_id, "sex"] or None,
        }
        if "failure" in result:
            failure = result["failure"]
            rows.append({**demographics, "status": "failed", "failed_step": failure["step"], "error": failure["error"]})
            continue
        rows.append(
            {
                **demographics,
                "status": "ok",
                "failed_step": None,
                "error": None,
                **subject_row(result["metrics"], result["qc"], qc_thresholds),
            }
        )
    table = pd.DataFrame(rows)
    table["age_years"] = table["age_years"].astype("float64")
    for column in (
        "subject_id",
        "group",
        "sex",
        "status",
        "failed_step",
        "error",
        "qc_flags",
        "segmentation_model",
        "segmentation_model_sha256",
        "preprocess_version",
    ):
        table[column] = (
            table[column].astype("string") if column in table else pd.Series(pd.NA, index=table.index, dtype="string")
        )
    for column in table.columns:
        if column.startswith("n_"):
            table[column] = table[column].astype("Int64")
    if "qc_pass" in table:
        table["qc_pass"] = table["qc_pass"].astype("boolean")
    table["msprofile_version"] = pd.Series([__version__] * len(table), dtype="string")
    return table


def failures_table(cohort: pd.DataFrame) -> pd.DataFrame:
    """The failed subjects of a cohort table: ``subject_id, group, failed_step, error``."""
    failed = cohort[cohort["status"] == "failed"]
    return failed[list(FAILURE_COLUMNS)].reset_index(drop=True)
