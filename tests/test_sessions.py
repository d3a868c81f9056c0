"""Scans of the subject sheet: sessions, a brain mask from another tool, the segmentation outputs
people open (probabilities on the native grid), and the training log."""

from __future__ import annotations

import json
import logging
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from msprofile.geometry import Grid, model_grid
from msprofile.io import InputImageError, save_nifti
from msprofile.jobs.preprocess import preprocess_subject
from msprofile.preprocess import PreprocessSettings, preprocess
from msprofile.qc import qc_flags
from msprofile.segmentation.infer import native_labels, native_probabilities
from msprofile.synthetic.demo_cohort import DEMO_SUBJECTS

from conftest import SampleSubject, dice, make_project, run_snakemake

# ---------------------------------------------------------------------------------------------
# A brain mask from another tool, at the job


def _preprocess(tmp_path, subject: SampleSubject, tag: str, given=None) -> dict:
    paths = {name: tmp_path / f"{tag}_{name}" for name in ("mask.nii.gz", "preproc.nii.gz", "qc.json", "qc.png")}
    preprocess_subject(
        subject.subject_id,
        subject.flair_path,
        skull_stripped=False,
        settings=PreprocessSettings(),
        brain_mask_path=paths["mask.nii.gz"],
        flair_preproc_path=paths["preproc.nii.gz"],
        qc_json_path=paths["qc.json"],
        qc_png_path=paths["qc.png"],
        given_brain_mask_path=given,
    )
    return paths


def test_a_given_brain_mask_replaces_the_brain_extraction(tmp_path):
    subject = SampleSubject("105465")
    own = preprocess(subject.flair, subject.affine).brain_mask
    # Another tool's mask: the workflow's own, eroded by a slice at the top and bottom and coded 255.
    given = own.copy()
    brain_slices = np.flatnonzero(own.any(axis=(0, 1)))
    given[..., brain_slices[[0, -1]]] = 0
    save_nifti((given > 0).astype(np.uint8) * 255, subject.affine, tmp_path / "given.nii.gz")

    paths = _preprocess(tmp_path, subject, "given", tmp_path / "given.nii.gz")
    written = np.asarray(nib.load(paths["mask.nii.gz"]).dataobj)
    np.testing.assert_array_equal(written, given > 0)
    qc = json.loads(paths["qc.json"].read_text())
    assert qc["brain_mask_source"] == "given" and qc_flags(qc) == [], qc_flags(qc)
    assert (
        qc["intracranial_volume_ml"]
        < json.loads(_preprocess(tmp_path, subject, "own")["qc.json"].read_text())["intracranial_volume_ml"]
    )


def test_a_given_brain_mask_off_the_flair_grid_is_refused(tmp_path):
    subject = SampleSubject("105465")
    mask = preprocess(subject.flair, subject.affine).brain_mask
    shifted = subject.affine.copy()
    shifted[:3, 3] += 5.0
    save_nifti(mask, shifted, tmp_path / "shifted.nii.gz")
    save_nifti(np.zeros_like(mask), subject.affine, tmp_path / "empty.nii.gz")
    for name, words in (
        ("shifted.nii.gz", "brain mask is not on the FLAIR's grid"),
        ("empty.nii.gz", "brain mask is empty"),
    ):
        with pytest.raises(InputImageError) as caught:
            _preprocess(tmp_path, subject, name, tmp_path / name)
        assert caught.value.subject_id == "105465" and caught.value.path.endswith(name)
        assert words in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Class probabilities on the native grid


def test_native_probabilities_follow_the_native_labels():
    native = Grid((60, 50, 4), np.diag([0.45, 0.45, 5.0, 1.0]))
    model = model_grid(native, matrix=(40, 40), pixel_size_mm=0.9, centre_voxel=np.array([30, 25]))
    logits = np.zeros((*model.shape, 3), dtype=np.float32)
    logits[..., 0] = 2
    logits[8:20, 10:22, :, 1] = 3
    logits[24:32, 12:20, :, 2] = 3
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    brain = np.zeros(native.shape, bool)
    brain[5:55, 5:45] = True
    mapped = native_probabilities(probabilities, model, native, brain)
    assert mapped.shape == (*native.shape, 3) and mapped.dtype == np.float32
    np.testing.assert_allclose(mapped.sum(axis=-1), 1.0, atol=1e-6)
    assert mapped.min() >= 0 and (mapped[~brain][:, 1:] == 0).all()
    labels = native_labels(probabilities, model, native, brain)
    for label in (1, 2):
        assert dice(labels == label, np.argmax(mapped, axis=-1) == label) > 0.9


# ---------------------------------------------------------------------------------------------
# Training says how far it is


def test_training_logs_every_epoch(caplog):
    pytest.importorskip("tensorflow")
    from msprofile.segmentation.train import TrainingSettings, train
    from msprofile.workflow import epoch_logger

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 32, 32, 1)).astype(np.float32)
    y = (x[..., 0] > 1).astype(np.uint8)
    settings = TrainingSettings(base_filters=2, epochs=3, steps_per_epoch=1, batch_size=2, crop=32)
    with caplog.at_level(logging.INFO, logger="msprofile"):
        _, losses = train(x, y, settings, on_epoch=epoch_logger(settings.epochs, "test model"))
    lines = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()]
    assert len(lines) == 3
    for number, (line, loss) in enumerate(zip(lines, losses), start=1):
        assert line.startswith(f"test model epoch {number}/3: loss {loss:.5f}, learning rate ")
        assert line.endswith(" s")
    assert "learning rate 0.001," in lines[0] and "learning rate 5e-05," in lines[-1], "the cosine schedule's ends"


# ---------------------------------------------------------------------------------------------
# Through the workflow: a subject scanned twice, a given brain mask


@pytest.mark.slow
def test_sessions_and_a_given_brain_mask_through_the_workflow(tmp_path, demo_run):
    project = make_project(tmp_path)
    data = project / "data"
    data.mkdir()
    ms, hc = DEMO_SUBJECTS[0].subject_id, DEMO_SUBJECTS[8].subject_id
    for subject in (ms, hc):
        shutil.copy(demo_run / "resources" / "demo" / subject / "flair.nii.gz", data / f"{subject}.nii.gz")
    shutil.copy(demo_run / "resources" / "demo" / hc / "brain.nii.gz", data / f"{hc}_brain.nii.gz")
    (project / "config" / "subjects.tsv").write_text(
        "subject_id\tsession\tflair\tgroup\tage\tsex\tbrain_mask\n"
        f"{ms}\tm12\t../data/{ms}.nii.gz\tMS\t41\tF\t\n"
        f"{ms}\tbaseline\t../data/{ms}.nii.gz\tMS\t40\tF\t\n"
        f"{hc}\t\t../data/{hc}.nii.gz\tHC\t50\tM\t../data/{hc}_brain.nii.gz\n"
    )
    run_snakemake(project, "--cores", "2")
    results = project / "results"
    scans = [f"{ms}_ses-m12", f"{ms}_ses-baseline", hc]
    assert sorted(p.name for p in (results / "subjects").iterdir()) == sorted(scans)
    cohort = pd.read_parquet(results / "cohort" / "cohort.parquet")
    assert list(cohort["scan_id"]) == scans and list(cohort["subject_id"]) == [ms, ms, hc]
    assert cohort["session"].fillna("").tolist() == ["m12", "baseline", ""]
    assert list(cohort["age_years"]) == [41.0, 40.0, 50.0]
    assert list(cohort["brain_mask_source"]) == ["workflow", "workflow", "given"]
    truth = np.asarray(nib.load(data / f"{hc}_brain.nii.gz").dataobj) > 0
    np.testing.assert_array_equal(
        np.asarray(nib.load(results / "subjects" / hc / "brain_mask.nii.gz").dataobj) > 0, truth
    )
    # Each subject counts once in the statistics, with its first session in natural order
    # ("baseline" before "m12").
    descriptives = pd.read_csv(results / "stats" / "descriptives.tsv", sep="\t")
    ages = descriptives.query("variable == 'age_years' and sex == 'all' and age_group == 'all'").set_index("group")
    assert ages.loc["all", "n"] == 2 and ages.loc["MS", "mean"] == 40.0
    # Derivatives on request need IDs that are BIDS labels; the demo's have hyphens.
    result = run_snakemake(project, "--dry-run", "--config", "bids_derivatives=True", check=False)
    assert result.returncode != 0
    assert f"scan {hc}: subject ID '{hc}' is not letters and digits only" in result.stdout + result.stderr
