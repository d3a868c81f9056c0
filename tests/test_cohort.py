"""The cohort table: one row per subject from the small per-subject files."""

from __future__ import annotations

import numpy as np
import pandas as pd

from msprofile.cohort import build_cohort_table
from msprofile.io import read_stacked_parquet
from msprofile.lesions import REFERENCE_COLUMNS


def _subject_result(subject_id, lesion_area_mm2, flags=(), uncertainty=0.2):
    metrics = {
        "subject_id": subject_id,
        "intracranial_area_mm2": 1000.0,
        "ventricle_area_mm2": 50.0,
        "lesion_area_mm2": lesion_area_mm2,
        "pewmh_area_mm2": lesion_area_mm2,
        "pawmh_area_mm2": 0.0,
        "jcwmh_area_mm2": 0.0,
        "lesion_volume_ml": lesion_area_mm2 * 6.5 / 1000,
        "n_lesions_3d": 1,
        "intracranial_area_mm2_reference_window": None,
        "segmentation_model": "m",
        "segmentation_model_sha256": "abc",
        "segmentation_uncertainty": uncertainty,
    }
    qc = {
        "intracranial_volume_ml": 1400.0,
        "brain_z_extent_mm": 120.0,
        "qc_pass": not flags,
        "flags": list(flags),
        "msprofile_version": "0.1.0",
    }
    return {"metrics": metrics, "qc": qc}


def test_cohort_table_rows_follow_the_sheet():
    sheet = pd.DataFrame(
        {"group": ["MS", "HC"], "age": [44.0, np.nan], "sex": ["F", ""]},
        index=pd.Index(["s2", "s1"], name="subject_id"),
    )
    results = [_subject_result("s2", 12.5), _subject_result("s1", 0.0, flags=("skull_not_removed",))]
    table = build_cohort_table(sheet, results)
    assert list(table["subject_id"]) == ["s2", "s1"]
    assert table.loc[0, "TotalWMHArea"] == 12.5 and table.loc[1, "TotalWMHArea"] == 0.0
    for column in REFERENCE_COLUMNS:
        assert column in table
    assert np.isnan(table.loc[1, "age_years"]) and pd.isna(table.loc[1, "sex"])
    assert not table.loc[1, "qc_pass"] and table.loc[1, "qc_flags"] == "skull_not_removed"
    assert table["age_years"].dtype == "float64" and table["group"].dtype == "string"


def test_lesion_tables_concatenate_and_keep_columns_when_empty(tmp_path):
    a = pd.DataFrame({"subject_id": ["s1"], "kind": ["2d"], "area_mm2": [3.0]})
    empty = a.iloc[0:0]
    a.to_parquet(tmp_path / "a.parquet")
    empty.to_parquet(tmp_path / "b.parquet")
    assert len(read_stacked_parquet([tmp_path / "a.parquet", tmp_path / "b.parquet"])) == 1
    only_empty = read_stacked_parquet([tmp_path / "b.parquet"])
    assert len(only_empty) == 0 and list(only_empty.columns) == ["subject_id", "kind", "area_mm2"]


def test_subjects_with_far_more_uncertain_segmentations_are_flagged():
    ids = [f"s{i}" for i in range(8)]
    sheet = pd.DataFrame(
        {"group": ["MS"] * 8, "age": [40.0] * 8, "sex": ["F"] * 8}, index=pd.Index(ids, name="subject_id")
    )
    values = [0.20, 0.21, 0.19, 0.22, 0.20, 0.18, 0.45, float("nan")]
    results = [_subject_result(s, 1.0, uncertainty=u) for s, u in zip(ids, values)]
    results[5] = _subject_result("s5", 1.0, flags=("skull_not_removed",), uncertainty=0.18)
    table = build_cohort_table(sheet, results).set_index("subject_id")
    assert table.loc["s6", "segmentation_uncertainty_z"] > 3
    assert table.loc["s6", "qc_flags"] == "segmentation_uncertainty_high" and not table.loc["s6", "qc_pass"]
    assert table.loc["s5", "qc_flags"] == "skull_not_removed", "a low uncertainty is never flagged"
    assert table.loc[["s0", "s1", "s2", "s3", "s4"], "qc_pass"].all()
    assert pd.isna(table.loc["s7", "segmentation_uncertainty_z"]) and table.loc["s7", "qc_pass"]
    # Too few subjects to know what is usual: no flag.
    small = build_cohort_table(sheet.iloc[5:8], results[5:8]).set_index("subject_id")
    assert small["segmentation_uncertainty_z"].isna().all() and small.loc["s6", "qc_pass"]
