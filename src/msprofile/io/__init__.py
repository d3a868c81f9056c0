"""File input and output shared by every stage.

Every writer goes through a temporary file in the destination folder followed by
``os.replace``, so that a reader (or a rerun after a killed job) never sees a partial file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterator

import nibabel as nib
import numpy as np


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    ``suffix`` is kept on the temporary name because some writers choose the format
    from it (nibabel compresses ``.nii.gz``). On error the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or "".join(path.suffixes), dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file private (0600); outputs get the usual umask-based mode so that
    # a lab group can read a shared results folder.
    os.chmod(tmp_path, 0o666 & ~_UMASK)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def save_nifti(data: np.ndarray, affine: np.ndarray, path: str | os.PathLike, *, zooms_mm=None) -> None:
    """Write ``data`` on the grid ``affine`` as NIfTI-1, atomically.

    The header is built fresh (never copied from an input) so that no text of the
    input header (``descrip``, ``db_name``, ``aux_file``, intent name) reaches an output.
    The sform is ``affine`` with code 1 (scanner). The qform carries the same affine where
    it can (no shears); for a sheared (oblique, non-orthogonal) affine it is left unset rather
    than approximated, so that no reader takes a different geometry from the qform.
    ``zooms_mm`` defaults to the column norms of ``affine``.
    """
    affine = np.asarray(affine, dtype=np.float64)
    img = nib.Nifti1Image(np.asarray(data), affine)
    img.set_sform(affine, code=1)
    try:
        img.set_qform(affine, code=1, strip_shears=False)
    except nib.spatialimages.HeaderDataError:
        img.set_qform(None, code=0)
    if zooms_mm is not None:
        img.header.set_zooms(tuple(float(z) for z in zooms_mm)[: data.ndim])
    img.header.set_xyzt_units("mm")
    with atomic_path(path) as tmp:
        nib.save(img, tmp)


def save_json(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented, key-sorted, strict JSON, atomically (byte-identical for equal
    input). NaN and infinities become ``null`` and NumPy scalars plain numbers, so callers can
    pass measurements as they come."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_strict_json(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def _strict_json(value):
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


class InputImageError(ValueError):
    """An input image that cannot be processed; the message names subject, file and problem."""

    def __init__(self, subject_id: str, path: str | os.PathLike, problem: str):
        self.subject_id, self.path, self.problem = subject_id, str(path), problem
        super().__init__(f"subject {subject_id}: {path}: {problem}")


# Bounds that no real head MRI leaves; outside them the header, not the anatomy, is wrong.
VOXEL_SIZE_RANGE_MM = (0.05, 20.0)
MAX_VOXELS_PER_AXIS = 2048
MIN_INPLANE_VOXELS = 16
# 1024 x 1024 x 256: far above any FLAIR, and a bound on the memory one image can claim
# before its data are read (a corrupt header can claim terabytes).
MAX_VOXELS = 2**28


def load_image(path: str | os.PathLike, subject_id: str, *, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3-D NIfTI image, check it, and return ``(data, affine)``.

    ``data``: array (X, Y, Z) of ``dtype`` with scaling applied; a 4-D image with a single
    volume is accepted and squeezed. ``affine``: 4 x 4 voxel-to-mm (the header's best
    affine). Raises :class:`InputImageError` naming the subject, the file and the problem
    for anything that is not a readable, finite, non-degenerate 3-D image.
    """
    try:
        img = nib.load(os.fspath(path))
    except FileNotFoundError:
        raise InputImageError(subject_id, path, "file not found") from None
    except Exception as exc:  # nibabel raises many types for foreign or broken files
        raise InputImageError(subject_id, path, f"not a readable NIfTI image ({exc})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputImageError(subject_id, path, f"not a NIfTI image (read as {type(img).__name__})")
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputImageError(subject_id, path, f"expected a 3-D image, got {len(img.shape)}-D with shape {img.shape}")
    if (any(n > MAX_VOXELS_PER_AXIS for n in shape) or sorted(shape)[1] < MIN_INPLANE_VOXELS
            or math.prod(shape) > MAX_VOXELS):
        raise InputImageError(subject_id, path, f"implausible dimensions {shape}")
    affine = img.affine
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise InputImageError(subject_id, path, "degenerate affine (voxel-to-mm matrix is singular or not finite)")
    zooms_mm = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if zooms_mm.min() < VOXEL_SIZE_RANGE_MM[0] or zooms_mm.max() > VOXEL_SIZE_RANGE_MM[1]:
        raise InputImageError(subject_id, path, f"implausible voxel size {np.round(zooms_mm, 4).tolist()} mm")
    try:
        data = np.asarray(img.dataobj, dtype=dtype).reshape(shape)
    except Exception as exc:  # truncated gzip streams fail here, not at nib.load
        raise InputImageError(subject_id, path, f"image data cannot be read, the file may be truncated ({exc})") from None
    if not np.all(np.isfinite(data)):
        n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise InputImageError(subject_id, path, f"{n_bad} voxels are NaN or infinite")
    return data, affine
