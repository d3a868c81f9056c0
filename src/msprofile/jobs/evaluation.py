"""Jobs of ``evaluation.smk``: every segmentation with manual masks scored against them."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..failures import is_placeholder
from ..geometry import Grid
from ..io import InputImageError, load_image, load_manual_labels, save_figure, write_tsv
from ..segmentation.evaluate import (
    FIGURE_DPI,
    auroc_from_histograms,
    error_histograms,
    evaluate_subject,
    evaluation_figure,
    summarise,
    wrong_voxels,
)

log = logging.getLogger(__name__)

#: Floats of the evaluation tables: six significant digits are more than any Dice needs.
FLOAT_FORMAT = "%.6g"
#: The row of the uncertainty table that pools every evaluated subject's voxels.
POOLED = "pooled"


def evaluate_segmentations(
    subject_ids,
    segmentation_paths,
    uncertainty_paths,
    brain_mask_paths,
    wmh_paths,
    ventricles_paths,
    table_path,
    summary_path,
    uncertainty_table_path,
    figure_png_path,
    figure_pdf_path,
    on_error: str = "stop",
) -> None:
    """Score every subject's segmentation against its manual masks and write the per-subject
    table, the per-class summary, the uncertainty table (all TSV) and the figure (PNG and PDF).

    A subject with a lesion mask alone (empty ``ventricles_paths`` entry) is scored on lesions
    only. The uncertainty table says, per subject and pooled over all subjects' voxels, how well
    the uncertainty map finds the wrong voxels within the brain mask: ``subject_id``,
    ``n_voxels``, ``n_wrong``, ``uncertainty_auroc`` (the probability that a wrong voxel is more
    uncertain than a right one; :func:`msprofile.segmentation.evaluate.auroc_from_histograms`),
    ``classes`` (what "wrong" compares).

    Subjects whose processing failed are left out. A subject whose masks are unusable
    (:class:`~msprofile.io.InputImageError`) stops the job with ``on_error="stop"``; with
    ``"record"`` it is logged and left out. Raises ``ValueError`` when no subject is left."""
    rows, auroc_rows, pooled = [], [], None
    for subject_id, segmentation_path, uncertainty_path, brain_path, wmh_path, ventricles_path in zip(
        subject_ids, segmentation_paths, uncertainty_paths, brain_mask_paths, wmh_paths, ventricles_paths
    ):
        if is_placeholder(segmentation_path):
            log.warning("subject %s: not evaluated, its processing failed (on_error: record)", subject_id)
            continue
        predicted, affine = load_image(segmentation_path, subject_id, dtype=np.uint8)
        native = Grid(predicted.shape, affine)
        try:
            reference, _, classes = load_manual_labels(subject_id, wmh_path, ventricles_path, native)
        except InputImageError as exc:
            if on_error == "stop":
                raise
            log.error("not evaluated (on_error: record): %s", exc)
            continue
        rows += evaluate_subject(subject_id, reference, predicted, native.voxel_size_mm, classes=classes)
        uncertainty, _ = load_image(uncertainty_path, subject_id)
        brain = load_image(brain_path, subject_id, dtype=np.uint8)[0] > 0
        histograms = error_histograms(uncertainty, wrong_voxels(reference, predicted, classes), brain)
        auroc_rows.append(_auroc_row(subject_id, histograms, "+".join(classes)))
        pooled = histograms if pooled is None else {k: pooled[k] + histograms[k] for k in histograms}
    if not rows:
        raise ValueError("no subject with manual masks has a segmentation to evaluate: every one of them failed")
    table = pd.DataFrame(rows)
    write_tsv(table, table_path, float_format=FLOAT_FORMAT)
    write_tsv(summarise(table), summary_path, float_format=FLOAT_FORMAT)
    compared = "+".join(dict.fromkeys("+".join(r["classes"] for r in auroc_rows).split("+")))
    auroc_rows.append(_auroc_row(POOLED, pooled, compared))
    write_tsv(pd.DataFrame(auroc_rows), uncertainty_table_path, float_format=FLOAT_FORMAT)
    save_figure(evaluation_figure(table), figure_png_path, figure_pdf_path, dpi=FIGURE_DPI)


def _auroc_row(subject_id: str, histograms: dict, classes: str) -> dict:
    n_wrong, n_right = int(histograms["wrong"].sum()), int(histograms["right"].sum())
    return {
        "subject_id": subject_id,
        "n_voxels": n_wrong + n_right,
        "n_wrong": n_wrong,
        "uncertainty_auroc": auroc_from_histograms(histograms["wrong"], histograms["right"]),
        "classes": classes,
    }
