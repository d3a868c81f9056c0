


def evaluate_segmentations(subject_ids, segmentation_paths, wmh_paths, ventricles_paths, table_path, summary_path,
                           figure_png_path, figure_pdf_path, on_error: str = "stop") -> None:
    """Score every subject's segmentation against its manual masks and write the per-subject
    table, the per-class summary (both TSV) and the figure (PNG and PDF).

    Subjects whose processing failed are left out. A subject whose masks are unusable
    (:class:`~msprofile.io.InputImageError`) stops the job with ``on_error="stop"``; with
    ``"record"`` it is logged and left out."""
    import pandas as pd

    from .evaluate import evaluate_subject, evaluation_figure, summarise

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
    for frame, path in ((table, table_path), (summarise(table), summary_path)):
        with atomic_path(path, suffix=".tsv") as tmp:
            frame.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    evaluation_figure(table, figure_png_path, figure_pdf_path)
