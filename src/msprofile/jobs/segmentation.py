"""Jobs of ``segmentation.smk``: one preprocessed subject in, its native-grid labels out.

Nothing here imports TensorFlow: a segmentation job must start fast, so the network runs in
ONNX Runtime (see :mod:`msprofile.segmentation.onnx_export` for why).
"""

from __future__ import annotations

import logging

import numpy as np

from ..geometry import Grid
from ..io import load_image, read_header_geometry, save_nifti
from ..io.models import ModelError, load_onnx
from ..labels import SEGMENTATION_CLASS_NAMES
from ..segmentation.infer import native_labels, native_probabilities, predict_probabilities
from ..segmentation.onnx_export import OnnxNetwork

log = logging.getLogger(__name__)


def segment_subject(
    subject_id: str,
    flair_preproc_path,
    brain_mask_path,
    model_dir,
    segmentation_path,
    probabilities_path=None,
    *,
    device: str = "auto",
    batch_size: int = 8,
    threads: int = 0,
) -> dict:
    """Segment one preprocessed subject and write its native-grid labels.

    Labels (uint8 :class:`msprofile.labels.SegmentationClass` codes) are predicted on the
    model grid, post-processed as in the reference, mapped back to the native grid by nearest
    neighbour and kept inside the brain mask
    (:func:`msprofile.segmentation.infer.native_labels`); they keep the brain mask's (the
    input's) sform and qform with their codes. With ``probabilities_path`` the class
    probabilities are also written (native grid, float32, one volume per class,
    :func:`msprofile.segmentation.infer.native_probabilities`, with the same header). The network
    runs in ONNX Runtime on ``device`` with ``threads`` CPU threads. Raises
    :class:`~msprofile.io.models.ModelError` when the model does not fit the preprocessing.
    Returns a small summary (device, voxel counts).
    """
    network, card = load_network(model_dir, device=device, threads=threads)
    flair_model, affine_model = load_image(flair_preproc_path, subject_id)
    model_grid = Grid(flair_model.shape, affine_model)
    check_model_fits(card, model_grid)
    brain, affine = load_image(brain_mask_path, subject_id, dtype=np.uint8)
    native = Grid(brain.shape, affine)
    probabilities = predict_probabilities(network, flair_model, batch_size=batch_size)
    labels = native_labels(probabilities, model_grid, native, brain > 0)
    save_nifti(
        labels.astype(np.uint8),
        native.affine,
        segmentation_path,
        zooms_mm=native.voxel_size_mm,
        header=read_header_geometry(brain_mask_path),
    )
    if probabilities_path:
        save_nifti(
            native_probabilities(probabilities, model_grid, native, brain > 0),
            native.affine,
            probabilities_path,
            zooms_mm=native.voxel_size_mm,
            header=read_header_geometry(brain_mask_path),
        )
    counts = {name: int((labels == i).sum()) for i, name in enumerate(SEGMENTATION_CLASS_NAMES)}
    log.info("%s: segmented on %s with model %s: %s", subject_id, network.device, card.get("name"), counts)
    return {"device": network.device, "voxels": counts}


def load_network(model_dir, *, device: str = "auto", threads: int = 0) -> tuple[OnnxNetwork, dict]:
    """The model folder's ONNX network, verified against its card and ready to run on
    ``device`` with ``threads`` CPU threads, and the card. Raises
    :class:`~msprofile.io.models.ModelError` for a missing or corrupt model."""
    onnx_model, card = load_onnx(model_dir)
    return OnnxNetwork(onnx_model, device=device, threads=threads), card


def check_model_fits(card: dict, model: Grid) -> None:
    """Raise :class:`~msprofile.io.models.ModelError` when the preprocessed image (on grid
    ``model``) is not on the pixel size the model card says the model was trained for."""
    expected = card.get("preprocessing", {})
    pixel = float(np.mean(model.voxel_size_mm[:2]))
    if "pixel_size_mm" in expected and abs(pixel - expected["pixel_size_mm"]) > 0.01:
        raise ModelError(
            f"the model expects {expected['pixel_size_mm']} mm pixels, the preprocessed image has {pixel:.3f} mm "
            "(set preprocess.pixel_size_mm to the model's value)"
        )
