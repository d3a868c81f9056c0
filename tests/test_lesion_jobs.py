"""The per-subject lesion job on a real subject, fed its manual masks as the segmentation."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from msprofile.io import save_json, save_nifti
from msprofile.jobs.lesions import lesion_metrics_subject
from msprofile.labels import label_volume
from msprofile.preprocess import preprocess

from conftest import SampleSubject


def _run(tmp_path, subject, labels, flair, brain, affine, tag):
    names = ("seg.nii.gz", "uncertainty.nii.gz", "flair.nii.gz", "brain.nii.gz")
    paths = {name: tmp_path / f"{tag}_{name}" for name in names}
    save_nifti(labels, affine, paths["seg.nii.gz"])
    # Uncertainty 0.1 on the ventricles, 0.3 on the lesions, 0.9 elsewhere (never averaged in).
    uncertainty = np.select([labels == 1, labels == 2], [0.1, 0.3], 0.9).astype(np.float32)
    save_nifti(uncertainty, affine, paths["uncertainty.nii.gz"])
    save_nifti(flair, affine, paths["flair.nii.gz"])
    save_nifti(brain, affine, paths["brain.nii.gz"])
    out = {
        name: tmp_path / f"{tag}_{name}"
        for name in ("lesions.parquet", "classes.nii.gz", "metrics.json", "lesion_stats.tsv", "qc.png")
    }
    card = tmp_path / "model.json"
    save_json({"name": "manual", "files": {"model.onnx": {"sha256": "x"}}}, card)
    metrics = lesion_metrics_subject(
        subject.subject_id,
        paths["seg.nii.gz"],
        paths["uncertainty.nii.gz"],
        paths["flair.nii.gz"],
        paths["brain.nii.gz"],
        card,
        out["lesions.parquet"],
        out["classes.nii.gz"],
        out["metrics.json"],
        stats_path=out["lesion_stats.tsv"],
        qc_png_path=out["qc.png"],
    )
    return metrics, out


@pytest.fixture(scope="module")
def manual_case():
    subject = SampleSubject("105074")
    brain = preprocess(subject.flair, subject.affine).brain_mask
    return subject, label_volume(subject.lesions, subject.ventricles), brain


def test_lesion_job_outputs(tmp_path, manual_case):
    subject, labels, brain = manual_case
    metrics, out = _run(tmp_path, subject, labels, subject.flair, brain, subject.affine, "a")
    classes = nib.load(out["classes.nii.gz"])
    np.testing.assert_allclose(classes.affine, subject.affine, atol=1e-4)
    class_codes = np.asarray(classes.dataobj)
    assert ((class_codes > 0) == (labels == 2)).all()
    table = pd.read_parquet(out["lesions.parquet"])
    assert set(table["kind"]) == {"2d", "3d"} and (table["subject_id"] == "105074").all()
    two_d = table[table["kind"] == "2d"]
    assert two_d["area_mm2"].sum() == pytest.approx(metrics["lesion_area_mm2"])
    assert metrics["lesion_area_mm2"] == pytest.approx(
        metrics["pewmh_area_mm2"] + metrics["pawmh_area_mm2"] + metrics["jcwmh_area_mm2"]
    )
    voxel_area_mm2 = float(np.prod(np.sqrt((subject.affine[:3, :2] ** 2).sum(axis=0))))
    assert metrics["lesion_area_mm2"] == pytest.approx((labels == 2).sum() * voxel_area_mm2, rel=1e-4)
    written = json.loads(out["metrics.json"].read_text())
    assert written["segmentation_model"] == "manual" and written["subject_id"] == "105074"
    assert written["segmentation_uncertainty_lesions"] == pytest.approx(0.3)
    assert written["segmentation_uncertainty_ventricles"] == pytest.approx(0.1)
    lesion_share = (labels == 2).sum() / (labels > 0).sum()
    assert written["segmentation_uncertainty"] == pytest.approx(0.3 * lesion_share + 0.1 * (1 - lesion_share))

    stats = pd.read_csv(out["lesion_stats.tsv"], sep="\t", keep_default_na=False).set_index("class")
    assert list(stats.index) == ["periventricular", "juxtacortical", "paraventricular", "all"]
    assert list(stats["lst_ai_region"]) == ["Periventricular", "Juxtacortical", "Subcortical", ""]
    voxel_ml = abs(np.linalg.det(subject.affine[:3, :3])) / 1000
    for code, name in ((1, "periventricular"), (2, "paraventricular"), (3, "juxtacortical")):
        assert stats.loc[name, "n_voxels"] == (class_codes == code).sum()
        assert stats.loc[name, "volume_ml"] == pytest.approx(stats.loc[name, "n_voxels"] * voxel_ml, rel=1e-5)
    assert (
        stats.loc["all", "n_voxels"] == (labels == 2).sum() and stats.loc["all", "n_lesions"] == metrics["n_lesions_3d"]
    )
    assert stats.loc["all", "volume_ml"] == pytest.approx(metrics["lesion_volume_ml"], rel=1e-5)
    assert (
        stats.loc[["periventricular", "juxtacortical", "paraventricular"], "n_lesions"].sum() == metrics["n_lesions_3d"]
    )

    picture = np.asarray(Image.open(out["qc.png"]).convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(picture, axis=0)}
    grey = {c for c in colours if c[0] == c[1] == c[2]}
    assert len(colours - grey) > 50, "ventricles and lesions are drawn in colour over the grey FLAIR"


def test_lesion_job_does_not_depend_on_stored_orientation(tmp_path, manual_case):
    subject, labels, brain = manual_case
    nx = subject.flair.shape[0]
    new_to_old = np.array([[0, -1, 0, nx - 1], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    reorder = lambda a: np.ascontiguousarray(np.flip(a.transpose(2, 0, 1), axis=1))  # noqa: E731
    affine = subject.affine @ new_to_old
    first, _ = _run(tmp_path, subject, labels, subject.flair, brain, subject.affine, "a")
    second, _ = _run(tmp_path, subject, reorder(labels), reorder(subject.flair), reorder(brain), affine, "b")
    for key, value in first.items():
        if isinstance(value, float):
            assert second[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
        else:
            assert second[key] == value, key
