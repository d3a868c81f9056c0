"""Brain extraction for axial FLAIR, with or without skull.

The reference fitted an ellipse to a thresholded slice and eroded it by 20 pixels: a proxy
that neither follows the brain surface nor contains every lesion. This module builds a
mask that follows the brain surface from thresholds, distances in mm and morphology on
the canonical (RAS+) grid, one axial slice at a time for shape operations and in 3-D
for connectivity:

1. *Head*: foreground above half the Otsu threshold, holes filled per slice; the in-plane
   *depth* of every voxel below the head surface (mm) comes from a distance transform.
2. *Tissue*: voxels brighter than ``tissue_fraction`` x the median tissue intensity
   (FLAIR suppresses CSF, and cortical bone has no signal, so the skull and CSF appear as
   a dark ring between scalp and brain).
3. *Core*: tissue deeper than ``scalp_depth_mm`` and darker than ``fat_fraction`` x the
   tissue intensity (fat of scalp, orbits and face is about twice as bright as brain),
   eroded by ``erode_mm`` to cut thin bridges to scalp, eyes and neck; the largest 3-D
   connected component is the brain. Leaving fat out breaks up the face, which thick
   slices otherwise join to the frontal and temporal lobes above it.
4. *Regrowth*: geodesic dilation of the core within the tissue (fat and lesions included)
   by ``regrow_mm``, which brings back the gyri, up to their crowns, and every bright
   lesion, without crossing the dark ring.
5. *Envelope*: per slice, fill holes (ventricles), close by ``close_mm`` (sulci), fill again.
6. *Scalp guard*: the distance between the brain edge and the head surface is measured on
   the widest slices (where the skull is clearly seen); voxels shallower than
   ``scalp_guard_fraction`` of its 10th percentile are removed. Near the vertex, thick slices
   cut the skull obliquely and blur the dark ring; this guard keeps the scalp out there, with
   the depth measured in 3-D on the slices above the brain's widest one (there the head's
   surface turns towards the axial plane, and the in-plane depth overstates the true one).

Skull-stripped inputs skip steps 2-4 and 6: the mask is the filled foreground.
All lengths are in mm and converted with the grid's in-plane pixel size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage import filters

from .geometry import inplane_box

# In-plane 4-connectivity of a volume stored slice-major (slices on the first axis).
_SLICE_MAJOR_4 = np.zeros((3, 3, 3), dtype=bool)
_SLICE_MAJOR_4[1] = ndimage.generate_binary_structure(2, 1)
# Flat (3, 3, 1) elements for morphology: scipy visits every element of a (3, 3, 3) one.
_FLAT_SQUARE = np.ones((3, 3, 1), dtype=bool)
_FLAT_CROSS = ndimage.generate_binary_structure(2, 1)[:, :, None]


@dataclass(frozen=True)
class BrainMaskSettings:
    """Parameters of :func:`brain_mask` (lengths in mm, fractions of tissue intensity)."""

    tissue_fraction: float = 0.5
    scalp_depth_mm: float = 6.0
    erode_mm: float = 4.0
    fat_fraction: float = 1.6
    regrow_mm: float = 16.0
    open_outline_fraction: float = 0.5
    close_mm: float = 5.0
    head_close_mm: float = 4.0
    skin_mm: float = 2.0
    scalp_guard_fraction: float = 0.6


@dataclass(frozen=True)
class BrainMask:
    """Result of :func:`brain_mask`.

    ``mask``: bool array, the input's shape. ``head``: bool, the filled head foreground.
    ``scalp_thickness_mm``: 10th percentile of the brain-edge depth below the head surface on
    the widest slices (NaN for skull-stripped input). ``tissue_intensity``: the median
    tissue intensity the thresholds were taken from (input units).
    """

    mask: np.ndarray
    head: np.ndarray
    scalp_thickness_mm: float
    tissue_intensity: float


def brain_mask(
    image: np.ndarray,
    pixel_size_mm: float,
    slice_spacing_mm: float,
    *,
    skull_stripped: bool = False,
    settings: BrainMaskSettings = BrainMaskSettings(),
) -> BrainMask:
    """Brain mask of a canonical (axial slices on the last axis) FLAIR volume.

    ``image``: float array (X, Y, Z), any positive intensity scale. ``pixel_size_mm``: the
    in-plane pixel size (mm; the mean of the two in-plane sizes is fine for near-square
    pixels); ``slice_spacing_mm``: the distance between slice centres (mm). Returns a
    :class:`BrainMask` on the input grid; an image with no foreground gives an empty mask.
    """
    image = np.clip(np.asarray(image, dtype=np.float32), 0, None)
    otsu = _otsu(image)
    full_head = head_mask(image, pixel_size_mm, otsu, settings.head_close_mm)
    if not full_head.any():
        empty = np.zeros(image.shape, dtype=bool)
        return BrainMask(empty, full_head, float("nan"), float("nan"))
    # Everything below happens inside the head, and a ring of background around it makes
    # every step (morphology, hole filling, distances) give what it gives on the whole slice.
    box = inplane_box(full_head, margin=2)
    extraction = _brain_mask_in_head(
        image[box], full_head[box], otsu, pixel_size_mm, slice_spacing_mm, skull_stripped, settings
    )
    mask = np.zeros(image.shape, dtype=bool)
    mask[box] = extraction.mask
    return BrainMask(mask, full_head, extraction.scalp_thickness_mm, extraction.tissue_intensity)


def _brain_mask_in_head(
    image: np.ndarray,
    head: np.ndarray,
    otsu: float,
    pixel_size_mm: float,
    slice_mm: float,
    skull_stripped: bool,
    settings: BrainMaskSettings,
) -> BrainMask:
    """:func:`brain_mask` on a crop of the image that holds the head and a ring of background."""
    depth_mm = _inplane_distance_mm(head, pixel_size_mm)
    if skull_stripped:
        mask = _envelope(head, settings.close_mm, pixel_size_mm)
        return BrainMask(_largest_component(mask), head, float("nan"), float(np.median(image[head])))

    deep = depth_mm > settings.scalp_depth_mm
    tissue_intensity = float(np.median(image[deep & (image > otsu)]))
    tissue = (image > settings.tissue_fraction * tissue_intensity) & (depth_mm > settings.skin_mm)
    not_fat = image < settings.fat_fraction * tissue_intensity
    core = _largest_component(
        _disk_morphology(ndimage.binary_erosion, tissue & deep & not_fat, settings.erode_mm / pixel_size_mm)
    )
    regrown = _regrow(core, tissue, settings.regrow_mm, pixel_size_mm)
    regrown = _drop_open_pieces(regrown, tissue, settings.open_outline_fraction)
    mask = _envelope(regrown, settings.close_mm, pixel_size_mm)

    scalp_thickness_mm = _scalp_thickness_mm(mask, head, depth_mm)
    guard_mm = max(settings.skin_mm, settings.scalp_guard_fraction * scalp_thickness_mm)
    mask &= _depth_below_crown_mm(depth_mm, mask, slice_mm, guard_mm) > guard_mm
    mask = _largest_component(ndimage.binary_opening(mask, _disk(1.0)[:, :, None]))
    return BrainMask(mask, head, scalp_thickness_mm, tissue_intensity)


def head_mask(
    image: np.ndarray,
    pixel_size_mm: float,
    otsu: float | None = None,
    close_mm: float = BrainMaskSettings.head_close_mm,
) -> np.ndarray:
    """The head: foreground above half the Otsu threshold (``otsu``, computed when None), opened,
    then per slice closed by a disk of ``close_mm`` with holes filled (:func:`_envelope`).

    The closing bridges gaps in a thin scalp's outline (one site's 0.6-mm scans show a scalp
    below that threshold over several cm): unfilled, the skull ring would count as background
    and the brain's surface as the head's, so the brain would lose its outer ``skin_mm``.
    ``image``: canonical float array (X, Y, Z), clipped at 0; ``pixel_size_mm``: in-plane pixel
    size. Returns bool of its shape."""
    otsu = _otsu(image) if otsu is None else otsu
    return _envelope(ndimage.binary_opening(image > 0.5 * otsu, _disk(1.0)[:, :, None]), close_mm, pixel_size_mm)


def given_brain_mask(image: np.ndarray, mask: np.ndarray, pixel_size_mm: float) -> BrainMask:
    """A brain mask made by another tool (``mask``, bool, canonical grid of ``image``) as a
    :class:`BrainMask`, with the head of ``image`` (:func:`head_mask`, widened to hold the mask)
    for the QC measures; scalp thickness and tissue intensity are not measured (NaN)."""
    image = np.clip(np.asarray(image, dtype=np.float32), 0, None)
    mask = np.asarray(mask, dtype=bool)
    return BrainMask(mask, head_mask(image, pixel_size_mm) | mask, float("nan"), float("nan"))


def _edge(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, _FLAT_CROSS)


def _scalp_thickness_mm(mask: np.ndarray, head: np.ndarray, depth_mm: np.ndarray, n_widest: int = 6) -> float:
    widest = np.argsort(head.sum(axis=(0, 1)), kind="stable")[-n_widest:]
    edge_depth_mm = depth_mm[:, :, widest][_edge(mask)[:, :, widest]]
    return float(np.percentile(edge_depth_mm, 10)) if edge_depth_mm.size else 0.0


def _depth_below_crown_mm(depth_mm: np.ndarray, brain: np.ndarray, slice_mm: float, reach_mm: float) -> np.ndarray:
    """Depth (mm) below the head surface in 3-D on the slices above the widest section of ``brain``,
    in-plane ``depth_mm`` on the others; exact up to ``reach_mm`` (deeper voxels keep a larger value).

    Above the brain's widest section the head's surface turns towards the axial plane, so a thick
    slice cuts scalp and skull obliquely and a voxel just below the crown can lie far from the
    head's outline in its own slice. The distance to the background of slice ``k + s`` is the
    in-plane distance there combined with ``(s - 0.5) x slice_mm`` through-plane (the surface is
    taken at the face between a head voxel and the background voxel above it). Only slices above
    count: below the widest section, ear canals and the nasal cavity open the head's outline next
    to the brain, and the neck carries on past the volume's bottom. The volume's top is not a
    surface: the head may carry on above it. The brain's widest section, not the head's, sets
    the level: a scan that covers the neck or shoulders can have its widest head section there.
    """
    depth_3d_mm = depth_mm.copy()
    n_slices = depth_mm.shape[2]
    widest = int(np.argmax(brain.sum(axis=(0, 1))))
    for step in range(1, int(np.ceil(reach_mm / slice_mm + 0.5)) + 1):
        if widest + step >= n_slices:
            break
        through_plane_mm = (step - 0.5) * slice_mm
        above = np.hypot(depth_mm[:, :, widest + step :], np.float32(through_plane_mm))
        np.minimum(depth_3d_mm[:, :, widest : n_slices - step], above, out=depth_3d_mm[:, :, widest : n_slices - step])
    return depth_3d_mm


def _regrow(core: np.ndarray, tissue: np.ndarray, radius_mm: float, pixel_size_mm: float) -> np.ndarray:
    """Geodesic dilation of ``core`` within ``tissue`` by ``radius_mm``, in-plane.

    Geodesic (each step stays in tissue) so that it cannot cross the dark skull ring, and
    bounded in path length so that it cannot wander along the scalp.
    """
    return ndimage.binary_dilation(
        core, _FLAT_CROSS, iterations=max(1, int(round(radius_mm / pixel_size_mm))), mask=tissue
    )


def _drop_open_pieces(regrown: np.ndarray, tissue: np.ndarray, open_outline_fraction: float) -> np.ndarray:
    """Remove each in-plane piece of ``regrown`` whose outline touches tissue it did not reach
    along more than ``open_outline_fraction`` of its length.

    The brain is bounded by the dark ring of CSF and skull, so its regrowth stops there; a piece
    that the regrowth's path length stopped instead, in the middle of tissue, lies in tissue
    wider than the regrowth: neck muscle below the cerebellum, reached through a thick slice.
    """
    outline = regrown & ~ndimage.binary_erosion(regrown, _FLAT_CROSS)
    open_outline = outline & ndimage.binary_dilation(tissue & ~regrown, _FLAT_CROSS)
    labels, n = _label_inplane(regrown)
    outline_px = np.bincount(labels[outline], minlength=n + 1)
    open_px = np.bincount(labels[open_outline], minlength=n + 1)
    is_open = open_px > open_outline_fraction * np.maximum(outline_px, 1)
    is_open[0] = False
    return regrown & ~is_open[labels]


def _envelope(mask: np.ndarray, close_mm: float, pixel_size_mm: float) -> np.ndarray:
    """Per slice: fill holes, close by a disk of ``close_mm``, fill holes again.

    Computed on the box around ``mask`` (cheaper where the head leaves part of the field of view
    empty), with the same result: what it adds lies within that box (a closing stays within
    the box of what it closes, a hole within the box of what surrounds it), and a background
    region that reaches the slice's border reaches the box's (outside the box is background).
    """
    if not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    box = inplane_box(mask)
    envelope = np.zeros(mask.shape, dtype=bool)
    envelope[box] = _envelope_in_box(mask[box], close_mm, pixel_size_mm)
    return envelope


def _envelope_in_box(mask: np.ndarray, close_mm: float, pixel_size_mm: float) -> np.ndarray:
    filled = _fill_holes(mask)
    radius_px = close_mm / pixel_size_mm
    pad = int(np.ceil(radius_px)) + 1
    padded = np.pad(filled, ((pad, pad), (pad, pad), (0, 0)))
    dilated = _disk_morphology(ndimage.binary_dilation, padded, radius_px)
    closed = _disk_morphology(ndimage.binary_erosion, dilated, radius_px)[pad:-pad, pad:-pad]
    return _fill_holes(closed | filled)


def _disk_morphology(operation, mask: np.ndarray, radius_px: float) -> np.ndarray:
    """In-plane ``operation`` (binary erosion or dilation) by a disk of ``radius_px``.

    The disk is approximated by an octagon, alternating 3 x 3 squares and crosses, whose
    reach is ``radius_px`` along the axes and 6 % more along the diagonals; iterated small
    elements cost a few percent of one large disk.
    """
    n = int(round(radius_px))
    squares, crosses = (n + 1) // 2, n // 2
    if squares:
        mask = operation(mask, _FLAT_SQUARE, iterations=squares)
    if crosses:
        mask = operation(mask, _FLAT_CROSS, iterations=crosses)
    return mask


def _inplane_distance_mm(mask: np.ndarray, pixel_size_mm: float) -> np.ndarray:
    """Per slice, the in-plane distance (mm) of each ``True`` voxel to the nearest ``False`` one.

    Morphology by a disk of radius r is then a threshold, far cheaper than a structuring
    element of that size: erosion is ``d(mask) > r``, dilation ``d(~mask) <= r``.
    A slice with no ``False`` voxel is infinitely deep.
    """
    distance_mm = np.zeros(mask.shape, dtype=np.float32)
    for k in range(mask.shape[2]):
        plane = mask[:, :, k]
        if plane.all():
            distance_mm[:, :, k] = np.inf
        elif plane.any():
            distance_mm[:, :, k] = ndimage.distance_transform_edt(plane, sampling=pixel_size_mm)
    return distance_mm


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Per slice, fill the background regions that do not touch the slice border."""
    labels, n_regions = _label_inplane(~mask)
    enclosed = np.ones(n_regions + 1, dtype=bool)
    for border in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        enclosed[border] = False
    return mask | enclosed[labels]


def _label_inplane(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Per slice, the 4-connected components of ``mask`` (X, Y, Z): labels of its shape (a view)
    and their number, unique across slices.

    Labelled on a slice-major copy: SciPy walks the array in memory order, and with the slices
    on the last axis an in-plane structure cost it about three times as much.
    """
    labels, n = ndimage.label(np.ascontiguousarray(np.moveaxis(mask, 2, 0)), structure=_SLICE_MAJOR_4)
    return np.moveaxis(labels, 0, 2), n


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 1))
    if n <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())[1:]
    return labels == 1 + int(np.argmax(sizes))


def _otsu(image: np.ndarray) -> float:
    sample = image[::2, ::2, :]
    # Flattened: a 3-slice volume would look like an RGB image to scikit-image (it warns).
    return float(filters.threshold_otsu(sample.ravel())) if np.ptp(sample) > 0 else float(sample.max())


def _disk(radius_px: float) -> np.ndarray:
    r = int(np.ceil(radius_px))
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= radius_px * radius_px + 1e-9
