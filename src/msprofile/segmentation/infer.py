"""Inference: ensemble class probabilities, their uncertainty and the reference's post-processing."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..geometry import Grid, labels_to_native, resample
from ..labels import SegmentationClass
from .data import BRAIN_SLICE_ZSCORE, WHITE_MATTER_PEAK, from_network, model_input

MIN_OBJECT_PIXELS = 5
#: The network runs on the brain's bounding box widened by this margin (pixels) and rounded
#: up to a multiple of :data:`DIVISOR` (four poolings), not on the whole model grid: nothing
#: outside the brain is kept, and the box is about half the grid.
BOX_MARGIN_PX = 16
DIVISOR = 16
#: The inputs whose networks run on :func:`brain_box` only. Both are constant outside the
#: brain, so the network has nothing to find there; :data:`~msprofile.segmentation.data.BRAIN_SLICE_ZSCORE`
#: is z-scored over the whole slice first, then cut (on the sample and ISBI scans the box took
#: 0.55 to 0.7 of the whole slices' time, and its lesion Dice against the experts was within
#: -0.002 to +0.022 of theirs). :data:`~msprofile.segmentation.data.SLICE_ZSCORE` keeps whole
#: slices: its scalp is part of what the network sees.
BOXED_NORMALISATIONS = (WHITE_MATTER_PEAK, BRAIN_SLICE_ZSCORE)
UNCERTAINTY_MEASURE = (
    "normalised predictive entropy: -sum_c p_c log p_c / log C of the class probabilities averaged over the "
    "ensemble members (and left-right flips), 0 certain, 1 all classes equally likely"
)


def brain_box(brain_model: np.ndarray, margin_px: int = BOX_MARGIN_PX, divisor: int = DIVISOR):
    """Where the network runs: ``(rows, columns, slices)`` of the model grid (X, Y, Z).

    ``rows`` and ``columns`` are slices of the brain's in-plane bounding box over all slices,
    widened by ``margin_px`` and rounded up to a multiple of ``divisor`` (the network's
    input size must be), kept inside the grid where it can; ``slices`` the indices of the
    slices holding brain. With no brain at all: the whole grid, no slice.
    """
    shape = brain_model.shape
    if not brain_model.any():
        return slice(0, shape[0]), slice(0, shape[1]), np.zeros(0, dtype=int)
    spans = []
    for axis, other in ((0, (1, 2)), (1, (0, 2))):
        present = np.flatnonzero(brain_model.any(axis=other))
        low, high = max(int(present[0]) - margin_px, 0), min(int(present[-1]) + 1 + margin_px, shape[axis])
        size = min(math.ceil((high - low) / divisor) * divisor, shape[axis] - shape[axis] % divisor)
        low = min(max(low - (size - (high - low)) // 2, 0), shape[axis] - size)
        spans.append(slice(low, low + size))
    return spans[0], spans[1], np.flatnonzero(brain_model.any(axis=(0, 1)))


def ensemble_probabilities(
    networks,
    flair_model: np.ndarray,
    brain_model: np.ndarray,
    *,
    normalisation: str = WHITE_MATTER_PEAK,
    context: int = 0,
    flips: bool = False,
    batch_size: int = 1,
) -> np.ndarray:
    """Class probabilities of a model-grid image averaged over ``networks`` -> (X, Y, Z, C) float32.

    ``networks``: callables mapping (N, H, W, 1 + 2 ``context``) float32 slices to
    (N, H, W, C) probabilities (:class:`~msprofile.segmentation.onnx_export.OnnxNetwork` or
    :func:`keras_network`). ``flair_model``: the preprocessed image (X, Y, Z); ``brain_model``:
    bool brain mask on the same grid. ``normalisation``: the input the networks were trained on
    (:func:`msprofile.segmentation.data.model_input`). The networks of
    :data:`BOXED_NORMALISATIONS` run on :func:`brain_box` only (elsewhere: background with
    probability 1), those of :data:`~msprofile.segmentation.data.SLICE_ZSCORE` on every whole
    slice (one such network without flips gives exactly the probabilities of msprofile <= 0.2).
    With ``flips`` each network also runs on the left-right mirrored slices (mirrored back),
    and every pass weighs the same in the average. ``batch_size``: slices per network call;
    the probabilities do not depend on it (each slice is computed alone), and one slice at a
    time is fastest in ONNX Runtime on a CPU, where a slice's activations stay in the cache.
    """
    batch = model_input(flair_model, brain_model, normalisation, context)
    if normalisation in BOXED_NORMALISATIONS:
        rows, columns, slices = brain_box(brain_model)
        batch = batch[slices][:, rows, columns]
    else:
        rows, columns, slices = slice(None), slice(None), np.arange(batch.shape[0])
    passes = [(network, False) for network in networks] + ([(n, True) for n in networks] if flips else [])
    total = None
    for network, flipped in passes:
        inputs = batch[:, ::-1] if flipped else batch
        out = np.concatenate(
            [
                np.asarray(network(np.ascontiguousarray(inputs[i : i + batch_size])))
                for i in range(0, len(inputs), batch_size)
            ]
            or [np.zeros((0, *batch.shape[1:3], 3), np.float32)]
        )
        out = out[:, ::-1] if flipped else out
        total = out.astype(np.float32) if total is None else total + out
    probabilities = np.zeros((flair_model.shape[2], *flair_model.shape[:2], total.shape[-1]), dtype=np.float32)
    probabilities[..., SegmentationClass.BACKGROUND] = 1.0
    probabilities[slices, rows, columns] = total / len(passes)
    return from_network(probabilities)


def predictive_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Normalised predictive entropy of class probabilities (..., C) -> (...) float32 in [0, 1]
    (see :data:`UNCERTAINTY_MEASURE`)."""
    p = np.clip(probabilities.astype(np.float32), 1e-7, 1.0)
    entropy = -np.sum(p * np.log(p), axis=-1) / np.log(probabilities.shape[-1])
    return np.clip(entropy, 0.0, 1.0).astype(np.float32)


def postprocess(probabilities: np.ndarray, min_object_pixels: int = MIN_OBJECT_PIXELS) -> np.ndarray:
    """Labels from probabilities (X, Y, Z, classes), post-processed as in the reference.

    Per axial slice: argmax; objects (8-connected) of any class smaller than
    ``min_object_pixels`` become background; then a binary opening with a radius-1 cross of
    the lesion class only. Returns uint8 (X, Y, Z).
    """
    labels = np.argmax(probabilities, axis=-1).astype(np.uint8)
    in_plane_8 = np.zeros((3, 3, 3), dtype=bool)
    in_plane_8[:, :, 1] = True
    for label in np.unique(labels):
        if label == SegmentationClass.BACKGROUND:
            continue
        components, _ = ndimage.label(labels == label, structure=in_plane_8)
        sizes = np.bincount(components.ravel())
        small = sizes < min_object_pixels
        small[0] = False
        labels[small[components]] = SegmentationClass.BACKGROUND
    lesions = labels == SegmentationClass.LESIONS
    cross = ndimage.generate_binary_structure(2, 1)[:, :, None]
    labels[lesions & ~ndimage.binary_opening(lesions, cross)] = SegmentationClass.BACKGROUND
    return labels


def keras_network(model):
    """A Keras model as a network callable for :func:`ensemble_probabilities`."""
    return lambda batch: np.asarray(model(batch, training=False))


def native_labels(probabilities: np.ndarray, model_grid: Grid, native: Grid, brain: np.ndarray) -> np.ndarray:
    """Post-processed labels (:func:`postprocess`) of model-grid ``probabilities`` (X, Y, Z,
    classes), on the ``native`` grid by nearest neighbour, set to background outside ``brain``
    (bool, native grid): no ventricle or lesion lies outside the brain. uint8 (X, Y, Z)."""
    labels = labels_to_native(postprocess(probabilities), model_grid, native)
    labels[~brain] = 0
    return labels


def native_uncertainty(uncertainty: np.ndarray, model_grid: Grid, native: Grid, brain: np.ndarray) -> np.ndarray:
    """A model-grid uncertainty map (X, Y, Z; :func:`predictive_entropy`) on the ``native`` grid
    by linear interpolation, 0 outside ``brain`` (bool, native grid), where the labels of
    :func:`native_labels` are background by construction, and outside the model grid.
    float32 (X, Y, Z) in [0, 1]."""
    mapped = resample(np.asarray(uncertainty, dtype=np.float32), model_grid, native, order=1)
    return np.where(brain, np.clip(mapped, 0.0, 1.0), 0.0).astype(np.float32)


def segmentation_uncertainty(labels: np.ndarray, uncertainty: np.ndarray) -> dict:
    """A subject's mean uncertainty over its predicted structures, for ``metrics.json`` and the
    cohort table: ``segmentation_uncertainty`` over the lesion and ventricle voxels together,
    ``segmentation_uncertainty_lesions`` and ``segmentation_uncertainty_ventricles`` over each
    (NaN where the segmentation has none). ``labels``: uint8 segmentation, ``uncertainty``: its
    uncertainty map, both on the native grid."""
    labels = np.asarray(labels)
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    if labels.shape != uncertainty.shape:
        raise ValueError(f"uncertainty map shape {uncertainty.shape} differs from the segmentation's {labels.shape}")

    def mean_over(mask):
        return float(uncertainty[mask].mean()) if mask.any() else float("nan")

    return {
        "segmentation_uncertainty": mean_over(labels > 0),
        "segmentation_uncertainty_lesions": mean_over(labels == SegmentationClass.LESIONS),
        "segmentation_uncertainty_ventricles": mean_over(labels == SegmentationClass.VENTRICLES),
    }


def native_probabilities(probabilities: np.ndarray, model_grid: Grid, native: Grid, brain: np.ndarray) -> np.ndarray:
    """Model-grid class ``probabilities`` (X, Y, Z, classes) on the ``native`` grid: each
    ventricle and lesion map resampled linearly, 0 outside ``brain`` (bool, native grid; as the
    labels of :func:`native_labels`) and outside the model grid, the background the rest to 1.
    float32 (X, Y, Z, classes), every voxel summing to 1."""
    out = np.zeros((*native.shape, probabilities.shape[-1]), dtype=np.float32)
    for index in range(probabilities.shape[-1]):
        if index != SegmentationClass.BACKGROUND:
            mapped = resample(probabilities[..., index], model_grid, native, order=1)
            out[..., index] = np.where(brain, np.clip(mapped, 0.0, 1.0), 0.0)
    foreground = out.sum(axis=-1)
    # Linear interpolation of maps that each lie in [0, 1] and sum to at most 1 keeps the sum
    # at most 1 but for rounding; scale the rare excess away rather than let the background go negative.
    excess = foreground > 1.0
    out[excess] /= foreground[excess][:, None]
    out[..., SegmentationClass.BACKGROUND] = 1.0 - out.sum(axis=-1)
    return out
