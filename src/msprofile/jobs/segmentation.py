"""One function per inference-side job of the segmentation stage: files in, files out.

The scripts under ``workflow/scripts`` unpack ``snakemake.*`` and call these. Nothing here
imports TensorFlow: a segmentation job must start fast (see
:mod:`msprofile.segmentation.onnx_export`). Training jobs are in :mod:`.training_jobs`.
"""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np

from ..geometry import Grid, labels_to_native
from ..io import InputImageError, atomic_path, load_image, save_nifti
from ..workflow import is_placeholder
from .data import CLASSES, label_volume
from .infer import postprocess, predict_probabilities
from .model_io import ModelError, load_network

log = logging.getLogger(__name__)


def model_grid_image(flair_preproc_path) -> tuple[np.ndarray, Grid]:
    img = nib.load(flair_preproc_path)
    return np.asarray(img.dataobj, dtype=np.float32), Grid(tuple(img.shape[:3]), img.affine)


def native_grid(brain_mask_path) -> Grid:
    """The native grid, from the brain mask's header only."""
    img = nib.load(brain_mask_path)
    return Grid(tuple(img.shape[:3]), img.affine)


def brain_and_grid(brain_mask_path) -> tuple[np.ndarray, Grid]:
    """The brain mask (bool) and the native grid it is written on."""
    img = nib.load(brain_mask_path)
    return np.asarray(img.dataobj) > 0, Grid(tuple(img.shape[:3]), img.affine)


def check_model_fits(card: dict, model: Grid) -> None:
    """Raise when the preprocessed image is not on the grid the model was trained for."""
    expected = card.get("preprocessing", {})
    pixel = float(np.mean(model.voxel_size_mm[:2]))
    if "pixel_size_mm" in expected and abs(pixel - expected["pixel_size_mm"]) > 0.01:
        raise ModelError(f"the model expects {expected['pixel_size_mm']} mm pixels, the preprocessed image has {pixel:.3f} mm "
                         "(set preprocess.pixel_size_mm to the model's value)")


def segment_subject(subject_id: str, flair_preproc_path, brain_mask_path, model_dir, segmentation_path,
                    probabilities_path=None, *, device: str = "auto", batch_size: int = 8, threads: int = 0) -> dict:
    """Segment one preprocessed subject and write its native-grid labels.

    Labels (uint8: 0 background, 1 ventricles, 2 lesions) are predicted on the model grid,
    post-processed as in the reference, mapped back to the native grid by nearest neighbour
    and kept inside the brain mask (no ventricle or lesion lies outside the brain). With
    ``probabilities_path`` the class probabilities are also written (model grid, float32,
    one volume per class). The network runs in ONNX Runtime (see
    :mod:`msprofile.segmentation.onnx_export` for why) on ``device`` with ``threads`` CPU
    threads. Returns a small summary (device, voxel counts).
    """
    network, card = load_network(model_dir, device=device, threads=threads)
    flair_model, model_grid = model_grid_image(flair_preproc_path)
    check_model_fits(card, model_grid)
    brain, native = brain_and_grid(brain_mask_path)
    probabilities = predict_probabilities(network, flair_model, batch_size=batch_size)
    labels = native_labels(probabilities, model_grid, native, brain)
    save_nifti(labels.astype(np.uint8), native.affine, segmentation_path, zooms_mm=native.voxel_size_mm)
    if probabilities_path:
        save_nifti(probabilities, model_grid.affine, probabilities_path)
    counts = {name: int((labels == i).sum()) for i, name in enumerate(CLASSES)}
    log.info("%s: segmented on %s with model %s: %s", subject_id, network.device, card.get("name"), counts)
    return {"device": network.device, "voxels": counts}


def native_labels(probabilities: np.ndarray, model_grid: Grid, native: Grid, brain: np.ndarray) -> np.ndarray:
    """Post-processed labels of model-grid probabilities, on the native grid, inside ``brain``."""
    labels = labels_to_native(postprocess(probabilities), model_grid, native)
    labels[~brain] = 0
    return labels


def load_manual_labels(subject_id: str, wmh_path, ventricles_path, native: Grid | None = None) -> tuple[np.ndarray, Grid]:
    """Three-class labels from a subject's two manual masks, and their grid.

    With ``native`` given, both masks must lie on that grid (the FLAIR's). Mask values must
    be whole numbers from 0 (background) to 255, any non-zero value marking the structure
    (tools code one structure as 1, 255 or several labels); the ventricle mask must not be
    empty (every head has ventricles), the lesion mask may (a control without lesions).
    Otherwise :class:`~msprofile.io.InputImageError` names the subject, the mask and the problem.
    """
    masks = []
    for path, what in ((wmh_path, "lesion"), (ventricles_path, "ventricle")):
        data, affine = load_image(path, subject_id)
        grid = native or Grid(data.shape, affine)
        if data.shape != grid.shape or not np.allclose(affine, grid.affine, atol=1e-3):
            raise InputImageError(subject_id, path, f"{what} mask grid {data.shape} does not match the FLAIR's "
                                                    f"{grid.shape} (shape or affine)")
        whole = (data == np.round(data)) & (data >= 0) & (data <= 255)
        if not whole.all():
            odd = np.unique(data[~whole])[:5].round(4).tolist()
            raise InputImageError(subject_id, path, f"{what} mask values must be whole numbers from 0 to 255 "
                                                    f"(0 = background); found {odd}: a probability map or a "
                                                    "different image?")
        if what == "ventricle" and not data.any():
            raise InputImageError(subject_id, path, "ventricle mask is empty")
        if what == "lesion" and not data.any():
            log.info("subject %s: %s: lesion mask is empty (no lesions)", subject_id, path)
        masks.append(data.astype(np.uint8))
        native = grid
    return label_volume(*masks), native


