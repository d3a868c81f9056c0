"""Lesion classes (reference 2-D rule), 3-D lesions and subject metrics (docs/method.md sections 4-5).

The constructed cases use anisotropic pixels, dx = 0.75 mm (axis 0) and dy = 0.4 * pi mm
(axis 1, about 1.2566 mm), chosen so that every boundary can be hit exactly: 10 pixels along
axis 0 are 7.5 mm, 20 are 15 mm, 8 are 6 mm, and 30 pixels cover 9 * pi = pi * 6^2 / 4 mm^2,
the juxtacortical area limit.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from msprofile.geometry import Grid
from msprofile.labels import LesionClass, SegmentationClass
from msprofile.lesions import (
    LESIONS_2D_COLUMNS,
    LESIONS_3D_COLUMNS,
    REFERENCE_RULE,
    LesionRule,
    _component_minimum,
    classify_lesions_2d,
    csf_mask,
    lesion_profile,
    lesions_3d,
    pixels_per_rule_pixel,
    rule_pixels,
    rule_slices,
    slab_offset,
    slab_starts,
    subject_metrics,
)

from conftest import SampleSubject

PEWMH, PAWMH, JCWMH = LesionClass.PEWMH, LesionClass.PAWMH, LesionClass.JCWMH
DX, DY, DZ = 0.75, 0.4 * math.pi, 5.0
VOXEL = (DX, DY, DZ)
SHAPE = (80, 80)
SLAB_END = 4  # structures are slabs 0..4 along the chosen axis ...
SLAB_SPAN = (20, 60)  # ... and 20..60 along the other axis
LINE_AT = 40  # lesion lines run at this index of the other axis


def _place(volume, axis, along, across, value, k=0):
    """Set ``volume[..., k]`` to ``value`` at index ``along`` on ``axis`` and ``across`` on the other."""
    index = [None, None]
    index[axis], index[1 - axis] = along, across
    volume[index[0], index[1], k] = value


def _slab_and_line(axis, gap_px, length_px, *, across=LINE_AT, structure="ventricle", k=0, n_slices=1):
    """A slab (ventricle or CSF) at indices 0..4 on ``axis`` and a one-pixel-wide lesion line
    along ``axis`` starting ``gap_px`` pixels beyond the slab's last row (so its nearest pixel is
    ``gap_px`` pixel steps from the slab) and ``length_px`` long. Returns (labels, csf)."""
    labels = np.zeros(SHAPE + (n_slices,), np.uint8)
    csf = np.zeros(labels.shape, bool)
    if structure == "ventricle":
        _place(labels, axis, slice(0, SLAB_END + 1), slice(*SLAB_SPAN), 1, k)
    else:
        _place(csf, axis, slice(0, SLAB_END + 1), slice(*SLAB_SPAN), True, k)
    start = SLAB_END + gap_px
    _place(labels, axis, slice(start, start + length_px), across, 2, k)
    return labels, csf


def _only_lesion(labels, csf, voxel=VOXEL):
    class_volume, table = classify_lesions_2d(labels, voxel, csf)
    assert len(table) == 1
    return class_volume, table.iloc[0]


# --- periventricular: edge -------------------------------------------------------------------


@pytest.mark.parametrize(
    "axis,gap,across,edge_mm,expected",
    [
        (0, 10, LINE_AT, 7.5, PEWMH),  # exactly 7.5 mm: inclusive
        (0, 11, LINE_AT, 8.25, PAWMH),  # next pixel out
        (0, 10, SLAB_SPAN[1], math.hypot(7.5, DY), PAWMH),  # one column past the slab: 7.60 mm
        (0, 6, LINE_AT, 4.5, PEWMH),
        (1, 6, LINE_AT, 6 * DY, PAWMH),  # same 6 pixels on axis 1: 7.54 mm
        (1, 5, LINE_AT, 5 * DY, PEWMH),  # 6.28 mm
    ],
)
def test_edge_to_ventricle_boundary_in_mm_with_anisotropic_pixels(axis, gap, across, edge_mm, expected):
    # A 40-pixel line keeps the centroid beyond 15 mm, so only the edge rule can apply.
    labels, csf = _slab_and_line(axis, gap, 40, across=across)
    class_volume, lesion = _only_lesion(labels, csf)
    assert lesion.edge_to_ventricle_mm == pytest.approx(edge_mm, abs=1e-9)
    assert lesion.centroid_to_ventricle_mm > 15.0
    assert lesion.class_code == expected
    assert set(np.unique(class_volume[labels == 2])) == {expected}


def test_lesion_touching_the_ventricle_is_periventricular_at_one_pixel_step():
    labels, csf = _slab_and_line(0, 1, 60)
    _, lesion = _only_lesion(labels, csf)
    assert lesion.edge_to_ventricle_mm == pytest.approx(DX)
    assert lesion.class_code == PEWMH and lesion.class_name == "PEWMH"


# --- periventricular: centroid ---------------------------------------------------------------


@pytest.mark.parametrize(
    "axis,gap,length,centroid_mm,expected",
    [
        (0, 12, 17, 15.0, PEWMH),  # centroid 20 pixels = exactly 15 mm: inclusive
        (0, 12, 18, 20.5 * DX, PAWMH),  # 15.375 mm
        (1, 6, 12, 11.5 * DY, PEWMH),  # 14.45 mm
        (1, 6, 13, 12 * DY, PAWMH),  # 15.08 mm
    ],
)
def test_centroid_to_ventricle_boundary(axis, gap, length, centroid_mm, expected):
    labels, csf = _slab_and_line(axis, gap, length)
    _, lesion = _only_lesion(labels, csf)
    assert lesion.edge_to_ventricle_mm > 7.5
    assert lesion.centroid_to_ventricle_mm == pytest.approx(centroid_mm, abs=1e-9)
    assert lesion.class_code == expected


def test_centroid_distance_is_exact_to_the_nearest_ventricle_pixel_centre():
    # Centroid at a sub-pixel point diagonal from the slab's corner pixel (4, 60).
    labels = np.zeros(SHAPE + (1,), np.uint8)
    labels[0:5, 20:61, 0] = 1
    labels[20:22, 66:68, 0] = 2  # centroid (20.5, 66.5)
    _, lesion = _only_lesion(labels, np.zeros_like(labels, bool))
    assert (lesion.centroid_row, lesion.centroid_col) == (20.5, 66.5)
    assert lesion.centroid_to_ventricle_mm == pytest.approx(math.hypot(16.5 * DX, 6.5 * DY), abs=1e-9)


# --- juxtacortical ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gap,across,edge_mm,expected",
    [
        (8, LINE_AT, 6.0, JCWMH),  # exactly 6 mm: inclusive
        (9, LINE_AT, 6.75, PAWMH),
        (8, SLAB_SPAN[1], math.hypot(6.0, DY), PAWMH),  # 6.13 mm
        (1, LINE_AT, DX, JCWMH),
    ],
)
def test_edge_to_csf_boundary(gap, across, edge_mm, expected):
    labels, csf = _slab_and_line(0, gap, 4, across=across, structure="csf")
    _, lesion = _only_lesion(labels, csf)
    assert lesion.edge_to_csf_mm == pytest.approx(edge_mm, abs=1e-9)
    assert lesion.class_code == expected


@pytest.mark.parametrize("n_pixels,expected", [(30, JCWMH), (31, PAWMH)])
def test_juxtacortical_area_limit_is_inclusive(n_pixels, expected):
    labels = np.zeros(SHAPE + (1,), np.uint8)
    csf = np.zeros(labels.shape, bool)
    csf[0:5, 20:60, 0] = True
    labels[6:11, 30:36, 0] = 2  # 5 x 6 = 30 pixels, one pixel row from the CSF
    if n_pixels == 31:
        labels[11, 30, 0] = 2
    _, lesion = _only_lesion(labels, csf)
    limit = math.pi * 6**2 / 4
    assert REFERENCE_RULE.juxtacortical_max_area_mm2 == pytest.approx(28.27, abs=5e-3)
    assert lesion.n_pixels == n_pixels
    if n_pixels == 30:
        assert lesion.area_mm2 == pytest.approx(limit, abs=1e-9)  # at the limit itself
    else:
        assert lesion.area_mm2 == pytest.approx(limit + DX * DY, abs=1e-9)
    assert lesion.edge_to_csf_mm == pytest.approx(2 * DX)
    assert lesion.class_code == expected


def test_periventricular_takes_precedence_over_juxtacortical():
    labels = np.zeros(SHAPE + (1,), np.uint8)
    labels[0:5, 20:60, 0] = 1
    csf = np.zeros(labels.shape, bool)
    csf[10:15, 20:60, 0] = True
    labels[6:8, 30:32, 0] = 2  # 4 pixels between the ventricle and the CSF, touching neither
    _, lesion = _only_lesion(labels, csf)
    assert lesion.edge_to_ventricle_mm <= 7.5 and lesion.edge_to_csf_mm <= 6.0
    assert lesion.area_mm2 <= 28.27
    assert lesion.class_code == PEWMH


def test_slice_without_ventricles_has_no_periventricular_lesion():
    # Slice 0 holds the ventricle; slice 1 the same lesion position but no ventricle.
    labels = np.zeros(SHAPE + (2,), np.uint8)
    labels[0:5, 20:60, 0] = 1
    labels[6:9, 30:33, 0] = 2
    labels[6:9, 30:33, 1] = 2
    class_volume, table = classify_lesions_2d(labels, VOXEL, np.zeros(labels.shape, bool))
    by_slice = table.set_index("slice")
    assert by_slice.loc[0, "class_code"] == PEWMH
    assert by_slice.loc[1, "class_code"] == PAWMH
    assert np.isnan(by_slice.loc[1, "edge_to_ventricle_mm"]) and np.isnan(by_slice.loc[1, "centroid_to_ventricle_mm"])
    assert np.isnan(by_slice.loc[1, "edge_to_csf_mm"])
    assert (class_volume[..., 1][labels[..., 1] == 2] == PAWMH).all()


def test_two_dimensional_lesions_are_8_connected_and_tabulated():
    labels = np.zeros((20, 20, 1), np.uint8)
    labels[2, 2, 0] = labels[3, 3, 0] = 2  # diagonal neighbours: one lesion
    labels[10:12, 10:13, 0] = 2  # a second lesion
    _, table = classify_lesions_2d(labels, VOXEL, np.zeros(labels.shape, bool))
    assert tuple(table.columns) == LESIONS_2D_COLUMNS
    assert table["n_pixels"].tolist() == [2, 6]
    assert table["lesion_index"].tolist() == [1, 2]
    assert table["area_mm2"].tolist() == pytest.approx([2 * DX * DY, 6 * DX * DY])
    assert (table["centroid_row"][0], table["centroid_col"][0]) == (2.5, 2.5)


def test_no_lesions_gives_empty_tables_and_zero_metrics():
    labels = np.zeros((10, 10, 3), np.uint8)
    labels[2:4, 2:4, 1] = 1
    brain = np.ones(labels.shape, bool)
    class_volume, table2d = classify_lesions_2d(labels, VOXEL, np.zeros(labels.shape, bool))
    table3d = lesions_3d(labels, class_volume, VOXEL)
    assert not class_volume.any() and class_volume.dtype == np.uint8
    assert len(table2d) == 0 and tuple(table2d.columns) == LESIONS_2D_COLUMNS
    assert len(table3d) == 0 and tuple(table3d.columns) == LESIONS_3D_COLUMNS
    metrics = subject_metrics(labels, class_volume, brain, VOXEL, table2d, table3d)
    assert metrics["lesion_area_mm2"] == 0.0 and metrics["n_lesions_3d"] == 0
    assert metrics["ventricle_area_mm2"] == pytest.approx(4 * DX * DY)


def test_inputs_are_checked():
    labels = np.zeros((5, 5, 1), np.uint8)
    csf = np.zeros(labels.shape, bool)
    with pytest.raises(ValueError, match="0 \\(background\\)"):
        classify_lesions_2d(labels + 3, VOXEL, csf)
    with pytest.raises(ValueError, match="3-D"):
        classify_lesions_2d(labels[..., 0], VOXEL, csf[..., 0])
    with pytest.raises(ValueError, match="positive"):
        classify_lesions_2d(labels, (0.0, 1.0, 1.0), csf)
    labels[1, 1, 0] = 2
    with pytest.raises(ValueError, match="class volume"):
        lesions_3d(labels, np.zeros(labels.shape, np.uint8), VOXEL)


# --- 3-D lesions -----------------------------------------------------------------------------


def _three_slice_lesion(peri_px, para_px):
    """One 3-D lesion: a PEWMH part on slice 0 (beside the ventricle) and PAWMH parts on
    slices 1 and 2 (no ventricle there), overlapping in-plane so they connect."""
    labels = np.zeros(SHAPE + (3,), np.uint8)
    labels[0:5, 20:60, 0] = 1
    labels[5 : 5 + peri_px, LINE_AT, 0] = 2
    half = para_px // 2
    labels[5 : 5 + half, LINE_AT, 1] = 2
    labels[5 : 5 + para_px - half, LINE_AT, 2] = 2
    class_volume, _ = classify_lesions_2d(labels, VOXEL, np.zeros(labels.shape, bool))
    return labels, class_volume


@pytest.mark.parametrize("peri_px,para_px,expected", [(10, 40, PAWMH), (40, 10, PEWMH), (20, 20, PEWMH)])
def test_three_d_class_is_the_majority_of_voxels_with_precedence_on_ties(peri_px, para_px, expected):
    labels, class_volume = _three_slice_lesion(peri_px, para_px)
    table = lesions_3d(labels, class_volume, VOXEL)
    assert tuple(table.columns) == LESIONS_3D_COLUMNS
    assert len(table) == 1
    lesion = table.iloc[0]
    assert (lesion.voxels_pewmh, lesion.voxels_pawmh, lesion.voxels_jcwmh) == (peri_px, para_px, 0)
    assert lesion.n_voxels == peri_px + para_px
    assert lesion.volume_ml == pytest.approx((peri_px + para_px) * DX * DY * DZ / 1000)
    assert (lesion.n_slices, lesion.first_slice, lesion.last_slice) == (3, 0, 2)
    assert lesion.class_code == expected
    assert bool(lesion.any_periventricular)


def test_three_d_lesions_are_26_connected():
    labels = np.zeros((10, 10, 3), np.uint8)
    labels[2, 2, 0] = labels[3, 3, 1] = 2  # corner contact across slices: one lesion
    labels[7, 7, 0] = labels[7, 7, 2] = 2  # a slice apart: two lesions
    class_volume, table2d = classify_lesions_2d(labels, VOXEL, np.zeros(labels.shape, bool))
    table = lesions_3d(labels, class_volume, VOXEL)
    assert len(table2d) == 4
    assert sorted(table["n_voxels"].tolist()) == [1, 1, 2]
    assert sorted(table["n_slices"].tolist()) == [1, 1, 2]


# --- subject metrics -------------------------------------------------------------------------


def _random_subject(n_slices, seed=0):
    rng = np.random.default_rng(seed)
    shape = (48, 40, n_slices)
    labels = np.zeros(shape, np.uint8)
    labels[20:28, 15:25, :] = 1
    blobs = ndimage.gaussian_filter(rng.random(shape), (1.5, 1.5, 0.7)) > 0.53
    labels[blobs & (labels == 0)] = 2
    brain = np.zeros(shape, bool)
    brain[2:-2, 2:-2, :] = True
    csf = np.zeros(shape, bool)
    csf[2:4, 2:-2, :] = True
    csf[2:-2, 2:4, :] = True
    return labels, brain, csf


def test_subject_metric_identities():
    labels, brain, csf = _random_subject(18)
    class_volume, table2d = classify_lesions_2d(labels, VOXEL, csf)
    table3d = lesions_3d(labels, class_volume, VOXEL)
    m = subject_metrics(labels, class_volume, brain, VOXEL, table2d, table3d)
    pixel = DX * DY
    assert set(table2d["class_code"]) == {PEWMH, PAWMH, JCWMH}  # the case exercises every class
    # Areas: lesion = peri + para + juxta exactly; each matches its voxel count.
    assert m["lesion_area_mm2"] == m["pewmh_area_mm2"] + m["pawmh_area_mm2"] + m["jcwmh_area_mm2"]
    assert m["lesion_area_mm2"] == pytest.approx((labels == 2).sum() * pixel)
    assert m["lesion_area_mm2"] == pytest.approx(table2d["area_mm2"].sum())
    for code, name in ((PEWMH, "pewmh"), (PAWMH, "pawmh"), (JCWMH, "jcwmh")):
        assert m[f"{name}_area_mm2"] == pytest.approx(table2d.loc[table2d.class_code == code, "area_mm2"].sum())
        assert m[f"n_lesions_2d_{name}"] == int((table2d.class_code == code).sum())
        assert m[f"n_lesions_3d_{name}"] == int((table3d.class_code == code).sum())
    assert m["intracranial_area_mm2"] == pytest.approx(brain.sum() * pixel)
    assert m["ventricle_area_mm2"] == pytest.approx((labels == 1).sum() * pixel)
    # Volumes: areas summed over slices times the slice thickness, and sums per slice agree.
    for name in ("intracranial", "ventricle", "lesion", "pewmh", "pawmh", "jcwmh"):
        assert m[f"{name}_volume_ml"] == pytest.approx(m[f"{name}_area_mm2"] * DZ / 1000)
    per_slice = [(labels[..., k] == 2).sum() * pixel * DZ / 1000 for k in range(labels.shape[2])]
    assert m["lesion_volume_ml"] == pytest.approx(sum(per_slice))
    assert m["lesion_volume_ml"] == m["pewmh_volume_ml"] + m["pawmh_volume_ml"] + m["jcwmh_volume_ml"]
    assert m["lesion_volume_ml"] == pytest.approx(table3d["volume_ml"].sum())
    # Counts and the reference window (slices 8..15, 0-based).
    assert m["n_lesions_2d"] == len(table2d) and m["n_lesions_3d"] == len(table3d)
    assert m["n_lesions_3d"] < m["n_lesions_2d"]
    assert m["intracranial_area_mm2_reference_window"] == pytest.approx(brain[..., 8:16].sum() * pixel)
    assert m["n_slices"] == 18 and m["slice_spacing_mm"] == DZ


def test_reference_window_is_nan_with_fewer_than_16_slices():
    for n_slices, defined in ((15, False), (16, True)):
        labels, brain, csf = _random_subject(n_slices)
        profile = lesion_profile(labels, np.zeros(labels.shape), brain, VOXEL, csf=csf)
        assert math.isnan(profile.metrics["intracranial_area_mm2_reference_window"]) != defined
        if defined:
            assert profile.metrics["intracranial_area_mm2_reference_window"] == pytest.approx(
                profile.metrics["intracranial_area_mm2"] * 8 / 16
            )


# --- cortical CSF mask -----------------------------------------------------------------------


def _phantom_slice(outside_value):
    """A bright brain (ellipse) with a dark sulcus, a dark ventricle, an isolated dark pixel
    and a dark run of three pixels, on 96 x 96 anisotropic pixels of 0.94 mm^2."""
    rng = np.random.default_rng(1)
    x, y = np.meshgrid(np.arange(96) * DX, np.arange(96) * DY, indexing="ij")
    brain = ((x - 36) / 32) ** 2 + ((y - 60) / 52) ** 2 <= 1
    image = np.full((96, 96), float(outside_value))
    image[brain] = 200 + rng.normal(0, 3, brain.sum())
    sulcus = np.zeros_like(brain)
    sulcus[8:40, 46:48] = True
    ventricles = np.zeros_like(brain)
    ventricles[44:52, 44:52] = True
    speck, pair = (60, 30), ((60, 70), (60, 71), (60, 72))
    image[sulcus] = 60.0
    image[ventricles] = 40.0
    image[speck] = 60.0
    for p in pair:
        image[p] = 60.0
    return image[..., None], brain[..., None], ventricles[..., None], sulcus[..., None], speck, pair


def test_csf_mask_finds_dark_sulci_inside_bright_tissue():
    image, brain, ventricles, sulcus, speck, pair = _phantom_slice(outside_value=0.0)
    csf = csf_mask(image, brain, ventricles, VOXEL)
    assert csf.shape == image.shape and csf.dtype == bool
    expected = sulcus.copy()
    for p in pair:
        expected[p + (0,)] = True  # three dark pixels (2.8 mm^2) are kept ...
    assert not expected[speck + (0,)]  # ... a single dark pixel is dropped (< 2 mm^2)
    # Exactly the sulcus and the pair: no bright tissue, no ventricle, nothing outside the brain.
    np.testing.assert_array_equal(csf, expected)


def test_csf_mask_does_not_depend_on_what_lies_outside_the_brain():
    dark_outside = csf_mask(*_phantom_slice(0.0)[:3], VOXEL)
    bright_outside = csf_mask(*_phantom_slice(900.0)[:3], VOXEL)
    np.testing.assert_array_equal(dark_outside, bright_outside)


def test_csf_mask_of_an_empty_or_flat_slice_is_empty():
    flair = np.full((20, 20, 2), 100.0)
    brain = np.zeros(flair.shape, bool)
    brain[5:15, 5:15, 1] = True
    assert not csf_mask(flair, brain, np.zeros_like(brain), VOXEL).any()


# --- real data -------------------------------------------------------------------------------


def _labels_and_voxel(s: SampleSubject) -> tuple[np.ndarray, tuple[float, ...]]:
    """A sample subject's manual masks as one label volume (lesion wins where they overlap)
    and its voxel size (mm)."""
    labels = np.where(s.lesions, 2, np.where(s.ventricles, 1, 0)).astype(np.uint8)
    return labels, tuple(Grid(labels.shape, s.affine).voxel_size_mm)


def test_classification_of_the_real_manual_masks(sample_subject: SampleSubject):
    s = sample_subject
    labels, voxel = _labels_and_voxel(s)
    threshold = s.flair > 0.1 * np.percentile(s.flair, 99)
    brain = np.stack([ndimage.binary_fill_holes(threshold[..., k]) for k in range(labels.shape[2])], axis=-1)
    brain |= labels > 0
    profile = lesion_profile(labels, s.flair, brain, voxel)
    classes = profile.class_volume
    # Every lesion voxel gets exactly one class, nothing else gets one.
    assert ((classes > 0) == (labels == 2)).all()
    assert set(np.unique(classes[labels == 2])) <= {PEWMH, PAWMH, JCWMH}
    m = profile.metrics
    assert m["pewmh_area_mm2"] + m["pawmh_area_mm2"] + m["jcwmh_area_mm2"] == m["lesion_area_mm2"]
    assert m["lesion_area_mm2"] == pytest.approx((labels == 2).sum() * voxel[0] * voxel[1])
    assert m["lesion_volume_ml"] == pytest.approx(profile.lesions3d["volume_ml"].sum())
    # Lesions touching the ventricles (8-neighbours in the slice) are periventricular.
    touching = 0
    for k in range(labels.shape[2]):
        near = ndimage.binary_dilation(labels[..., k] == 1, structure=np.ones((3, 3))) & (labels[..., k] == 2)
        touching += int(near.sum())
        assert (classes[..., k][near] == PEWMH).all()
    assert touching > 0
    table = profile.lesions2d
    assert (table.loc[table.class_code == JCWMH, "area_mm2"] <= REFERENCE_RULE.juxtacortical_max_area_mm2 + 1e-6).all()
    assert 0 < m["n_lesions_3d"] <= m["n_lesions_2d"]
    assert profile.csf.any() and not (profile.csf & (labels == 1)).any()


# --- property --------------------------------------------------------------------------------


@st.composite
def _cases(draw):
    shape = (draw(st.integers(2, 9)), draw(st.integers(2, 9)), draw(st.integers(1, 3)))
    labels = draw(arrays(np.uint8, shape, elements=st.integers(0, 2)))
    csf = draw(arrays(bool, shape))
    voxel = tuple(draw(st.floats(0.2, 3.0)) for _ in range(3))
    return labels, csf, voxel


def _brute_force_distance(points_a, points_b, voxel):
    if len(points_b) == 0:
        return math.nan
    a = np.asarray(points_a, float) * voxel[:2]
    b = np.asarray(points_b, float) * voxel[:2]
    return float(np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min())


@settings(max_examples=50, deadline=None)
@given(_cases())
def test_every_lesion_pixel_gets_exactly_one_class_and_distances_are_exact(case):
    labels, csf, voxel = case
    class_volume, table = classify_lesions_2d(labels, voxel, csf)
    assert class_volume.dtype == np.uint8
    assert ((class_volume > 0) == (labels == 2)).all()
    assert np.isin(class_volume[labels == 2], [PEWMH, PAWMH, JCWMH]).all()
    assert int(table["n_pixels"].sum()) == int((labels == 2).sum())
    rule = REFERENCE_RULE
    for row in table.itertuples():
        components, _ = ndimage.label(labels[..., row.slice] == 2, structure=np.ones((3, 3)))
        pixels = np.argwhere(components == row.lesion_index)
        assert (class_volume[..., row.slice][components == row.lesion_index] == row.class_code).all()
        ventricle = np.argwhere(labels[..., row.slice] == 1)
        edge_v = _brute_force_distance(pixels, ventricle, voxel)
        centroid_v = _brute_force_distance(pixels.mean(axis=0, keepdims=True), ventricle, voxel)
        edge_c = _brute_force_distance(pixels, np.argwhere(csf[..., row.slice]), voxel)
        for got, want in (
            (row.edge_to_ventricle_mm, edge_v),
            (row.centroid_to_ventricle_mm, centroid_v),
            (row.edge_to_csf_mm, edge_c),
        ):
            assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-9)
        peri = edge_v <= rule.periventricular_edge_mm or centroid_v <= rule.periventricular_centroid_mm
        juxta = edge_c <= rule.juxtacortical_edge_mm and row.area_mm2 <= rule.juxtacortical_max_area_mm2
        assert row.class_code == (PEWMH if peri else JCWMH if juxta else PAWMH)
    table3d = lesions_3d(labels, class_volume, voxel)
    assert int(table3d["n_voxels"].sum()) == int((labels == 2).sum())
    m = subject_metrics(labels, class_volume, np.ones(labels.shape, bool), voxel, table, table3d)
    assert m["lesion_area_mm2"] == m["pewmh_area_mm2"] + m["pawmh_area_mm2"] + m["jcwmh_area_mm2"]


def test_csf_mask_means_the_same_on_a_finer_matrix():
    """The same slice on pixels half as large (each pixel split in four) gives the same CSF
    mask: the window and the smallest component are set in mm, not in pixels."""
    image, brain, ventricles, *_ = _phantom_slice(outside_value=0.0)
    coarse = csf_mask(image, brain, ventricles, VOXEL)
    fine_args = [np.repeat(np.repeat(a, 2, axis=0), 2, axis=1) for a in (image, brain, ventricles)]
    fine = csf_mask(*fine_args, (DX / 2, DY / 2, DZ))
    np.testing.assert_array_equal(fine[::2, ::2], coarse)


def test_thin_slices_are_classed_as_the_thick_slices_they_make_up():
    """Each slice of a real subject split into 7 thin ones gives the same classes, areas and
    volumes: the rule runs on slabs of 6.5 mm of them (slices_per_rule_slice)."""
    s = SampleSubject("104252")
    labels, voxel = _labels_and_voxel(s)
    brain = np.ones(labels.shape, bool)
    thick = lesion_profile(labels, s.flair, brain, voxel)
    thin_voxel = (voxel[0], voxel[1], voxel[2] / 7)
    thin = lesion_profile(*(np.repeat(a, 7, axis=2) for a in (labels, s.flair, brain)), thin_voxel)
    assert thick.metrics["slices_per_rule_slice"] == 1 and thin.metrics["slices_per_rule_slice"] == 7
    np.testing.assert_array_equal(thin.class_volume[..., ::7], thick.class_volume)
    for key, value in thick.metrics.items():
        if key not in ("n_slices", "slice_spacing_mm", "slices_per_rule_slice"):
            assert thin.metrics[key] == pytest.approx(value, rel=1e-9, nan_ok=True), key


def test_thin_slabs_stay_in_scanner_space_when_the_field_of_view_grows():
    """The same thin slices with 1 to 6 empty slices added below (the field of view padded,
    the first slice's centre that much lower) keep every lesion voxel's class and every
    volume: the slabs are anchored in scanner space. Started at the first slice instead, the
    slabs move and the classes change."""
    s = SampleSubject("104252")
    labels, voxel = _labels_and_voxel(s)
    thin_voxel = (voxel[0], voxel[1], voxel[2] / 7)
    thin = [np.repeat(a, 7, axis=2) for a in (labels, s.flair, np.ones(labels.shape, bool))]
    origin_mm = 3.0 * thin_voxel[2]
    base = lesion_profile(*thin, thin_voxel, slice_origin_mm=origin_mm)
    moved = []
    for empty in range(1, 7):
        padded = [np.concatenate([np.zeros(a.shape[:2] + (empty,), a.dtype), a], axis=2) for a in thin]
        anchored = lesion_profile(*padded, thin_voxel, slice_origin_mm=origin_mm - empty * thin_voxel[2])
        np.testing.assert_array_equal(anchored.class_volume[..., empty:], base.class_volume)
        for key in ("pewmh_volume_ml", "pawmh_volume_ml", "jcwmh_volume_ml", "ventricle_volume_ml"):
            assert anchored.metrics[key] == pytest.approx(base.metrics[key], rel=1e-12), (empty, key)
        from_first_slice = lesion_profile(*padded, thin_voxel).class_volume[..., empty:]
        moved.append(not np.array_equal(from_first_slice, base.class_volume))
    assert any(moved)


def test_slab_starts_and_offsets():
    assert slab_starts(10, 7).tolist() == [0, 7]
    assert slab_starts(10, 7, offset=3).tolist() == [0, 4]
    assert slab_starts(3, 7, offset=6).tolist() == [0, 1]
    assert slab_offset(-2.0, 1.0, 7) == 5 and slab_offset(14.0, 1.0, 7) == 0 and slab_offset(3.0, 1.5, 7) == 2


def test_fine_pixels_are_classed_as_the_pixels_they_make_up():
    """Each pixel of a real subject split into 2 x 2 (a 512 matrix) gives the same classes,
    lesions, areas and volumes: the rule runs on pixels of about 0.9 mm, the reference's, made
    of them (pixels_per_rule_pixel). Classified on the fine pixels themselves, the same lesions
    lie half a pixel closer to the CSF and the juxtacortical volume grew."""
    s = SampleSubject("104252")
    labels, voxel = _labels_and_voxel(s)
    brain = np.ones(labels.shape, bool)
    coarse = lesion_profile(labels, s.flair, brain, voxel)
    fine_voxel = (voxel[0] / 2, voxel[1] / 2, voxel[2])
    assert pixels_per_rule_pixel(fine_voxel[0]) == 2 and pixels_per_rule_pixel(voxel[0]) == 1
    split = [np.repeat(np.repeat(a, 2, axis=0), 2, axis=1) for a in (labels, s.flair, brain)]
    fine = lesion_profile(*split, fine_voxel)
    np.testing.assert_array_equal(fine.class_volume[::2, ::2], coarse.class_volume)
    np.testing.assert_array_equal(fine.class_volume[1::2, 1::2], coarse.class_volume)
    pd.testing.assert_frame_equal(fine.lesions2d, coarse.lesions2d)
    assert fine.metrics["rule_pixel_area_mm2"] == pytest.approx(coarse.metrics["pixel_area_mm2"])
    for key, value in coarse.metrics.items():
        if key != "pixel_area_mm2":
            assert fine.metrics[key] == pytest.approx(value, rel=1e-9, nan_ok=True), key
    on_fine_pixels = lesion_profile(*split, fine_voxel, rule=LesionRule(pixel_size_mm=fine_voxel[0]))
    assert on_fine_pixels.metrics["jcwmh_volume_ml"] > coarse.metrics["jcwmh_volume_ml"]


def test_rule_pixels_group_as_a_thick_slice_shows_them():
    """A rule pixel of 2 x 2 fine pixels is lesion where any of them is, ventricle where half
    of them are and none is lesion; its FLAIR is their mean; odd sizes keep a last, smaller
    rule pixel."""
    labels = np.zeros((7, 2, 1), np.uint8)
    labels[0, :, 0] = SegmentationClass.VENTRICLES
    labels[2, 1, 0] = SegmentationClass.LESIONS
    labels[3, 0, 0] = SegmentationClass.VENTRICLES
    labels[4, 0, 0] = SegmentationClass.VENTRICLES
    labels[6, :, 0] = SegmentationClass.VENTRICLES
    flair = np.arange(14.0).reshape(7, 2, 1)
    slices = rule_slices(labels, flair, labels > 0, (0.45, 0.45, 6.0), 1)
    grid = rule_pixels(slices, 2, 2)
    assert grid.labels[:, 0, 0].tolist() == [1, 2, 0, 1]
    assert grid.flair[:, 0, 0].tolist() == [1.5, 5.5, 9.5, 12.5]
    assert grid.brain[:, 0, 0].tolist() == [True, True, True, True]
    assert grid.voxel_size_mm == (0.9, 0.9, 6.0)


@settings(max_examples=50, deadline=None)
@given(
    lesion=arrays(bool, (24, 20), elements=st.booleans()),
    seed=st.integers(0, 2**16),
)
def test_per_component_minimum_is_what_scipy_gives(lesion, seed):
    """The edge distances of each 2-D lesion come from its own pixels (no sort of the whole
    slice): equal, value for value, to ``ndimage.minimum`` over the labelled slice."""
    distance = np.random.default_rng(seed).uniform(0.0, 50.0, lesion.shape)
    components, n = ndimage.label(lesion, structure=np.ones((3, 3), bool))
    rows, cols = np.nonzero(components)
    expected = np.asarray(ndimage.minimum(distance, components, np.arange(1, n + 1)), dtype=np.float64)
    np.testing.assert_array_equal(_component_minimum(distance[rows, cols], components[rows, cols], n), expected)


def test_a_slab_shows_the_ventricle_where_half_of_its_slices_have_it():
    """A thick slice shows the ventricle only where it fills enough of the slice: in a slab of
    7 thin slices, ventricle in 1 or 3 of them is not ventricle, in 4 it is; lesion in any one
    of them is lesion, also over ventricle. Slabs of 2 slices (3 mm slices) keep a ventricle
    in either slice."""
    labels = np.zeros((5, 1, 7), np.uint8)
    labels[0, 0, 3] = SegmentationClass.VENTRICLES
    labels[1, 0, 2:5] = SegmentationClass.VENTRICLES
    labels[2, 0, 3] = SegmentationClass.LESIONS
    labels[3, 0, :6] = SegmentationClass.VENTRICLES
    labels[3, 0, 6] = SegmentationClass.LESIONS
    labels[4, 0, 2:6] = SegmentationClass.VENTRICLES
    ones = np.ones(labels.shape)
    slab = rule_slices(labels, ones, ones > 0, (1.0, 1.0, 1.0), 7)
    assert slab.labels[:, 0, 0].tolist() == [0, 0, 2, 2, 1]
    assert slab.voxel_size_mm == (1.0, 1.0, 7.0)
    pairs = rule_slices(labels[:, :, 2:4], ones[:, :, 2:4], ones[:, :, 2:4] > 0, (1.0, 1.0, 3.0), 2)
    assert pairs.labels[:, 0, 0].tolist() == [1, 1, 2, 1, 1]
