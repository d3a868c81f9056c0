"""Fine-tuning the shipped model on a new site's scans: what two labelled scans gain, and what it costs.

Prints one ``name value unit`` line per figure. The site is the ISBI 2015 scanner
(../shared/data/isbi_sample: 3 T, another vendor, lesion masks of two raters, no ventricle masks):

1. isbi01-05 are preprocessed as the `preprocess` rule does;
2. isbi03-05 are segmented by the shipped model as the `segment` rule does (the configuration's
   ``ensemble_members`` and ``test_time_flips``; the shipped model has one network) and scored
   against rater 1 and rater 2;
3. the shipped model is fine-tuned on isbi01 and isbi02 (their rater-1 lesion masks; the
   ventricles, unlabelled, are left to the model) exactly as the `train` target does with
   ``training.init_model`` and the configuration's fine-tuning schedule
   (``finetune_epochs``, ``finetune_learning_rate``, ``finetune_randomisation``): one
   cross-validation fold per tuning scan (tuned on the other scan, scored on it, kept as an
   ensemble member), then the final network on both scans; on two CPU threads, timed;
4. isbi03-05 are segmented by the fine-tuned model (its network and the folds' members, as the
   `segment` rule runs it) and scored again.

Figures: ``finetune_lesion_dice_zero_shot`` and ``finetune_lesion_dice_finetuned`` (mean lesion
Dice against rater 1 over isbi03-05), ``finetune_gain_lesion_dice`` (their difference),
the same against rater 2, ``finetune_minutes`` (the training step) and
``finetune_ventricle_volume_change`` (mean relative change of the predicted ventricle volume,
which no label of the site constrains) and ``finetune_lesion_volume_ratio_zero_shot`` /
``_finetuned`` (mean predicted over rater-1 lesion volume: above 1, over-segmentation),
``finetune_networks`` (the fine-tuned model's networks that segment) and
``finetune_site_validation_lesion_dice`` (the folds' mean lesion Dice on their held-out tuning
scan: the estimate a site gets from its own scans, in the model card).
Target (issue 12): gain at least 0.05 in at most 20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os

if __name__ == "__main__":  # before TensorFlow is imported; importing this module changes nothing
    for _var in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        os.environ[_var] = "2"
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"

import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ISBI = REPO / ".." / "shared" / "data" / "isbi_sample"
TUNE = ("isbi01", "isbi02")
SCORE = ("isbi03", "isbi04", "isbi05")


def segment_and_score(model_dir: Path, work: Path, tag: str, settings: dict) -> dict:
    """Segment the scored subjects with the folder's model as the `segment` rule does with the
    config's ``segmentation`` section (``settings``); lesion Dice per rater, predicted ventricle volume (mL) and
    predicted over rater-1 lesion volume per subject."""
    from msprofile.geometry import Grid
    from msprofile.io import load_image, load_manual_labels
    from msprofile.jobs.segmentation import segment_subject
    from msprofile.segmentation.evaluate import evaluate_subject

    scores = {"rater1": [], "rater2": [], "ventricles_ml": [], "lesion_volume_ratio": []}
    for subject_id in SCORE:
        folder = work / subject_id
        segmentation = folder / f"segmentation_{tag}.nii.gz"
        segment_subject(
            subject_id,
            folder / "flair_preproc.nii.gz",
            folder / "brain_mask.nii.gz",
            model_dir,
            segmentation,
            folder / f"uncertainty_{tag}.nii.gz",
            members=settings["ensemble_members"],
            flips=settings["test_time_flips"],
            device="cpu",
            threads=2,
        )
        predicted, affine = load_image(segmentation, subject_id, dtype=np.uint8)
        native = Grid(predicted.shape, affine)
        for rater in ("rater1", "rater2"):
            reference, _, classes = load_manual_labels(
                subject_id, ISBI / subject_id / f"wmh_{rater}.nii.gz", "", native
            )
            rows = evaluate_subject(subject_id, reference, predicted, native.voxel_size_mm, classes=classes)
            scores[rater].append(rows[0]["dice"])
            if rater == "rater1":
                scores["lesion_volume_ratio"].append(float((predicted == 2).sum() / max((reference == 2).sum(), 1)))
        scores["ventricles_ml"].append(float((predicted == 1).sum() * native.voxel_volume_ml))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "resources" / "models" / "msprofile-default")
    parser.add_argument("--epochs", type=int, help="fine-tuning epochs (default: the configuration's)")
    parser.add_argument("--steps-per-epoch", type=int, help="batches per epoch (default: the configuration's)")
    args = parser.parse_args()
    if not (ISBI / "subjects.tsv").is_file():
        raise SystemExit(f"ISBI sample not found at {ISBI.resolve()}")

    from dataclasses import fields, replace

    from msprofile.io.models import read_card
    from msprofile.jobs.preprocess import preprocess_subject
    from msprofile.jobs.training import (
        cross_validation_fold,
        train_final_model,
        write_training_labels,
        write_training_slices,
    )
    from msprofile.preprocess import PreprocessSettings
    from msprofile.segmentation.config import training_settings
    from msprofile.segmentation.train import TrainingSettings

    # The shipped configuration, as the workflow reads it for a fine-tuning run.
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    settings = TrainingSettings(**training_settings(config["training"], finetune=True))
    segmentation = config["segmentation"]
    if args.epochs:
        settings = replace(settings, epochs=args.epochs)
    if args.steps_per_epoch:
        settings = replace(settings, steps_per_epoch=args.steps_per_epoch)
    preprocessing = read_card(args.model)["preprocessing"]
    # Cards of msprofile <= 0.2 also hold the QC thresholds, which moved to the config group qc
    # and change no image: the preprocessing is what PreprocessSettings knows.
    known = {field.name for field in fields(PreprocessSettings)}
    preprocess_settings = PreprocessSettings.from_config({k: v for k, v in preprocessing.items() if k in known})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for subject_id in (*TUNE, *SCORE):
            folder = work / subject_id
            folder.mkdir()
            preprocess_subject(
                subject_id,
                ISBI / subject_id / "flair.nii.gz",
                skull_stripped=False,
                settings=preprocess_settings,
                brain_mask_path=folder / "brain_mask.nii.gz",
                flair_preproc_path=folder / "flair_preproc.nii.gz",
                qc_json_path=folder / "qc.json",
                qc_png_path=folder / "qc.png",
            )
        zero_shot = segment_and_score(args.model, work, "zero_shot", segmentation)
        for subject_id in TUNE:
            folder = work / subject_id
            write_training_labels(
                subject_id,
                ISBI / subject_id / "wmh_rater1.nii.gz",
                "",
                folder / "flair_preproc.nii.gz",
                folder / "brain_mask.nii.gz",
                folder / "labels_model.nii.gz",
            )
        write_training_slices(
            list(TUNE),
            [work / s / "flair_preproc.nii.gz" for s in TUNE],
            [work / s / "brain_mask.nii.gz" for s in TUNE],
            [work / s / "labels_model.nii.gz" for s in TUNE],
            work / "slices.npz",
        )
        started = time.perf_counter()
        folds = []
        for held_out in TUNE:
            folds.append(
                cross_validation_fold(
                    held_out,
                    work / "slices.npz",
                    work / held_out / "flair_preproc.nii.gz",
                    work / held_out / "brain_mask.nii.gz",
                    ISBI / held_out / "wmh_rater1.nii.gz",
                    "",
                    work / f"fold_{held_out}.json",
                    work / f"fold_{held_out}.onnx",
                    settings,
                    init_model_dir=args.model,
                    flips=segmentation["test_time_flips"],
                    device="cpu",
                )
            )
        card = train_final_model(
            "finetuned",
            work / "slices.npz",
            [work / f"fold_{s}.json" for s in TUNE],
            [work / f"fold_{s}.onnx" for s in TUNE],
            work / "finetuned",
            settings,
            preprocessing=preprocessing,
            init_model_dir=args.model,
            flips=segmentation["test_time_flips"],
            device="cpu",
        )
        minutes = (time.perf_counter() - started) / 60.0
        tuned = segment_and_score(work / "finetuned", work, "finetuned", segmentation)

    for rater, suffix in (("rater1", ""), ("rater2", "_rater2")):
        before, after = float(np.mean(zero_shot[rater])), float(np.mean(tuned[rater]))
        print(f"finetune_lesion_dice_zero_shot{suffix} {before:.3f} Dice")
        print(f"finetune_lesion_dice_finetuned{suffix} {after:.3f} Dice")
        print(f"finetune_gain_lesion_dice{suffix} {after - before:.3f} Dice")
    change = np.mean(np.divide(tuned["ventricles_ml"], zero_shot["ventricles_ml"])) - 1.0
    print(f"finetune_ventricle_volume_change {100 * change:.1f} %")
    for name, scores in (("zero_shot", zero_shot), ("finetuned", tuned)):
        print(f"finetune_lesion_volume_ratio_{name} {np.mean(scores['lesion_volume_ratio']):.2f} ratio")
    print(f"# network input: {read_card(args.model)['input'].get('normalisation')} (the initial model's, kept)")
    print(f"finetune_epochs {settings.epochs} epochs")
    print(f"# randomisation when fine-tuning: {settings.randomisation}")
    print(f"finetune_networks {min(len(card['ensemble']['networks']), segmentation['ensemble_members'])} networks")
    site = [row["dice"] for fold in folds for row in fold["rows"] if row["class_name"] == "lesions"]
    print(f"finetune_site_validation_lesion_dice {np.mean(site):.3f} Dice")
    print(f"finetune_minutes {minutes:.2f} min")


if __name__ == "__main__":
    main()
