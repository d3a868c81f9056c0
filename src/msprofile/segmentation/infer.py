"""Inference: class probabilities per slice and the reference's post-processing."""

from __future__ import annotations

import os

import numpy as np
from scipy import ndimage

from .data import BACKGROUND, LESIONS, from_network, network_input

MIN_OBJECT_PIXELS = 5


def predict_probabilities(model, flair_model: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Class probabilities of a model-grid image (X, Y, Z) -> (X, Y, Z, classes) float32."""
    batch = network_input(flair_model)
    probabilities = np.concatenate(
        [np.asarray(model(batch[i : i + batch_size], training=False)) for i in range(0, len(batch), batch_size)]
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
        if label == BACKGROUND:
            continue
        components, _ = ndimage.label(labels == label, structure=in_plane_8)
        sizes = np.bincount(components.ravel())
        small = sizes < min_object_pixels
        small[0] = False
        labels[small[components]] = BACKGROUND
    lesions = labels == LESIONS
    cross = ndimage.generate_binary_structure(2, 1)[:, :, None]
    labels[lesions & ~ndimage.binary_opening(lesions, cross)] = BACKGROUND
    return labels


DEVICES = ("auto", "gpu", "cpu")


def configure_device(device: str) -> str:
    """Choose where TensorFlow runs; call before anything imports TensorFlow.

    ``device``: ``"cpu"`` hides every GPU; ``"gpu"`` requires one; ``"auto"`` uses a GPU when
    TensorFlow sees one. GPU memory grows on demand rather than being taken whole, so several
    jobs can share a card. Returns the device used, ``"gpu"`` or ``"cpu"``.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise RuntimeError("segmentation.device is 'gpu' but TensorFlow sees no GPU on this machine")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    return "gpu" if gpus else "cpu"
