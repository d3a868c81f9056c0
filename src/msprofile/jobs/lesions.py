"""The per-subject lesion job: segmentation in, lesion classes and metrics out.

The classification rule works on axial slices, so everything is taken to the canonical
(RAS+) grid first, where slices lie on the last axis, inferior to superior, whatever the
stored orientation; the class volume is written back on the native grid.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd

from .geometry import Grid, from_canonical, to_canonical
from .io import atomic_path, load_image, save_json, save_nifti
from .lesions import lesion_profile


def lesion_table(lesions2d: pd.DataFrame, lesions3d: pd.DataFrame, subject_id: str) -> pd.DataFrame:
    """One table of both lesion kinds: ``kind`` is ``2d`` (one axial slice, area in mm^2) or
    ``3d`` (a connected component, volume in mL); columns that do not apply are missing."""
    table = pd.concat([lesions2d.assign(kind="2d"), lesions3d.assign(kind="3d")], ignore_index=True)
    table.insert(0, "subject_id", subject_id)
    return table[["subject_id", "kind", *[c for c in table.columns if c not in ("subject_id", "kind")]]]


def lesion_metrics_subject(subject_id: str, segmentation_path, flair_path, brain_mask_path, model_card: dict,
                           lesions_path, classes_path, metrics_path) -> dict:
    """Classify one subject's lesions and write ``lesions.parquet``, ``lesion_classes.nii.gz``
    (native grid, uint8: 0 none, 1 PEWMH, 2 PAWMH, 3 JCWMH) and ``metrics.json``.

    ``flair_path`` is the subject's input FLAIR (the cortical CSF mask is taken from it);
    ``model_card`` is the segmentation model's card, whose name and checksum go into the
    metrics so that the cohort table can say which model produced each row.
    """
    labels, affine = load_image(segmentation_path, subject_id, dtype=np.uint8)
    flair, _ = load_image(flair_path, subject_id)
    brain = np.asarray(nib.load(brain_mask_path).dataobj) > 0
    native = Grid(labels.shape, affine)
    canonical_labels, canonical = to_canonical(labels, native)
    profile = lesion_profile(
        np.ascontiguousarray(canonical_labels),
        np.ascontiguousarray(to_canonical(flair, native)[0]),
        np.ascontiguousarray(to_canonical(brain, native)[0]),
        canonical.voxel_size_mm,
    )
    save_nifti(from_canonical(profile.class_volume, native).astype(np.uint8), affine, classes_path,
               zooms_mm=native.voxel_size_mm)
    with atomic_path(lesions_path, suffix=".parquet") as tmp:
        lesion_table(profile.lesions2d, profile.lesions3d, subject_id).to_parquet(tmp, index=False)
    metrics = {
        "subject_id": subject_id,
        **profile.metrics,
        "segmentation_model": model_card.get("name"),
        "segmentation_model_sha256": model_card.get("files", {}).get("model.onnx", {}).get("sha256"),
    }
    save_json(metrics, metrics_path)
    return metrics
