"""Segmentation evaluation: overlap, HD95 in mm, lesion-wise detection, summary and figure."""

from __future__ import annotations

import math

import matplotlib.image
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from skimage import measure

from msprofile.io import save_figure
from msprofile.segmentation import evaluate as ev
from msprofile.segmentation.evaluate import (
    CLASS_LABELS,
    FIGURE_DPI,
    ROW_COLUMNS,
    dice,
    evaluate_subject,
    evaluation_figure,
    hausdorff95_mm,
    iou,
    lesion_detection,
    overlap_counts,
    summarise,
    surface_voxels,
)

from conftest import FLAIR_SAMPLE, SAMPLE_IDS, require_flair_sample

VOXEL = (0.898, 0.898, 6.5)  # mm, thick slices on the last axis


# ------------------------------------------------------------------------------------------
# Independent reference implementations (numpy only, no scipy.ndimage)


def brute_surface(mask: np.ndarray) -> np.ndarray:
    """Mask voxels with at least one face neighbour outside the mask (outside the array counts)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = np.ones_like(mask, dtype=bool)
    core = tuple(slice(1, -1) for _ in range(mask.ndim))
    for axis in range(mask.ndim):
        for step in (-1, 1):
            inner &= np.roll(padded, step, axis=axis)[core]
    return mask & ~inner


def brute_hd95(a: np.ndarray, b: np.ndarray, voxel) -> float:
    """HD95 from all pairwise distances between surface voxel centres, in mm (chunked)."""
    pa = np.argwhere(brute_surface(a)) * np.asarray(voxel)
    pb = np.argwhere(brute_surface(b)) * np.asarray(voxel)

    def directed(p, q):
        out = []
        for start in range(0, len(p), 512):
            d2 = ((p[start : start + 512, None, :] - q[None, :, :]) ** 2).sum(axis=-1)
            out.append(np.sqrt(d2.min(axis=1)))
        return np.concatenate(out)

    return float(np.percentile(np.concatenate([directed(pa, pb), directed(pb, pa)]), 95))


# ------------------------------------------------------------------------------------------
# Overlap


def test_overlap_counts_dice_iou_hand_worked():
    reference = np.zeros((4, 4, 2), np.uint8)
    predicted = np.zeros_like(reference)
    reference[0, 0:3, 0] = 2  # 3 lesion voxels
    predicted[0, 1:4, 0] = 2  # 3 lesion voxels, 2 shared
    reference[3, :, 1] = 1  # 4 ventricle voxels, none predicted
    counts = overlap_counts(reference, predicted, 2)
    assert counts == {"tp": 2, "fp": 1, "fn": 1}
    assert dice(**counts) == pytest.approx(4 / 6)
    assert iou(**counts) == pytest.approx(2 / 4)
    # one empty: ventricles present in the reference only
    vcounts = overlap_counts(reference, predicted, 1)
    assert vcounts == {"tp": 0, "fp": 0, "fn": 4}
    assert dice(**vcounts) == 0.0 and iou(**vcounts) == 0.0
    assert dice(0, 3, 0) == 0.0 and iou(0, 3, 0) == 0.0
    # both empty: defined as perfect
    assert overlap_counts(reference, predicted, 7) == {"tp": 0, "fp": 0, "fn": 0}
    assert dice(0, 0, 0) == 1.0 and iou(0, 0, 0) == 1.0
    # identical
    assert dice(**overlap_counts(reference, reference, 1)) == 1.0
    # Dice and IoU agree: D = 2J / (1 + J)
    for tp, fp, fn in [(5, 2, 7), (1, 0, 9), (100, 3, 1)]:
        j = iou(tp, fp, fn)
        assert dice(tp, fp, fn) == pytest.approx(2 * j / (1 + j))


def test_overlap_counts_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        overlap_counts(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)), 1)


# ------------------------------------------------------------------------------------------
# HD95


def test_surface_is_six_connected_boundary():
    mask = np.zeros((7, 7, 7), bool)
    mask[1:6, 1:6, 1:6] = True  # 5^3 box: surface = 125 - 27 interior voxels
    surface = surface_voxels(mask)
    assert surface.sum() == 125 - 27
    assert not surface[2:5, 2:5, 2:5].any()
    np.testing.assert_array_equal(surface, brute_surface(mask))
    # face neighbours only: removing a corner exposes the 3 face neighbours of the corner,
    # not the voxel diagonally inside it (which a 26-connected boundary would add)
    notched = mask.copy()
    notched[1, 1, 1] = False
    assert not surface_voxels(notched)[2, 2, 2]
    assert surface_voxels(notched).sum() == 98 - 1
    np.testing.assert_array_equal(surface_voxels(notched), brute_surface(notched))
    # a mask filling the volume has a surface at the volume's edge
    assert surface_voxels(np.ones((3, 3, 3), bool)).sum() == 26
    # a one-slice-thick plate is all surface
    plate = np.zeros((6, 6, 3), bool)
    plate[1:5, 1:5, 1] = True
    np.testing.assert_array_equal(surface_voxels(plate), plate)


def test_hd95_plates_three_slices_apart_anisotropic():
    a = np.zeros((10, 10, 8), bool)
    b = np.zeros_like(a)
    a[2:8, 2:8, 2] = True
    b[2:8, 2:8, 5] = True  # 3 slices above: each voxel's nearest is straight above, 3 * 6.5 mm
    assert hausdorff95_mm(a, b, VOXEL) == pytest.approx(19.5)
    assert hausdorff95_mm(b, a, VOXEL) == pytest.approx(19.5)
    # the slice axis is the last one: the same shift in-plane is 3 * 0.898 mm
    line, shifted = np.zeros_like(a), np.zeros_like(a)
    line[2, 2:8, 2] = True
    shifted[5, 2:8, 2] = True
    assert hausdorff95_mm(line, shifted, VOXEL) == pytest.approx(3 * 0.898)
    # sizes are per axis, not sorted or averaged
    assert hausdorff95_mm(a, b, (6.5, 0.898, 0.898)) == pytest.approx(3 * 0.898)


def test_hd95_single_voxels_and_thick_boxes():
    a = np.zeros((9, 9, 9), bool)
    b = np.zeros_like(a)
    a[1, 1, 1] = True
    b[2, 3, 4] = True
    expected = math.sqrt(0.898**2 + (2 * 0.898) ** 2 + 19.5**2)
    assert hausdorff95_mm(a, b, VOXEL) == pytest.approx(expected)
    # two thick boxes offset by exactly 3 slices along z: top and bottom faces are 19.5 mm
    # apart, side voxels of the overlap coincide (0 mm); compare with brute force
    a = np.zeros((8, 8, 12), bool)
    b = np.zeros_like(a)
    a[2:6, 2:6, 1:7] = True
    b[2:6, 2:6, 4:10] = True
    value = hausdorff95_mm(a, b, VOXEL)
    assert value == pytest.approx(brute_hd95(a, b, VOXEL))
    # an end face voxel (z = 1) is 3 slices from b's bottom face (z = 4), or nearer to b's side
    # surface in-plane; no distance can exceed 3 slices
    assert 0 < value <= 19.5 + 1e-9


def test_hd95_identical_empty_and_symmetric():
    a = np.zeros((6, 6, 4), bool)
    a[1:4, 2:5, 1:3] = True
    assert hausdorff95_mm(a, a, VOXEL) == 0.0
    assert math.isnan(hausdorff95_mm(a, np.zeros_like(a), VOXEL))
    assert math.isnan(hausdorff95_mm(np.zeros_like(a), a, VOXEL))
    assert math.isnan(hausdorff95_mm(np.zeros_like(a), np.zeros_like(a), VOXEL))
    with pytest.raises(ValueError, match="voxel_size_mm"):
        hausdorff95_mm(a, a, (1.0, 1.0))
    with pytest.raises(ValueError, match="voxel_size_mm"):
        hausdorff95_mm(a, a, (1.0, 0.0, 1.0))


@pytest.mark.parametrize("seed", range(6))
def test_hd95_matches_brute_force_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(5, 14, size=3))
    voxel = tuple(rng.uniform(0.5, 8.0, size=3))
    a = rng.random(shape) < rng.uniform(0.05, 0.5)
    b = rng.random(shape) < rng.uniform(0.05, 0.5)
    a[tuple(rng.integers(0, s) for s in shape)] = True
    b[tuple(rng.integers(0, s) for s in shape)] = True
    expected = brute_hd95(a, b, voxel)
    assert hausdorff95_mm(a, b, voxel) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert hausdorff95_mm(b, a, voxel) == pytest.approx(expected, rel=1e-9, abs=1e-9)


# ------------------------------------------------------------------------------------------
# Lesion detection


def _scene():
    """Reference lesions R1 (missed), R2 (detected), R4 (two predicted blobs); FP blob P3."""
    ref = np.zeros((24, 24, 6), bool)
    pred = np.zeros_like(ref)
    ref[2:5, 2:5, 1] = True  # R1: missed
    ref[10:14, 10:14, 1] = True  # R2
    pred[12:16, 12:16, 1] = True  # overlaps R2 (and sticks out)
    pred[20:23, 2:5, 4] = True  # P3: false positive
    ref[2:9, 14:22, 3] = True  # R4
    pred[3:5, 15:17, 3] = True  # two separate blobs inside R4
    pred[6:8, 19:21, 3] = True
    return ref, pred


@pytest.mark.parametrize("connectivity", ["3d26", "3d6", "2d8", "2d4"])
def test_lesion_detection_constructed(connectivity):
    ref, pred = _scene()
    result = lesion_detection(ref, pred, connectivity)
    assert result["connectivity"] == connectivity
    assert result["n_reference_lesions"] == 3
    assert result["n_detected_lesions"] == 2
    assert result["n_predicted_lesions"] == 4
    assert result["n_false_positive_lesions"] == 1
    assert result["precision"] == pytest.approx(3 / 4)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 * 0.75 * (2 / 3) / (0.75 + 2 / 3))


def test_lesion_detection_default_is_3d26():
    ref, pred = _scene()
    assert lesion_detection(ref, pred)["connectivity"] == "3d26"


def test_lesion_detection_connectivity_matters():
    ref = np.zeros((12, 12, 5), bool)
    pred = np.zeros_like(ref)
    # one lesion over two slices, stacked: one 3-D lesion, two 2-D lesions
    ref[2:5, 2:5, 1:3] = True
    pred[3, 3, 2] = True  # hits the upper slice only
    # two squares touching at a corner within a slice: 8-connected (one), 4-connected (two)
    ref[7:9, 7:9, 2] = True
    ref[9:11, 9:11, 2] = True
    pred[7, 7, 2] = True  # hits the first square only
    # two voxels touching at a corner across slices: 26-connected only
    ref[1, 9, 0] = True
    ref[2, 10, 1] = True
    expected = {  # (reference lesions, detected)
        "3d26": (3, 2),  # stack, the corner pair of squares, the diagonal pair
        "3d6": (5, 2),  # stack, 2 squares, 2 voxels
        "2d8": (5, 2),  # stack -> 2 slices, squares -> 1, voxels -> 2
        "2d4": (6, 2),
    }
    for connectivity, (n_ref, n_det) in expected.items():
        result = lesion_detection(ref, pred, connectivity)
        assert (result["n_reference_lesions"], result["n_detected_lesions"]) == (n_ref, n_det), connectivity
        assert result["n_predicted_lesions"] == 2 and result["n_false_positive_lesions"] == 0
        assert result["recall"] == pytest.approx(n_det / n_ref)
        assert result["precision"] == 1.0


def test_lesion_detection_one_prediction_over_two_lesions_and_empty_cases():
    ref = np.zeros((10, 10, 3), bool)
    ref[1:3, 1:3, 1] = True
    ref[6:8, 1:3, 1] = True
    pred = np.zeros_like(ref)
    pred[1:8, 1:3, 1] = True  # one blob covering both
    result = lesion_detection(ref, pred)
    assert (result["n_reference_lesions"], result["n_detected_lesions"]) == (2, 2)
    assert (result["n_predicted_lesions"], result["n_false_positive_lesions"]) == (1, 0)
    assert result["f1"] == 1.0
    empty = np.zeros_like(ref)
    nothing = lesion_detection(ref, empty)
    assert nothing["recall"] == 0.0 and math.isnan(nothing["precision"]) and math.isnan(nothing["f1"])
    only_fp = lesion_detection(empty, pred)
    assert math.isnan(only_fp["recall"]) and only_fp["precision"] == 0.0 and math.isnan(only_fp["f1"])
    both = lesion_detection(empty, empty)
    assert all(math.isnan(both[k]) for k in ("precision", "recall", "f1"))
    # a real miss and a real false positive: F1 = 0, not NaN
    far = np.zeros_like(ref)
    far[4, 8, 2] = True
    assert lesion_detection(ref, far)["f1"] == 0.0
    with pytest.raises(ValueError, match="connectivity"):
        lesion_detection(ref, pred, "26")


# ------------------------------------------------------------------------------------------
# Per subject, summary, figure


def test_evaluate_subject_rows():
    ref = np.zeros((10, 10, 4), np.uint8)
    pred = np.zeros_like(ref)
    ref[1:5, 1:5, 1] = 1  # 16 ventricle voxels
    pred[1:5, 1:3, 1] = 1  # 8 of them
    ref[7:9, 7:9, 2] = 2  # 4 lesion voxels, missed
    pred[7:9, 1:3, 3] = 2  # 4 false-positive lesion voxels
    rows = evaluate_subject("s1", ref, pred.astype(np.float32), VOXEL)
    assert [r["class_name"] for r in rows] == list(CLASS_LABELS)
    assert all(list(r) == list(ROW_COLUMNS) for r in rows)
    vent, les = rows
    voxel_ml = 0.898 * 0.898 * 6.5 / 1000
    assert (vent["tp"], vent["fp"], vent["fn"]) == (8, 0, 8)
    assert vent["dice"] == pytest.approx(16 / 24) and vent["iou"] == pytest.approx(0.5)
    assert vent["reference_volume_ml"] == pytest.approx(16 * voxel_ml)
    assert vent["predicted_volume_ml"] == pytest.approx(8 * voxel_ml)
    assert vent["hd95_mm"] == pytest.approx(brute_hd95(ref == 1, pred == 1, VOXEL))
    assert vent["lesion_connectivity"] is None and math.isnan(vent["lesion_f1"])
    assert (les["tp"], les["fp"], les["fn"]) == (0, 4, 4) and les["dice"] == 0.0
    assert les["lesion_connectivity"] == "3d26"
    assert (
        les["n_reference_lesions"],
        les["n_detected_lesions"],
        les["n_predicted_lesions"],
        les["n_false_positive_lesions"],
    ) == (1, 0, 1, 1)
    assert les["lesion_f1"] == 0.0
    # the lesion and ventricle classes do not leak into each other
    assert les["hd95_mm"] == pytest.approx(brute_hd95(ref == 2, pred == 2, VOXEL))
    with pytest.raises(ValueError, match="values other than"):
        evaluate_subject("s1", ref, pred + 3, VOXEL)
    with pytest.raises(ValueError, match="shape"):
        evaluate_subject("s1", ref, pred[:, :, :3], VOXEL)


def _hand_table() -> pd.DataFrame:
    rows = []
    # lesions: A good and large, B poor and small; pooled is dominated by A
    for sid, (tp, fp, fn), hd, counts in [
        ("A", (90, 10, 0), 2.0, (4, 4, 5, 1)),
        ("B", (1, 0, 9), float("nan"), (6, 1, 1, 0)),
        ("C", (0, 0, 0), 6.0, (0, 0, 0, 0)),
    ]:
        rows.append(
            {
                "subject_id": sid,
                "class_name": "lesions",
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "dice": dice(tp, fp, fn),
                "iou": iou(tp, fp, fn),
                "hd95_mm": hd,
                "n_reference_lesions": counts[0],
                "n_detected_lesions": counts[1],
                "n_predicted_lesions": counts[2],
                "n_false_positive_lesions": counts[3],
            }
        )
        rows.append(
            {
                "subject_id": sid,
                "class_name": "ventricles",
                "tp": 50,
                "fp": 0,
                "fn": 50,
                "dice": dice(50, 0, 50),
                "iou": iou(50, 0, 50),
                "hd95_mm": 1.0,
                "n_reference_lesions": np.nan,
                "n_detected_lesions": np.nan,
                "n_predicted_lesions": np.nan,
                "n_false_positive_lesions": np.nan,
            }
        )
    return pd.DataFrame(rows)


def test_summarise_pooled_versus_per_subject():
    summary = summarise(_hand_table()).set_index("class_name")
    assert list(summary.index) == ["ventricles", "lesions"]
    les = summary.loc["lesions"]
    assert les["n_subjects"] == 3
    assert les["dice_pooled"] == pytest.approx(2 * 91 / (2 * 91 + 10 + 9))
    assert les["iou_pooled"] == pytest.approx(91 / (91 + 10 + 9))
    per_subject = [180 / 190, 2 / 11, 1.0]
    assert les["dice_mean"] == pytest.approx(np.mean(per_subject))
    assert les["dice_sd"] == pytest.approx(np.std(per_subject, ddof=1))
    assert les["iou_mean"] == pytest.approx(np.mean([0.9, 0.1, 1.0]))
    assert les["hd95_mean_mm"] == pytest.approx(4.0)  # NaN of B ignored
    assert les["hd95_sd_mm"] == pytest.approx(math.sqrt(8.0))
    assert les["n_hd95"] == 2
    assert (les["n_reference_lesions"], les["n_detected_lesions"]) == (10, 5)
    assert (les["n_predicted_lesions"], les["n_false_positive_lesions"]) == (6, 1)
    assert les["lesion_precision"] == pytest.approx(5 / 6)
    assert les["lesion_recall"] == pytest.approx(0.5)
    assert les["lesion_f1"] == pytest.approx(2 * (5 / 6) * 0.5 / (5 / 6 + 0.5))
    vent = summary.loc["ventricles"]
    assert vent["dice_pooled"] == pytest.approx(2 / 3) and vent["dice_mean"] == pytest.approx(2 / 3)
    assert vent["dice_sd"] == pytest.approx(0.0)
    assert math.isnan(vent["lesion_f1"]) and math.isnan(vent["n_reference_lesions"])


def test_summarise_single_subject_sd_is_nan_and_works_on_evaluate_rows():
    ref = np.zeros((8, 8, 3), np.uint8)
    ref[1:4, 1:4, 1] = 1
    ref[5:7, 5:7, 1] = 2
    summary = summarise(pd.DataFrame(evaluate_subject("x", ref, ref, VOXEL))).set_index("class_name")
    assert summary.loc["lesions", "dice_pooled"] == 1.0 and summary.loc["lesions", "lesion_f1"] == 1.0
    assert math.isnan(summary.loc["lesions", "dice_sd"]) and summary.loc["ventricles", "n_subjects"] == 1


def test_evaluation_figure_written(tmp_path):
    png, pdf = tmp_path / "fig" / "evaluation.png", tmp_path / "fig" / "evaluation.pdf"
    save_figure(evaluation_figure(_hand_table()), png, pdf, dpi=FIGURE_DPI)
    assert png.stat().st_size > 0 and pdf.stat().st_size > 0
    assert pdf.read_bytes().startswith(b"%PDF")
    height, width = matplotlib.image.imread(png).shape[:2]
    assert (width, height) == (1800, 1350)  # 6 x 4.5 inches at 300 dpi
    assert sorted(p.name for p in png.parent.iterdir()) == ["evaluation.pdf", "evaluation.png"]  # no temporaries left


# ------------------------------------------------------------------------------------------
# Real data


def _real_labels(subject_id: str):
    require_flair_sample()
    wmh = nib.load(FLAIR_SAMPLE / subject_id / "wmh_manual.nii.gz")
    ventricles = np.asarray(nib.load(FLAIR_SAMPLE / subject_id / "ventricles_manual.nii.gz").dataobj)
    lesions = np.asarray(wmh.dataobj) > 0
    labels = np.zeros(lesions.shape, np.uint8)
    labels[ventricles > 0] = 1
    labels[lesions] = 2  # lesion wins where both are set
    voxel = np.sqrt((wmh.affine[:3, :3] ** 2).sum(axis=0))
    return labels, voxel


@pytest.mark.parametrize("subject_id", SAMPLE_IDS)
def test_real_labels_against_themselves_and_minus_one_slice(subject_id):
    labels, voxel = _real_labels(subject_id)
    for row in evaluate_subject(subject_id, labels, labels, voxel):
        assert row["dice"] == 1.0 and row["iou"] == 1.0 and row["hd95_mm"] == 0.0
        assert row["fp"] == 0 and row["fn"] == 0
        assert row["predicted_volume_ml"] == row["reference_volume_ml"] > 0
        if row["class_name"] == "lesions":
            assert row["lesion_recall"] == 1.0 and row["lesion_precision"] == 1.0

    # remove the slice with the most lesion voxels from the prediction
    k = int(np.argmax((labels == 2).sum(axis=(0, 1))))
    predicted = labels.copy()
    predicted[:, :, k] = 0
    for connectivity in ("3d26", "2d8"):
        rows = {r["class_name"]: r for r in evaluate_subject(subject_id, labels, predicted, voxel, connectivity)}
        for name, label in CLASS_LABELS.items():
            row, ref = rows[name], labels == label
            n_total, n_removed = int(ref.sum()), int(ref[:, :, k].sum())
            assert (row["tp"], row["fp"], row["fn"]) == (n_total - n_removed, 0, n_removed)
            assert row["dice"] == pytest.approx(2 * (n_total - n_removed) / (2 * n_total - n_removed))
            assert row["predicted_volume_ml"] == pytest.approx((n_total - n_removed) * np.prod(voxel) / 1000)
            if n_removed == n_total:
                assert math.isnan(row["hd95_mm"])
            elif name == "lesions" and connectivity == "3d26":  # brute force: lesions only, to stay fast
                assert row["hd95_mm"] == pytest.approx(brute_hd95(ref, predicted == label, voxel))
                assert row["hd95_mm"] > 0  # slice k holds the most lesion voxels: > 5 % of the surface
            else:
                assert np.isfinite(row["hd95_mm"]) and row["hd95_mm"] >= 0
        # lesions lost: independently, with skimage: 2-D lesions of slice k; 3-D lesions lying in slice k only
        lesions = labels == 2
        if connectivity == "2d8":
            n_ref = sum(int(measure.label(lesions[:, :, z], connectivity=2).max()) for z in range(lesions.shape[2]))
            n_missed = int(measure.label(lesions[:, :, k], connectivity=2).max())
        else:
            regions = measure.regionprops(measure.label(lesions, connectivity=3))
            n_ref = len(regions)
            n_missed = sum(1 for r in regions if r.bbox[2] == k and r.bbox[5] == k + 1)
        les = rows["lesions"]
        assert n_missed > 0 or connectivity == "3d26"
        assert les["n_reference_lesions"] == n_ref
        assert les["n_detected_lesions"] == n_ref - n_missed
        assert les["lesion_recall"] == pytest.approx((n_ref - n_missed) / n_ref)
        assert les["n_false_positive_lesions"] == 0 and les["lesion_precision"] == 1.0


def test_evaluate_subject_with_a_lesion_mask_alone_scores_lesions_only():
    reference = np.zeros((10, 10, 3), dtype=np.uint8)
    reference[2:5, 2:5, 1] = 2
    predicted = reference.copy()
    predicted[6:9, 6:9, 1] = 1  # ventricles the reference does not label: not scored
    rows = ev.evaluate_subject("s", reference, predicted, (1.0, 1.0, 1.0), classes=("lesions",))
    assert [row["class_name"] for row in rows] == ["lesions"] and rows[0]["dice"] == 1.0
    with pytest.raises(ValueError, match="unknown classes"):
        ev.evaluate_subject("s", reference, predicted, (1.0, 1.0, 1.0), classes=("lesion",))
    wrong = ev.wrong_voxels(reference, predicted, ("lesions",))
    assert not wrong.any(), "a ventricle label where only lesions are known is not an error"
    assert ev.wrong_voxels(reference, predicted).sum() == 9


@pytest.mark.parametrize("seed", range(4))
def test_auroc_from_histograms_equals_mann_whitney(seed):
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(seed)
    uncertainty = rng.beta(0.5, 3.0, 5000)
    wrong = rng.random(5000) < 0.1 + 0.5 * uncertainty  # errors where uncertain
    within = rng.random(5000) < 0.9
    histograms = ev.error_histograms(uncertainty, wrong, within)
    assert histograms["wrong"].sum() + histograms["right"].sum() == within.sum()
    auroc = ev.auroc_from_histograms(histograms["wrong"], histograms["right"])
    u_wrong, u_right = uncertainty[within & wrong], uncertainty[within & ~wrong]
    expected = mannwhitneyu(u_wrong, u_right).statistic / (len(u_wrong) * len(u_right))
    assert auroc == pytest.approx(expected, abs=2e-3)
    assert auroc > 0.6


def test_auroc_limits_and_pooling():
    perfect = ev.error_histograms(
        np.array([0.9, 0.8, 0.1, 0.0]), np.array([True, True, False, False]), np.ones(4, bool)
    )
    assert ev.auroc_from_histograms(perfect["wrong"], perfect["right"]) == 1.0
    ties = ev.error_histograms(np.full(4, 0.5), np.array([True, False, True, False]), np.ones(4, bool))
    assert ev.auroc_from_histograms(ties["wrong"], ties["right"]) == 0.5
    none_wrong = ev.error_histograms(np.full(4, 0.5), np.zeros(4, bool), np.ones(4, bool))
    assert np.isnan(ev.auroc_from_histograms(none_wrong["wrong"], none_wrong["right"]))
    pooled = {k: perfect[k] + ties[k] for k in perfect}
    assert 0.5 < ev.auroc_from_histograms(pooled["wrong"], pooled["right"]) < 1.0


def test_a_sheet_with_lesion_masks_alone_is_segmented_and_evaluated_but_not_trained_on(tmp_path):
    """ISBI-style labels (lesions, no ventricles): evaluation plans; training refuses clearly."""
    from msprofile.jobs.demo import write_phantom
    from msprofile.synthetic.demo_cohort import phantom_for

    from conftest import make_project, planned_jobs, run_snakemake

    rows = ["subject_id\tflair\tgroup\tage\tsex\twmh_mask"]
    for subject_id in ("demo-MS-01", "demo-MS-02"):
        paths = write_phantom(phantom_for(subject_id, 0), tmp_path / "data" / subject_id)
        rows.append(f"{subject_id}\t{paths['flair']}\tMS\t40\tF\t{paths['wmh_manual']}")
    project = make_project(tmp_path / "project", "\n".join(rows) + "\n")

    planned = planned_jobs(project)
    assert planned["evaluate_segmentation"] == 1
    assert planned["segment"] == 2

    refused = run_snakemake(project, "--dry-run", "train", check=False)
    assert refused.returncode != 0
    assert "ventricle masks or fine-tune an existing model" in refused.stdout + refused.stderr
