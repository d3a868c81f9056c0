"""Evaluation of a segmentation against manual labels (docs/method.md section 3).

Label volumes are integer arrays of shape (X, Y, Z) on the subject's native grid:
0 background, 1 ventricles, 2 lesions (MS white-matter hyperintensities). The last axis is
the slice axis (thick axial slices, e.g. 0.898 x 0.898 x 6.5 mm). Voxel sizes are given in mm
in array-axis order, and every distance is computed in mm with them, never in voxels.

Reported per subject and class: voxel overlap (tp, fp, fn), Dice, IoU, volumes in mL and the
95th-percentile symmetric surface distance (HD95, mm); for lesions also lesion-wise detection
(connected components). :func:`summarise` pools them over subjects (pooled and per-subject
mean and SD, as the method asks), and :func:`evaluation_figure` draws per-subject Dice.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import ndimage

from ..labels import SegmentationClass

#: Evaluated classes, in report order: name -> label value.
CLASS_LABELS = {"ventricles": SegmentationClass.VENTRICLES, "lesions": SegmentationClass.LESIONS}

#: Lesion connectivities accepted by :func:`lesion_detection`.
#: ``"3d26"``: 3-D components, voxels joined by faces, edges or corners (the default);
#: ``"3d6"``: 3-D components joined by faces only;
#: ``"2d8"``: 2-D components within each axial slice (last axis), 8-connected in-plane,
#: never joined across slices: the reference's lesion unit (docs/method.md section 4);
#: ``"2d4"``: as ``"2d8"`` with 4-connectivity in-plane.
CONNECTIVITIES = ("3d26", "3d6", "2d8", "2d4")
DEFAULT_CONNECTIVITY = "3d26"

#: Column order of the rows of :func:`evaluate_subject`.
ROW_COLUMNS = (
    "subject_id",
    "class_name",
    "label",
    "tp",
    "fp",
    "fn",
    "reference_volume_ml",
    "predicted_volume_ml",
    "dice",
    "iou",
    "hd95_mm",
    "lesion_connectivity",
    "n_reference_lesions",
    "n_detected_lesions",
    "n_predicted_lesions",
    "n_false_positive_lesions",
    "lesion_precision",
    "lesion_recall",
    "lesion_f1",
)

_DETECTION_KEYS = ("n_reference_lesions", "n_detected_lesions", "n_predicted_lesions", "n_false_positive_lesions")


# --------------------------------------------------------------------------------------------
# Voxel overlap


def _check_pair(reference: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference, predicted = np.asarray(reference), np.asarray(predicted)
    if reference.shape != predicted.shape:
        raise ValueError(f"reference shape {reference.shape} differs from predicted shape {predicted.shape}")
    return reference, predicted


def overlap_counts(reference: np.ndarray, predicted: np.ndarray, label: int) -> dict:
    """Voxel counts of agreement for one class.

    ``reference``, ``predicted``: label arrays of the same shape (any dimensionality).
    ``label``: the class value. Returns ``{"tp", "fp", "fn"}`` as Python ints (voxels):
    tp = reference and predicted are ``label``; fp = predicted only; fn = reference only.
    """
    reference, predicted = _check_pair(reference, predicted)
    ref, pred = reference == label, predicted == label
    tp = int(np.count_nonzero(ref & pred))
    return {"tp": tp, "fp": int(np.count_nonzero(pred)) - tp, "fn": int(np.count_nonzero(ref)) - tp}


def dice(tp: int, fp: int, fn: int) -> float:
    """Dice coefficient 2 tp / (2 tp + fp + fn), in [0, 1], from voxel counts.

    Defined as 1.0 when the class is absent from both reference and prediction
    (tp = fp = fn = 0): an empty prediction of an empty class is perfect.
    """
    denominator = 2 * tp + fp + fn
    return 1.0 if denominator == 0 else float(2 * tp / denominator)


def iou(tp: int, fp: int, fn: int) -> float:
    """Intersection over union (Jaccard) tp / (tp + fp + fn), in [0, 1], from voxel counts.

    Defined as 1.0 when the class is absent from both (tp = fp = fn = 0), as :func:`dice`.
    """
    denominator = tp + fp + fn
    return 1.0 if denominator == 0 else float(tp / denominator)


# --------------------------------------------------------------------------------------------
# Surface distance


def _voxel_size(voxel_size_mm, ndim: int) -> np.ndarray:
    sizes = np.asarray(voxel_size_mm, dtype=np.float64).ravel()
    if sizes.size != ndim or not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise ValueError(
            f"voxel_size_mm must be {ndim} positive finite sizes in mm, got {list(np.atleast_1d(voxel_size_mm))}"
        )
    return sizes


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels of a boolean mask (bool array of the same shape).

    A voxel is on the surface when it is in the mask and at least one of its face neighbours
    (6-connectivity in 3-D; 2 x ndim neighbours in general) is not, voxels outside the array
    counting as background. So a lesion one slice thick is all surface, and a mask touching
    the edge of the volume has a surface there.
    """
    mask = np.asarray(mask, dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def _distances_to(target_surface: np.ndarray, points: np.ndarray, sampling: np.ndarray) -> np.ndarray:
    """Distance in mm from each True voxel of ``points`` to the nearest True voxel of ``target_surface``."""
    # Crop to the box holding both sets: every nearest target voxel lies inside it, so the
    # distance transform of the crop gives the same distances at a fraction of the cost.
    both = np.argwhere(target_surface | points)
    lo, hi = both.min(axis=0), both.max(axis=0) + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    distance = ndimage.distance_transform_edt(~target_surface[box], sampling=sampling)
    return distance[points[box]]


def surface_distances_mm(reference_mask: np.ndarray, predicted_mask: np.ndarray, voxel_size_mm) -> np.ndarray:
    """All symmetric surface distances in mm (1-D float array; empty if either mask is empty).

    The distances from every surface voxel of the reference (see :func:`surface_voxels`) to
    the nearest surface voxel of the prediction, followed by those from every prediction
    surface voxel to the nearest reference surface voxel; voxel centres, mm via
    ``voxel_size_mm`` (one size per array axis).
    """
    reference_mask, predicted_mask = _check_pair(np.asarray(reference_mask, bool), np.asarray(predicted_mask, bool))
    sampling = _voxel_size(voxel_size_mm, reference_mask.ndim)
    if not reference_mask.any() or not predicted_mask.any():
        return np.zeros(0)
    ref_surface, pred_surface = surface_voxels(reference_mask), surface_voxels(predicted_mask)
    return np.concatenate(
        [
            _distances_to(pred_surface, ref_surface, sampling),
            _distances_to(ref_surface, pred_surface, sampling),
        ]
    )


def hausdorff95_mm(reference_mask: np.ndarray, predicted_mask: np.ndarray, voxel_size_mm) -> float:
    """95th-percentile symmetric surface distance (HD95) in mm.

    ``reference_mask``, ``predicted_mask``: boolean arrays (X, Y, Z) of the same shape.
    ``voxel_size_mm``: the voxel size along each array axis in mm (anisotropic sizes are
    honoured: a distance of one slice is the slice spacing, not one voxel).

    Surfaces are the 3-D 6-connected boundaries of :func:`surface_voxels`. The two directed
    sets of distances (reference surface to predicted surface, and back) are pooled into one
    set and its 95th percentile taken (numpy's linear interpolation). Identical masks give 0.
    Returns NaN when either mask is empty (the distance is undefined).
    """
    distances = surface_distances_mm(reference_mask, predicted_mask, voxel_size_mm)
    return float("nan") if distances.size == 0 else float(np.percentile(distances, 95))


# --------------------------------------------------------------------------------------------
# Lesion-wise detection


def lesion_structure(connectivity: str = DEFAULT_CONNECTIVITY) -> np.ndarray:
    """The 3 x 3 x 3 structuring element of ``connectivity`` (see :data:`CONNECTIVITIES`)."""
    if connectivity == "3d26":
        return ndimage.generate_binary_structure(3, 3)
    if connectivity == "3d6":
        return ndimage.generate_binary_structure(3, 1)
    if connectivity in ("2d8", "2d4"):
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[:, :, 1] = ndimage.generate_binary_structure(2, 2 if connectivity == "2d8" else 1)
        return structure
    raise ValueError(f"unknown lesion connectivity {connectivity!r}; expected one of {', '.join(CONNECTIVITIES)}")


def _ratio(numerator: int, denominator: int) -> float:
    return float("nan") if denominator == 0 else numerator / denominator


def _f1(precision: float, recall: float) -> float:
    if math.isnan(precision) or math.isnan(recall):
        return float("nan")
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def detection_scores(n_reference: int, n_detected: int, n_predicted: int, n_false_positive: int) -> dict:
    """Lesion-wise precision, recall and F1 from lesion counts.

    precision = (n_predicted - n_false_positive) / n_predicted, NaN with no predicted lesion;
    recall = n_detected / n_reference, NaN with no reference lesion;
    F1 = their harmonic mean, NaN when either is NaN, 0 when both are 0.
    """
    precision = _ratio(n_predicted - n_false_positive, n_predicted)
    recall = _ratio(n_detected, n_reference)
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def lesion_detection(
    reference_mask: np.ndarray, predicted_mask: np.ndarray, connectivity: str = DEFAULT_CONNECTIVITY
) -> dict:
    """Lesion-wise detection of ``predicted_mask`` against ``reference_mask``.

    Both are boolean arrays (X, Y, Z) of the same shape, Z the slice axis. Lesions are the
    connected components of each mask under ``connectivity`` (default ``"3d26"``: 3-D,
    26-connected; ``"2d8"``: per-slice 2-D 8-connected components, the reference's lesion
    unit; see :data:`CONNECTIVITIES`). A reference lesion is *detected* when at least one of
    its voxels is in the predicted mask; a predicted lesion is a *true positive* when at least
    one of its voxels is in the reference mask, otherwise a false positive. So two predicted
    blobs on one reference lesion are two true positives and one detection; one predicted blob
    over two reference lesions is one true positive and two detections.

    Returns a dict: ``connectivity``; counts (ints) ``n_reference_lesions``,
    ``n_detected_lesions``, ``n_predicted_lesions``, ``n_false_positive_lesions``; and
    ``precision``, ``recall``, ``f1`` as in :func:`detection_scores` (NaN where undefined:
    no predicted lesion, no reference lesion).
    """
    reference_mask, predicted_mask = _check_pair(np.asarray(reference_mask, bool), np.asarray(predicted_mask, bool))
    if reference_mask.ndim != 3:
        raise ValueError(f"lesion masks must be 3-D (X, Y, Z), got shape {reference_mask.shape}")
    structure = lesion_structure(connectivity)
    ref_labels, n_reference = ndimage.label(reference_mask, structure=structure)
    pred_labels, n_predicted = ndimage.label(predicted_mask, structure=structure)
    n_detected = int(np.unique(ref_labels[reference_mask & predicted_mask]).size)
    n_true_positive = int(np.unique(pred_labels[reference_mask & predicted_mask]).size)
    counts = {
        "n_reference_lesions": int(n_reference),
        "n_detected_lesions": n_detected,
        "n_predicted_lesions": int(n_predicted),
        "n_false_positive_lesions": int(n_predicted) - n_true_positive,
    }
    return {"connectivity": connectivity, **counts, **detection_scores(*counts.values())}


# --------------------------------------------------------------------------------------------
# Per subject and over subjects


def _check_labels(labels: np.ndarray, what: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"{what} labels must be 3-D (X, Y, Z), got shape {labels.shape}")
    if labels.dtype.kind not in "biuf":
        raise ValueError(f"{what} labels have non-numeric dtype {labels.dtype}")
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise ValueError(f"{what} labels contain NaN or infinite values")
    valid = (labels == 0) | (labels == SegmentationClass.VENTRICLES) | (labels == SegmentationClass.LESIONS)
    if not valid.all():
        bad = np.unique(labels[~valid])[:5]
        raise ValueError(
            f"{what} labels hold values other than 0, {SegmentationClass.VENTRICLES}, "
            f"{SegmentationClass.LESIONS}: {bad.tolist()}"
        )
    return labels


def evaluate_subject(
    subject_id: str,
    reference_labels: np.ndarray,
    predicted_labels: np.ndarray,
    voxel_size_mm,
    connectivity: str = DEFAULT_CONNECTIVITY,
    classes=tuple(CLASS_LABELS),
) -> list[dict]:
    """Evaluate one subject's predicted labels against its manual labels.

    ``reference_labels``, ``predicted_labels``: (X, Y, Z) label arrays on the same native grid
    (0 background, 1 ventricles, 2 lesions; integer or integral float). ``voxel_size_mm``:
    three voxel sizes in mm in array-axis order. ``connectivity``: lesion unit for detection
    (see :func:`lesion_detection`).

    ``classes``: the class names the reference labels (default both; ``("lesions",)`` for a
    subject with a lesion mask alone, whose ventricles are unknown, not absent).

    Returns one dict per class of ``classes`` (ventricles, then lesions) with the keys of
    :data:`ROW_COLUMNS`: ``subject_id``; ``class_name``; ``label``; ``tp``, ``fp``, ``fn``
    (voxels); ``reference_volume_ml``, ``predicted_volume_ml`` (mL = voxels x voxel volume
    in mm^3 / 1000); ``dice``, ``iou`` (1.0 when the class is absent from both);
    ``hd95_mm`` (NaN when either is empty); and lesion detection ``lesion_connectivity``,
    ``n_reference_lesions``, ``n_detected_lesions``, ``n_predicted_lesions``,
    ``n_false_positive_lesions``, ``lesion_precision``, ``lesion_recall``, ``lesion_f1``,
    which are filled for the lesion class only (``None``/NaN for ventricles).
    """
    reference_labels = _check_labels(reference_labels, "reference")
    predicted_labels = _check_labels(predicted_labels, "predicted")
    _check_pair(reference_labels, predicted_labels)
    sampling = _voxel_size(voxel_size_mm, 3)
    voxel_ml = float(np.prod(sampling)) / 1000.0
    rows = []
    unknown = set(classes) - set(CLASS_LABELS)
    if unknown:
        raise ValueError(f"unknown classes {sorted(unknown)}; expected some of {', '.join(CLASS_LABELS)}")
    for class_name, label in CLASS_LABELS.items():
        if class_name not in classes:
            continue
        ref, pred = reference_labels == label, predicted_labels == label
        counts = overlap_counts(ref, pred, True)
        row = {
            "subject_id": str(subject_id),
            "class_name": class_name,
            "label": int(label),
            **counts,
            "reference_volume_ml": int(np.count_nonzero(ref)) * voxel_ml,
            "predicted_volume_ml": int(np.count_nonzero(pred)) * voxel_ml,
            "dice": dice(**counts),
            "iou": iou(**counts),
            "hd95_mm": hausdorff95_mm(ref, pred, sampling),
            "lesion_connectivity": None,
            **{key: float("nan") for key in _DETECTION_KEYS},
            "lesion_precision": float("nan"),
            "lesion_recall": float("nan"),
            "lesion_f1": float("nan"),
        }
        if label == SegmentationClass.LESIONS:
            detection = lesion_detection(ref, pred, connectivity)
            row.update({key: detection[key] for key in _DETECTION_KEYS})
            row.update(
                lesion_connectivity=connectivity,
                lesion_precision=detection["precision"],
                lesion_recall=detection["recall"],
                lesion_f1=detection["f1"],
            )
        rows.append({key: row[key] for key in ROW_COLUMNS})
    return rows


def _finite(column: pd.Series) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return values[np.isfinite(values)]


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Summary over subjects, one row per class (in :data:`CLASS_LABELS` order, then any other).

    ``rows``: the rows of :func:`evaluate_subject` for any number of subjects (at least
    the columns ``subject_id``, ``class_name``, ``tp``, ``fp``, ``fn``, ``dice``, ``iou``,
    ``hd95_mm``; the lesion-detection count columns where available).

    Columns: ``class_name``; ``n_subjects`` (distinct subject IDs); ``dice_pooled``,
    ``iou_pooled`` (from tp, fp, fn summed over subjects: every voxel weighs the same, as the
    reference's pooled figures); ``dice_mean``, ``dice_sd``, ``iou_mean``, ``iou_sd``,
    ``hd95_mean_mm``, ``hd95_sd_mm`` (per-subject values, NaN ignored; SD is the sample SD,
    ddof = 1, NaN with fewer than two values); ``n_hd95`` (subjects with a finite HD95);
    the summed detection counts ``n_reference_lesions``, ``n_detected_lesions``,
    ``n_predicted_lesions``, ``n_false_positive_lesions`` and the pooled
    ``lesion_precision``, ``lesion_recall``, ``lesion_f1`` from them
    (see :func:`detection_scores`); the detection columns are NaN for a class without counts
    (ventricles).
    """
    required = {"subject_id", "class_name", "tp", "fp", "fn", "dice", "iou", "hd95_mm"}
    missing = required - set(rows.columns)
    if missing:
        raise ValueError(f"evaluation rows lack the columns {sorted(missing)}")
    names = [name for name in CLASS_LABELS if name in set(rows["class_name"])]
    names += [name for name in pd.unique(rows["class_name"]) if name not in names]
    out = []
    for name in names:
        group = rows[rows["class_name"] == name]
        tp, fp, fn = (int(pd.to_numeric(group[key]).sum()) for key in ("tp", "fp", "fn"))
        summary = {
            "class_name": name,
            "n_subjects": int(group["subject_id"].nunique()),
            "dice_pooled": dice(tp, fp, fn),
            "iou_pooled": iou(tp, fp, fn),
        }
        for key, prefix, suffix in (("dice", "dice", ""), ("iou", "iou", ""), ("hd95_mm", "hd95", "_mm")):
            values = _finite(group[key])
            summary[f"{prefix}_mean{suffix}"] = float(values.mean()) if len(values) else float("nan")
            summary[f"{prefix}_sd{suffix}"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        summary["n_hd95"] = int(len(_finite(group["hd95_mm"])))
        has_counts = all(key in group.columns for key in _DETECTION_KEYS) and bool(
            group[list(_DETECTION_KEYS)].notna().to_numpy().all()
        )
        if has_counts:
            counts = [int(pd.to_numeric(group[key]).sum()) for key in _DETECTION_KEYS]
            scores = detection_scores(*counts)
        else:
            counts = [float("nan")] * len(_DETECTION_KEYS)
            scores = {"precision": float("nan"), "recall": float("nan"), "f1": float("nan")}
        summary.update(zip(_DETECTION_KEYS, counts))
        summary.update(lesion_precision=scores["precision"], lesion_recall=scores["recall"], lesion_f1=scores["f1"])
        out.append(summary)
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------
# Uncertainty: does it point at the errors?

#: Bins of the uncertainty histograms (uncertainty is in [0, 1]); AUROC from them equals the
#: exact rank AUROC up to ties within a bin of width 1e-4.
UNCERTAINTY_BINS = 10_000


def error_histograms(uncertainty: np.ndarray, wrong: np.ndarray, within: np.ndarray) -> dict:
    """Histograms of the uncertainty of wrong and of right voxels, for :func:`auroc_from_histograms`.

    ``uncertainty``: float array in [0, 1]; ``wrong``: bool, the voxels whose predicted label
    differs from the reference; ``within``: bool, the voxels that count (e.g. the brain mask:
    outside it every label is background by construction). Returns ``{"wrong": counts,
    "right": counts}``, int64 arrays of :data:`UNCERTAINTY_BINS` bins over [0, 1]; histograms
    of several subjects add up to the pooled one.
    """
    values = np.clip(np.asarray(uncertainty, dtype=np.float64)[within], 0.0, 1.0)
    bins = np.minimum((values * UNCERTAINTY_BINS).astype(np.int64), UNCERTAINTY_BINS - 1)
    is_wrong = np.asarray(wrong, dtype=bool)[within]
    return {
        "wrong": np.bincount(bins[is_wrong], minlength=UNCERTAINTY_BINS),
        "right": np.bincount(bins[~is_wrong], minlength=UNCERTAINTY_BINS),
    }


def auroc_from_histograms(wrong_counts, right_counts) -> float:
    """Area under the ROC curve of uncertainty as a detector of wrong voxels: the probability
    that a random wrong voxel is more uncertain than a random right one, ties counting one half
    (Mann-Whitney U / (n_wrong n_right)). NaN when either group is empty."""
    wrong_counts = np.asarray(wrong_counts, dtype=np.float64)
    right_counts = np.asarray(right_counts, dtype=np.float64)
    n_wrong, n_right = wrong_counts.sum(), right_counts.sum()
    if n_wrong == 0 or n_right == 0:
        return float("nan")
    right_below = np.cumsum(right_counts) - right_counts
    return float(np.sum(wrong_counts * (right_below + 0.5 * right_counts)) / (n_wrong * n_right))


def wrong_voxels(reference_labels: np.ndarray, predicted_labels: np.ndarray, classes=tuple(CLASS_LABELS)) -> np.ndarray:
    """Voxels whose predicted label is wrong, bool: any class difference when the reference
    labels every class of :data:`CLASS_LABELS`; with ``classes`` ``("lesions",)`` (ventricles
    unknown), lesion versus not lesion only."""
    reference_labels, predicted_labels = _check_pair(reference_labels, predicted_labels)
    if set(CLASS_LABELS) <= set(classes):
        return reference_labels != predicted_labels
    wrong = np.zeros(reference_labels.shape, dtype=bool)
    for class_name in classes:
        label = CLASS_LABELS[class_name]
        wrong |= (reference_labels == label) != (predicted_labels == label)
    return wrong


# --------------------------------------------------------------------------------------------
# Figure

FIGURE_SIZE_IN = (6.0, 4.5)
FIGURE_DPI = 300


def evaluation_figure(rows: pd.DataFrame):
    """Per-subject Dice per class, with the pooled Dice marked: a matplotlib ``Figure`` of
    ``FIGURE_SIZE_IN`` inches, to be written at :data:`FIGURE_DPI` (1800 x 1350 pixels).

    ``rows``: the rows of :func:`evaluate_subject` (columns ``subject_id``, ``class_name``,
    ``tp``, ``fp``, ``fn``, ``dice``). One column of points per class (one point per subject,
    spread sideways so that equal values stay visible), a bar for the pooled Dice (its value
    written beside it) and a dashed line for the per-subject mean; the tick labels give n per
    class and the title n in all; the legend sits below the axes.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    summary = summarise(rows)
    fig = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI, layout="constrained")
    ax = fig.add_subplot()
    colours = {"ventricles": "#1f77b4", "lesions": "#d62728"}
    tick_labels = []
    for position, entry in enumerate(summary.itertuples(index=False)):
        values = pd.to_numeric(rows.loc[rows["class_name"] == entry.class_name, "dice"]).to_numpy(float)
        n = len(values)
        offsets = np.linspace(-0.15, 0.15, n) if n > 1 else np.zeros(n)
        order = np.argsort(np.argsort(values, kind="stable"), kind="stable")  # spread ordered by value
        colour = colours.get(entry.class_name, "0.3")
        ax.scatter(
            position + offsets[order],
            values,
            s=28,
            color=colour,
            alpha=0.8,
            edgecolor="black",
            linewidth=0.5,
            zorder=3,
            label="per subject" if position == 0 else None,
        )
        ax.hlines(
            entry.dice_pooled,
            position - 0.3,
            position + 0.3,
            color="black",
            linewidth=2.0,
            zorder=4,
            label="pooled over voxels" if position == 0 else None,
        )
        ax.annotate(
            f"{entry.dice_pooled:.3f}",
            (position + 0.3, entry.dice_pooled),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize="small",
        )
        if n:
            ax.hlines(
                entry.dice_mean,
                position - 0.3,
                position + 0.3,
                color="0.45",
                linewidth=1.2,
                linestyle="--",
                zorder=2,
                label="per-subject mean" if position == 0 else None,
            )
        tick_labels.append(f"{entry.class_name}\n(n = {entry.n_subjects} subjects)")
    ax.set_xticks(range(len(tick_labels)), tick_labels)
    ax.set_xlim(-0.6, len(tick_labels) - 0.4)
    ax.set_ylim(0.0, 1.02)
    ax.set_ylabel("Dice coefficient (unitless, 0 to 1)")
    ax.set_xlabel("class")
    n_total = int(rows["subject_id"].nunique()) if len(rows) else 0
    ax.set_title(f"Segmentation vs manual labels, n = {n_total} subjects")
    ax.grid(axis="y", color="0.9", zorder=0)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize="small", frameon=False)
    return fig
