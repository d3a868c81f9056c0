"""Inference: class probabilities per slice and the reference's post-processing."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..geometry import Grid, labels_to_native, resample
from ..labels import SegmentationClass
from .data import from_network, network_input

MIN_OBJECT_PIXELS = 5


def predict_probabilities(network, flair_model: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Class probabilities of a model-grid image (X, Y, Z) -> (X, Y, Z, classes) float32.

    ``network``: a callable mapping (N, H, W, 1) float32 slices to (N, H, W, classes)
    probabilities (an :class:`~msprofile.segmentation.onnx_export.OnnxNetwork`, or a Keras
    model wrapped by :func:`keras_network`).
    """
    batch = network_input(flair_model)
    probabilities = np.concatenate(
        [np.asarray(network(batch[i : i + batch_size])) for i in range(0, len(batch), batch_size)]
    )
    return from_network(probabilities.astype(np.float32))


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
    """A Keras model as a network callable for :func:`predict_probabilities`."""
    return lambda batch: np.asarray(model(batch, training=False))


def native_labels(probabilities: np.ndarray, model_grid: Grid, native: Grid, brain: np.ndarray) -> np.ndarray:
    """Post-processed labels (:func:`postprocess`) of model-grid ``probabilities`` (X, Y, Z,
    classes), on the ``native`` grid by nearest neighbour, set to background outside ``brain``
    (bool, native grid): no ventricle or lesion lies outside the brain. uint8 (X, Y, Z)."""
    labels = labels_to_native(postprocess(probabilities), model_grid, native)
    labels[~brain] = 0
    return labels


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
