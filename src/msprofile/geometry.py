"""Voxel grids: canonical reorientation, the model grid and the way back to native space.

Three grids appear in the workflow:

* the **native** grid of the input file (any orientation, any voxel size);
* the **canonical** grid: the same voxels with axes permuted and flipped so that the
  indices increase towards Right, Anterior and Superior (RAS+, as in
  :func:`nibabel.aff2axcodes`), so that axial slices are ``[:, :, k]``;
* the **model** grid: the canonical grid resampled in-plane to a fixed matrix and pixel
  size (the segmentation network's input), slices unchanged.

Every grid is a pair ``(shape, affine)`` where ``affine`` maps voxel indices to scanner
millimetres. All mappings are derived from the affines, so any model-grid label volume
can be brought back to the native grid exactly by nearest neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel import orientations
from scipy import ndimage

CANONICAL_AXCODES = ("R", "A", "S")
# Downsampling by less than this ratio aliases too little to be worth a smoothing pass.
ANTIALIAS_MIN_RATIO = 1.05


@dataclass(frozen=True)
class Grid:
    """A voxel grid: ``shape`` (3 ints) and ``affine`` (4 x 4, voxel index -> mm)."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def voxel_size_mm(self) -> np.ndarray:
        """Voxel edge lengths in mm, shape (3,)."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (1 mL = 1000 mm^3)."""
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    def to_dict(self) -> dict:
        """JSON-ready description (shape, voxel size in mm, axis codes, affine)."""
        return {
            "shape": [int(n) for n in self.shape],
            "voxel_size_mm": [round(float(v), 6) for v in self.voxel_size_mm],
            "axcodes": "".join(orientations.aff2axcodes(self.affine)),
            "affine": [[round(float(v), 6) for v in row] for row in self.affine],
        }


def to_canonical(data: np.ndarray, native: Grid) -> tuple[np.ndarray, Grid]:
    """Permute and flip ``data`` (on ``native``) to RAS+ axes; no interpolation.

    Returns the reoriented array (a view where possible) and its grid. The voxels are the
    same, only their index order changes, so this is exactly invertible with
    :func:`from_canonical`.
    """
    transform = _native_to_canonical_ornt(native.affine)
    canonical_data = orientations.apply_orientation(data, transform)
    canonical_affine = native.affine @ orientations.inv_ornt_aff(transform, native.shape)
    return canonical_data, Grid(tuple(canonical_data.shape), canonical_affine)


def from_canonical(data: np.ndarray, native: Grid) -> np.ndarray:
    """Inverse of :func:`to_canonical`: bring a canonical-grid array back to ``native``."""
    inverse = orientations.ornt_transform(
        orientations.axcodes2ornt(CANONICAL_AXCODES), orientations.io_orientation(native.affine)
    )
    return orientations.apply_orientation(data, inverse)


def _native_to_canonical_ornt(affine: np.ndarray) -> np.ndarray:
    return orientations.ornt_transform(
        orientations.io_orientation(affine), orientations.axcodes2ornt(CANONICAL_AXCODES)
    )


def model_grid(canonical: Grid, *, matrix: tuple[int, int], pixel_size_mm: float, centre_voxel: np.ndarray) -> Grid:
    """The model grid: ``matrix`` pixels of ``pixel_size_mm`` in-plane, canonical slices kept.

    The grid is centred on ``centre_voxel`` (canonical voxel coordinates, x and y used),
    typically the centre of the brain mask, so that the brain sits in the middle of the
    network's field of view whatever the input's field of view. The offset is rounded to
    a whole canonical voxel so that, when the pixel sizes agree, model pixels coincide
    with input pixels and resampling does not blur.
    """
    step = pixel_size_mm / canonical.voxel_size_mm[:2]
    half_extent = (np.asarray(matrix) - 1) / 2.0 * step
    origin = np.round(np.asarray(centre_voxel[:2], dtype=float) - half_extent)
    to_canonical_voxel = np.diag([step[0], step[1], 1.0, 1.0])
    to_canonical_voxel[:2, 3] = origin
    return Grid((int(matrix[0]), int(matrix[1]), int(canonical.shape[2])), canonical.affine @ to_canonical_voxel)


def resample(data: np.ndarray, source: Grid, target: Grid, *, order: int) -> np.ndarray:
    """Resample ``data`` from ``source`` onto ``target`` through the two affines.

    ``order`` 1 (linear) is for images; ``order`` 0 (nearest neighbour) is for label
    volumes, the only interpolation that keeps labels labels. When the target samples
    more coarsely than the source along an axis, images are smoothed first with a
    Gaussian (sigma from the ratio of pixel sizes) so that the result is not aliased.
    Voxels of ``target`` outside ``source`` are 0 (``grid-constant``: a sample within half a
    voxel of the edge still takes the edge voxel, as nearest neighbour should). Returns an array of ``target.shape``
    with the dtype of ``data``.
    """
    target_to_source = np.linalg.solve(source.affine, target.affine)
    if order > 0:
        downsampling = np.sqrt((target_to_source[:3, :3] ** 2).sum(axis=0))
        sigma = np.zeros(3)
        for target_axis in range(3):
            source_axis = int(np.argmax(np.abs(target_to_source[:3, target_axis])))
            ratio = downsampling[target_axis]
            if ratio > ANTIALIAS_MIN_RATIO:
                sigma[source_axis] = np.sqrt(max(ratio**2 - 1.0, 0.0)) / 2.0
        if sigma.any():
            data = ndimage.gaussian_filter(data.astype(np.float32, copy=False), sigma=sigma, mode="nearest")
    resampled = ndimage.affine_transform(
        data,
        target_to_source[:3, :3],
        offset=target_to_source[:3, 3],
        output_shape=target.shape,
        order=order,
        mode="grid-constant",
        cval=0,
        prefilter=False,
    )
    return resampled


def labels_to_native(labels: np.ndarray, model: Grid, native: Grid) -> np.ndarray:
    """Map a model-grid label volume back to the native grid by nearest neighbour.

    ``labels``: integer array of ``model.shape``. Returns an array of ``native.shape`` and
    the same dtype; native voxels that fall outside the model grid get label 0.
    """
    return resample(labels, model, native, order=0)
