"""Other representations and acquisitions of one real scan, built in the tests from the sample.

Each builder takes an image as ``(data, affine)`` and returns the same anatomy as another file
would hold it: resampled onto another grid, stored in another axis order, cut to a few slices,
averaged into thick slabs of another plane, or with another header. Nothing here runs the
workflow; the tests feed the results to the job functions.
"""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to
from scipy import ndimage


def _voxel_sizes(affine: np.ndarray) -> np.ndarray:
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def regrid(data: np.ndarray, affine: np.ndarray, voxel_size_mm, *, order: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``data`` resampled onto a grid with the same axes and field of view and voxels of
    ``voxel_size_mm`` (mm, per axis), e.g. a 1 mm isotropic copy. Cubic B-spline interpolation
    (``order`` 3) by default, as nibabel's ``resample_to_output`` and SPM's reslicing (4th
    degree) do; ``order`` 1 (trilinear, FSL's default) blends 6.5 mm-apart slices linearly."""
    sizes = _voxel_sizes(affine)
    new_sizes = np.asarray(voxel_size_mm, dtype=float)
    scale = new_sizes / sizes
    shape = tuple(int(round(n * s / t)) for n, s, t in zip(data.shape, sizes, new_sizes))
    step = np.diag([*scale, 1.0])
    # The first voxel's outer corner stays where it was: the field of view is the same.
    step[:3, 3] = (scale - 1.0) / 2.0
    new_affine = affine @ step
    resampled = resample_from_to(nib.Nifti1Image(data.astype(np.float32), affine), (shape, new_affine), order=order)
    return np.asarray(resampled.dataobj, dtype=np.float32), new_affine


def zero_filled(data: np.ndarray, affine: np.ndarray, factor: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``data`` on an in-plane matrix ``factor`` times finer by zero-filled interpolation (the
    k-space of each slice padded with zeros), which is how scanners deliver a 512 matrix of a
    256 acquisition (GE's ZIP512, Siemens' interpolation)."""
    nx, ny = data.shape[:2]
    spectrum = np.fft.fftshift(np.fft.fft2(data, axes=(0, 1)), axes=(0, 1))
    padded = np.zeros((nx * factor, ny * factor, data.shape[2]), dtype=complex)
    x0, y0 = (nx * factor - nx) // 2, (ny * factor - ny) // 2
    padded[x0 : x0 + nx, y0 : y0 + ny] = spectrum
    fine = np.real(np.fft.ifft2(np.fft.ifftshift(padded, axes=(0, 1)), axes=(0, 1))) * factor**2
    step = np.diag([1.0 / factor, 1.0 / factor, 1.0, 1.0])
    # Voxel 0 of the fine grid sits at the coarse voxel 0's centre (the DFT's sampling origin).
    return fine.astype(np.float32), affine @ step


def permuted(data: np.ndarray, affine: np.ndarray, axes=(1, 2, 0), flip=(0,)) -> tuple[np.ndarray, np.ndarray]:
    """The same voxels stored in another axis order (``axes``: the old axis of each new one)
    with the new axes of ``flip`` reversed, as another converter (or fslreorient2std) writes them."""
    out = np.transpose(data, axes)
    new_affine = affine[:, [*axes, 3]].copy()
    for axis in flip:
        out = np.flip(out, axis)
        new_affine[:, 3] += new_affine[:, axis] * (out.shape[axis] - 1)
        new_affine[:, axis] *= -1
    return np.ascontiguousarray(out), new_affine


def slabs(data: np.ndarray, affine: np.ndarray, axis: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Average every ``n`` adjacent planes along ``axis`` into one thick slice (a 2-D
    acquisition with slices n times thicker in that direction)."""
    length = data.shape[axis] // n * n
    cut = np.take(data, np.arange(length), axis=axis)
    shape = list(cut.shape)
    shape[axis : axis + 1] = [length // n, n]
    averaged = cut.reshape(shape).mean(axis=axis + 1)
    step = np.eye(4)
    step[axis, axis] = n
    step[axis, 3] = (n - 1) / 2.0
    return averaged.astype(np.float32), affine @ step


def tilted(affine: np.ndarray, shape, degrees: float, axis: int = 0) -> np.ndarray:
    """``affine`` rotated by ``degrees`` about the scanner ``axis`` (0: x) through the image centre:
    the same slices, acquired at another angle."""
    angle = math.radians(degrees)
    c, s = math.cos(angle), math.sin(angle)
    others = [a for a in range(3) if a != axis]
    rotation = np.eye(4)
    rotation[others[0], others[0]] = rotation[others[1], others[1]] = c
    rotation[others[0], others[1]], rotation[others[1], others[0]] = -s, s
    centre = affine @ np.array([(n - 1) / 2.0 for n in shape] + [1.0])
    shift_to, shift_back = np.eye(4), np.eye(4)
    shift_to[:3, 3], shift_back[:3, 3] = -centre[:3], centre[:3]
    return shift_back @ rotation @ shift_to @ affine


def middle_slices(data: np.ndarray, affine: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` middle slices (last axis) alone, as a localizer or a truncated transfer holds them."""
    first = (data.shape[2] - n) // 2
    step = np.eye(4)
    step[2, 3] = first
    return np.ascontiguousarray(data[:, :, first : first + n]), affine @ step


def nan_background(data: np.ndarray, margin_voxels: int = 12) -> tuple[np.ndarray, int]:
    """``data`` with NaN in the background at least ``margin_voxels`` (in-plane) away from the
    head, as SPM's reslicing leaves outside the original field of view; and the NaN count."""
    out = data.astype(np.float32).copy()
    foreground = data > 0.1 * np.percentile(data, 99)
    head = np.stack([ndimage.binary_fill_holes(foreground[:, :, k]) for k in range(data.shape[2])], axis=2)
    near_head = ndimage.binary_dilation(head, np.ones((3, 3, 1), bool), iterations=margin_voxels)
    out[~near_head] = np.nan
    return out, int((~near_head).sum())


def nifti(data: np.ndarray, affine: np.ndarray, *, qform=None, qform_code: int = 0, sform_code: int = 2):
    """A NIfTI-1 image of ``data`` with the sform ``affine`` (``sform_code``) and, optionally,
    a qform of its own, as scanners and converters write them."""
    image = nib.Nifti1Image(np.asarray(data), None)
    image.set_sform(affine, code=sform_code)
    # Without a qform of its own the file holds the sform's quaternion approximation (and its
    # voxel sizes) under the given code, as dcm2niix writes an oblique scan.
    image.set_qform(affine if qform is None else qform, code=qform_code)
    return image
