"""Jobs of ``training.smk``: manual masks to the model grid, training slices, phantom label
maps, cross-validation folds and the final model with its ensemble members and card."""

from __future__ import annotations

import os
import platform
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import __version__
from ..failures import is_placeholder, read_failure
from ..geometry import Grid
from ..io import load_image, load_json, load_manual_labels, load_npz, read_grid, save_json, save_nifti, save_npz
from ..io.models import load_keras_model, read_card, save_model
from ..labels import SEGMENTATION_CLASS_NAMES
from ..segmentation.data import (
    BRAIN_SLICE_ZSCORE,
    LEGACY_NORMALISATION_TEXT,
    NORMALISATION,
    SLICE_ZSCORE,
    WHITE_MATTER_PEAK,
    brain_to_model,
    clip_anchored,
    context_stack,
    input_normalisation,
    labels_to_model,
    network_labels,
    scaled_to_peak,
)
from ..segmentation.evaluate import auroc_from_histograms, error_histograms, evaluate_subject, wrong_voxels
from ..segmentation.infer import (
    UNCERTAINTY_MEASURE,
    ensemble_probabilities,
    keras_network,
    native_labels,
    native_uncertainty,
    predictive_entropy,
)
from ..segmentation.model import inference_copy
from ..segmentation.onnx_export import checked_onnx
from ..segmentation.train import NOT_LESION, TrainingSettings, configure_tensorflow, train
from ..workflow import epoch_logger

#: Name of a cross-validation fold's network among a model's ensemble members.
MEMBER_PREFIX = "fold-"
#: The card's words for each network input (``input.normalisation`` is the machine-readable key).
NORMALISATION_TEXT = {
    WHITE_MATTER_PEAK: (
        "brain percentiles 1 and 99 mapped to 0 and 1 (preprocess), then scaled so that the white-matter peak "
        "of the brain histogram is 1 and clipped to [0, 6]"
    ),
    SLICE_ZSCORE: LEGACY_NORMALISATION_TEXT,
    BRAIN_SLICE_ZSCORE: (
        "brain percentiles 1 and 99 mapped to 0 and 1 (preprocess), set to 0 outside the brain mask, "
        "then each slice z-scored"
    ),
}


def write_training_labels(
    subject_id: str, wmh_path, ventricles_path, flair_preproc_path, brain_mask_path, out_path
) -> None:
    """Manual labels of one subject on its model grid (nearest neighbour): the three classes,
    or, for a subject with a lesion mask alone, lesions and
    :data:`~msprofile.segmentation.train.NOT_LESION` elsewhere (its ventricles are unknown).

    Training needs every training subject: one whose preprocessing failed is an error here
    whatever ``on_error`` says."""
    if is_placeholder(brain_mask_path):
        failure = read_failure(Path(brain_mask_path).parent) or {"error": "see its preprocess log"}
        raise ValueError(f"subject {subject_id}: training subject failed preprocessing: {failure['error']}")
    labels, native, classes = load_manual_labels(subject_id, wmh_path, ventricles_path, read_grid(brain_mask_path))
    if "ventricles" not in classes:
        labels[labels == 0] = NOT_LESION
    model_grid = read_grid(flair_preproc_path)
    labels = labels_to_model(labels, native, model_grid)
    save_nifti(labels, model_grid.affine, out_path)


def write_training_slices(subject_ids, flair_preproc_paths, brain_mask_paths, label_paths, out_path) -> None:
    """Stack every subject's slices into one ``.npz``: ``x`` (N, H, W) preprocessed slices
    divided by their subject's white-matter peak, not clipped
    (:func:`msprofile.segmentation.data.scaled_to_peak`; :func:`training_inputs` makes every
    network input from them), ``brain`` (N, H, W) bool brain masks, ``y`` (N, H, W) labels,
    ``subject`` (N,) subject IDs, every slice of every subject in order (so that a slice's
    neighbours can be stacked as channels)."""
    xs, brains, ys, owners = [], [], [], []
    for subject_id, flair_path, mask_path, label_path in zip(
        subject_ids, flair_preproc_paths, brain_mask_paths, label_paths
    ):
        flair, affine = load_image(flair_path, subject_id)
        model_grid = Grid(flair.shape, affine)
        brain = load_image(mask_path, subject_id, dtype=np.uint8)[0]
        brain_model = brain_to_model(brain, read_grid(mask_path), model_grid)
        xs.append(np.moveaxis(scaled_to_peak(flair, brain_model), 2, 0))
        brains.append(np.moveaxis(brain_model, 2, 0))
        ys.append(network_labels(load_image(label_path, subject_id, dtype=np.uint8)[0]))
        owners += [subject_id] * flair.shape[2]
    save_npz(
        out_path, x=np.concatenate(xs), brain=np.concatenate(brains), y=np.concatenate(ys), subject=np.array(owners)
    )


def training_inputs(
    slices: dict, context: int, normalisation: str = NORMALISATION
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training material of the stacked slices of :func:`write_training_slices` for a network
    trained on ``normalisation``: ``x`` (M, H, W, 1 + 2 ``context``) with each slice's neighbours
    of the same subject as channels, ``y`` (M, H, W), ``owners`` (M,); slices with no head are
    left out. ``x`` is in anchored units in every case: clipped to [0, 6]
    (:func:`msprofile.segmentation.data.clip_anchored`) for
    :data:`~msprofile.segmentation.data.WHITE_MATTER_PEAK`, unclipped for
    :data:`~msprofile.segmentation.data.SLICE_ZSCORE`, and set to 0 outside the brain for
    :data:`~msprofile.segmentation.data.BRAIN_SLICE_ZSCORE`; the z-scoring of each slice of these
    two :func:`msprofile.segmentation.train.augment_batch` does after augmentation (z-scores do
    not change with the scale, so the network then sees what
    :func:`~msprofile.segmentation.data.model_input` makes at inference). Raises ValueError for
    :data:`~msprofile.segmentation.data.BRAIN_SLICE_ZSCORE` slices written without brain masks
    (by msprofile before that input existed: rerun the ``training_slices`` job)."""
    x, y, owners = slices["x"], slices["y"], slices["subject"].astype(str)
    if normalisation == WHITE_MATTER_PEAK:
        x = clip_anchored(x)
    elif normalisation == BRAIN_SLICE_ZSCORE:
        if "brain" not in slices:
            raise ValueError(
                "the training slices have no brain masks (written by an older msprofile); "
                "delete them and rerun the training_slices job"
            )
        x = np.where(slices["brain"], x, 0.0).astype(np.float32)
    xs, ys, kept = [], [], []
    for subject_id in dict.fromkeys(owners):
        rows = owners == subject_id
        stacked = context_stack(x[rows], context)
        keep = x[rows].max(axis=(1, 2)) > 0
        xs.append(stacked[keep])
        ys.append(y[rows][keep])
        kept += [subject_id] * int(keep.sum())
    return np.concatenate(xs), np.concatenate(ys), np.array(kept)


def write_phantom_bank(count: int, seed: int, matrix, pixel_size_mm: float, out_path) -> None:
    """Tissue label maps of ``count`` phantoms on the model grid's matrix and pixel size
    (:func:`msprofile.segmentation.synthetic.phantom_bank`), as ``.npz``."""
    from ..segmentation.synthetic import phantom_bank

    save_npz(out_path, **phantom_bank(count, seed, matrix=tuple(matrix), pixel_size_mm=pixel_size_mm))


def phantom_inputs(bank: dict, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Painting material of a phantom bank: tissue codes (M, H, W, 1 + 2 ``context``) as float32
    with each slice's neighbours as channels, and segmentation labels (M, H, W); slices with
    less than 5 % head are left out."""
    from ..segmentation.synthetic import segmentation_labels

    tissue, labels = [], []
    for volume in np.unique(bank["volume"]):
        slices = bank["tissue"][bank["volume"] == volume]
        keep = (slices > 0).mean(axis=(1, 2)) > 0.05
        tissue.append(context_stack(slices, context)[keep])
        labels.append(segmentation_labels(slices[keep]))
    return np.concatenate(tissue).astype(np.float32), np.concatenate(labels)


def _training_material(slices_path, phantoms_path, init_model_dir, settings: TrainingSettings):
    """Slices, phantoms and the initial network of a training job, with the settings the initial
    network imposes (its width and input channels)."""
    init_model = None
    if init_model_dir:
        init_model, init_card = load_keras_model(init_model_dir)
        normalisation = input_normalisation(init_card)
        if normalisation is None:
            raise ValueError(f"initial model {init_model_dir}: its card names no network input this version can make")
        settings = replace(
            settings,
            base_filters=int(init_card["architecture"]["base_filters"]),
            context_slices=int(init_card.get("input", {}).get("context_slices", 0)),
            normalisation=normalisation,
        )
    x, y, owners = training_inputs(load_npz(slices_path), settings.context_slices, settings.normalisation)
    phantoms = None
    if settings.synthetic_fraction > 0:
        phantoms = phantom_inputs(load_npz(phantoms_path), settings.context_slices)
    return x, y, owners, phantoms, init_model, settings


def cross_validation_fold(
    held_out: str,
    slices_path,
    flair_preproc_path,
    brain_mask_path,
    wmh_path,
    ventricles_path,
    out_path,
    member_path,
    settings: TrainingSettings,
    *,
    phantoms_path=None,
    init_model_dir=None,
    flips: bool = False,
    device: str = "auto",
) -> dict:
    """Train without ``held_out``, score the held-out subject on its native grid and keep the
    fold's network as an ensemble member.

    The fold's schedule is fixed in advance (no early stopping on the held-out subject). The
    held-out subject is segmented by the fold's network (with left-right flips when ``flips``)
    and its uncertainty map scored as a detector of the wrong voxels within the brain
    (:func:`msprofile.segmentation.evaluate.auroc_from_histograms`). Writes the network as
    ONNX with float16 weights to ``member_path`` and ``{"subject_id", "epochs", "final_loss",
    "rows", "uncertainty_auroc", "uncertainty_histograms"}`` to ``out_path`` (``rows``: the
    evaluation rows of :func:`msprofile.segmentation.evaluate.evaluate_subject`); returns the latter.
    """
    configure_tensorflow(device)
    x, y, owners, phantoms, init_model, settings = _training_material(
        slices_path, phantoms_path, init_model_dir, settings
    )
    train_rows = owners != held_out
    model, losses = train(
        x[train_rows],
        y[train_rows],
        settings,
        phantoms=phantoms,
        init_model=init_model,
        on_epoch=epoch_logger(settings.epochs, f"fold without {held_out}"),
    )
    flair_model, affine_model = load_image(flair_preproc_path, held_out)
    model_grid = Grid(flair_model.shape, affine_model)
    brain, affine = load_image(brain_mask_path, held_out, dtype=np.uint8)
    native = Grid(brain.shape, affine)
    brain_model = brain_to_model(brain, native, model_grid)
    probabilities = ensemble_probabilities(
        [keras_network(model)],
        flair_model,
        brain_model,
        normalisation=settings.normalisation,
        context=settings.context_slices,
        flips=flips,
        batch_size=settings.batch_size,
    )
    predicted = native_labels(probabilities, model_grid, native, brain > 0)
    reference, _, classes = load_manual_labels(held_out, wmh_path, ventricles_path, native)
    rows = evaluate_subject(held_out, reference, predicted, native.voxel_size_mm, classes=classes)
    uncertainty = native_uncertainty(predictive_entropy(probabilities), model_grid, native, brain > 0)
    histograms = error_histograms(uncertainty, wrong_voxels(reference, predicted, classes), brain > 0)
    copy = inference_copy(model)
    Path(member_path).write_bytes(checked_onnx(copy, x[: settings.batch_size], half_weights=True))
    result = {
        "subject_id": held_out,
        "epochs": len(losses),
        "final_loss": losses[-1],
        "rows": rows,
        "uncertainty_auroc": auroc_from_histograms(histograms["wrong"], histograms["right"]),
        "uncertainty_histograms": {key: counts.tolist() for key, counts in histograms.items()},
    }
    save_json(result, out_path)
    return result


def cross_validation_summary(folds: list[dict]) -> dict:
    """The card's ``validation`` section from the fold results of :func:`cross_validation_fold`:
    per-class summary and per-subject rows (:func:`msprofile.segmentation.evaluate.summarise`),
    and the uncertainty AUROC per held-out subject and pooled over them."""
    import pandas as pd

    from ..segmentation.evaluate import summarise

    if not folds:
        return {"scheme": "none"}
    rows = pd.DataFrame([row for fold in folds for row in fold["rows"]])
    wrong = np.sum([fold["uncertainty_histograms"]["wrong"] for fold in folds], axis=0)
    right = np.sum([fold["uncertainty_histograms"]["right"] for fold in folds], axis=0)
    return {
        "scheme": "leave-one-subject-out",
        "note": (
            "each fold trained with the same fixed schedule; no early stopping on the held-out subject; "
            "the held-out subject segmented by the fold's network alone"
        ),
        "summary": summarise(rows).to_dict(orient="records"),
        "per_subject": rows.to_dict(orient="records"),
        "uncertainty_auroc": {
            "measure": "AUROC of the uncertainty map for 'this voxel is wrong', voxels within the brain mask",
            "per_subject": {fold["subject_id"]: fold["uncertainty_auroc"] for fold in folds},
            "pooled": auroc_from_histograms(wrong, right),
        },
    }


def train_final_model(
    name: str,
    slices_path,
    fold_paths,
    member_paths,
    model_dir,
    settings: TrainingSettings,
    *,
    preprocessing: dict,
    phantoms_path=None,
    init_model_dir=None,
    flips: bool = False,
    device: str = "auto",
) -> dict:
    """Train on every training subject and write the model, its ensemble members (the folds'
    networks, ``member_paths`` in the order of ``fold_paths``) and its card.

    The card carries the cross-validation results of ``fold_paths``
    (:func:`cross_validation_summary`), the training subjects, the settings, the initial model
    when fine-tuned, the ensemble and the preprocessing the model expects.
    """
    import keras
    import tensorflow as tf

    used = configure_tensorflow(device)
    x, y, owners, phantoms, init_model, settings = _training_material(
        slices_path, phantoms_path, init_model_dir, settings
    )
    model, losses = train(
        x,
        y,
        settings,
        phantoms=phantoms,
        init_model=init_model,
        on_epoch=epoch_logger(settings.epochs, f"model {name}"),
    )
    folds = [load_json(p) for p in fold_paths]
    members = {f"{MEMBER_PREFIX}{fold['subject_id']}": Path(p).read_bytes() for fold, p in zip(folds, member_paths)}
    card = {
        "name": name,
        "msprofile_version": __version__,
        "classes": list(SEGMENTATION_CLASS_NAMES),
        "input": {
            "shape": [None, None, 1 + 2 * settings.context_slices],
            "context_slices": settings.context_slices,
            "trained_on_matrix": list(x.shape[1:3]),
            "axis_order": "slices of the model grid (x, y); channels: the slice and its neighbours, inferior first",
            "normalisation": settings.normalisation,
        },
        "normalisation": NORMALISATION_TEXT[settings.normalisation],
        "preprocessing": preprocessing,
        "architecture": {
            "type": "attention_unet",
            "base_filters": settings.base_filters,
            "parameters": int(model.count_params()),
        },
        "training": {
            **settings.to_dict(),
            "init_model": _init_model_entry(init_model_dir),
            "subjects": sorted(set(owners.tolist())),
            "slices": int(len(x)),
            "final_loss": losses[-1],
            "loss_curve": [round(v, 5) for v in losses],
            "device": used,
        },
        "ensemble": {
            "members": [{"name": name, "held_out": fold["subject_id"]} for name, fold in zip(members, folds)],
            "member_weights": "float16 (cast to float32 when loaded)",
            "uncertainty": UNCERTAINTY_MEASURE,
            "flips_in_validation": flips,
        },
        "validation": cross_validation_summary(folds),
        "software": {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()},
    }
    os.makedirs(model_dir, exist_ok=True)
    return save_trained_model(model, model_dir, card, check_input=x[: settings.batch_size], members=members)


def _init_model_entry(init_model_dir) -> dict | None:
    if not init_model_dir:
        return None
    card = read_card(init_model_dir)
    return {
        "folder": str(init_model_dir),
        "name": card.get("name"),
        "sha256": card.get("files", {}).get("model.keras", {}).get("sha256"),
    }


def save_trained_model(model, model_dir, card: dict, *, check_input: np.ndarray, members=None) -> dict:
    """Write a trained network into ``model_dir`` as a model folder
    (:func:`msprofile.io.models.save_model`): its uncompiled inference copy as Keras and as
    ONNX, the export checked against the Keras output on ``check_input`` (N, H, W, C), and the
    ensemble ``members`` (name -> serialised ONNX). Returns the card as written."""
    copy = inference_copy(model)
    return save_model(copy, checked_onnx(copy, check_input), model_dir, card, members)
