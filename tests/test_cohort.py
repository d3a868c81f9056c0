"""The cohort table: one row per subject from the small per-subject files."""

from __future__ import annotations

import numpy as np
import pandas as pd

from msprofile.cohort import build_cohort_table, failures_table
from msprofile.io import read_stacked_parquet, save_json, write_parquet
from msprofile.jobs.cohort import cohort_job
from msprofile.lesions import REFERENCE_COLUMNS
from msprofile.qc import QcThresholds
from msprofile.stats import cohort_input


def _subject_result(subject_id, lesion_area_mm2, skull_found=True, uncertainty=0.2):
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


def _scans(ids, **columns) -> pd.DataFrame:
    """A scan table (msprofile.sheet.OUTPUT_COLUMNS that the cohort table reads) indexed by scan ID."""
    defaults = {"subject_id": list(ids), "session": [""] * len(ids), "group": ["MS"] * len(ids)}
    defaults |= {"age": [40.0] * len(ids), "sex": ["F"] * len(ids)}
    return pd.DataFrame(defaults | columns, index=pd.Index(ids, name="scan_id"))


def test_cohort_table_rows_follow_the_sheet():
    sheet = _scans(["s2", "s1"], group=["MS", "HC"], age=[44.0, np.nan], sex=["F", ""])
    results = [_subject_result("s2", 12.5), _subject_result("s1", 0.0, skull_found=False)]
    table = build_cohort_table(sheet, results)
    assert list(table.columns[:6]) == ["scan_id", "subject_id", "session", "group", "age_years", "sex"]
    assert list(table["subject_id"]) == list(table["scan_id"]) == ["s2", "s1"]
    assert table["session"].isna().all()
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


def test_scans_with_far_more_uncertain_segmentations_are_flagged():
    ids = [f"p{i}_ses-1" for i in range(8)]
    scans = _scans(ids, subject_id=[f"p{i}" for i in range(8)], session=["1"] * 8)
    values = [0.20, 0.21, 0.19, 0.22, 0.20, 0.18, 0.45, float("nan")]
    results = [_subject_result(s, 1.0, uncertainty=u) for s, u in zip(ids, values)]
    results[5] = _subject_result(ids[5], 1.0, skull_found=False, uncertainty=0.18)
    table = build_cohort_table(scans, results).set_index("scan_id")
    assert table.loc["p6_ses-1", "segmentation_uncertainty_z"] > 3
    assert table.loc["p6_ses-1", "qc_flags"] == "segmentation_uncertainty_high"
    assert not table.loc["p6_ses-1", "qc_pass"] and table.loc["p6_ses-1", "subject_id"] == "p6"
    assert table.loc["p5_ses-1", "qc_flags"] == "skull_not_removed", "a low uncertainty is never flagged"
    assert table.loc[ids[:5], "qc_pass"].all()
    assert pd.isna(table.loc["p7_ses-1", "segmentation_uncertainty_z"]) and table.loc["p7_ses-1", "qc_pass"]
    # The threshold is a QC threshold (config group qc): a stricter one re-judges from the table's inputs.
    strict = build_cohort_table(scans, results, QcThresholds(uncertainty_robust_z=1.0)).set_index("scan_id")
    assert "segmentation_uncertainty_high" in strict.loc["p3_ses-1", "qc_flags"]
    # Too few scans to know what is usual: no flag.
    small = build_cohort_table(scans.iloc[5:8], results[5:8]).set_index("scan_id")
    assert small["segmentation_uncertainty_z"].isna().all() and small.loc["p6_ses-1", "qc_pass"]


def test_sessions_are_rows_and_the_statistics_take_each_subject_once():
    ids = ["p1_ses-2", "p1_ses-10", "p2_ses-1", "p3"]
    scans = _scans(ids, subject_id=["p1", "p1", "p2", "p3"], session=["2", "10", "1", ""], age=[41.0, 49.0, 30.0, 50.0])
    results = [_subject_result(s, area) for s, area in zip(ids, [1.0, 2.0, 3.0, 4.0])]
    results[2] = {"failure": {"step": "preprocess", "error": "bad"}}
    table = build_cohort_table(scans, results)
    assert list(table["scan_id"]) == ids and list(table["session"].fillna("")) == ["2", "10", "1", ""]
    assert list(table["age_years"]) == [41.0, 49.0, 30.0, 50.0], "the age at each scan"
    assert list(failures_table(table)["scan_id"]) == ["p2_ses-1"]

    analysed = cohort_input(table)
    # p1 once, with session 2 (before 10 in natural order); p2 failed; p3 has no session.
    assert list(analysed["subject_id"]) == ["p1", "p3"]
    assert list(analysed["TotalWMHArea"]) == [1.0, 4.0]


def test_cohort_tsv_holds_the_parquet_table(tmp_path):
    scans = _scans(["a", "b_ses-1"], subject_id=["a", "b"], session=["", "1"], age=[40.5, np.nan], sex=["F", ""])
    paths = {}
    for scan in scans.index:
        result = _subject_result(scan, 2.5)
        paths[scan] = [tmp_path / scan / "metrics.json", tmp_path / scan / "qc.json", tmp_path / scan / "l.parquet"]
        save_json(result["metrics"], paths[scan][0])
        save_json(result["qc"], paths[scan][1])
        write_parquet(pd.DataFrame({"subject_id": [scan], "kind": ["3d"], "volume_ml": [0.1]}), paths[scan][2])
    out = {name: tmp_path / name for name in ("cohort.parquet", "cohort.tsv", "lesions.parquet", "failures.tsv")}
    cohort_job(scans, *(list(column) for column in zip(*paths.values())), *out.values())
    parquet = pd.read_parquet(out["cohort.parquet"])
    tsv = pd.read_csv(out["cohort.tsv"], sep="\t", dtype={"scan_id": str, "subject_id": str, "session": str})
    assert list(tsv.columns) == list(parquet.columns)
    assert tsv["age_years"].tolist()[0] == 40.5 and np.isnan(tsv["age_years"].tolist()[1])
    assert tsv["session"].isna().tolist() == [True, False] and tsv["sex"].isna().tolist() == [False, True]
    for column in ("TotalWMHArea", "lesion_volume_ml", "n_lesions_3d"):
        np.testing.assert_allclose(tsv[column].to_numpy(float), parquet[column].to_numpy(float))
    lesions = pd.read_parquet(out["lesions.parquet"])
    assert list(lesions.columns[:3]) == ["scan_id", "subject_id", "session"]
    assert list(lesions["subject_id"]) == ["a", "b"] and lesions["session"].fillna("").tolist() == ["", "1"]
