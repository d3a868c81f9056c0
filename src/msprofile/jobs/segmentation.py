"""Jobs of ``segmentation.smk``: one preprocessed subject in, its native-grid labels and
uncertainty out.

Nothing here imports TensorFlow: a segmentation job must start fast, so the networks run in
ONNX Runtime (see :mod:`msprofile.segmentation.onnx_export` for why).
"""

from __future__ import annotations

import logging

import numpy as np

from ..geometry import Grid
from ..io import load_image, read_header_geometry, save_nifti
from ..io.models import ModelError, load_ensemble
from ..labels import SEGMENTATION_CLASS_NAMES
from ..segmentation.data import NORMALISATIONS, brain_to_model, input_normalisation
from ..segmentation.infer import (
    ensemble_probabilities,
    native_labels,
    native_probabilities,
    native_uncertainty,
    predictive_entropy,
)
from ..segmentation.onnx_export import OnnxNetwork

log = logging.getLogger(__name__)


def segment_subject(
    subject_id: str,
    flair_preproc_path,
    brain_mask_path,
    model_dir,
    segmentation_path,
    uncertainty_path,
    probabilities_path=None,
    *,
    members: int = 1,
    flips: bool = False,
    device: str = "auto",
    batch_size: int = 1,
    threads: int = 0,
) -> dict:
    """Segment one preprocessed subject with an ensemble and write its native-grid labels and
    uncertainty.

    The first ``members`` networks of the model folder (the final model, then the
    cross-validation folds' networks; one for a model without members) run on the model-grid
    image, normalised as the card's ``input.normalisation`` says, with left-right
    flips too when ``flips``, and their class probabilities are averaged
    (:func:`msprofile.segmentation.infer.ensemble_probabilities`). Labels (uint8
    :class:`msprofile.labels.SegmentationClass` codes) are post-processed as in the reference,
    mapped back to the native grid by nearest neighbour and kept inside the brain mask
    (:func:`msprofile.segmentation.infer.native_labels`). The uncertainty map
    (:data:`msprofile.segmentation.infer.UNCERTAINTY_MEASURE`, float32 in [0, 1]) goes to the
    native grid by linear interpolation and is 0 outside the brain mask, where the labels are
    background by construction (:func:`msprofile.segmentation.infer.native_uncertainty`). With
    ``probabilities_path`` the averaged class probabilities are also written on the native grid
    (float32, (X, Y, Z, classes), background 1 outside the brain,
    :func:`msprofile.segmentation.infer.native_probabilities`). Every output keeps the brain
    mask's (the input's) sform and qform with their codes. The networks run in ONNX Runtime on
    ``device`` with ``threads`` CPU threads. Raises :class:`~msprofile.io.models.ModelError`
    when the model does not fit the preprocessing. Returns a small summary (device, networks,
    voxel counts, mean uncertainty).
    """
    networks, card = load_networks(model_dir, members, device=device, threads=threads)
    flair_model, affine_model = load_image(flair_preproc_path, subject_id)
    model_grid = Grid(flair_model.shape, affine_model)
    check_model_fits(card, model_grid)
    brain, affine = load_image(brain_mask_path, subject_id, dtype=np.uint8)
    native = Grid(brain.shape, affine)
    inside = brain > 0
    brain_model = brain_to_model(brain, native, model_grid)
    probabilities = ensemble_probabilities(
        networks,
        flair_model,
        brain_model,
        normalisation=input_normalisation(card),
        context=int(card.get("input", {}).get("context_slices", 0)),
        flips=flips,
        batch_size=batch_size,
    )
    header = read_header_geometry(brain_mask_path)
    labels = native_labels(probabilities, model_grid, native, inside)
    save_nifti(labels.astype(np.uint8), native.affine, segmentation_path, zooms_mm=native.voxel_size_mm, header=header)
    uncertainty = native_uncertainty(predictive_entropy(probabilities), model_grid, native, inside)
    save_nifti(uncertainty, native.affine, uncertainty_path, zooms_mm=native.voxel_size_mm, header=header)
    if probabilities_path:
        save_nifti(
            native_probabilities(probabilities, model_grid, native, inside),
            native.affine,
            probabilities_path,
            zooms_mm=native.voxel_size_mm,
            header=header,
        )
    counts = {name: int((labels == i).sum()) for i, name in enumerate(SEGMENTATION_CLASS_NAMES)}
    structures = labels > 0
    mean_uncertainty = float(uncertainty[structures].mean()) if structures.any() else float("nan")
    log.info(
        "%s: segmented on %s by %d network(s)%s of model %s: %s; mean uncertainty over lesions and ventricles %.3f",
        subject_id,
        networks[0].device,
        len(networks),
        " with flips" if flips else "",
        card.get("name"),
        counts,
        mean_uncertainty,
    )
    return {"device": networks[0].device, "networks": len(networks), "voxels": counts, "uncertainty": mean_uncertainty}


def load_networks(model_dir, members: int = 1, *, device: str = "auto", threads: int = 0) -> tuple[list, dict]:
    """The model folder's first ``members`` ONNX networks
    (:func:`msprofile.io.models.load_ensemble`), verified against its card and ready to run on
    ``device`` with ``threads`` CPU threads each, and the card. Raises
    :class:`~msprofile.io.models.ModelError` for a missing or corrupt model."""
    serialised, card = load_ensemble(model_dir, members)
    return [OnnxNetwork(network, device=device, threads=threads) for network in serialised], card


def load_network(model_dir, *, device: str = "auto", threads: int = 0) -> tuple[OnnxNetwork, dict]:
    """The model folder's main network alone (``model.onnx``) and the card; see :func:`load_networks`."""
    networks, card = load_networks(model_dir, 1, device=device, threads=threads)
    return networks[0], card


def check_model_fits(card: dict, model: Grid) -> None:
    """Raise :class:`~msprofile.io.models.ModelError` when the preprocessed image (on grid
    ``model``) is not on the pixel size the model card says the model was trained for, or
    when the card names a network input this version cannot make
    (:func:`msprofile.segmentation.data.input_normalisation`)."""
    expected = card.get("preprocessing", {})
    pixel = float(np.mean(model.voxel_size_mm[:2]))
    if "pixel_size_mm" in expected and abs(pixel - expected["pixel_size_mm"]) > 0.01:
        raise ModelError(
            f"the model expects {expected['pixel_size_mm']} mm pixels, the preprocessed image has {pixel:.3f} mm "
            "(set preprocess.pixel_size_mm to the model's value)"
        )
    if input_normalisation(card) is None:
        named = card.get("input", {}).get("normalisation", card.get("normalisation"))
        raise ModelError(
            f"model {card.get('name')!r} was trained on network inputs normalised as {named!r}; this version "
            f"of msprofile makes {' or '.join(map(repr, NORMALISATIONS))} inputs: use a newer msprofile or "
            "retrain the model"
        )
