"""Jobs of ``evaluation.smk``: every segmentation with manual masks scored against them."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..failures import is_placeholder
from ..geometry import Grid
from ..io import InputImageError, load_image, load_manual_labels, save_figure, write_tsv
from ..segmentation.evaluate import FIGURE_DPI, evaluate_subject, evaluation_figure, summarise

log = logging.getLogger(__name__)

#: Floats of the evaluation tables: six significant digits are more than any Dice needs.
FLOAT_FORMAT = "%.6g"


def evaluate_segmentations(
    subject_ids,
    segmentation_paths,
    wmh_paths,
    ventricles_paths,
    table_path,
    summary_path,
    figure_png_path,
    figure_pdf_path,
    on_error: str = "stop",
) -> None:
    """Score every subject's segmentation against its manual masks and write the per-subject
    table, the per-class summary (both TSV) and the figure (PNG and PDF).

    Subjects whose processing failed are left out. A subject whose masks are unusable
    (:class:`~msprofile.io.InputImageError`) stops the job with ``on_error="stop"``; with
    ``"record"`` it is logged and left out. Raises ``ValueError`` when no subject is left."""
    rows = []
    for subject_id, segmentation_path, wmh_path, ventricles_path in zip(
        subject_ids, segmentation_paths, wmh_paths, ventricles_paths
    ):
        if is_placeholder(segmentation_path):
            log.warning("subject %s: not evaluated, its processing failed (on_error: record)", subject_id)
            continue
        predicted, affine = load_image(segmentation_path, subject_id, dtype=np.uint8)
        native = Grid(predicted.shape, affine)
        try:
            reference, _ = load_manual_labels(subject_id, wmh_path, ventricles_path, native)
        except InputImageError as exc:
            if on_error == "stop":
                raise
            log.error("not evaluated (on_error: record): %s", exc)
            continue
        rows += evaluate_subject(subject_id, reference, predicted, native.voxel_size_mm)
    if not rows:
        raise ValueError("no subject with manual masks has a segmentation to evaluate: every one of them failed")
    table = pd.DataFrame(rows)
    write_tsv(table, table_path, float_format=FLOAT_FORMAT)
    write_tsv(summarise(table), summary_path, float_format=FLOAT_FORMAT)
    save_figure(evaluation_figure(table), figure_png_path, figure_pdf_path, dpi=FIGURE_DPI)
