"""Accuracy of the longitudinal change detection on public ground truth (Lesjak et al. 2016).

Runs the workflow's own jobs on ../shared/data/lesjak_longitudinal: per study the preprocessing
and segmentation (shipped model, probabilities saved), then per patient the change job
(:func:`msprofile.jobs.longitudinal.change_pair`: rigid registration, change detection). The
change map (follow-up native grid) is brought into the data set's common space through the
follow-up's ITK transform and compared with the expert change mask there
(:func:`msprofile.longitudinal.change_detection_scores`). Prints per patient and as the mean
over patients: lesion-wise sensitivity and precision of new or enlarging lesions, voxel Dice,
the share of expert lesions the follow-up segmentation touches at all (the sensitivity no rule
picking among segmented lesions can exceed), registration correlation, and the registration's
error against the data set's own transforms
(mean distance in mm over the baseline brain). Without ``--quick`` it also registers the
baseline of one patient to the follow-up of the other, the case of two people's scans paired by
mistake, and prints that pair's correlation (it should fall below the poor-registration limit).

Targets (issue 14): mean sensitivity >= 0.7, precision >= 0.6, Dice >= 0.5.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "lesjak_longitudinal"
MODEL = REPO / "resources" / "models" / "msprofile-default"
PATIENTS = ("01", "03")


def segment_study(patient: str, study: str, folder: Path) -> dict:
    """Preprocess and segment one study with the workflow's jobs; its session files."""
    from msprofile.jobs.preprocess import preprocess_subject
    from msprofile.jobs.segmentation import segment_subject
    from msprofile.preprocess import PreprocessSettings

    scan = f"patient{patient}_{study}"
    out = folder / scan
    flair = DATA / f"patient{patient}" / f"{study}_flair.nii.gz"
    preprocess_subject(
        scan,
        flair,
        skull_stripped=False,
        settings=PreprocessSettings(),
        brain_mask_path=out / "brain_mask.nii.gz",
        flair_preproc_path=out / "flair_preproc.nii.gz",
        qc_json_path=out / "preprocess_qc.json",
        qc_png_path=out / "preprocess_qc.png",
    )
    files = {name: out / f"{name}.nii.gz" for name in ("brain_mask", "segmentation", "probabilities")}
    segment_subject(
        scan,
        out / "flair_preproc.nii.gz",
        files["brain_mask"],
        MODEL,
        files["segmentation"],
        out / "segmentation_uncertainty.nii.gz",
        files["probabilities"],
    )
    return {"flair": flair, **files}


def evaluate_patient(patient: str, files: dict, folder: Path) -> dict:
    from msprofile.geometry import Grid, resample
    from msprofile.io import load_json, read_grid, read_itk_affine
    from msprofile.jobs.longitudinal import change_pair
    from msprofile.labels import SegmentationClass
    from msprofile.longitudinal import ChangeSettings, change_detection_scores

    pair = folder / f"patient{patient}"
    record = change_pair(
        f"patient{patient}",
        "1",
        "2",
        files["study1"],
        files["study2"],
        baseline_scan=f"patient{patient}_study1",
        followup_scan=f"patient{patient}_study2",
        interval_days=None,
        settings=ChangeSettings(),
        labels_path=pair / "new_or_enlarging_lesions.nii.gz",
        change_json_path=pair / "change.json",
        qc_png_path=pair / "change_qc.png",
    )
    truth_image = nib.load(DATA / f"patient{patient}" / "change_gt_common_space.nii.gz")
    truth = np.asarray(truth_image.dataobj) > 0
    common = Grid(truth.shape, truth_image.affine)
    common_to_followup = read_itk_affine(DATA / f"patient{patient}" / "study2_to_common_space.txt")
    common_to_baseline = read_itk_affine(DATA / f"patient{patient}" / "study1_to_common_space.txt")
    labels = np.asarray(nib.load(pair / "new_or_enlarging_lesions.nii.gz").dataobj)
    followup_grid = read_grid(pair / "new_or_enlarging_lesions.nii.gz")
    predicted = resample((labels > 0).astype(np.uint8), followup_grid, common, order=0, transform=common_to_followup)
    scores = change_detection_scores(predicted > 0, truth)
    # The ceiling of any rule that picks among the follow-up's segmented lesions: the share of
    # expert lesions that segmentation touches at all.
    followup_lesions = np.asarray(nib.load(files["study2"]["segmentation"]).dataobj) == SegmentationClass.LESIONS
    segmented = resample(
        followup_lesions.astype(np.uint8), followup_grid, common, order=0, transform=common_to_followup
    )
    ceiling = change_detection_scores(segmented > 0, truth)["sensitivity"]

    # The data set's transforms give the true baseline -> follow-up mapping.
    true_matrix = common_to_followup @ np.linalg.inv(common_to_baseline)
    found = np.asarray(load_json(pair / "change.json")["registration"]["matrix_baseline_to_followup_ras"])
    brain = np.asarray(nib.load(files["study1"]["brain_mask"]).dataobj) > 0
    baseline_affine = read_grid(files["study1"]["brain_mask"]).affine
    points = baseline_affine @ np.c_[np.argwhere(brain)[::25], np.ones(len(np.argwhere(brain)[::25]))].T
    error_mm = float(np.linalg.norm((found @ points - true_matrix @ points)[:3], axis=0).mean())
    return scores | {
        "registration_correlation": record["registration"]["correlation"],
        "registration_error_mm": error_mm,
        "segmented_expert_share": ceiling,
        "new_or_enlarging": record["counts"]["new_or_enlarging_lesions"],
        "status": record["status"],
    }


def crossed_pair_correlation(files: dict) -> float:
    """Registration correlation of patient 01's baseline with patient 03's follow-up."""
    from msprofile.jobs.longitudinal import load_session
    from msprofile.registration import register_rigid, registration_quality

    baseline = load_session("patient01_study1", files["01"]["study1"])
    followup = load_session("patient03_study2", files["03"]["study2"])
    arguments = (baseline.flair, baseline.grid, baseline.brain, followup.flair, followup.grid, followup.brain)
    return registration_quality(*arguments, register_rigid(*arguments).matrix)["correlation"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", nargs="+", default=list(PATIENTS), choices=PATIENTS)
    parser.add_argument("--quick", action="store_true", help="leave out the crossed-pair registration")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        raise SystemExit(f"the Lesjak data are not at {DATA} (they ship beside the repository as ../shared/data)")
    started = time.perf_counter()
    results, files = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for patient in args.patients:
            files[patient] = {study: segment_study(patient, study, folder) for study in ("study1", "study2")}
            results[patient] = evaluate_patient(patient, files[patient], folder)
            for name in ("sensitivity", "precision", "dice"):
                print(f"patient{patient}_{name} {results[patient][name]:.3f} ratio")
            print(f"patient{patient}_expert_lesions {results[patient]['expert_lesions']} lesions")
            print(f"patient{patient}_predicted_lesions {results[patient]['predicted_lesions']} lesions")
            segmented_share = results[patient]["segmented_expert_share"]
            print(f"patient{patient}_expert_lesions_segmented_at_followup {segmented_share:.3f} ratio")
            print(f"patient{patient}_registration_correlation {results[patient]['registration_correlation']:.3f} r")
            print(f"patient{patient}_registration_error {results[patient]['registration_error_mm']:.2f} mm")
        for name in ("sensitivity", "precision", "dice"):
            values = [results[p][name] for p in args.patients if not math.isnan(results[p][name])]
            print(f"mean_{name} {np.mean(values) if values else math.nan:.3f} ratio")
        if not args.quick and set(PATIENTS) <= set(files):
            print(f"crossed_pair_registration_correlation {crossed_pair_correlation(files):.3f} r")
    print(f"elapsed {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
