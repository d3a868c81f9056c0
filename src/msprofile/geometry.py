"""Voxel grids: canonical reorientation, the model grid and the way back to native space.

Three grids appear in the workflow:

* the **native** grid of the input file (any orientation, any voxel size);
* the **canonical** grid: the same voxels with axes permuted and flipped so that the
  indices increase towards Right, Anterior and Superior (RAS+, as in
  :func:`nibabel.aff2axcodes`), so that axial slices are ``[:, :, k]``;
* the **model** grid: the segmentation network's input, a fixed in-plane matrix and pixel
  size on axial slices. For an axial acquisition (2-D, or 3-D whose axis nearest the
  scanner's S-I axis is tilted by at most the limit) it is the canonical grid resampled
  in-plane, slices unchanged; 3-D data tilted further is resliced onto scanner-axial
  slices (:func:`axial_model_grid`).

Every grid is a pair ``(shape, affine)`` where ``affine`` maps voxel indices to scanner
millimetres. All mappings are derived from the affines, so any model-grid label volume
can be brought back to the native grid exactly by nearest neighbour.

:func:`acquisition` tells from the voxel sizes and the affine how the input was acquired
(2-D slices and their plane, or 3-D), which decides between these grids or a refusal;
:class:`HeaderGeometry` holds a NIfTI header's two affines (sform and qform) with their codes,
so that native-grid outputs keep both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel import orientations
from scipy import ndimage

CANONICAL_AXCODES = ("R", "A", "S")
# Downsampling by less than this ratio aliases too little to be worth a smoothing pass.
ANTIALIAS_MIN_RATIO = 1.05
#: A 2-D acquisition: its thickest voxel edge is at least this long (mm) and at least
#: :data:`THICK_SLICE_RATIO` times the finest. Clinical 2-D FLAIR has 3-8 mm slices of
#: 0.4-1 mm pixels; 3-D FLAIR has 1-1.5 mm voxels, and thin 2-D slices (up to 2.5 mm) can be
#: resliced like 3-D data without giving the network coarse pixels.
THICK_SLICE_MIN_MM = 2.5
THICK_SLICE_RATIO = 2.0
#: Anatomical plane of slices whose normal lies nearest each scanner axis (x, y, z).
PLANES = ("sagittal", "coronal", "axial")


@dataclass(frozen=True)
class Acquisition:
    """How an image was acquired, as its voxel sizes and affine tell (:func:`acquisition`).

    ``kind``: ``"2d"`` (thick slices) or ``"3d"`` (near-isotropic, or slices thin enough to
    reslice). ``slice_axis``: the native array axis across the slices: the thick axis of a 2-D
    acquisition, the axis nearest the scanner's S-I axis for 3-D data. ``plane``: the plane of
    the slices across ``slice_axis`` (``axial``, ``coronal`` or ``sagittal``, by the scanner
    axis nearest to their normal). ``slice_thickness_mm``: voxel size along ``slice_axis``.
    ``tilt_deg``: angle between ``slice_axis`` and the scanner's S-I axis (0 for true axial).
    """

    kind: str
    slice_axis: int
    plane: str
    slice_thickness_mm: float
    tilt_deg: float

    def to_dict(self) -> dict:
        """JSON-ready description."""
        return {
            "kind": self.kind,
            "slice_axis": int(self.slice_axis),
            "plane": self.plane,
            "slice_thickness_mm": round(float(self.slice_thickness_mm), 4),
            "tilt_deg": round(float(self.tilt_deg), 2),
        }

    def axial_within(self, max_tilt_deg: float) -> bool:
        """True when the slices are axial, tilted by at most ``max_tilt_deg``."""
        return self.plane == "axial" and self.tilt_deg <= max_tilt_deg

    def problem(self, max_tilt_deg: float) -> str | None:
        """Why this acquisition cannot be processed (a sentence), or None.

        The network segments axial slices. 3-D data can always be resliced onto them; thick
        slices of another plane (or tilted beyond ``max_tilt_deg``) cannot: reslicing would give
        the network pixels as coarse as the slices, and its numbers would be wrong.
        """
        if self.kind == "3d" or self.axial_within(max_tilt_deg):
            return None
        if self.plane == "axial":
            slices = (
                f"axial slices tilted {self.tilt_deg:.0f} degrees from the scanner's axial plane "
                f"(preprocess.max_slice_tilt_deg is {max_tilt_deg:g})"
            )
        else:
            slices = f"{self.plane} slices (their normal {self.tilt_deg:.0f} degrees from the scanner's S-I axis)"
        return (
            f"2-D acquisition of {self.slice_thickness_mm:.1f} mm {slices}: the segmentation model takes axial "
            f"slices, and reslicing these would give it {self.slice_thickness_mm:.1f} mm pixels; give an axial "
            "2-D or a 3-D FLAIR of this subject"
        )


def acquisition(native: Grid) -> Acquisition:
    """The acquisition of an image on ``native``: 2-D or 3-D, the slice axis, its plane and tilt.

    2-D when the thickest voxel edge is at least :data:`THICK_SLICE_MIN_MM` and
    :data:`THICK_SLICE_RATIO` times the finest (the thick axis is then the slice axis);
    otherwise 3-D, and the slice axis is the voxel axis nearest the scanner's S-I axis. The
    plane is named by the scanner axis nearest the slice normal (the direction of the slice
    axis in scanner space, from the affine). Sources: the NIfTI-1 convention that the affine
    maps voxel indices to scanner RAS+ millimetres.
    """
    columns = np.asarray(native.affine, dtype=float)[:3, :3]
    sizes = native.voxel_size_mm
    directions = columns / sizes
    thickest = int(np.argmax(sizes))
    two_d = sizes[thickest] >= THICK_SLICE_MIN_MM and sizes[thickest] >= THICK_SLICE_RATIO * sizes.min()
    slice_axis = thickest if two_d else int(np.argmax(np.abs(directions[2])))
    normal = directions[:, slice_axis]
    tilt_deg = float(np.degrees(np.arccos(min(1.0, abs(normal[2])))))
    return Acquisition(
        kind="2d" if two_d else "3d",
        slice_axis=slice_axis,
        plane=PLANES[int(np.argmax(np.abs(normal)))],
        slice_thickness_mm=float(sizes[slice_axis]),
        tilt_deg=tilt_deg,
    )


@dataclass(frozen=True)
class HeaderGeometry:
    """The two affines of a NIfTI header with their codes (NIfTI-1 ``sform_code``,
    ``qform_code``: 0 unknown, 1 scanner, 2 aligned, 3 Talairach, 4 MNI, 5 template).

    Readers differ in which one they use (nibabel, ITK and FSL prefer the sform, some tools
    the qform), so an output meant to overlay an input keeps both, with their codes.
    """

    sform: np.ndarray
    sform_code: int
    qform: np.ndarray
    qform_code: int

    @property
    def affine_source(self) -> str:
        """Which affine places the voxels (nibabel's and the NIfTI standard's order of
        preference): ``"sform"``, ``"qform"``, or ``"none"`` when both codes are 0 and the
        orientation is unknown (only voxel sizes are known)."""
        if self.sform_code > 0:
            return "sform"
        return "qform" if self.qform_code > 0 else "none"

    @property
    def space_code(self) -> int:
        """The code of the affine in use; 2 (aligned to this image) when the orientation is
        unknown, for outputs whose affine is derived from this image's."""
        return {"sform": self.sform_code, "qform": self.qform_code, "none": 2}[self.affine_source]

    def qform_sform_difference(self) -> tuple[float, float] | None:
        """(rotation in degrees, largest displacement in mm of the corners of a 256 mm cube
        around the origin) between qform and sform, or None unless both codes are set."""
        if self.sform_code <= 0 or self.qform_code <= 0:
            return None
        q, s = np.asarray(self.qform, float), np.asarray(self.sform, float)
        qr = q[:3, :3] / np.linalg.norm(q[:3, :3], axis=0)
        sr = s[:3, :3] / np.linalg.norm(s[:3, :3], axis=0)
        cos_angle = (np.trace(qr.T @ sr) - 1.0) / 2.0
        rotation_deg = float(np.degrees(np.arccos(np.clip(cos_angle, -1.0, 1.0))))
        corners = np.array([[x, y, z, 1.0] for x in (-128, 128) for y in (-128, 128) for z in (-128, 128)])
        to_voxels = np.linalg.inv(s)
        shift_mm = float(np.max(np.linalg.norm(((q - s) @ to_voxels @ corners.T)[:3], axis=0)))
        return rotation_deg, shift_mm

    def to_dict(self) -> dict:
        """JSON-ready summary: which affine is used, both codes, and how far qform and sform
        differ (``null`` unless both are set)."""
        difference = self.qform_sform_difference()
        return {
            "affine_source": self.affine_source,
            "sform_code": int(self.sform_code),
            "qform_code": int(self.qform_code),
            "qform_sform_rotation_deg": None if difference is None else round(difference[0], 3),
            "qform_sform_shift_mm": None if difference is None else round(difference[1], 3),
        }

    @classmethod
    def derived(cls, affine: np.ndarray, code: int) -> HeaderGeometry:
        """Both forms set to ``affine`` with ``code``: for a grid this workflow made (the model
        grid), in the space of the input it was made from."""
        affine = np.asarray(affine, dtype=np.float64)
        return cls(affine, int(code), affine, int(code))


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

    @property
    def slice_origin_mm(self) -> float:
        """Position (mm) of the first slice, along the third (slice) axis's direction, from the
        scanner's origin: the first voxel's position projected on that direction. It does not
        change when slices are added or removed elsewhere, so a slice's place along the axis
        (this plus its index times the slice thickness) is the same in a cropped or padded copy."""
        direction = self.affine[:3, 2] / np.linalg.norm(self.affine[:3, 2])
        return float(direction @ self.affine[:3, 3])

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


def inplane_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice]:
    """In-plane slices (axes 0 and 1) of the box around the ``True`` voxels of ``mask`` (any
    slice), widened by ``margin`` voxels where the array allows. ``mask`` must have a ``True``
    voxel (``IndexError`` otherwise)."""
    bounds = []
    for axis in (0, 1):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        bounds.append(slice(max(int(present[0]) - margin, 0), min(int(present[-1]) + margin + 1, mask.shape[axis])))
    return bounds[0], bounds[1]


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


def axial_model_grid(
    canonical: Grid, mask: np.ndarray, *, matrix: tuple[int, int], pixel_size_mm: float, slice_spacing_mm: float
) -> Grid:
    """A model grid of scanner-axial slices for 3-D data whose voxel axes are tilted too far
    from the scanner's to keep its slices: ``matrix`` pixels of ``pixel_size_mm`` in the
    scanner's x-y plane (RAS+), centred on the brain, and slices ``slice_spacing_mm`` apart
    along z covering the brain ``mask`` (bool, on ``canonical``) with one slice to spare at
    each end.
    """
    voxels = np.argwhere(mask)
    corners = np.array([voxels.min(axis=0), voxels.max(axis=0)], dtype=float)
    box = np.array([[corners[i, 0], corners[j, 1], corners[k, 2], 1.0] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    world = (canonical.affine @ box.T)[:3]
    low, high = world.min(axis=1), world.max(axis=1)
    n_slices = int(np.ceil((high[2] - low[2]) / slice_spacing_mm)) + 3
    affine = np.diag([pixel_size_mm, pixel_size_mm, slice_spacing_mm, 1.0])
    centre = (low + high) / 2.0
    affine[:3, 3] = centre - np.array(
        [
            (matrix[0] - 1) / 2.0 * pixel_size_mm,
            (matrix[1] - 1) / 2.0 * pixel_size_mm,
            (n_slices - 1) / 2.0 * slice_spacing_mm,
        ]
    )
    return Grid((int(matrix[0]), int(matrix[1]), n_slices), affine)


def same_grid_reoriented(data: np.ndarray, source: Grid, target: Grid, *, atol_mm: float = 1e-3) -> np.ndarray | None:
    """``data`` (on ``source``) in the axis order of ``target`` when the two grids are the same
    voxels stored in another axis order or direction (as after ``fslreorient2std``), else None.

    The axes are permuted and flipped without interpolation; the result is accepted only when
    its grid has ``target``'s shape and affine within ``atol_mm``.
    """
    transform = orientations.ornt_transform(
        orientations.io_orientation(source.affine), orientations.io_orientation(target.affine)
    )
    reoriented = orientations.apply_orientation(data, transform)
    affine = source.affine @ orientations.inv_ornt_aff(transform, source.shape)
    if reoriented.shape != tuple(target.shape) or not np.allclose(affine, target.affine, atol=atol_mm):
        return None
    return np.ascontiguousarray(reoriented)


def resample(
    data: np.ndarray, source: Grid, target: Grid, *, order: int, transform: np.ndarray | None = None
) -> np.ndarray:
    """Resample ``data`` from ``source`` onto ``target`` through the two affines.

    ``transform`` (4 x 4) maps a point of the target's space (mm) to the matching point of the
    source's, for grids of two scans of one head (a rigid registration's result); None: both
    grids lie in one space.

    ``order`` 1 (linear) is for images; ``order`` 0 (nearest neighbour) is for label
    volumes, the only interpolation that keeps labels labels. When the target samples
    more coarsely than the source along an axis, images are smoothed first with a
    Gaussian (sigma from the ratio of pixel sizes) so that the result is not aliased.
    Voxels of ``target`` outside ``source`` are 0 (``grid-constant``: a sample within half a
    voxel of the edge still takes the edge voxel, as nearest neighbour should). Returns an array of ``target.shape``
    with the dtype of ``data``.
    """
    target_affine = target.affine if transform is None else np.asarray(transform, dtype=float) @ target.affine
    target_to_source = np.linalg.solve(source.affine, target_affine)
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
    return ndimage.affine_transform(
        data,
        target_to_source[:3, :3],
        offset=target_to_source[:3, 3],
        output_shape=target.shape,
        order=order,
        mode="grid-constant",
        cval=0,
        prefilter=False,
    )


def labels_to_native(labels: np.ndarray, model: Grid, native: Grid) -> np.ndarray:
    """Map a model-grid label volume back to the native grid by nearest neighbour.

    ``labels``: integer array of ``model.shape``. Returns an array of ``native.shape`` and
    the same dtype; native voxels that fall outside the model grid get label 0.
    """
    return resample(labels, model, native, order=0)
