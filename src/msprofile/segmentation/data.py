"""Label volumes and network inputs on the model grid (docs/method.md sections 2 and 3)."""

from __future__ import annotations

import numpy as np

from ..geometry import Grid, resample, to_canonical


def labels_to_model(labels: np.ndarray, native: Grid, model: Grid) -> np.ndarray:
    """Bring a native-grid label volume onto the model grid by nearest neighbour (uint8)."""
    canonical_labels, canonical = to_canonical(labels, native)
    return resample(np.ascontiguousarray(canonical_labels), canonical, model, order=0).astype(np.uint8)


def network_input(flair_model: np.ndarray) -> np.ndarray:
    """Model-grid image (X, Y, Z) -> network batch (Z, X, Y, 1), each slice z-scored on its own.

    As in the reference, every slice is standardised with its own mean and SD (a slice with no
    contrast becomes zeros), so the network sees the same scale whatever the scanner.
    """
    slices = np.moveaxis(np.asarray(flair_model, dtype=np.float32), 2, 0)
    mean = slices.mean(axis=(1, 2), keepdims=True)
    sd = slices.std(axis=(1, 2), keepdims=True)
    standardised = np.where(sd > 0, (slices - mean) / np.where(sd > 0, sd, 1.0), 0.0)
    return standardised[..., None].astype(np.float32)


def network_labels(labels_model: np.ndarray) -> np.ndarray:
    """Model-grid labels (X, Y, Z) -> per-slice targets (Z, X, Y), uint8."""
    return np.ascontiguousarray(np.moveaxis(labels_model, 2, 0)).astype(np.uint8)


def from_network(per_slice: np.ndarray) -> np.ndarray:
    """Per-slice array (Z, X, Y, ...) back to a model-grid volume (X, Y, Z, ...)."""
    return np.moveaxis(per_slice, 0, 2)
