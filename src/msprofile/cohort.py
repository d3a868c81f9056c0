"""The cohort table: one row per subject of the sheet (docs/method.md section 5).

Built from each subject's metrics and QC records (the small per-subject JSON files), never
from images, so that adding one subject to a 1,381-subject sheet costs one pass over small
files; :mod:`msprofile.jobs.cohort` reads them.
"""

from __future__ import annotations

import pandas as pd

from . import __version__
from .lesions import REFERENCE_COLUMNS

DEMOGRAPHIC_COLUMNS = ("subject_id", "group", "age_years", "sex")
#: A segmentation is flagged when its mean uncertainty lies this many robust SDs (1.4826 MAD)
#: above the cohort's median; with fewer subjects than ``UNCERTAINTY_MIN_SUBJECTS`` the cohort
#: says too little about what is usual and nothing is flagged.
UNCERTAINTY_ROBUST_Z = 3.0
UNCERTAINTY_MIN_SUBJECTS = 5
UNCERTAINTY_FLAG = "segmentation_uncertainty_high"
FAILURE_COLUMNS = ("subject_id", "group", "failed_step", "error")


def subject_row(metrics: dict, qc: dict) -> dict:
    """One cohort row (without demographics) from a subject's ``metrics.json`` and
    ``preprocess_qc.json``: the reference-compatible areas (mm^2), every metric, QC measures
    and flags, and what produced them."""
    row = {column: metrics[key] for column, key in REFERENCE_COLUMNS.items()}
    row.update({key: value for key, value in metrics.items() if key not in ("subject_id",)})
    row.update(
        {
            "icv_ml_preprocess": qc["intracranial_volume_ml"],
            "brain_z_extent_mm": qc["brain_z_extent_mm"],
            "qc_pass": bool(qc["qc_pass"]),
            "qc_flags": ";".join(qc["flags"]),
            "preprocess_version": qc["msprofile_version"],
        }
    )
    return row


def build_cohort_table(sheet: pd.DataFrame, results) -> pd.DataFrame:
    """The cohort table: ``sheet`` (indexed by subject_id, with ``group``, ``age`` in years and
    ``sex``) joined with each subject's results, in sheet order.

    ``results`` holds one entry per row of ``sheet``, in its order: ``{"metrics": ...,
    "qc": ...}`` (the subject's ``metrics.json`` and ``preprocess_qc.json``) or, for a subject
    whose processing failed under ``on_error: record``, ``{"failure": ...}`` (its failure
    record, ``{"step", "error"}``). A failed subject keeps its row, with ``status``
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
                **subject_row(result["metrics"], result["qc"]),
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
    flag_uncertain_segmentations(table)
    table["msprofile_version"] = pd.Series([__version__] * len(table), dtype="string")
    return table


def flag_uncertain_segmentations(
    table: pd.DataFrame, robust_z: float = UNCERTAINTY_ROBUST_Z, min_subjects: int = UNCERTAINTY_MIN_SUBJECTS
) -> None:
    """Flag, in place, the subjects whose segmentation is far more uncertain than the cohort's.

    Adds ``segmentation_uncertainty_z``, the robust z-score of ``segmentation_uncertainty``
    (mean uncertainty over the subject's predicted lesions and ventricles) against the cohort:
    (value - median) / (1.4826 MAD), over the subjects that have a value. A subject with
    ``robust_z`` or more gets :data:`UNCERTAINTY_FLAG` in ``qc_flags`` and ``qc_pass`` False:
    its segmentation should be looked at before its numbers are used. Nothing is flagged in a
    cohort of fewer than ``min_subjects`` such subjects. A table without the column (failed
    subjects only, or an older run) is left as it is.
    """
    if "segmentation_uncertainty" not in table:
        return
    values = pd.to_numeric(table["segmentation_uncertainty"], errors="coerce").astype("float64")
    finite = values.dropna()
    z = pd.Series(float("nan"), index=table.index)
    if len(finite) >= min_subjects:
        median = float(finite.median())
        spread = 1.4826 * float((finite - median).abs().median())
        # A cohort of near-identical values must not flag a subject for a difference in the
        # fourth decimal: the spread is at least 0.005 (uncertainty is in [0, 1]).
        z = (values - median) / max(spread, 0.005)
    table["segmentation_uncertainty_z"] = z
    flagged = (z >= robust_z).fillna(False).to_numpy(bool)
    if flagged.any():
        flags = table["qc_flags"].astype("string").fillna("")
        table.loc[flagged, "qc_flags"] = [f"{f};{UNCERTAINTY_FLAG}" if f else UNCERTAINTY_FLAG for f in flags[flagged]]
        table.loc[flagged, "qc_pass"] = False


def failures_table(cohort: pd.DataFrame) -> pd.DataFrame:
    """The failed subjects of a cohort table: ``subject_id, group, failed_step, error``."""
    failed = cohort[cohort["status"] == "failed"]
    return failed[list(FAILURE_COLUMNS)].reset_index(drop=True)
