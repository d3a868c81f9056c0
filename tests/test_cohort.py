"""The cohort table: one row per subject from the small per-subject files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from msprofile.cohort import build_cohort_table, concat_lesion_tables
from msprofile.lesions import REFERENCE_COLUMNS


def _subject_files(tmp_path, subject_id, lesion_area_mm2, flags=()):
    metrics = {"subject_id": subject_id, "intracranial_area_mm2": 1000.0, "ventricle_area_mm2": 50.0,
               "lesion_area_mm2": lesion_area_mm2, "pewmh_area_mm2": lesion_area_mm2, "pawmh_area_mm2": 0.0,
               "jcwmh_area_mm2": 0.0, "lesion_volume_ml": lesion_area_mm2 * 6.5 / 1000, "n_lesions_3d": 1,
               "intracranial_area_mm2_reference_window": None,
               "segmentation_model": "m", "segmentation_model_sha256": "abc"}
    qc = {"intracranial_volume_ml": 1400.0, "brain_z_extent_mm": 120.0, "qc_pass": not flags, "flags": list(flags),
          "msprofile_version": "0.1.0"}
    (tmp_path / f"{subject_id}_metrics.json").write_text(json.dumps(metrics))
    (tmp_path / f"{subject_id}_qc.json").write_text(json.dumps(qc))
    return tmp_path / f"{subject_id}_metrics.json", tmp_path / f"{subject_id}_qc.json"


def test_cohort_table_rows_follow_the_sheet(tmp_path):
    sheet = pd.DataFrame({"group": ["MS", "HC"], "age": [44.0, np.nan], "sex": ["F", ""]},
                         index=pd.Index(["s2", "s1"], name="subject_id"))
    files = [_subject_files(tmp_path, "s2", 12.5), _subject_files(tmp_path, "s1", 0.0, flags=("skull_not_removed",))]
    table = build_cohort_table(sheet, [f[0] for f in files], [f[1] for f in files])
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
    assert len(concat_lesion_tables([tmp_path / "a.parquet", tmp_path / "b.parquet"])) == 1
    only_empty = concat_lesion_tables([tmp_path / "b.parquet"])
    assert len(only_empty) == 0 and list(only_empty.columns) == ["subject_id", "kind", "area_mm2"]
