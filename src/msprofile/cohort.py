"""The cohort table: one row per scan of the scan table (docs/method.md section 5).

A scan is one subject in one session (:mod:`msprofile.scans`); without sessions, one row per
subject. ``scan_id``, ``subject_id`` and ``session`` say which.

Built from each subject's metrics and QC records (the small per-subject JSON files), never
from images, so that adding one subject to a 1,381-subject sheet costs one pass over small
files; :mod:`msprofile.jobs.cohort` reads them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import __version__
from .lesions import REFERENCE_COLUMNS
from .qc import DEFAULT_QC_THRESHOLDS, QcThresholds, qc_flags, uncertainty_z_scores

DEMOGRAPHIC_COLUMNS = ("scan_id", "subject_id", "session", "group", "age_years", "sex")
FAILURE_COLUMNS = ("scan_id", "subject_id", "session", "group", "failed_step", "error")


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
            "brain_mask_source": qc.get("brain_mask_source", "workflow"),
            "preprocess_version": qc["msprofile_version"],
        }
    )
    return row


def build_cohort_table(
    scans: pd.DataFrame, results, qc_thresholds: QcThresholds = DEFAULT_QC_THRESHOLDS
) -> pd.DataFrame:
    """The cohort table: ``scans`` (the scan table, indexed by scan ID, with ``subject_id``,
    ``session`` ("" for none), ``group``, ``age`` in years and ``sex``) joined with each scan's
    results, in the scan table's order.

    ``results`` holds one entry per row of ``scans``, in its order: ``{"metrics": ...,
    "qc": ...}`` (the scan's ``metrics.json`` and ``preprocess_qc.json``) or, for a scan
    whose processing failed under ``on_error: record``, ``{"failure": ...}`` (its failure
    record, ``{"step", "error"}``). QC flags are judged under ``qc_thresholds``. A failed scan
    keeps its row, with ``status``
    ``failed``, the step that failed and the error, and no metrics; the others have
    ``status`` ``ok``. Counts are nullable integers and ``qc_pass`` a nullable boolean, so
    that failed rows change no column type; ``session`` and ``sex`` are missing where empty.
    """
    rows = []
    for scan, result in zip(scans.index, results):
        demographics = {
            "scan_id": scan,
            "subject_id": scans.at[scan, "subject_id"],
            "session": scans.at[scan, "session"] or None,
            "group": scans.at[scan, "group"],
            "age_years": scans.at[scan, "age"],
            "sex": scans.at[scan, "sex"] or None,
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
        "scan_id",
        "subject_id",
        "session",
        "group",
        "sex",
        "status",
        "failed_step",
        "error",
        "qc_flags",
        "brain_mask_source",
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
    flag_uncertain_segmentations(table, qc_thresholds)
    table["msprofile_version"] = pd.Series([__version__] * len(table), dtype="string")
    return table


def flag_uncertain_segmentations(table: pd.DataFrame, thresholds: QcThresholds = DEFAULT_QC_THRESHOLDS) -> None:
    """Flag, in place, the scans whose segmentation is far more uncertain than the cohort's.

    Adds ``segmentation_uncertainty_z``, the robust z-score of ``segmentation_uncertainty``
    (mean uncertainty over the scan's predicted lesions and ventricles) against the cohort
    (:func:`msprofile.qc.uncertainty_z_scores`, under ``thresholds``). A scan at
    ``thresholds.uncertainty_robust_z`` or more gets the QC flag ``segmentation_uncertainty_high``
    in ``qc_flags`` (after its preprocessing flags, in the order of :data:`msprofile.qc.QC_FLAGS`)
    and ``qc_pass`` False: its segmentation should be looked at before its numbers are used. A
    table without the column (failed scans only, or an older run) is left as it is.
    """
    if "segmentation_uncertainty" not in table:
        return
    values = pd.to_numeric(table["segmentation_uncertainty"], errors="coerce").astype("float64").to_numpy()
    z = uncertainty_z_scores(values, thresholds)
    table["segmentation_uncertainty_z"] = z
    flagged = np.nan_to_num(z, nan=-np.inf) >= thresholds.uncertainty_robust_z
    if flagged.any():
        flags = table["qc_flags"].astype("string").fillna("")
        table.loc[flagged, "qc_flags"] = [
            f"{f};segmentation_uncertainty_high" if f else "segmentation_uncertainty_high" for f in flags[flagged]
        ]
        table.loc[flagged, "qc_pass"] = False


def failures_table(cohort: pd.DataFrame) -> pd.DataFrame:
    """The failed scans of a cohort table: ``scan_id, subject_id, session, group, failed_step, error``."""
    failed = cohort[cohort["status"] == "failed"]
    return failed[list(FAILURE_COLUMNS)].reset_index(drop=True)


def lesions_by_scan(lesions: pd.DataFrame, scans: pd.DataFrame) -> pd.DataFrame:
    """Every scan's lesion table stacked (``lesions``, whose ``subject_id`` column holds the scan
    ID, as each scan's ``lesions.parquet``) with ``scan_id``, ``subject_id`` and ``session``
    (missing where empty) in front, taken from ``scans`` (the scan table)."""
    if "subject_id" not in lesions:
        return lesions
    scan_ids = lesions["subject_id"].astype("string")
    rest = lesions.drop(columns="subject_id")
    front = pd.DataFrame(
        {
            "scan_id": scan_ids,
            "subject_id": scan_ids.map(scans["subject_id"]).astype("string"),
            "session": scan_ids.map(scans["session"]).replace("", pd.NA).astype("string"),
        },
        index=lesions.index,
    )
    return pd.concat([front, rest], axis=1)
