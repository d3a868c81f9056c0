"""Jobs of ``training.smk``: manual masks to the model grid, training slices, cross-validation
folds and the final model with its card."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

from .. import __version__
from ..failures import is_placeholder, read_failure
from ..geometry import Grid
from ..io import load_image, load_json, load_manual_labels, load_npz, read_grid, save_json, save_nifti, save_npz
from ..io.models import save_model
from ..labels import SEGMENTATION_CLASS_NAMES
from ..segmentation.data import labels_to_model, network_input, network_labels
from ..segmentation.infer import keras_network, native_labels, predict_probabilities
from ..segmentation.model import inference_copy
from ..segmentation.onnx_export import checked_onnx
from ..segmentation.train import TrainingSettings, configure_tensorflow, train
from ..workflow import epoch_logger


def write_training_labels(
    subject_id: str, wmh_path, ventricles_path, flair_preproc_path, brain_mask_path, out_path
) -> None:
    """Three-class manual labels of one subject on its model grid (nearest neighbour).

    Training needs every training subject: one whose preprocessing failed is an error here
    whatever ``on_error`` says."""
    if is_placeholder(brain_mask_path):
        failure = read_failure(Path(brain_mask_path).parent) or {"error": "see its preprocess log"}
        raise ValueError(f"subject {subject_id}: training subject failed preprocessing: {failure['error']}")
    labels, native = load_manual_labels(subject_id, wmh_path, ventricles_path, read_grid(brain_mask_path))
    model_grid = read_grid(flair_preproc_path)
    labels = labels_to_model(labels, native, model_grid)
    save_nifti(labels, model_grid.affine, out_path)


def write_training_slices(subject_ids, flair_preproc_paths, label_paths, out_path) -> None:
    """Stack every subject's slices into one ``.npz``: ``x`` (N, H, W, 1) standardised
    slices, ``y`` (N, H, W) labels, ``subject`` (N,) subject IDs. Slices with no head are left out."""
    xs, ys, owners = [], [], []
    for subject_id, flair_path, label_path in zip(subject_ids, flair_preproc_paths, label_paths):
        x = network_input(load_image(flair_path, subject_id)[0])
        y = network_labels(load_image(label_path, subject_id, dtype=np.uint8)[0])
        keep = np.ptp(x, axis=(1, 2, 3)) > 0
        xs.append(x[keep])
        ys.append(y[keep])
        owners += [subject_id] * int(keep.sum())
    save_npz(out_path, x=np.concatenate(xs), y=np.concatenate(ys), subject=np.array(owners))


def _load_slices(path):
    data = load_npz(path)
    return data["x"], data["y"], data["subject"].astype(str)


def cross_validation_fold(
    held_out: str,
    slices_path,
    flair_preproc_path,
    brain_mask_path,
    wmh_path,
    ventricles_path,
    out_path,
    settings: TrainingSettings,
    *,
    device: str = "auto",
) -> dict:
    """Train without ``held_out`` and score the held-out subject on its native grid.

    The fold's schedule is fixed in advance (no early stopping on the held-out subject).
    Writes and returns ``{"subject_id", "epochs", "final_loss", "rows"}``, where ``rows`` are
    the evaluation rows of :func:`msprofile.segmentation.evaluate.evaluate_subject`.
    """
    from ..segmentation.evaluate import evaluate_subject

    configure_tensorflow(device)
    x, y, owners = _load_slices(slices_path)
    train_rows = owners != held_out
    model, losses = train(
        x[train_rows], y[train_rows], settings, on_epoch=epoch_logger(settings.epochs, f"fold without {held_out}")
    )
    flair_model, affine_model = load_image(flair_preproc_path, held_out)
    brain, affine = load_image(brain_mask_path, held_out, dtype=np.uint8)
    native = Grid(brain.shape, affine)
    predicted = native_labels(
        predict_probabilities(keras_network(model), flair_model),
        Grid(flair_model.shape, affine_model),
        native,
        brain > 0,
    )
    reference, _ = load_manual_labels(held_out, wmh_path, ventricles_path, native)
    rows = evaluate_subject(held_out, reference, predicted, native.voxel_size_mm)
    result = {"subject_id": held_out, "epochs": len(losses), "final_loss": losses[-1], "rows": rows}
    save_json(result, out_path)
    return result


def train_final_model(
    name: str,
    slices_path,
    fold_paths,
    model_dir,
    settings: TrainingSettings,
    *,
    preprocessing: dict,
    device: str = "auto",
) -> dict:
    """Train on every training subject and write the model and its card.

    The card carries the cross-validation results of ``fold_paths`` (pooled and per-subject
    Dice), the training subjects, the settings, and the preprocessing the model expects.
    """
    import keras
    import pandas as pd
    import tensorflow as tf

    from ..segmentation.evaluate import summarise

    used = configure_tensorflow(device)
    x, y, owners = _load_slices(slices_path)
    model, losses = train(x, y, settings, on_epoch=epoch_logger(settings.epochs, f"model {name}"))
    folds = [load_json(p) for p in fold_paths]
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
        "classes": list(SEGMENTATION_CLASS_NAMES),
        "input": {
            "shape": [None, None, 1],
            "trained_on_matrix": list(x.shape[1:3]),
            "axis_order": "slices of the model grid (x, y)",
        },
        "normalisation": "brain percentiles 1 and 99 mapped to 0 and 1 (preprocess), then each slice z-scored",
        "preprocessing": preprocessing,
        "architecture": {
            "type": "attention_unet",
            "base_filters": settings.base_filters,
            "parameters": int(model.count_params()),
        },
        "training": {
            **settings.to_dict(),
            "subjects": sorted(set(owners.tolist())),
            "slices": int(len(x)),
            "final_loss": losses[-1],
            "loss_curve": [round(v, 5) for v in losses],
            "device": used,
        },
        "validation": validation,
        "software": {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()},
    }
    os.makedirs(model_dir, exist_ok=True)
    return save_trained_model(model, model_dir, card, check_input=x[: settings.batch_size])


def save_trained_model(model, model_dir, card: dict, *, check_input: np.ndarray) -> dict:
    """Write a trained network into ``model_dir`` as a model folder
    (:func:`msprofile.io.models.save_model`): its uncompiled inference copy as Keras and as
    ONNX, the export checked against the Keras output on ``check_input`` (N, H, W, 1). Returns
    the card as written."""
    copy = inference_copy(model)
    return save_model(copy, checked_onnx(copy, check_input), model_dir, card)
