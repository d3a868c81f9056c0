"""Longitudinal change: rigid registration of two sessions, change detection, ITK transforms."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from msprofile import stats
from msprofile.geometry import Grid
from msprofile.io import read_itk_affine, save_nifti
from msprofile.jobs.demo import demo_phantom
from msprofile.jobs.statistics import load_change_table
from msprofile.longitudinal import ChangeClass, ChangeSettings, Session, analyse_pair, detect_change, match_intensities
from msprofile.outputs import CHANGE_FIGURES, CHANGE_TABLES
from msprofile.preprocess import preprocess
from msprofile.registration import register_rigid, registration_quality
from msprofile.synthetic.demo_cohort import DEMO_SUBJECTS

from conftest import REPO, SampleSubject, change_config, make_project, planned_jobs, require_lesjak, run_snakemake

# ---------------------------------------------------------------------------------------------
# Registration


def _rigid(angle_deg: float, axis: int, translation_mm, center_mm) -> np.ndarray:
    angle = np.radians(angle_deg)
    c, s = np.cos(angle), np.sin(angle)
    i, j = [a for a in range(3) if a != axis]
    rotation = np.eye(3)
    rotation[i, i], rotation[i, j], rotation[j, i], rotation[j, j] = c, -s, s, c
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = np.asarray(translation_mm) + center_mm - rotation @ center_mm
    return matrix


def test_registration_recovers_a_known_head_movement_and_is_reproducible():
    """The follow-up is the baseline's voxels with its affine moved by a known rigid transform
    (the head turned 4 degrees and shifted 6 mm between sessions): the registration must find
    that transform, the same to the last bit twice, and rate the fit as good."""
    subject = SampleSubject("105465")
    brain = preprocess(subject.flair, subject.affine).brain_mask > 0
    baseline_grid = Grid(subject.flair.shape, subject.affine)
    brain_centre = (subject.affine @ np.r_[np.argwhere(brain).mean(axis=0), 1.0])[:3]
    moved = _rigid(4.0, 2, (3.0, -4.0, 2.0), brain_centre) @ _rigid(2.0, 0, (0, 0, 0), brain_centre)
    followup_grid = Grid(subject.flair.shape, moved @ subject.affine)

    first = register_rigid(subject.flair, baseline_grid, brain, subject.flair, followup_grid, brain)
    second = register_rigid(subject.flair, baseline_grid, brain, subject.flair, followup_grid, brain)
    assert first.matrix.tobytes() == second.matrix.tobytes() and first.metric == second.metric

    points = subject.affine @ np.c_[np.argwhere(brain)[::20], np.ones(len(np.argwhere(brain)[::20]))].T
    error_mm = np.linalg.norm((first.matrix @ points - moved @ points)[:3], axis=0)
    assert error_mm.mean() < 0.5 and error_mm.max() < 1.5, (error_mm.mean(), error_mm.max())
    quality = registration_quality(
        subject.flair, baseline_grid, brain, subject.flair, followup_grid, brain, first.matrix
    )
    assert quality["correlation"] > 0.95 and quality["mask_overlap_dice"] > 0.97, quality
    unregistered = registration_quality(
        subject.flair, baseline_grid, brain, subject.flair, followup_grid, brain, np.eye(4)
    )
    assert unregistered["correlation"] < quality["correlation"] - 0.2, unregistered


def test_itk_transform_files_read_as_itk_maps_points(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([0.99, -0.05, 0.02, 0.06, 1.01, 0.03, -0.02, -0.03, 0.98])
    transform.SetTranslation([4.0, -7.5, 12.0])
    transform.SetCenter([10.0, -20.0, 5.0])
    sitk.WriteTransform(transform, str(tmp_path / "t.txt"))
    ras = read_itk_affine(tmp_path / "t.txt")
    flip = np.array([-1.0, -1.0, 1.0])
    for point_ras in ([0.0, 0.0, 0.0], [30.0, -12.0, 44.0], [-55.0, 70.0, -8.0]):
        expected_lps = transform.TransformPoint(tuple(float(v) for v in np.asarray(point_ras) * flip))
        np.testing.assert_allclose(ras @ np.r_[point_ras, 1.0], np.r_[np.asarray(expected_lps) * flip, 1.0], atol=1e-9)
    (tmp_path / "bad.txt").write_text("#Insight Transform File V1.0\nTransform: BSplineTransform_double_3_3\n")
    with pytest.raises(ValueError, match="not a 3-D ITK affine transform"):
        read_itk_affine(tmp_path / "bad.txt")


# ---------------------------------------------------------------------------------------------
# Change detection on a phantom pair


def _phantom_pair(seed: int = 0):
    """Two sessions of a white-matter slab (intensity 100, noise 5) on one grid of 1 x 1 x 3 mm
    voxels. Baseline: a stable lesion A, a lesion B that later grows, a lesion C that later
    vanishes and a faint lesion D. Follow-up (scanner gain 1.3): A unchanged, B grown to twice
    its width, C gone, a new lesion E, and D at the same intensity but now segmented."""
    rng = np.random.default_rng(seed)
    shape = (80, 80, 12)
    brain = np.zeros(shape, bool)
    brain[5:75, 5:75, 1:11] = True
    baseline = rng.normal(100.0, 5.0, shape).astype(np.float32)
    followup = rng.normal(100.0, 5.0, shape).astype(np.float32)
    baseline_p = np.zeros(shape, np.float32)
    followup_p = np.zeros(shape, np.float32)
    boxes = {
        "A": (slice(10, 18), slice(10, 18), slice(4, 7)),
        "B": (slice(30, 36), slice(10, 18), slice(4, 7)),
        "B_grown": (slice(30, 42), slice(10, 18), slice(4, 7)),
        "C": (slice(55, 63), slice(10, 18), slice(4, 7)),
        "D": (slice(10, 18), slice(40, 48), slice(4, 7)),
        "E": (slice(40, 48), slice(50, 58), slice(4, 7)),
    }
    for name in ("A", "B", "C", "D"):
        baseline[boxes[name]] += 60
        baseline_p[boxes[name]] = 0.95 if name != "D" else 0.2
    for name in ("A", "B_grown", "D", "E"):
        followup[boxes[name]] += 60
        followup_p[boxes[name]] = 0.95
    return baseline, baseline_p, followup * 1.3, followup_p, brain, boxes


def test_change_detection_calls_new_enlarging_and_vanished_lesions_but_not_a_resegmented_one():
    baseline, baseline_p, followup, followup_p, brain, boxes = _phantom_pair()
    voxel_ml = 3.0 / 1000
    result = detect_change(baseline, baseline_p, followup, followup_p, brain, voxel_ml)
    counts = result.counts()
    assert counts["new_lesions"] == 1 and counts["enlarging_lesions"] == 1, counts
    assert counts["vanished_lesions"] == 1 and counts["shrinking_lesions"] == 0, counts
    labels = result.labels
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1, 2}
    assert (labels[boxes["E"]] == ChangeClass.NEW).mean() == 1.0
    grown = np.zeros(brain.shape, bool)
    grown[boxes["B_grown"]] = True
    grown[boxes["B"]] = False
    assert (labels[grown] == ChangeClass.ENLARGING).mean() > 0.9 and (labels[boxes["B"]] == 0).all()
    # D brightened by nothing: segmented at follow-up only, it is not new. A is stable.
    assert (labels[boxes["D"]] == 0).all() and (labels[boxes["A"]] == 0).all()
    assert counts["new_volume_ml"] == pytest.approx(8 * 8 * 3 * voxel_ml)
    assert counts["vanished_volume_ml"] == pytest.approx(8 * 8 * 3 * voxel_ml)
    assert counts["enlarging_volume_ml"] == pytest.approx(6 * 8 * 3 * voxel_ml, rel=0.1)

    # Segmentations alone (no intensity gate) would call the faint lesion D new.
    ungated = detect_change(
        baseline, baseline_p, followup, followup_p, brain, voxel_ml, ChangeSettings(intensity_change_sd=-1e9)
    )
    assert ungated.counts()["new_lesions"] == 2


def test_a_smooth_gain_difference_between_sessions_does_not_hide_change():
    """The follow-up's receiver field differs from the baseline's by a smooth ramp (-25 % to
    +25 % across the slab, as two coils or two protocols give): one histogram mapping cannot
    remove it, so without the differential bias correction the vanished lesion C, in the
    brightened half, is lost in the offset; with it (the default) all three changes are found."""
    baseline, baseline_p, followup, followup_p, brain, boxes = _phantom_pair()
    ramp = (1.0 + 0.25 * np.linspace(-1.0, 1.0, brain.shape[0]))[:, None, None].astype(np.float32)
    arguments = (baseline, baseline_p, followup * ramp, followup_p, brain, 0.003)
    corrected = detect_change(*arguments, voxel_size_mm=(1.0, 1.0, 3.0)).counts()
    assert (corrected["new_lesions"], corrected["enlarging_lesions"], corrected["vanished_lesions"]) == (1, 1, 1)
    uncorrected = detect_change(*arguments, ChangeSettings(bias_field_mm=0.0), voxel_size_mm=(1.0, 1.0, 3.0)).counts()
    assert uncorrected["vanished_lesions"] == 0, uncorrected


def test_a_session_against_itself_has_no_change_and_shapes_must_agree():
    baseline, baseline_p, _, _, brain, _ = _phantom_pair()
    rng = np.random.default_rng(3)
    rescan = baseline * 0.8 + rng.normal(0, 3, baseline.shape).astype(np.float32)
    result = detect_change(baseline, baseline_p, rescan, baseline_p, brain, 0.003)
    assert result.counts()["new_or_enlarging_lesions"] == 0 and not result.labels.any() and result.lesions.empty
    # One file listed as two sessions: no change, not an error.
    same = detect_change(baseline, baseline_p, baseline, baseline_p, brain, 0.003)
    assert not same.labels.any() and same.lesions.empty and np.abs(same.difference_sd).max() < 0.01
    with pytest.raises(ValueError, match="share one grid"):
        detect_change(baseline, baseline_p, rescan[:-1], baseline_p, brain, 0.003)
    with pytest.raises(ValueError, match="do not overlap"):
        detect_change(baseline, baseline_p, rescan, baseline_p, np.zeros_like(brain), 0.003)


def test_intensity_matching_follows_the_target_histogram():
    rng = np.random.default_rng(1)
    source = rng.gamma(4.0, 20.0, (40, 40, 5)).astype(np.float32)
    target = 3.0 * source**1.1 + 50
    mask = np.ones(source.shape, bool)
    matched = match_intensities(source, target, mask)
    np.testing.assert_allclose(np.percentile(matched, [5, 50, 95]), np.percentile(target, [5, 50, 95]), rtol=0.01)


def test_pair_analysis_works_on_the_follow_up_grid_through_the_registration():
    """The baseline on its own grid, the follow-up on a grid shifted 5 mm: with the right
    transform, the change map lands on the follow-up's grid in the follow-up's places."""
    baseline, baseline_p, followup, followup_p, brain, boxes = _phantom_pair()
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    shift = np.eye(4)
    shift[:3, 3] = (5.0, 0.0, 0.0)  # a baseline point -> the same anatomy in the follow-up's space
    followup_grid = Grid(brain.shape, shift @ affine)
    result = analyse_pair(
        Session(baseline, brain, baseline_p, Grid(brain.shape, affine)),
        Session(followup, brain, followup_p, followup_grid),
        shift,
    )
    assert result.labels.shape == brain.shape and result.counts()["new_lesions"] == 1
    assert (result.labels[boxes["E"]] == ChangeClass.NEW).all()


# ---------------------------------------------------------------------------------------------
# Through the workflow


def _moved_session(phantom_flair: Path, moved: np.ndarray, path: Path) -> None:
    """The phantom's FLAIR as another session: the same head, moved in the scanner by ``moved``
    (scanner point -> scanner point), and brighter (another day's receiver gain)."""
    image = nib.load(phantom_flair)
    data = np.asarray(image.dataobj, dtype=np.float32) * 1.2
    save_nifti(data.astype(np.int16), moved @ image.affine, path)


@pytest.mark.slow
def test_consecutive_sessions_are_paired_through_the_workflow(tmp_path):
    """An MS subject scanned in sessions 01 and 02 (days 0 and 180) and an HC subject in
    sessions 01 and 02 (no days): one change analysis each, on the follow-up's grid, the same
    bytes when run again, and the statistics and figures of change by group. A third session
    (10, day 400) adds its own scan's chain, the one new pair (02 to 10) and the cohort-level
    change outputs, nothing else; a subject with one session adds nothing longitudinal; a
    group edited in the sheet reruns the table of changes and its statistics, not a pair."""
    project = make_project(tmp_path)
    data = project / "data"
    ms, hc, single = (DEMO_SUBJECTS[i].subject_id for i in (0, 8, 9))
    ms_files = demo_phantom(ms, 7, data / ms)
    hc_files = demo_phantom(hc, 7, data / hc)
    demo_phantom(single, 7, data / single)
    centre = (nib.load(ms_files["flair"]).affine @ np.r_[np.array(nib.load(ms_files["flair"]).shape) / 2, 1])[:3]
    _moved_session(ms_files["flair"], _rigid(3.0, 2, (2.0, -3.0, 1.0), centre), data / "ms_02.nii.gz")
    _moved_session(ms_files["flair"], _rigid(-2.0, 2, (-1.5, 2.0, 0.0), centre), data / "ms_10.nii.gz")
    _moved_session(hc_files["flair"], _rigid(2.0, 2, (1.0, 1.0, 0.0), centre), data / "hc_02.nii.gz")
    header = "subject_id\tsession\tflair\tgroup\tage\tsex\tdays\n"
    rows = [
        f"{ms}\t01\t../data/{ms}/flair.nii.gz\tMS\t40\tF\t0\n",
        f"{ms}\t02\t../data/ms_02.nii.gz\tMS\t40.5\tF\t180\n",
        f"{hc}\t01\t../data/{hc}/flair.nii.gz\tHC\t50\tM\t\n",
        f"{hc}\t02\t../data/hc_02.nii.gz\tHC\t51\tM\t\n",
    ]
    sheet = project / "config" / "subjects.tsv"
    sheet.write_text(header + "".join(rows))
    table = "results/longitudinal/longitudinal.tsv"
    change_outputs = [
        *(f"results/stats/{name}.tsv" for name in CHANGE_TABLES),
        *(f"results/figures/{name}.{ext}" for name in CHANGE_FIGURES for ext in ("png", "pdf")),
    ]
    run_snakemake(project, "--cores", "2", table, *change_outputs)

    longitudinal = project / "results" / "longitudinal"
    assert sorted(p.name for p in longitudinal.iterdir()) == sorted(
        [ms, hc, "longitudinal.parquet", "longitudinal.tsv"]
    )
    pair = longitudinal / ms / "01_to_02"
    assert sorted(p.name for p in pair.iterdir()) == ["change.json", "change_qc.png", "new_or_enlarging_lesions.nii.gz"]
    labels = nib.load(pair / "new_or_enlarging_lesions.nii.gz")
    followup = nib.load(data / "ms_02.nii.gz")
    assert labels.get_data_dtype() == np.uint8 and labels.shape == followup.shape
    np.testing.assert_allclose(labels.affine, followup.affine, atol=1e-4)
    change = json.loads((pair / "change.json").read_text())
    assert change["status"] == "ok" and change["qc_flags"] == [] and change["interval_days"] == 180.0
    assert change["registration"]["correlation"] > 0.9, change["registration"]
    # The same head moved and brightened: no lesion changed.
    assert change["counts"]["new_or_enlarging_lesions"] == 0 and change["counts"]["vanished_lesions"] == 0
    cohort = pd.read_csv(project / table, sep="\t", dtype={"baseline_session": str, "followup_session": str})
    assert list(cohort["subject_id"]) == sorted([ms, hc]) and (cohort["status"] == "ok").all()
    ms_row = cohort.set_index("subject_id").loc[ms]
    assert (ms_row["group"], ms_row["baseline_session"], ms_row["followup_session"]) == ("MS", "01", "02")
    assert ms_row["new_or_enlarging_lesions"] == 0 and ms_row["interval_days"] == 180
    assert cohort.set_index("subject_id").loc[hc, "group"] == "HC"
    assert pd.isna(cohort.set_index("subject_id").loc[hc, "interval_days"])

    # Change by group: one analysed pair per group, the MS pair timed (180 days), no activity.
    summary = pd.read_csv(project / "results/stats/change_summary.tsv", sep="\t").set_index("group")
    assert list(summary.index) == ["HC", "MS", "all"]
    assert list(summary["n_analysed"]) == [1, 1, 2] and list(summary["n_active"]) == [0, 0, 0]
    assert summary.loc["MS", "follow_up_years"] == pytest.approx(180 / 365.25)
    assert summary.loc["MS", "rate_per_year"] == 0 and pd.isna(summary.loc["HC", "rate_per_year"])
    tests = pd.read_csv(project / "results/stats/change_tests.tsv", sep="\t")
    assert set(tests["contrast"]) == {"MS vs HC"} and set(tests["analysis"]) == {"change_rate", "change_rank"}
    for name in CHANGE_FIGURES:
        assert (project / f"results/figures/{name}.png").stat().st_size > 10_000
        assert (project / f"results/figures/{name}.pdf").read_bytes().startswith(b"%PDF")

    first = {p.name: p.read_bytes() for p in pair.iterdir()}
    shutil.rmtree(pair)
    run_snakemake(project, "--cores", "2", *(f"results/longitudinal/{ms}/01_to_02/{name}" for name in first))
    assert {p.name: p.read_bytes() for p in pair.iterdir()} == first, "two runs differ"

    rows.append(f"{ms}\t10\t../data/ms_10.nii.gz\tMS\t41\tF\t400\n")
    sheet.write_text(header + "".join(rows))
    assert planned_jobs(project, "--cores", "1", table, *change_outputs) == {
        "preprocess": 1,
        "segment": 1,
        "longitudinal_change": 1,
        "longitudinal_table": 1,
        "change_statistics": 1,
        "change_figures": 1,
    }
    run_snakemake(project, "--cores", "2", table, *change_outputs)
    cohort = pd.read_csv(project / table, sep="\t", dtype={"baseline_session": str, "followup_session": str})
    ms_pairs = cohort[cohort["subject_id"] == ms]
    assert list(zip(ms_pairs["baseline_session"], ms_pairs["followup_session"])) == [("01", "02"), ("02", "10")]
    assert (pair / "change.json").read_bytes() == first["change.json"]
    # A subject with one session: no change analysis, and nothing longitudinal reruns.
    sheet.write_text(header + "".join(rows) + f"{single}\t\t../data/{single}/flair.nii.gz\tHC\t30\tF\t\n")
    assert planned_jobs(project, "--cores", "1", table, *change_outputs) == {}
    # A group edited in the sheet: the table of changes and its statistics, no pair.
    sheet.write_text(header + "".join(rows).replace("\tHC\t", "\tMS\t"))
    assert planned_jobs(project, "--cores", "1", table, *change_outputs) == {
        "longitudinal_table": 1,
        "change_statistics": 1,
        "change_figures": 1,
    }
    sheet.write_text(header + "".join(rows))
    # A change-detection setting reruns the pairs and their table, no scan's work.
    change_config(project, {"longitudinal": {"intensity_change_sd": 3.0}})
    assert planned_jobs(project, "--cores", "1", table) == {"longitudinal_change": 3, "longitudinal_table": 1}


def _write_session(folder: Path, flair: np.ndarray, probability: np.ndarray, brain: np.ndarray) -> dict:
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    folder.mkdir(parents=True)
    files = {name: folder / f"{name}.nii.gz" for name in ("flair", "brain_mask", "segmentation")}
    save_nifti(flair.astype(np.float32), affine, files["flair"])
    save_nifti(brain.astype(np.uint8), affine, files["brain_mask"])
    save_nifti((probability >= 0.5).astype(np.uint8) * 2, affine, files["segmentation"])
    return files


def test_the_change_job_flags_a_failed_or_poor_registration_and_the_statistics_leave_it_uncounted(tmp_path):
    """A pair registered to an empty mask (failed), a pair of unrelated images (poor: two
    people's scans paired by mistake) and a crashed job reach the table flagged, without
    counts, and the statistics of change count them as left out, not as pairs without change."""
    from msprofile.jobs.longitudinal import change_pair, longitudinal_table

    baseline, baseline_p, followup, followup_p, brain, _ = _phantom_pair()
    sessions = {
        "01": _write_session(tmp_path / "s01", baseline, baseline_p, brain),
        "02": _write_session(tmp_path / "s02", followup, followup_p, brain),
        "03": _write_session(tmp_path / "s03", followup, followup_p, np.zeros_like(brain)),
        "04": _write_session(
            tmp_path / "s04", np.random.default_rng(9).gamma(2.0, 50.0, brain.shape), followup_p, brain
        ),
    }
    outputs = {}
    for baseline_session, followup_session in (("01", "02"), ("02", "03"), ("02", "04")):
        pair = tmp_path / "longitudinal" / "p1" / f"{baseline_session}_to_{followup_session}"
        outputs[followup_session] = change_pair(
            "p1",
            baseline_session,
            followup_session,
            sessions[baseline_session],
            sessions[followup_session],
            baseline_scan=f"p1_ses-{baseline_session}",
            followup_scan=f"p1_ses-{followup_session}",
            interval_days=90.0,
            settings=ChangeSettings(),
            labels_path=pair / "new_or_enlarging_lesions.nii.gz",
            change_json_path=pair / "change.json",
            qc_png_path=pair / "change_qc.png",
        )
    good, failed = outputs["02"], outputs["03"]
    assert good["status"] == "ok" and good["counts"]["new_lesions"] == 1 and good["counts"]["vanished_lesions"] == 1
    assert failed["status"] == "registration_failed" and failed["qc_flags"] == ["registration_failed"]
    assert failed["counts"] is None and "brain mask is empty" in failed["registration"]["error"]
    failed_dir = tmp_path / "longitudinal" / "p1" / "02_to_03"
    assert not np.asarray(nib.load(failed_dir / "new_or_enlarging_lesions.nii.gz").dataobj).any()
    assert (failed_dir / "change_qc.png").stat().st_size > 0

    crashed = tmp_path / "longitudinal" / "p2" / "a_to_b" / "change.json"
    crashed.parent.mkdir(parents=True)
    crashed.write_bytes(b"")  # the placeholder of a failed job (on_error: record)
    poor = outputs["04"]
    assert poor["status"] == "poor_registration" and poor["qc_flags"] == ["poor_registration"], poor["registration"]
    assert poor["registration"]["correlation"] < ChangeSettings().poor_registration_correlation
    assert poor["counts"] is not None  # kept in change.json for a look, never counted
    names = ("01_to_02", "02_to_03", "02_to_04")
    paths = [tmp_path / "longitudinal" / "p1" / name / "change.json" for name in names] + [crashed]
    table = longitudinal_table(paths, ["MS", "MS", "MS", "HC"], tmp_path / "l.parquet", tmp_path / "l.tsv")
    assert list(table["status"]) == ["ok", "registration_failed", "poor_registration", "failed"]
    assert list(table["qc_flags"]) == ["", "registration_failed", "poor_registration", "job_failed"]
    assert list(table["group"]) == ["MS", "MS", "MS", "HC"]
    assert table.loc[0, "new_lesions"] == 1 and table[["new_lesions", "vanished_volume_ml"]].iloc[1:].isna().all().all()
    assert table.loc[3, "subject_id"] == "p2" and table.loc[0, "interval_days"] == 90.0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "l.parquet"), table)
    with pytest.raises(ValueError, match="4 pairs but 3 groups"):
        longitudinal_table(paths, ["MS"] * 3, tmp_path / "l.parquet", tmp_path / "l.tsv")

    summary = stats.change_summary(load_change_table(tmp_path / "l.parquet"), ["HC", "MS"]).set_index("group")
    assert summary.loc["all", ["n_pairs", "n_registration_failed", "n_poor_registration", "n_job_failed"]].tolist() == [
        4,
        1,
        1,
        1,
    ]
    assert summary.loc["all", "n_analysed"] == 1 and summary.loc["MS", "total_new_or_enlarging"] == 2
    assert summary.loc["HC", "n_analysed"] == 0 and pd.isna(summary.loc["HC", "active_share"])
    assert summary.loc["MS", "rate_per_year"] == pytest.approx(2 * 365.25 / 90)


# ---------------------------------------------------------------------------------------------
# Accuracy on public ground truth


#: Per Lesjak patient: the measured figures minus a margin of about one lesion (sensitivity,
#: precision) and 0.01-0.1 of Dice; the floors of the registration (correlation, error in mm).
LESJAK_FLOORS = {
    # measured 4 of 13 expert lesions (0.31), precision 0.56, Dice 0.55, 0.45 mm
    "01": {"sensitivity": 0.23, "precision": 0.4, "dice": 0.45, "correlation": 0.8, "error_mm": 1.0},
    # measured 3 of 46 expert lesions (0.07), 3 of 5 calls right (0.60), Dice 0.03, 0.71 mm
    "03": {"sensitivity": 0.04, "precision": 0.4, "dice": 0.02, "correlation": 0.55, "error_mm": 1.2},
}


@pytest.mark.slow
@pytest.mark.parametrize("patient", sorted(LESJAK_FLOORS))
def test_lesjak_change_detection_keeps_its_measured_accuracy(tmp_path, patient):
    """The benchmark's pipeline (the workflow's jobs) on Lesjak et al.'s patients 01 and 03:
    floors at the measured figures (:data:`LESJAK_FLOORS`). These are far below the issue's
    targets (README, docs/method.md section 8 say why); patient 03's were all 0 before the
    differential bias correction of the difference image."""
    require_lesjak()
    spec = importlib.util.spec_from_file_location("benchmark_longitudinal", REPO / "benchmarks" / "longitudinal.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    files = {study: benchmark.segment_study(patient, study, tmp_path) for study in ("study1", "study2")}
    result = benchmark.evaluate_patient(patient, files, tmp_path)
    floors = LESJAK_FLOORS[patient]
    assert result["status"] == "ok" and result["registration_correlation"] > floors["correlation"], result
    assert result["registration_error_mm"] < floors["error_mm"], result
    assert all(result[name] >= floors[name] for name in ("sensitivity", "precision", "dice")), result
