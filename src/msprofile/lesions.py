"""Lesion classes and per-subject lesion metrics (docs/method.md sections 4 and 5), as pure
functions on arrays.

Every function works on one subject's **native grid**: arrays of shape ``(nx, ny, nz)`` with
the axial slices on the LAST axis, and voxel sizes ``(dx, dy, dz)`` in mm along the array axes
0, 1, 2 (``dx`` need not equal ``dy``). Label volumes use :class:`msprofile.labels.SegmentationClass`: 0 background,
1 ventricles, 2 lesions (abnormal white-matter hyperintensities).

Pipeline::

    csf = csf_mask(flair, brain, labels == SegmentationClass.VENTRICLES, voxel_size_mm)
    class_volume, lesions2d = classify_lesions_2d(labels, voxel_size_mm, csf)
    lesions3d = lesions_3d(labels, class_volume, voxel_size_mm)
    metrics = subject_metrics(labels, class_volume, brain, voxel_size_mm, lesions2d, lesions3d)

(:func:`lesion_profile` runs the four steps.)

Conventions a caller must know
------------------------------
* **Reference 2-D rule**, per axial slice, per 2-D lesion (8-connected component of class 2),
  first match wins: PEWMH (code 1) if the lesion's edge is within 7.5 mm of the ventricles OR
  its centroid within 15 mm of them; else JCWMH (code 3) if its edge is within 6 mm of the
  cortical CSF mask AND its area is at most pi * 6^2 / 4 = 28.27 mm^2; else PAWMH (code 2).
* **Boundaries are inclusive** (``distance <= threshold``, ``area <= limit``), as in the
  reference (``obj_categorize`` uses ``<=``), with a tolerance of :data:`TOLERANCE` (1e-6, in
  mm or mm^2) so that a geometrically exact boundary is not lost to floating-point rounding.
* **Distances are between pixel centres, in mm, with the real (anisotropic) pixel size**
  (the reference measured between contour vertices, i.e. boundary pixel centres, with a
  hard-coded 0.9 mm pixel). "Edge distance" is the minimum over the lesion's pixels of the
  Euclidean distance transform of the complement of the ventricle (or CSF) mask computed with
  ``sampling=(dx, dy)``, i.e. the distance from the nearest lesion pixel centre to the nearest
  ventricle (CSF) pixel centre. The nearest such pixel is always on the structure's boundary,
  so this is the distance to the ventricle boundary.
* **Centroid distance** is exact: the centroid is the mean of the lesion's pixel indices
  (sub-pixel, not rounded as the reference did), and its distance is the Euclidean distance in
  mm from that point to the nearest ventricle pixel centre (a k-d tree over the slice's
  ventricle pixels), not a distance-map value read at a rounded pixel.
* **Touching and overlap.** One label volume cannot hold a voxel that is both lesion and
  ventricle (the lesion wins, docs/method.md section 2), so a lesion touching the ventricle has an
  edge distance of one pixel step (``dx``, ``dy`` or the diagonal), which is at most 7.5 mm for
  any in-plane pixel up to 5.3 mm: a lesion touching the ventricle is always PEWMH. A CSF mask
  passed by a caller may overlap a lesion; overlap gives an edge distance of 0 (within 6 mm).
* **A slice without ventricle pixels** has no periventricular lesion: its ventricle distances
  are NaN and the PEWMH test fails. Likewise a slice without CSF pixels has no JCWMH lesion
  (CSF distance NaN). Nothing is borrowed from neighbouring slices: the rule is 2-D.
* **Areas** are pixel counts times ``dx * dy`` (mm^2); **volumes** are voxel counts times
  ``dx * dy * dz`` / 1000 (mL), i.e. areas summed over slices times the slice spacing ``dz``.
* **3-D lesions** are 26-connected components of class 2. Their class is the class holding
  the largest share of their voxels under the 2-D rule (ties: PEWMH, then JCWMH, then PAWMH,
  the 2-D rule's precedence); see :func:`lesions_3d` for why. ``any_periventricular`` reports
  the alternative "periventricular if any 2-D part is" (continuity) rule as well.
* **CSF mask**: see :func:`csf_mask` (per slice, FLAIR scaled to 0-255 by the brain's
  0.5th and 99.5th percentiles on that slice, Gaussian-weighted local mean over brain pixels only).
* **Thin slices** (3-D data, thin 2-D): the rule was made for the reference's thick slices
  (6.4-8 mm), and on 1 mm slices every lesion has small cross-sections at its top and bottom
  that pass the juxtacortical area limit. So slices thinner than about two thirds of
  ``LesionRule.slice_thickness_mm`` are grouped into slabs of that thickness
  (:func:`slices_per_rule_slice`) anchored in scanner space (:func:`slab_offset`: where the
  slabs fall moved a class's volume by up to a factor two, and cropping or padding the field
  of view must not move them), and the rule runs on each slab's footprint
  (a pixel is lesion where any slice of the slab has lesion, ventricle where half of
  them have ventricle and none lesion; the slab's FLAIR is the mean of its slices, its brain
  the union), as a thick slice shows them. Every lesion voxel takes the class of the
  footprint lesion it lies in. Areas (mm^2, summed over rule slices) come from the
  footprints, so that they compare with thick-slice areas; volumes come from the voxels
  themselves. Thick slices are rule slices of one slice each: the reference's rule,
  unchanged.
* **Fine pixels** (a 512 matrix, 0.45 mm): the rule's thresholds are distances between the
  centres of the reference's 0.9 mm pixels, and its cortical CSF mask was drawn at that
  pixel size. On pixels half that size the same lesion lies half a pixel closer to the CSF
  (centre to centre) and the CSF mask itself changes, so the juxtacortical volume of the
  same scan grew by up to 50 %. Pixels finer than about two thirds of
  ``LesionRule.pixel_size_mm`` are therefore grouped into rule pixels of about that size
  (:func:`pixels_per_rule_pixel`), on which the CSF mask is drawn and the lesions are
  classified (a rule pixel is lesion where any of its pixels is, ventricle where half of
  them are and none is lesion, its FLAIR their mean, its brain their union); every lesion
  pixel takes the class of its rule pixel. Areas are still counted on the pixels themselves,
  and the 2-D lesions of ``lesions2d`` are the rule's. Pixels of the reference's size and
  coarser are classified as they are.
* **Reference intracranial window**: slices 8 to 15 (0-based array indices on the last axis,
  ``brain[..., 8:16]``, 8 slices), taken in the order the array holds them; NaN when the volume
  has fewer than 16 slices. The whole-brain area is the primary measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from .labels import LESION_CLASSES, LesionClass, SegmentationClass

# Order of precedence of the 2-D rule (also the tie-break of the 3-D rule).
CLASS_PRECEDENCE: tuple[LesionClass, ...] = (LesionClass.PEWMH, LesionClass.JCWMH, LesionClass.PAWMH)
TOLERANCE = 1e-6
# The reference's intracranial window: 0-based slice indices 8..15 (8 slices).
REFERENCE_WINDOW = slice(8, 16)
# Cohort-table column (docs/method.md section 5) -> key of subject_metrics().
REFERENCE_COLUMNS: dict[str, str] = {
    "TotalIntracranialArea": "intracranial_area_mm2",
    "TotalVentricleArea": "ventricle_area_mm2",
    "TotalWMHArea": "lesion_area_mm2",
    "TotalPeriArea": "pewmh_area_mm2",
    "TotalParaArea": "pawmh_area_mm2",
    "TotalJuxtArea": "jcwmh_area_mm2",
}

_EIGHT = np.ones((3, 3), dtype=bool)
_TWENTY_SIX = np.ones((3, 3, 3), dtype=bool)

LESIONS_2D_COLUMNS = (
    "slice",
    "lesion_index",
    "n_pixels",
    "area_mm2",
    "centroid_row",
    "centroid_col",
    "edge_to_ventricle_mm",
    "centroid_to_ventricle_mm",
    "edge_to_csf_mm",
    "class_code",
    "class_name",
)
LESIONS_3D_COLUMNS = (
    "lesion_id",
    "n_voxels",
    "volume_ml",
    "n_slices",
    "first_slice",
    "last_slice",
    "voxels_pewmh",
    "voxels_pawmh",
    "voxels_jcwmh",
    "class_code",
    "class_name",
    "any_periventricular",
)


@dataclass(frozen=True)
class LesionRule:
    """Thresholds of the 2-D rule (defaults: the reference, docs/method.md section 4).

    ``periventricular_edge_mm``: lesion edge to ventricle; ``periventricular_centroid_mm``:
    lesion centroid to ventricle; ``juxtacortical_edge_mm``: lesion edge to cortical CSF;
    ``juxtacortical_max_area_mm2``: largest juxtacortical lesion (pi * 6^2 / 4, an equivalent
    diameter of 6 mm). All inclusive. ``slice_thickness_mm``: the slice thickness the rule is
    applied on: thinner slices are grouped into slabs this thick (6.5 mm, the middle of the
    reference cohort's 6.4-8 mm slices; :func:`slices_per_rule_slice`). ``pixel_size_mm``: the
    in-plane pixel the rule is applied on (the reference's hard-coded 0.9 mm pixel): finer
    pixels are grouped into pixels about this size (:func:`pixels_per_rule_pixel`).
    """

    periventricular_edge_mm: float = 7.5
    periventricular_centroid_mm: float = 15.0
    juxtacortical_edge_mm: float = 6.0
    juxtacortical_max_area_mm2: float = math.pi * 6.0**2 / 4.0
    slice_thickness_mm: float = 6.5
    pixel_size_mm: float = 0.9


REFERENCE_RULE = LesionRule()


@dataclass(frozen=True)
class CsfSettings:
    """Settings of :func:`csf_mask` (defaults: the reference's adaptive threshold).

    ``block_mm``: side of the Gaussian window, 65 pixels of the reference's 1 mm grid.
    The Gaussian's sigma is OpenCV's for that kernel, ``0.3 * ((block - 1) / 2 - 1) + 0.8``
    (10.1 mm), truncated at ``(block - 1) / 2`` (32 mm). ``offset``: how much darker than the
    local mean a pixel must be, on the 0-255 scale (25). ``min_area_mm2``: smallest component
    kept (8-connected; 2 pixels of the reference's 1 mm grid, in mm^2 so that it means the same
    at any pixel size). ``percentiles``: brain intensities mapped to 0 and 255 on each
    slice. The reference scaled by the minimum and maximum; (0.5, 99.5) instead, because two
    single voxels then set the scale of the whole slice, and they move with the representation
    (noise, the overshoot of zero-filled interpolation, a bright lesion): on subject 104252 a
    512 matrix changed the juxtacortical volume from 0.28 to 0.08 mL with (0, 100), from 0.42 to
    0.50 mL with (0.5, 99.5).
    """

    block_mm: float = 65.0
    offset: float = 25.0
    min_area_mm2: float = 2.0
    percentiles: tuple[float, float] = (0.5, 99.5)


@dataclass(frozen=True)
class LesionProfile:
    """Everything :func:`lesion_profile` computes for one subject (native grid; ``csf`` on the
    rule's grid, which is the native grid unless the slices are thin or the pixels fine)."""

    csf: np.ndarray
    class_volume: np.ndarray
    lesions2d: pd.DataFrame
    lesions3d: pd.DataFrame
    metrics: dict


# ---------------------------------------------------------------------------------------------
# Cortical CSF mask
# ---------------------------------------------------------------------------------------------


def csf_mask(
    flair: np.ndarray, brain: np.ndarray, ventricles: np.ndarray, voxel_size_mm, settings: CsfSettings = CsfSettings()
) -> np.ndarray:
    """Cortical CSF mask: dark regions inside the brain, per axial slice (reference definition).

    Parameters: ``flair`` float ``(nx, ny, nz)`` (any intensity scale); ``brain`` bool, same
    shape; ``ventricles`` bool, same shape; ``voxel_size_mm`` ``(dx, dy[, dz])`` in mm.
    Returns bool ``(nx, ny, nz)``.

    Per slice: the FLAIR is scaled to 0-255 with the brain's intensities on that slice
    (``settings.percentiles`` of the brain pixels map to 0 and 255, values clipped; default
    the 0.5th and 99.5th, where the reference took the minimum and maximum). A pixel is dark
    when it is at most the local Gaussian-weighted mean minus ``offset`` (OpenCV's
    ``ADAPTIVE_THRESH_GAUSSIAN_C`` with ``THRESH_BINARY_INV``, which is also inclusive). The
    Gaussian window is ``block_mm`` wide in mm, so it covers the same anatomy at any pixel size
    (65 pixels on the reference's 1 mm grid). The local mean is taken over brain pixels only
    (normalised convolution), so what lies outside the brain (skull, background, an earlier
    skull strip) does not move the threshold; the reference blurred the whole slice. Dark pixels
    are restricted to the brain, ventricles are removed, and 8-connected components smaller
    than ``min_area_mm2`` are dropped. A slice with fewer
    than two brain pixels or a constant brain gets no CSF. Not bit-exact to OpenCV's 8-bit
    arithmetic (this works in floating point).
    """
    flair = np.asarray(flair, dtype=np.float64)
    brain = np.asarray(brain, dtype=bool)
    ventricles = np.asarray(ventricles, dtype=bool)
    if flair.ndim != 3 or brain.shape != flair.shape or ventricles.shape != flair.shape:
        raise ValueError(
            f"flair, brain and ventricles must be 3-D and of one shape, got "
            f"{flair.shape}, {brain.shape}, {ventricles.shape}"
        )
    dx, dy = _pixel_size(voxel_size_mm)
    radius_mm = (settings.block_mm - 1.0) / 2.0
    sigma_mm = 0.3 * (radius_mm - 1.0) + 0.8
    sigma_px = (sigma_mm / dx, sigma_mm / dy)
    truncate = radius_mm / sigma_mm
    out = np.zeros(flair.shape, dtype=bool)
    for k in range(flair.shape[2]):
        inside = brain[..., k]
        if inside.sum() < 2:
            continue
        values = flair[..., k][inside]
        values = values[np.isfinite(values)]
        if values.size < 2:
            continue
        low, high = np.percentile(values, settings.percentiles)
        if not high > low:
            continue
        scaled = np.clip((np.nan_to_num(flair[..., k]) - low) / (high - low) * 255.0, 0.0, 255.0)
        weight = inside.astype(np.float64)
        numerator = ndimage.gaussian_filter(scaled * weight, sigma_px, mode="constant", truncate=truncate)
        denominator = ndimage.gaussian_filter(weight, sigma_px, mode="constant", truncate=truncate)
        local_mean = np.divide(numerator, denominator, out=np.full_like(numerator, np.inf), where=denominator > 0)
        dark = inside & ~ventricles[..., k] & (scaled <= local_mean - settings.offset)
        out[..., k] = _drop_small(dark, math.ceil(settings.min_area_mm2 / (dx * dy) - TOLERANCE))
    return out


# ---------------------------------------------------------------------------------------------
# 2-D classification
# ---------------------------------------------------------------------------------------------


def classify_lesions_2d(
    labels: np.ndarray, voxel_size_mm, csf: np.ndarray, rule: LesionRule = REFERENCE_RULE
) -> tuple[np.ndarray, pd.DataFrame]:
    """Classify every 2-D lesion of every axial slice with the reference rule.

    Parameters: ``labels`` integer ``(nx, ny, nz)`` with values 0/1/2 (lesion wins where the
    manual masks overlap, so a voxel is never both); ``voxel_size_mm`` ``(dx, dy[, dz])`` in mm
    (only ``dx``, ``dy`` are used); ``csf`` bool ``(nx, ny, nz)``, the cortical CSF mask (from
    :func:`csf_mask` or the caller's own); ``rule`` the thresholds.

    Returns ``(class_volume, lesions2d)``:

    * ``class_volume`` uint8 ``(nx, ny, nz)``: 0 where ``labels != 2``, else the class code of
      the voxel's 2-D lesion: 1 PEWMH, 2 PAWMH, 3 JCWMH. Every lesion voxel gets exactly one.
    * ``lesions2d`` DataFrame, one row per 2-D lesion (8-connected component of class 2 on one
      slice), ordered by slice then ``lesion_index`` (1-based, scipy's labelling order within
      the slice): ``slice`` (index on the last axis), ``n_pixels``, ``area_mm2``,
      ``centroid_row`` / ``centroid_col`` (mean pixel index along axes 0 / 1, sub-pixel),
      ``edge_to_ventricle_mm``, ``centroid_to_ventricle_mm``, ``edge_to_csf_mm`` (NaN when the
      slice has no ventricle / CSF pixel), ``class_code``, ``class_name``.

    See the module docstring for the distance definitions and the inclusive boundaries.
    """
    labels = _check_labels(labels)
    csf = np.asarray(csf, dtype=bool)
    if csf.shape != labels.shape:
        raise ValueError(f"csf mask shape {csf.shape} differs from labels shape {labels.shape}")
    dx, dy = _pixel_size(voxel_size_mm)
    class_volume = np.zeros(labels.shape, dtype=np.uint8)
    tables = []
    for k in range(labels.shape[2]):
        lesion = labels[..., k] == SegmentationClass.LESIONS
        if not lesion.any():
            continue
        table, classes = _classify_slice(
            lesion, labels[..., k] == SegmentationClass.VENTRICLES, csf[..., k], dx, dy, rule
        )
        table.insert(0, "slice", k)
        class_volume[..., k] = classes
        tables.append(table)
    if tables:
        lesions2d = pd.concat(tables, ignore_index=True)
    else:
        lesions2d = _empty_2d()
    return class_volume, lesions2d


def _component_minimum(values: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """The smallest of ``values`` per component: ``values`` and ``ids`` (1..n) of the components'
    pixels -> (n,) float64. What ``ndimage.minimum(image, components, 1..n)`` gives, from the
    lesion pixels alone instead of a sort of the whole slice."""
    smallest = np.full(n, np.inf)
    np.minimum.at(smallest, ids - 1, values.astype(np.float64))
    return smallest


def _classify_slice(lesion, ventricles, csf, dx, dy, rule: LesionRule):
    components, n = ndimage.label(lesion, structure=_EIGHT)
    index = np.arange(1, n + 1)
    rows, cols = np.nonzero(components)
    ids = components[rows, cols]
    n_pixels = np.bincount(ids, minlength=n + 1)[1:]
    centroid_row = np.bincount(ids, weights=rows, minlength=n + 1)[1:] / n_pixels
    centroid_col = np.bincount(ids, weights=cols, minlength=n + 1)[1:] / n_pixels
    area_mm2 = n_pixels * (dx * dy)

    nan = np.full(n, np.nan)
    if ventricles.any():
        distance = ndimage.distance_transform_edt(~ventricles, sampling=(dx, dy))
        edge_v = _component_minimum(distance[rows, cols], ids, n)
        tree = cKDTree(np.argwhere(ventricles) * np.array([dx, dy]))
        centroid_v, _ = tree.query(np.column_stack([centroid_row * dx, centroid_col * dy]))
        centroid_v = np.asarray(centroid_v, dtype=np.float64)
    else:
        edge_v, centroid_v = nan, nan
    if csf.any():
        distance = ndimage.distance_transform_edt(~csf, sampling=(dx, dy))
        edge_c = _component_minimum(distance[rows, cols], ids, n)
    else:
        edge_c = nan

    codes = _apply_rule(edge_v, centroid_v, edge_c, area_mm2, rule)
    lookup = np.zeros(n + 1, dtype=np.uint8)
    lookup[1:] = codes
    table = pd.DataFrame(
        {
            "lesion_index": index,
            "n_pixels": n_pixels.astype(np.int64),
            "area_mm2": area_mm2,
            "centroid_row": centroid_row,
            "centroid_col": centroid_col,
            "edge_to_ventricle_mm": edge_v,
            "centroid_to_ventricle_mm": centroid_v,
            "edge_to_csf_mm": edge_c,
            "class_code": codes.astype(np.int64),
            "class_name": [LesionClass(int(c)).name for c in codes],
        }
    )
    return table, lookup[components]


def _apply_rule(edge_v, centroid_v, edge_c, area_mm2, rule: LesionRule) -> np.ndarray:
    """Class codes from per-lesion measures (NaN distances never satisfy a rule)."""
    with np.errstate(invalid="ignore"):
        peri = (edge_v <= rule.periventricular_edge_mm + TOLERANCE) | (
            centroid_v <= rule.periventricular_centroid_mm + TOLERANCE
        )
        juxta = (edge_c <= rule.juxtacortical_edge_mm + TOLERANCE) & (
            area_mm2 <= rule.juxtacortical_max_area_mm2 + TOLERANCE
        )
    return np.where(peri, LesionClass.PEWMH, np.where(juxta, LesionClass.JCWMH, LesionClass.PAWMH)).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# 3-D lesions
# ---------------------------------------------------------------------------------------------


def lesions_3d(labels: np.ndarray, class_volume: np.ndarray, voxel_size_mm) -> pd.DataFrame:
    """One row per 3-D lesion: a 26-connected component of class 2 (faces, edges and corners).

    Parameters: ``labels`` ``(nx, ny, nz)`` 0/1/2; ``class_volume`` uint8 ``(nx, ny, nz)`` from
    :func:`classify_lesions_2d`; ``voxel_size_mm`` ``(dx, dy, dz)`` in mm.

    Columns: ``lesion_id`` (1-based, scipy's labelling order), ``n_voxels``, ``volume_ml``,
    ``n_slices`` (a connected component spans contiguous slices), ``first_slice``,
    ``last_slice``, ``voxels_pewmh`` / ``voxels_pawmh`` / ``voxels_jcwmh`` (voxels of each 2-D
    class), ``class_code`` / ``class_name`` (the 3-D rule), ``any_periventricular`` (bool: some
    2-D part is PEWMH).

    26-connectivity: with thick 2-D slices (5-8 mm), a lesion crossing slices obliquely often
    overlaps its neighbour slice only at a corner; 26-connectivity also contains the 2-D
    8-connectivity, so every 2-D lesion lies in exactly one 3-D lesion.

    **3-D rule: the class holding the most voxels of the lesion** under the 2-D rule, ties
    broken by the 2-D rule's precedence (PEWMH, JCWMH, PAWMH). Why: the per-class areas and
    volumes of :func:`subject_metrics` are voxel sums of the 2-D classes (that is what keeps
    them comparable with the reference's cohort areas), and with the majority rule a 3-D
    lesion is counted in the class that holds most of its volume, so per-class counts and
    per-class volumes describe the same lesions. The alternative "periventricular if any 2-D
    part is" (the continuity rule of peer tools such as FSL BIANCA's periventricular/deep split,
    close to the clinical "touches the ventricle" definition) lets one 2-D part decide the whole
    lesion: with 5-8 mm slices, a large confluent deep lesion whose lowest part comes within
    7.5 mm of the ventricle on one slice would be counted periventricular while most of its
    volume is booked as PAWMH. It is reported as ``any_periventricular`` (and counted in
    ``n_lesions_3d_any_periventricular``) so a caller can count that way too.
    """
    labels = _check_labels(labels)
    class_volume = _check_class_volume(labels, class_volume)
    dx, dy, dz = _voxel_size_3d(voxel_size_mm)
    components, n = ndimage.label(labels == SegmentationClass.LESIONS, structure=_TWENTY_SIX)
    if n == 0:
        return _empty_3d()
    inside = components > 0
    ids = components[inside]
    per_class = np.bincount(ids * 4 + class_volume[inside].astype(np.int64), minlength=(n + 1) * 4)
    per_class = per_class.reshape(n + 1, 4)[1:]
    n_voxels = per_class.sum(axis=1)
    extents = ndimage.find_objects(components)
    first = np.array([s[2].start for s in extents], dtype=np.int64)
    last = np.array([s[2].stop - 1 for s in extents], dtype=np.int64)
    codes = np.array([_majority_class(row) for row in per_class], dtype=np.int64)
    return pd.DataFrame(
        {
            "lesion_id": np.arange(1, n + 1, dtype=np.int64),
            "n_voxels": n_voxels.astype(np.int64),
            "volume_ml": n_voxels * (dx * dy * dz) / 1000.0,
            "n_slices": last - first + 1,
            "first_slice": first,
            "last_slice": last,
            "voxels_pewmh": per_class[:, LesionClass.PEWMH].astype(np.int64),
            "voxels_pawmh": per_class[:, LesionClass.PAWMH].astype(np.int64),
            "voxels_jcwmh": per_class[:, LesionClass.JCWMH].astype(np.int64),
            "class_code": codes,
            "class_name": [LesionClass(int(c)).name for c in codes],
            "any_periventricular": per_class[:, LesionClass.PEWMH] > 0,
        }
    )


def _majority_class(counts_by_code: np.ndarray) -> int:
    best = max(counts_by_code[c] for c in CLASS_PRECEDENCE)
    return next(c for c in CLASS_PRECEDENCE if counts_by_code[c] == best)


# ---------------------------------------------------------------------------------------------
# Subject metrics
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSlices:
    """Slices of the 2-D rule (:func:`rule_slices`): ``labels``, ``brain`` and ``flair`` of shape
    ``(nx, ny, n_rule_slices)``, each rule slice made of ``slices_per_rule_slice`` native
    slices, and their voxel size ``voxel_size_mm`` (mm)."""

    labels: np.ndarray
    brain: np.ndarray
    flair: np.ndarray
    voxel_size_mm: tuple[float, float, float]
    slices_per_rule_slice: int


def slices_per_rule_slice(slice_thickness_mm: float, rule: LesionRule = REFERENCE_RULE) -> int:
    """How many slices of ``slice_thickness_mm`` make one slice of the rule: the whole number
    nearest ``rule.slice_thickness_mm / slice_thickness_mm``, at least 1 (1 for slices thicker
    than 4.4 mm at the default 6.5 mm; 7 for 1 mm slices)."""
    return max(1, int(math.floor(rule.slice_thickness_mm / slice_thickness_mm + 0.5)))


#: Share of a slab's slices that must be ventricle for the slab's footprint to show ventricle
#: (:func:`rule_slices`; also of a rule pixel's pixels, :func:`rule_pixels`). A thick slice
#: shows the ventricle only where it fills enough of the slice to darken the pixel. Chosen on
#: the four sample subjects resampled to 1 mm, each with the slabs started at all seven
#: slices of the first slab (where the slabs fall is arbitrary: the class volumes moved by up
#: to a factor 2.3 between those seven), against the stored thick slices and the bounds of
#: tests/test_input_geometry.py: with a quarter (2 of 7 sections) 12 of the 28 cases kept all
#: three lesion classes within the bounds, periventricular volume too high and paraventricular
#: too low on average (the ventricles drawn at nearly their largest section); with half (4
#: of 7) 26 of 28 (25 on a later rerun: 105465's JCWMH 0.01 mL past the bound at one), the
#: mean over the seven within 4 to 14 % of the thick slices' PEWMH and PAWMH for all four;
#: with 5 and 6 of 7, 25 and 23 of 28 (105465's PAWMH +43 % and +62 % on average: the
#: ventricles drawn too small). With any section (msprofile 0.2) the four lost 40 to 72 % of
#: their paraventricular volume. Checked on 2.2 mm copies (slabs of 3 slices, as
#: isbi02's), each at its 3 places: half 12 of 12, a quarter 8 of 12. Measured with
#: msprofile-brain (2026-12-06); 105465's juxtacortical volume at 1 mm stays about half of its
#: thick slices' with any share.
SLAB_VENTRICLE_FRACTION = 0.5


def pixels_per_rule_pixel(pixel_size_mm: float, rule: LesionRule = REFERENCE_RULE) -> int:
    """How many pixels of ``pixel_size_mm`` (mm, along one in-plane axis) make one pixel of the
    rule along that axis: the whole number nearest ``rule.pixel_size_mm / pixel_size_mm``, at
    least 1 (1 for pixels of 0.6 mm and more at the default 0.9 mm; 2 for a 512 matrix's 0.45 mm).

    Measured on the four sample subjects on a 512 matrix (zero-filled interpolation of their
    256 matrix): juxtacortical volume +4 to +50 % classified on the 0.45 mm pixels, -10 to
    +20 % on 0.9 mm rule pixels (see :func:`rule_pixels`)."""
    return max(1, int(math.floor(rule.pixel_size_mm / pixel_size_mm + 0.5)))


def rule_pixels(slices: RuleSlices, kx: int, ky: int) -> RuleSlices:
    """Group every ``kx`` by ``ky`` pixels of the rule slices (from the first; the last rows
    and columns may hold fewer) into one rule pixel: lesion where any of them is lesion,
    ventricle where at least :data:`SLAB_VENTRICLE_FRACTION` of them are ventricle and none is
    lesion, the brain's union and the FLAIR's mean; the rule the reference drew on its 0.9 mm
    pixels (see the module docstring). ``kx`` and ``ky`` 1 return ``slices``."""
    if kx == 1 and ky == 1:
        return slices
    rows = np.arange(0, slices.labels.shape[0], kx)
    cols = np.arange(0, slices.labels.shape[1], ky)

    def block_sum(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.add.reduceat(values, rows, axis=0), cols, axis=1)

    counts = block_sum(np.ones(slices.labels.shape[:2] + (1,), dtype=np.int32))
    dx, dy, dz = slices.voxel_size_mm
    return RuleSlices(
        *_footprint(slices.labels, slices.flair, slices.brain, block_sum, counts),
        (dx * kx, dy * ky, dz),
        slices.slices_per_rule_slice,
    )


def _footprint(labels: np.ndarray, flair: np.ndarray, brain: np.ndarray, block_sum, counts: np.ndarray):
    """What a coarser acquisition shows of groups of voxels (``block_sum`` sums each group,
    ``counts`` holds their sizes): ``(labels, brain, flair)`` with lesion where any voxel is
    lesion, ventricle where at least :data:`SLAB_VENTRICLE_FRACTION` of them are ventricle and
    none is lesion (uint8), the brain's union and the FLAIR's mean (non-finite values as 0)."""
    lesion = block_sum((labels == SegmentationClass.LESIONS).astype(np.int32)) > 0
    ventricle_count = block_sum((labels == SegmentationClass.VENTRICLES).astype(np.int32))
    ventricle = (ventricle_count >= SLAB_VENTRICLE_FRACTION * counts) & ~lesion
    footprint = np.where(lesion, SegmentationClass.LESIONS, np.where(ventricle, SegmentationClass.VENTRICLES, 0))
    union_brain = block_sum(np.asarray(brain, bool).astype(np.int32)) > 0
    mean_flair = block_sum(np.nan_to_num(np.asarray(flair, dtype=np.float64))) / counts
    return footprint.astype(np.uint8), union_brain, mean_flair


def slab_starts(n_slices: int, n: int, offset: int = 0) -> np.ndarray:
    """First slice (index on the last axis) of each slab of ``n`` slices when the slab
    boundaries fall where ``slice index + offset`` is a multiple of ``n`` (``offset`` 0 to
    ``n - 1``: how many slices of the first slab lie below the volume). The first and last
    slabs may hold fewer slices. Returns int64 ``(n_slabs,)``, starting with 0."""
    return np.unique(np.r_[0, np.arange((n - offset) % n, n_slices, n)]).astype(np.int64)


def slab_offset(slice_origin_mm: float, slice_thickness_mm: float, n: int) -> int:
    """The ``offset`` of :func:`slab_starts` that anchors the slabs in scanner space: slab
    boundaries at whole multiples of ``n`` slices from the scanner's origin along the slice
    axis, so that cropping or padding the field of view does not move them.
    ``slice_origin_mm``: position (mm) of the first slice's centre along the slice axis (the
    slice normal's dot product with the affine's translation)."""
    return int(round(slice_origin_mm / slice_thickness_mm)) % n


def rule_slices(
    labels: np.ndarray, flair: np.ndarray, brain: np.ndarray, voxel_size_mm, n: int, offset: int = 0
) -> RuleSlices:
    """Group the slices into slabs of ``n`` (:func:`slab_starts` with ``offset``), one rule
    slice each: lesion where any slice has lesion (a lesion shows in a thick slice however
    little of it lies there), ventricle where at least :data:`SLAB_VENTRICLE_FRACTION` of its
    slices have ventricle and none lesion, the brain's union and the FLAIR's mean (the first
    and last rule slices may hold fewer slices). ``n`` 1 returns the inputs."""
    dx, dy, dz = _voxel_size_3d(voxel_size_mm)
    if n == 1:
        return RuleSlices(labels, np.asarray(brain, bool), np.asarray(flair), (dx, dy, dz), 1)
    starts = slab_starts(labels.shape[2], n, offset)
    counts = np.diff(np.append(starts, labels.shape[2]))

    def slab_sum(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, starts, axis=2)

    return RuleSlices(*_footprint(labels, flair, brain, slab_sum, counts), (dx, dy, dz * n), n)


def subject_metrics(
    labels: np.ndarray,
    class_volume: np.ndarray,
    brain: np.ndarray,
    voxel_size_mm,
    lesions2d: pd.DataFrame,
    lesions3d: pd.DataFrame,
    *,
    rule: tuple[RuleSlices, np.ndarray] | None = None,
    rule_grid: RuleSlices | None = None,
) -> dict:
    """Per-subject areas, volumes and counts (a flat dict of Python scalars, one cohort row).

    Parameters: ``labels`` ``(nx, ny, nz)`` 0/1/2; ``class_volume`` from
    :func:`classify_lesions_2d`; ``brain`` bool ``(nx, ny, nz)`` (the intracranial mask);
    ``voxel_size_mm`` ``(dx, dy, dz)``; ``lesions2d`` / ``lesions3d`` the tables of
    :func:`classify_lesions_2d` / :func:`lesions_3d` for the same subject. ``rule``: for thin
    slices, the rule slices (:func:`rule_slices`) and their class volume, which ``lesions2d``
    describes and the areas are taken from; None when the rule ran on the slices themselves.
    ``rule_grid``: for fine pixels, the rule pixels (:func:`rule_pixels`) the lesions were
    classified on, which ``lesions2d`` then describes; None when they are the rule slices.

    Keys (units in the names):

    * reference-compatible areas in mm^2, summed over all (rule) slices (pixel counts times
      ``dx * dy``): ``intracranial_area_mm2`` (brain mask, all slices), ``ventricle_area_mm2``,
      ``pewmh_area_mm2``, ``pawmh_area_mm2``, ``jcwmh_area_mm2``, and ``lesion_area_mm2``
      defined as their sum, so ``lesion = peri + para + juxta`` holds exactly
      (:data:`REFERENCE_COLUMNS` maps cohort-table columns to these keys);
    * ``intracranial_area_mm2_reference_window``: the brain mask area over (rule) slices 8-15
      (0-based, the reference's fixed 8-slice window, in array order), NaN with fewer than 16;
    * volumes in mL, voxel counts times the voxel volume: ``intracranial_volume_ml``,
      ``ventricle_volume_ml``, ``pewmh_volume_ml``, ``pawmh_volume_ml``, ``jcwmh_volume_ml``,
      ``lesion_volume_ml`` (the sum of the three class volumes); on thick slices these are the
      areas times ``dz``;
    * counts: ``n_lesions_2d`` and ``n_lesions_2d_pewmh`` / ``_pawmh`` / ``_jcwmh`` (2-D lesions,
      summed over rule slices), ``n_lesions_3d`` and ``n_lesions_3d_pewmh`` / ``_pawmh`` /
      ``_jcwmh`` (3-D rule of :func:`lesions_3d`), ``n_lesions_3d_any_periventricular``;
    * grid: ``n_slices``, ``pixel_area_mm2``, ``slice_spacing_mm``,
      ``slices_per_rule_slice`` (1 unless the slices are thin) and ``rule_pixel_area_mm2`` (the
      pixel the lesions were classified on: ``pixel_area_mm2`` unless the pixels are fine).
    """
    labels = _check_labels(labels)
    class_volume = _check_class_volume(labels, class_volume)
    brain = np.asarray(brain, dtype=bool)
    if brain.shape != labels.shape:
        raise ValueError(f"brain mask shape {brain.shape} differs from labels shape {labels.shape}")
    dx, dy, dz = _voxel_size_3d(voxel_size_mm)
    pixel_area = dx * dy
    if rule is None:
        rule = (RuleSlices(labels, brain, np.zeros(0), (dx, dy, dz), 1), class_volume)
    slices, rule_classes = rule
    rule_counts = np.bincount(rule_classes.ravel(), minlength=4)
    if rule_grid is None:
        rule_grid = slices
    rule_lesion_pixels = int((rule_grid.labels == SegmentationClass.LESIONS).sum())
    if rule_lesion_pixels != int(lesions2d["n_pixels"].sum() if len(lesions2d) else 0):
        raise ValueError("lesions2d does not describe the rule's lesions (pixel counts differ)")

    areas = {
        "intracranial_area_mm2": int(slices.brain.sum()) * pixel_area,
        "ventricle_area_mm2": int((slices.labels == SegmentationClass.VENTRICLES).sum()) * pixel_area,
        "pewmh_area_mm2": int(rule_counts[LesionClass.PEWMH]) * pixel_area,
        "pawmh_area_mm2": int(rule_counts[LesionClass.PAWMH]) * pixel_area,
        "jcwmh_area_mm2": int(rule_counts[LesionClass.JCWMH]) * pixel_area,
    }
    areas["lesion_area_mm2"] = areas["pewmh_area_mm2"] + areas["pawmh_area_mm2"] + areas["jcwmh_area_mm2"]
    metrics: dict = dict(areas)
    if slices.brain.shape[2] >= REFERENCE_WINDOW.stop:
        metrics["intracranial_area_mm2_reference_window"] = int(slices.brain[..., REFERENCE_WINDOW].sum()) * pixel_area
    else:
        metrics["intracranial_area_mm2_reference_window"] = float("nan")

    voxel_ml = pixel_area * dz / 1000.0
    class_counts = np.bincount(class_volume.ravel(), minlength=4)
    voxels = {
        "intracranial": int(brain.sum()),
        "ventricle": int((labels == SegmentationClass.VENTRICLES).sum()),
        "pewmh": int(class_counts[LesionClass.PEWMH]),
        "pawmh": int(class_counts[LesionClass.PAWMH]),
        "jcwmh": int(class_counts[LesionClass.JCWMH]),
    }
    for name, count in voxels.items():
        metrics[f"{name}_volume_ml"] = count * voxel_ml
    metrics["lesion_volume_ml"] = metrics["pewmh_volume_ml"] + metrics["pawmh_volume_ml"] + metrics["jcwmh_volume_ml"]

    codes2d = lesions2d["class_code"].to_numpy() if len(lesions2d) else np.zeros(0, dtype=np.int64)
    codes3d = lesions3d["class_code"].to_numpy() if len(lesions3d) else np.zeros(0, dtype=np.int64)
    metrics["n_lesions_2d"] = int(len(codes2d))
    metrics["n_lesions_3d"] = int(len(codes3d))
    for code, name in ((c, c.name) for c in LESION_CLASSES):
        metrics[f"n_lesions_2d_{name.lower()}"] = int((codes2d == code).sum())
        metrics[f"n_lesions_3d_{name.lower()}"] = int((codes3d == code).sum())
    metrics["n_lesions_3d_any_periventricular"] = int(lesions3d["any_periventricular"].sum()) if len(lesions3d) else 0
    metrics["n_slices"] = int(labels.shape[2])
    metrics["pixel_area_mm2"] = pixel_area
    metrics["slice_spacing_mm"] = dz
    metrics["slices_per_rule_slice"] = int(slices.slices_per_rule_slice)
    metrics["rule_pixel_area_mm2"] = float(rule_grid.voxel_size_mm[0] * rule_grid.voxel_size_mm[1])
    return metrics


def lesion_profile(
    labels: np.ndarray,
    flair: np.ndarray,
    brain: np.ndarray,
    voxel_size_mm,
    *,
    csf: np.ndarray | None = None,
    rule: LesionRule = REFERENCE_RULE,
    csf_settings: CsfSettings = CsfSettings(),
    slice_origin_mm: float = 0.0,
) -> LesionProfile:
    """Run :func:`csf_mask` (unless ``csf`` is given), :func:`classify_lesions_2d`,
    :func:`lesions_3d` and :func:`subject_metrics` on one subject (arrays ``(nx, ny, nz)``).

    On thin slices the rule runs on slabs of ``rule.slice_thickness_mm`` (:func:`rule_slices`),
    on fine pixels on rule pixels of about ``rule.pixel_size_mm`` (:func:`rule_pixels`); a
    ``csf`` given by the caller must lie on that rule grid, and each lesion voxel takes the
    class of the rule lesion it lies in; ``lesions2d`` then describes the rule's lesions.
    ``slice_origin_mm``: position of the first slice's centre along the slice axis in scanner
    space (mm), which anchors the slabs there (:func:`slab_offset`); 0 starts them at the
    first slice.
    """
    labels = _check_labels(labels)
    dx, dy, dz = _voxel_size_3d(voxel_size_mm)
    n = slices_per_rule_slice(dz, rule)
    offset = slab_offset(slice_origin_mm, dz, n)
    slices = rule_slices(labels, flair, brain, voxel_size_mm, n, offset)
    kx, ky = pixels_per_rule_pixel(dx, rule), pixels_per_rule_pixel(dy, rule)
    grid = rule_pixels(slices, kx, ky)
    if csf is None:
        ventricles = grid.labels == SegmentationClass.VENTRICLES
        csf = csf_mask(grid.flair, grid.brain, ventricles, grid.voxel_size_mm, csf_settings)
    rule_classes, lesions2d = classify_lesions_2d(grid.labels, grid.voxel_size_mm, csf, rule)
    if grid is not slices:
        pixel_rows, pixel_cols = np.arange(labels.shape[0]) // kx, np.arange(labels.shape[1]) // ky
        rule_classes = np.where(
            slices.labels == SegmentationClass.LESIONS, rule_classes[pixel_rows][:, pixel_cols], 0
        ).astype(np.uint8)
    if n == 1:
        class_volume = rule_classes
    else:
        # Slab boundaries lie where slice index + offset is a multiple of n (slab_starts).
        slab_of_slice = (np.arange(labels.shape[2]) + offset) // n
        class_volume = np.where(labels == SegmentationClass.LESIONS, rule_classes[:, :, slab_of_slice], 0).astype(
            np.uint8
        )
    lesions3d = lesions_3d(labels, class_volume, voxel_size_mm)
    metrics = subject_metrics(
        labels, class_volume, brain, voxel_size_mm, lesions2d, lesions3d, rule=(slices, rule_classes), rule_grid=grid
    )
    return LesionProfile(np.asarray(csf, dtype=bool), class_volume, lesions2d, lesions3d, metrics)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be 3-D (nx, ny, nz) with slices on the last axis, got shape {labels.shape}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"labels must be an integer array, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > SegmentationClass.LESIONS):
        raise ValueError(
            f"labels must hold only 0 (background), 1 (ventricles), 2 (lesions); "
            f"found values {np.unique(labels)[:10].tolist()}"
        )
    return labels


def _check_class_volume(labels: np.ndarray, class_volume: np.ndarray) -> np.ndarray:
    class_volume = np.asarray(class_volume)
    if class_volume.shape != labels.shape:
        raise ValueError(f"class volume shape {class_volume.shape} differs from labels shape {labels.shape}")
    lesion = labels == SegmentationClass.LESIONS
    if np.any((class_volume > 0) != lesion) or np.any(class_volume[lesion] > LesionClass.JCWMH):
        raise ValueError("class volume must hold a class 1-3 at every lesion voxel and 0 elsewhere")
    return class_volume


def _pixel_size(voxel_size_mm) -> tuple[float, float]:
    sizes = [float(v) for v in voxel_size_mm]
    if len(sizes) < 2 or not all(math.isfinite(v) and v > 0 for v in sizes):
        raise ValueError(f"voxel_size_mm must hold positive sizes (dx, dy[, dz]) in mm, got {voxel_size_mm!r}")
    return sizes[0], sizes[1]


def _voxel_size_3d(voxel_size_mm) -> tuple[float, float, float]:
    sizes = [float(v) for v in voxel_size_mm]
    if len(sizes) != 3 or not all(math.isfinite(v) and v > 0 for v in sizes):
        raise ValueError(f"voxel_size_mm must hold three positive sizes (dx, dy, dz) in mm, got {voxel_size_mm!r}")
    return sizes[0], sizes[1], sizes[2]


def _drop_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    if min_size <= 1 or not mask.any():
        return mask
    components, n = ndimage.label(mask, structure=_EIGHT)
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    keep = sizes >= min_size
    keep[0] = False
    return keep[components]


def _empty_2d() -> pd.DataFrame:
    dtypes = {
        "slice": "int64",
        "lesion_index": "int64",
        "n_pixels": "int64",
        "class_code": "int64",
        "class_name": "str",
    }
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "float64")) for c in LESIONS_2D_COLUMNS})


def _empty_3d() -> pd.DataFrame:
    floats = {"volume_ml"}
    dtypes = {c: ("float64" if c in floats else "int64") for c in LESIONS_3D_COLUMNS}
    dtypes.update(class_name="str", any_periventricular="bool")
    return pd.DataFrame({c: pd.Series(dtype=dtypes[c]) for c in LESIONS_3D_COLUMNS})


def lesion_table(lesions2d: pd.DataFrame, lesions3d: pd.DataFrame, subject_id: str) -> pd.DataFrame:
    """One table of both lesion kinds: ``kind`` is ``2d`` (one axial slice, area in mm^2) or
    ``3d`` (a connected component, volume in mL); columns that do not apply are missing."""
    table = pd.concat([lesions2d.assign(kind="2d"), lesions3d.assign(kind="3d")], ignore_index=True)
    table.insert(0, "subject_id", subject_id)
    return table[["subject_id", "kind", *[c for c in table.columns if c not in ("subject_id", "kind")]]]


#: Where each location class sits among LST-AI's regions (its annotated lesion statistics):
#: paraventricular here means deep white matter, which LST-AI calls subcortical. LST-AI's fourth
#: region, infratentorial, has no class here (the reference's 2-D rule does not separate it).
LST_AI_REGIONS = {
    LesionClass.PEWMH: "Periventricular",
    LesionClass.JCWMH: "Juxtacortical",
    LesionClass.PAWMH: "Subcortical",
}
#: Columns of :func:`lesion_stats`.
LESION_STATS_COLUMNS = ("class", "code", "lst_ai_region", "n_lesions", "n_voxels", "volume_ml")
_CLASS_WORDS = {
    LesionClass.PEWMH: "periventricular",
    LesionClass.PAWMH: "paraventricular",
    LesionClass.JCWMH: "juxtacortical",
}


def lesion_stats(metrics: dict, class_volume: np.ndarray) -> pd.DataFrame:
    """One scan's lesion statistics in the shape of LST-AI's (region, lesions, voxels, volume).

    ``metrics``: :func:`lesion_metrics` of the scan; ``class_volume``: its uint8
    :class:`~msprofile.labels.LesionClass` volume. One row per class, in LST-AI's order
    (periventricular, juxtacortical, then paraventricular, i.e. deep, which LST-AI calls
    subcortical), and a row ``all``: ``class``, ``code`` (PEWMH, JCWMH, PAWMH), ``lst_ai_region``
    (:data:`LST_AI_REGIONS`; empty for ``all``), ``n_lesions`` (3-D lesions, each counted in the
    class of most of its voxels), ``n_voxels`` and ``volume_ml`` (the class's voxels).
    """
    counts = np.bincount(np.asarray(class_volume, dtype=np.uint8).ravel(), minlength=len(LesionClass))
    rows = [
        {
            "class": _CLASS_WORDS[code],
            "code": code.name,
            "lst_ai_region": region,
            "n_lesions": metrics[f"n_lesions_3d_{code.name.lower()}"],
            "n_voxels": int(counts[code]),
            "volume_ml": metrics[f"{code.name.lower()}_volume_ml"],
        }
        for code, region in LST_AI_REGIONS.items()
    ]
    rows.append(
        {
            "class": "all",
            "code": "WMH",
            "lst_ai_region": "",
            "n_lesions": metrics["n_lesions_3d"],
            "n_voxels": int(counts[1:].sum()),
            "volume_ml": metrics["lesion_volume_ml"],
        }
    )
    return pd.DataFrame(rows, columns=list(LESION_STATS_COLUMNS))
