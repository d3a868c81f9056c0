"""The cohort tables: one row per subject, and every lesion of every subject.

Built from the small per-subject JSON and Parquet files only, never from images, so that
adding one subject to a 1,381-subject sheet costs one pass over small files.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd

from . import __version__
from .io import atomic_path
from .lesions import REFERENCE_COLUMNS
from .workflow import is_placeholder, read_failure

log = logging.getLogger(__name__)

DEMOGRAPHIC_COLUMNS = ("subject_id", "group", "age_years", "sex")
FAILURE_COLUMNS = ("subject_id", "group", "failed_step", "error")


def subject_row(metrics: dict, qc: dict) -> dict:
    """One cohort row (without demographics) from a subject's ``metrics.json`` and
    ``preprocess_qc.json``: the reference-compatible areas (mm^2), every metric, QC measures
    and flags, and what produced them."""
    row = {column: metrics[key] for column, key in REFERENCE_COLUMNS.items()}
    row.update({key: value for key, value in metrics.items() if key not in ("subject_id",)})
    row.update({
        "icv_ml_preprocess": qc["intracranial_volume_ml"],
        "brain_z_extent_mm": qc["brain_z_extent_mm"],
        "qc_pass": bool(qc["qc_pass"]),
        "qc_flags": ";".join(qc["flags"]),
        "preprocess_version": qc["msprofile_version"],
    })
    return row


def build_cohort_table(sheet: pd.DataFrame, metrics_paths, qc_paths) -> pd.DataFrame:
    """The cohort table: ``sheet`` (indexed by subject_id, with ``group``, ``age`` in years and
    ``sex``) joined with each subject's metrics and QC, in sheet order.

    ``metrics_paths`` and ``qc_paths`` are in the order of ``sheet``'s rows. A subject whose
    processing failed under ``on_error: record`` (its ``metrics.json`` is a placeholder) keeps
    its row, with ``status`` ``failed``, the step that failed and the error from its
    failure record, and no metrics; the others have ``status`` ``ok``. Counts are nullable
    integers and ``qc_pass`` a nullable boolean, so that failed rows change no column type.
    """
    rows = []
    for subject_id, metrics_path, qc_path in zip(sheet.index, metrics_paths, qc_paths):
        demographics = {
            "subject_id": subject_id,
            "group": sheet.at[subject_id, "group"],
            "age_years": sheet.at[subject_id, "age"],
            "sex": sheet.at[subject_id, "sex"] or None,
        }
        if is_placeholder(metrics_path):
            failure = read_failure(Path(metrics_path).parent) or {
                "step": "unknown", "error": "no failure record; see the subject's logs"}
            rows.append({**demographics, "status": "failed", "failed_step": failure["step"],
                         "error": failure["error"]})
            continue
        metrics = json.loads(Path(metrics_path).read_text())
        qc = json.loads(Path(qc_path).read_text())
        rows.append({**demographics, "status": "ok", "failed_step": None, "error": None,
                     **subject_row(metrics, qc)})
    table = pd.DataFrame(rows)
    table["age_years"] = table["age_years"].astype("float64")
    for column in ("subject_id", "group", "sex", "status", "failed_step", "error", "qc_flags", "segmentation_model",
                   "segmentation_model_sha256", "preprocess_version"):
        table[column] = table[column].astype("string") if column in table else pd.Series(
            pd.NA, index=table.index, dtype="string")
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


def write_parquet(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``table`` as Parquet without its index, atomically."""
    with atomic_path(path, suffix=".parquet") as tmp:
        table.to_parquet(tmp, index=False)


def concat_lesion_tables(paths) -> pd.DataFrame:
    """Every subject's ``lesions.parquet`` in one table (subjects without lesions add no row).

    Read and stacked as Arrow tables, which costs a fraction of going through pandas per
    file (1,381 files in a cohort).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(p) for p in paths]
    # An empty table's columns may be untyped; leave those out of the type promotion.
    non_empty = [t for t in tables if t.num_rows]
    if non_empty:
        return pa.concat_tables(non_empty, promote_options="default").to_pandas()
    return tables[0].to_pandas() if tables else pd.DataFrame()


