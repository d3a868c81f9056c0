"""Jobs of ``lesions.smk``: one subject's segmentation in, lesion classes and metrics out.

The classification rule works on axial slices, so everything is taken to the canonical
(RAS+) grid first, where slices lie on the last axis, inferior to superior, whatever the
stored orientation; the class volume is written back on the native grid.
"""

from __future__ import annotations

import numpy as np

from ..geometry import Grid, from_canonical, to_canonical
from ..io import (
    load_image,
    load_json,
    read_header_geometry,
    save_json,
    save_nifti,
    save_png,
    write_parquet,
    write_tsv,
)
from ..lesions import lesion_profile, lesion_stats, lesion_table
from ..montage import segmentation_montage
from ..segmentation.infer import segmentation_uncertainty

#: Floats of ``lesion_stats.tsv``: volumes in mL to a microlitre.
STATS_FLOAT_FORMAT = "%.6g"


def canonical_rule_inputs(
    subject_id: str, labels: np.ndarray, native: Grid, flair_path, brain_mask_path
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], Grid]:
    """What the lesion rule (:func:`msprofile.lesions.lesion_profile`) takes, on the canonical
    (RAS+) grid: the segmentation ``labels`` (uint8, on ``native``, the input's grid), the input
    FLAIR (float32, non-finite voxels outside the head set to 0) and the brain mask (bool), each
    (X, Y, Z) and C-contiguous, and that grid (its ``voxel_size_mm`` and ``slice_origin_mm``
    place the rule's slabs)."""
    # NaN outside the head was accepted by preprocessing; the CSF mask sees only the brain.
    flair = np.nan_to_num(load_image(flair_path, subject_id, allow_nonfinite=True)[0], nan=0.0, posinf=0.0, neginf=0.0)
    brain = load_image(brain_mask_path, subject_id, dtype=np.uint8)[0] > 0
    canonical_labels, canonical = to_canonical(labels, native)
    arrays = (canonical_labels, to_canonical(flair, native)[0], to_canonical(brain, native)[0])
    return tuple(np.ascontiguousarray(a) for a in arrays), canonical


def lesion_metrics_subject(
    subject_id: str,
    segmentation_path,
    uncertainty_path,
    flair_path,
    brain_mask_path,
    model_card_path,
    lesions_path,
    classes_path,
    metrics_path,
    *,
    stats_path,
    qc_png_path,
) -> dict:
    """Classify one subject's lesions and write ``lesions.parquet``, ``lesion_classes.nii.gz``
    (native grid, uint8 :class:`msprofile.labels.LesionClass` codes), ``metrics.json``,
    ``lesion_stats.tsv`` (:func:`msprofile.lesions.lesion_stats`) and the segmentation QC picture
    (:func:`msprofile.montage.segmentation_montage`).

    The class volume keeps the segmentation's (the input's) sform and qform with their codes.
    ``uncertainty_path`` is the segmentation's uncertainty map, whose means over the predicted
    lesion and ventricle voxels go into the metrics
    (:func:`msprofile.segmentation.infer.segmentation_uncertainty`);
    ``flair_path`` is the subject's input FLAIR (the cortical CSF mask is taken from it);
    ``model_card_path`` is the segmentation model's card, whose name and checksum go into the
    metrics so that the cohort table can say which model produced each row. Returns the metrics.
    """
    model_card = load_json(model_card_path)
    labels, affine = load_image(segmentation_path, subject_id, dtype=np.uint8)
    uncertainty, _ = load_image(uncertainty_path, subject_id)
    native = Grid(labels.shape, affine)
    (canonical_labels, canonical_flair, canonical_brain), canonical = canonical_rule_inputs(
        subject_id, labels, native, flair_path, brain_mask_path
    )
    profile = lesion_profile(
        canonical_labels,
        canonical_flair,
        canonical_brain,
        canonical.voxel_size_mm,
        slice_origin_mm=canonical.slice_origin_mm,
    )
    save_nifti(
        from_canonical(profile.class_volume, native).astype(np.uint8),
        affine,
        classes_path,
        zooms_mm=native.voxel_size_mm,
        header=read_header_geometry(segmentation_path),
    )
    write_parquet(lesion_table(profile.lesions2d, profile.lesions3d, subject_id), lesions_path)
    metrics = {
        "subject_id": subject_id,
        **profile.metrics,
        **segmentation_uncertainty(labels, uncertainty),
        "segmentation_model": model_card.get("name"),
        "segmentation_model_sha256": model_card.get("files", {}).get("model.onnx", {}).get("sha256"),
    }
    save_json(metrics, metrics_path)
    write_tsv(lesion_stats(profile.metrics, profile.class_volume), stats_path, float_format=STATS_FLOAT_FORMAT)
    save_png(
        segmentation_montage(canonical_flair, canonical_brain, canonical_labels, profile.class_volume, subject_id),
        qc_png_path,
    )
    return metrics
