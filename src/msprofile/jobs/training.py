"""One function per training-side job of the segmentation stage: files in, files out."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import nibabel as nib
import numpy as np

from .. import __version__
from ..io import atomic_path, save_json, save_nifti
from ..workflow import is_placeholder, read_failure
from .data import CLASSES, labels_to_model, network_input, network_labels
from .infer import keras_network, predict_probabilities
from .jobs import brain_and_grid, load_manual_labels, model_grid_image, native_grid, native_labels
from .model_io import save_model
from .train import TrainingSettings, configure_tensorflow, train


def write_training_labels(subject_id: str, wmh_path, ventricles_path, flair_preproc_path, brain_mask_path, out_path) -> None:
    """Three-class manual labels of one subject on its model grid (nearest neighbour).

    Training needs every training subject: one whose preprocessing failed is an error here
    whatever ``on_error`` says."""
    if is_placeholder(brain_mask_path):
        failure = read_failure(Path(brain_mask_path).parent) or {"error": "see its preprocess log"}
        raise ValueError(f"subject {subject_id}: training subject failed preprocessing: {failure['error']}")
    labels, native = load_manual_labels(subject_id, wmh_path, ventricles_path, native_grid(brain_mask_path))
    _, model_grid = model_grid_image(flair_preproc_path)
    labels = labels_to_model(labels, native, model_grid)
    save_nifti(labels, model_grid.affine, out_path)


def write_training_slices(subject_ids, flair_preproc_paths, label_paths, out_path) -> None:
    """Stack every subject's slices into one ``.npz``: ``x`` (N, H, W, 1) standardised
    slices, ``y`` (N, H, W) labels, ``subject`` (N,) subject IDs. Slices with no head are left out."""
    xs, ys, owners = [], [], []
    for subject_id, flair_path, label_path in zip(subject_ids, flair_preproc_paths, label_paths):
        flair, _ = model_grid_image(flair_path)
        x = network_input(flair)
        y = network_labels(np.asarray(nib.load(label_path).dataobj))
        keep = np.ptp(x, axis=(1, 2, 3)) > 0
        xs.append(x[keep])
        ys.append(y[keep])
        owners += [subject_id] * int(keep.sum())
    with atomic_path(out_path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, x=np.concatenate(xs), y=np.concatenate(ys), subject=np.array(owners))


def _load_slices(path):
    with np.load(path) as data:
        return data["x"], data["y"], data["subject"].astype(str)


def cross_validation_fold(held_out: str, slices_path, flair_preproc_path, brain_mask_path, wmh_path, ventricles_path,
                          out_path, settings: TrainingSettings, *, device: str = "auto") -> dict:
    """Train without ``held_out`` and score the held-out subject on its native grid.

    The fold's schedule is fixed in advance (no early stopping on the held-out subject).
    Writes and returns ``{"subject_id", "epochs", "final_loss", "rows"}``, where ``rows`` are
    the evaluation rows of :func:`msprofile.segmentation.evaluate.evaluate_subject`.
    """
    from .evaluate import evaluate_subject

    configure_tensorflow(device)
    x, y, owners = _load_slices(slices_path)
    train_rows = owners != held_out
    model, losses = train(x[train_rows], y[train_rows], settings)
    flair_model, model_grid = model_grid_image(flair_preproc_path)
    brain, native = brain_and_grid(brain_mask_path)
    predicted = native_labels(predict_probabilities(keras_network(model), flair_model), model_grid, native, brain)
    reference, _ = load_manual_labels(held_out, wmh_path, ventricles_path, native)
    rows = evaluate_subject(held_out, reference, predicted, native.voxel_size_mm)
    result = {"subject_id": held_out, "epochs": len(losses), "final_loss": losses[-1], "rows": rows}
    save_json(result, out_path)
    return result


def train_final_model(name: str, slices_path, fold_paths, model_dir, settings: TrainingSettings, *,
                      preprocessing: dict, device: str = "auto") -> dict:
    """Train on every training subject and write the model and its card.

    The card carries the cross-validation results of ``fold_paths`` (pooled and per-subject
    Dice), the training subjects, the settings, and the preprocessing the model expects.
    """
    import keras
    import pandas as pd
    import tensorflow as tf

    from .evaluate import summarise

    used = configure_tensorflow(device)
    x, y, owners = _load_slices(slices_path)
    model, losses = train(x, y, settings)
    folds = [json.loads(Path(p).read_text()) for p in fold_paths]
    validation = {"scheme": "none"}
    if folds:
        rows = pd.DataFrame([row for fold in folds for row in fold["rows"]])
        validation = {
            "scheme": "leave-one-subject-out",
            "note": "each fold trained with the same fixed schedule; no early stopping on the held-out subject",
            "summary": summarise(rows).to_dict(orient="records"),
            "per_subject": rows.to_dict(orient="records"),
        }
    card = {
        "name": name,
        "msprofile_version": __version__,
        "classes": list(CLASSES),
        "input": {"shape": [None, None, 1], "trained_on_matrix": list(x.shape[1:3]), "axis_order": "slices of the model grid (x, y)"},
        "normalisation": "brain percentiles 1 and 99 mapped to 0 and 1 (preprocess), then each slice z-scored",
        "preprocessing": preprocessing,
        "architecture": {"type": "attention_unet", "base_filters": settings.base_filters, "parameters": int(model.count_params())},
        "training": {**settings.to_dict(), "subjects": sorted(set(owners.tolist())), "slices": int(len(x)),
                     "final_loss": losses[-1], "loss_curve": [round(v, 5) for v in losses], "device": used},
        "validation": validation,
        "software": {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()},
    }
    os.makedirs(model_dir, exist_ok=True)
    return save_model(model, model_dir, card, check_input=x[: settings.batch_size])

