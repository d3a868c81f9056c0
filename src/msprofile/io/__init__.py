"""File input and output: the only module besides :mod:`msprofile.jobs` that opens files.

pandas is imported where a table is read, not with this module: the per-subject image jobs
import this module and no table library, and pandas with pyarrow costs more to import than
the rest of a preprocessing job's imports together.

Every writer goes through a temporary file in the destination folder followed by
``os.replace``, so that a reader (or a rerun after a killed job) never sees a partial file.
Every reader of an input image checks it (:func:`load_image`) and raises
:class:`InputImageError` naming the subject, the file and the problem. Model folders are read
and written by :mod:`msprofile.io.models`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import deflate
import nibabel as nib
import numpy as np

from ..geometry import Grid, HeaderGeometry, same_grid_reoriented
from ..labels import label_volume

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

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


#: Compression level of ``.nii.gz`` outputs, libdeflate's (1-12). libdeflate's output is fixed
#: for a given input and version (ISA-L's, used before, is not: one demo file's gzip stream
#: differed by 4 bytes between two runs of equal images); its level 1 writes the preprocessed
#: FLAIR in a third of zlib's time (40 vs 115 ms for 256 x 256 x 20 float32) at the same size.
#: The gzip header's mtime is 0, so equal images give equal files.
NIFTI_GZIP_LEVEL = 1


def save_nifti(
    data: np.ndarray,
    affine: np.ndarray,
    path: str | os.PathLike,
    *,
    zooms_mm=None,
    header: HeaderGeometry | None = None,
) -> None:
    """Write ``data`` on the grid ``affine`` as NIfTI-1, atomically.

    The header is built fresh (never copied from an input) so that no text of the
    input header (``descrip``, ``db_name``, ``aux_file``, intent name) reaches an output.
    With ``header`` (the input's :class:`~msprofile.geometry.HeaderGeometry`, for an output on
    the input's own grid) the sform and the qform are the input's, with their codes, so that
    the output overlays the input in every reader, whichever affine it prefers (the voxel sizes
    in the header are then the qform's, as in the input, and ``zooms_mm`` is not used). Without it the
    sform is ``affine`` with code 1 (scanner) and the qform the same where it can be (no shears;
    for a sheared affine it is left unset rather than approximated, so that no reader takes a
    different geometry from the qform). Scaling is stored as slope 1 and intercept 0: the values
    are the data. ``zooms_mm`` defaults to the column norms of ``affine``.
    """
    affine = np.asarray(affine, dtype=np.float64)
    img = nib.Nifti1Image(np.asarray(data), affine)
    if header is not None:
        img.set_sform(header.sform, code=header.sform_code)
        img.set_qform(header.qform, code=header.qform_code, strip_shears=False)
    else:
        img.set_sform(affine, code=1)
        try:
            img.set_qform(affine, code=1, strip_shears=False)
        except nib.spatialimages.HeaderDataError:
            img.set_qform(None, code=0)
    if zooms_mm is not None and header is None:
        img.header.set_zooms(tuple(float(z) for z in zooms_mm)[: data.ndim])
    img.header.set_xyzt_units("mm")
    img.header.set_slope_inter(1.0, 0.0)
    with atomic_path(path) as tmp:
        if tmp.name.endswith(".gz"):
            tmp.write_bytes(deflate.gzip_compress(img.to_bytes(), NIFTI_GZIP_LEVEL))
        else:
            nib.save(img, tmp)


def read_header_geometry(path: str | os.PathLike) -> HeaderGeometry:
    """Both affines of a NIfTI file's header with their codes (:class:`~msprofile.geometry.HeaderGeometry`)."""
    header = nib.load(os.fspath(path)).header
    return HeaderGeometry(
        sform=header.get_sform(),
        sform_code=int(header["sform_code"]),
        qform=header.get_qform(),
        qform_code=int(header["qform_code"]),
    )


def save_json(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented, key-sorted, strict JSON, atomically (byte-identical for equal
    input). NaN and infinities become ``null`` and NumPy scalars plain numbers, so callers can
    pass measurements as they come."""
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(obj))


def json_text(obj) -> str:
    """``obj`` as the text :func:`save_json` writes."""
    return json.dumps(_strict_json(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_text(text: str, path: str | os.PathLike) -> bool:
    """Write ``text`` (UTF-8) at ``path``, atomically, unless the file holds exactly it already
    (so that a rerun leaves unchanged files and their times alone). Returns whether it wrote."""
    path = Path(path)
    if path.is_file() and path.read_bytes() == text.encode():
        return False
    with atomic_path(path) as tmp:
        tmp.write_bytes(text.encode())
    return True


def copy_file(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Copy the file ``source`` to ``path`` (a new file with its own times), atomically."""
    with atomic_path(path) as tmp:
        shutil.copyfile(source, tmp)


def link_or_copy(source: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Make ``path`` hold the file ``source``: a hard link (no copy of the data) where the file
    system allows one, else a copy with its times; atomically. Nothing is done when ``path`` is
    already that file, or a copy of it at least as new. Returns whether it wrote.

    Never for a rule's declared output made from its own input: the two would be one file, and
    Snakemake's touching of the output would change the input's time too."""
    source, path = Path(source), Path(path)
    if path.is_file():
        if os.path.samefile(source, path):
            return False
        new, old = source.stat(), path.stat()
        if new.st_size == old.st_size and old.st_mtime >= new.st_mtime:
            return False
    with atomic_path(path) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copy2(source, tmp)
    return True


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


def load_json(path: str | os.PathLike):
    """The JSON document in ``path`` (one of the workflow's own files)."""
    return json.loads(Path(path).read_text())


def write_empty_file(path: str | os.PathLike) -> None:
    """Write an empty file at ``path`` (creating its folder), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"")


def write_tsv(
    frame: pd.DataFrame, path: str | os.PathLike, *, float_format: str | None = None, na_rep: str = ""
) -> None:
    """Write ``frame`` without its index as tab-separated text with ``\\n`` line ends, atomically.

    ``float_format``: printf format of floats (None: shortest repr); ``na_rep``: text of a
    missing value.
    """
    with atomic_path(path, suffix=".tsv") as tmp:
        frame.to_csv(tmp, sep="\t", index=False, float_format=float_format, na_rep=na_rep, lineterminator="\n")


def write_parquet(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``table`` as Parquet without its index, atomically."""
    with atomic_path(path, suffix=".parquet") as tmp:
        table.to_parquet(tmp, index=False)


def read_stacked_parquet(paths) -> pd.DataFrame:
    """The Parquet files of ``paths`` stacked into one table (files without rows add none).

    Read and stacked as Arrow tables, which costs a fraction of going through pandas per
    file (1,381 files in a cohort). Columns missing from a file are null in its rows.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(p) for p in paths]
    # An empty table's columns may be untyped; leave those out of the type promotion.
    non_empty = [t for t in tables if t.num_rows]
    if non_empty:
        return pa.concat_tables(non_empty, promote_options="default").to_pandas()
    if tables:
        return tables[0].to_pandas()
    import pandas as pd

    return pd.DataFrame()


def read_table(path: str | os.PathLike, *, string_columns=()) -> pd.DataFrame:
    """A table from a CSV (``,``), TSV (``.tsv``/``.tab``) or Parquet (``.parquet``/``.pq``)
    file, with ``string_columns`` read as text (IDs keep their leading zeros) and the column
    names stripped of surrounding blanks.

    Raises ``FileNotFoundError`` when there is no file and ``ValueError`` naming the file when
    it cannot be read as a table.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: cohort table not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        else:
            sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
            table = pd.read_csv(path, sep=sep, dtype={c: "string" for c in string_columns})
    except Exception as exc:  # pandas and pyarrow raise many types for foreign files
        raise ValueError(f"{path}: not a readable cohort table ({exc})") from None
    table.columns = [str(c).strip() for c in table.columns]
    return table


def save_png(image: np.ndarray, path: str | os.PathLike, *, dpi: float | None = None, compress_level: int = 1) -> None:
    """Write an RGB image (H, W, 3) uint8 as PNG, atomically, with no text chunks; an RGBA
    image (H, W, 4) is written as RGB, its alpha dropped.

    ``dpi`` goes into the pHYs chunk when given; ``compress_level`` is zlib's (1: fast, files
    about 10 % larger than at the default 6).
    """
    from PIL import Image

    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
    # PIL drops alpha from a contiguous RGBA buffer at a quarter of the cost of copying a
    # strided RGB view into one (a 300-dpi figure: 10 vs 45 ms).
    if picture.mode == "RGBA":
        picture = picture.convert("RGB")
    extra = {"dpi": (dpi, dpi)} if dpi else {}
    with atomic_path(path, suffix=".png") as tmp:
        picture.save(tmp, format="png", compress_level=compress_level, **extra)


#: PDF metadata left out so that equal figures give equal files.
PDF_METADATA = {"CreationDate": None, "Producer": None, "Creator": None}


def save_figure(fig, png_path: str | os.PathLike, pdf_path: str | os.PathLike, *, dpi: float) -> tuple[int, int]:
    """Write a matplotlib ``Figure`` as PNG (RGB, ``dpi`` in its pHYs chunk) and vector PDF,
    atomically and without dates or software tags, so that equal figures give byte-identical
    files. Returns the PNG's (width, height) in pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    width, height = canvas.get_width_height(physical=True)
    save_png(np.asarray(canvas.buffer_rgba()), png_path, dpi=dpi)
    with atomic_path(pdf_path, suffix=".pdf") as tmp:
        fig.savefig(tmp, format="pdf", dpi=dpi, metadata=PDF_METADATA)
    return width, height


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write ``arrays`` into one compressed ``.npz``, atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, by name."""
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


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


def load_image(
    path: str | os.PathLike, subject_id: str, *, dtype=np.float32, allow_nonfinite: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3-D NIfTI image, check it, and return ``(data, affine)``.

    ``data``: array (X, Y, Z) of ``dtype`` with scaling applied; trailing dimensions of
    length 1 (a 4-D file with one volume, or shape (X, Y, Z, 1, 1) as some converters write)
    are dropped. ``affine``: 4 x 4 voxel-to-mm (the header's best affine: the sform, else the
    qform, else one from the voxel sizes alone). Raises :class:`InputImageError` naming the
    subject, the file and the problem for anything that is not a readable, non-degenerate 3-D
    image, and for NaN or infinite voxels unless ``allow_nonfinite`` (the caller then decides
    where they may lie).
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
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise InputImageError(subject_id, path, f"expected a 3-D image, got {len(img.shape)}-D with shape {img.shape}")
    if (
        any(n > MAX_VOXELS_PER_AXIS for n in shape)
        or sorted(shape)[1] < MIN_INPLANE_VOXELS
        or math.prod(shape) > MAX_VOXELS
    ):
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
        raise InputImageError(
            subject_id, path, f"image data cannot be read, the file may be truncated ({exc})"
        ) from None
    if not allow_nonfinite and not np.all(np.isfinite(data)):
        n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise InputImageError(subject_id, path, f"{n_bad} voxels are NaN or infinite")
    return data, affine


def load_volumes(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One of the workflow's own NIfTI files, any number of dimensions (such as the 4-D class
    probabilities): ``(float32 data, affine)``."""
    img = nib.load(os.fspath(path))
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


def read_grid(path: str | os.PathLike) -> Grid:
    """The grid (shape and affine) of one of the workflow's own NIfTI files, from its header."""
    img = nib.load(os.fspath(path))
    return Grid(tuple(img.shape[:3]), img.affine)


def load_mask(path: str | os.PathLike, subject_id: str, what: str, grid: Grid | None = None) -> tuple[np.ndarray, Grid]:
    """A manual mask (uint8) and its grid, checked.

    With ``grid`` given the mask must lie on it: the same voxels (shape and affine within
    1e-3 mm), possibly stored in another axis order or direction (as after ``fslreorient2std``),
    in which case it is reoriented onto ``grid`` without interpolation. Values must be whole
    numbers from 0 (background) to 255, any non-zero value marking the structure (tools code
    one structure as 1, 255 or several labels). ``what`` names the structure in messages; a
    ``"ventricle"`` or ``"brain"`` mask must not be empty (every head has both), other masks
    may (a control without lesions). Otherwise :class:`InputImageError` names the subject, the
    mask and the problem; a mask on another grid is described by both grids' shapes, voxel
    sizes and affines.
    """
    data, affine = load_image(path, subject_id)
    mask_grid = Grid(data.shape, affine)
    grid = grid or mask_grid
    if data.shape != grid.shape or not np.allclose(affine, grid.affine, atol=1e-3):
        reoriented = same_grid_reoriented(data, mask_grid, grid)
        if reoriented is None:
            raise InputImageError(
                subject_id,
                path,
                f"{what} mask is not on the FLAIR's grid: mask {_describe_grid(mask_grid)}; "
                f"FLAIR {_describe_grid(grid)}",
            )
        log.info("subject %s: %s: %s mask reoriented onto the FLAIR's axis order", subject_id, path, what)
        data = reoriented
    whole = (data == np.round(data)) & (data >= 0) & (data <= 255)
    if not whole.all():
        odd = np.unique(data[~whole])[:5].round(4).tolist()
        raise InputImageError(
            subject_id,
            path,
            f"{what} mask values must be whole numbers from 0 to 255 "
            f"(0 = background); found {odd}: a probability map or a "
            "different image?",
        )
    if what in ("ventricle", "brain") and not data.any():
        raise InputImageError(subject_id, path, f"{what} mask is empty")
    if what == "lesion" and not data.any():
        log.info("subject %s: %s: lesion mask is empty (no lesions)", subject_id, path)
    return data.astype(np.uint8), grid


def _describe_grid(grid: Grid) -> str:
    rows = "; ".join(" ".join(f"{v:.3f}" for v in row) for row in np.asarray(grid.affine)[:3])
    sizes = " x ".join(f"{v:.3f}" for v in grid.voxel_size_mm)
    return f"shape {tuple(int(n) for n in grid.shape)}, voxels {sizes} mm, affine [{rows}]"


def load_manual_labels(
    subject_id: str, wmh_path, ventricles_path, grid: Grid | None = None
) -> tuple[np.ndarray, Grid, tuple[str, ...]]:
    """Three-class labels (:func:`msprofile.labels.label_volume`) from a subject's manual lesion
    and ventricle masks, their grid, and the names of the classes they label; both masks are
    checked by :func:`load_mask`, the ventricle mask on the lesion mask's grid (or on ``grid``,
    the FLAIR's, when given). With no ``ventricles_path`` (empty or None) the labels hold the
    lesions alone and the classes are ``("lesions",)``: the ventricles are unknown, not absent.
    """
    lesions, grid = load_mask(wmh_path, subject_id, "lesion", grid)
    if not ventricles_path:
        return label_volume(lesions, np.zeros_like(lesions)), grid, ("lesions",)
    ventricles, grid = load_mask(ventricles_path, subject_id, "ventricle", grid)
    return label_volume(lesions, ventricles), grid, ("ventricles", "lesions")


def read_itk_affine(path: str | os.PathLike) -> np.ndarray:
    """An affine transform from an ITK "Insight Transform File" (text, one transform of the
    ``AffineTransform`` / ``MatrixOffsetTransformBase`` family: 12 parameters, the row-major
    3 x 3 matrix and the translation, and the centre as its 3 fixed parameters, in ITK's LPS+
    physical coordinates), as the 4 x 4 matrix mapping the same points in RAS+ mm
    (:func:`msprofile.registration.itk_affine_to_ras`). Raises ValueError naming the file for
    anything else."""
    from ..registration import itk_affine_to_ras

    fields = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(":")
        if value and not key.startswith("#"):
            fields[key.strip()] = value.split()
    kind = (fields.get("Transform") or ["?"])[0]
    parameters = [float(v) for v in fields.get("Parameters", [])]
    center = [float(v) for v in fields.get("FixedParameters", [])]
    if (
        not kind.startswith(("AffineTransform", "MatrixOffsetTransformBase"))
        or len(parameters) != 12
        or len(center) != 3
    ):
        raise ValueError(
            f"{path}: not a 3-D ITK affine transform file (transform {kind}, {len(parameters)} parameters)"
        )
    return itk_affine_to_ras(parameters[:9], parameters[9:], center)
