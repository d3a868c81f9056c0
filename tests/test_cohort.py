"""The cohort table: one row per subject from the small per-subject files."""

from __future__ import annotations

import numpy as np
import pandas as pd

from msprofile.cohort import build_cohort_table
from msprofile.io import read_stacked_parquet
from msprofile.lesions import REFERENCE_COLUMNS
from msprofile.qc import QcThresholds


def _subject_result(subject_id, lesion_area_mm2, skull_found=True):
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
    if not skull_found:
        qc["brain_to_head_area_ratio"] = 0.95
    return {"metrics": metrics, "qc": qc}


def test_cohort_table_rows_follow_the_sheet():
    sheet = pd.DataFrame(
        {"group": ["MS", "HC"], "age": [44.0, np.nan], "sex": ["F", ""]},
        index=pd.Index(["s2", "s1"], name="subject_id"),
    )
    results = [_subject_result("s2", 12.5), _subject_result("s1", 0.0, skull_found=False)]
    table = build_cohort_table(sheet, results)
    assert list(table["subject_id"]) == ["s2", "s1"]
    assert table.loc[0, "TotalWMHArea"] == 12.5 and table.loc[1, "TotalWMHArea"] == 0.0
    for column in REFERENCE_COLUMNS:
        assert column in table
    assert np.isnan(table.loc[1, "age_years"]) and pd.isna(table.loc[1, "sex"])
    assert table.loc[0, "qc_pass"] and table.loc[0, "qc_flags"] == ""
    assert not table.loc[1, "qc_pass"] and table.loc[1, "qc_flags"] == "skull_not_removed"
    # The flags are judged under the thresholds given (config group qc), from the measures.
    strict = build_cohort_table(sheet, results, QcThresholds(icv_range_ml=(1500.0, 2000.0)))
    assert list(strict["qc_flags"]) == [
        "intracranial_volume_implausible",
        "intracranial_volume_implausible;skull_not_removed",
    ]
    assert table["age_years"].dtype == "float64" and table["group"].dtype == "string"


def test_lesion_tables_concatenate_and_keep_columns_when_empty(tmp_path):
    a = pd.DataFrame({"subject_id": ["s1"], "kind": ["2d"], "area_mm2": [3.0]})
    empty = a.iloc[0:0]
    a.to_parquet(tmp_path / "a.parquet")
    empty.to_parquet(tmp_path / "b.parquet")
    assert len(read_stacked_parquet([tmp_path / "a.parquet", tmp_path / "b.parquet"])) == 1
    only_empty = read_stacked_parquet([tmp_path / "b.parquet"])
    assert len(only_empty) == 0 and list(only_empty.columns) == ["subject_id", "kind", "area_mm2"]
