"""The NIfTI loader against damaged files: a clear InputImageError or a checked image, never
another exception (hypothesis fuzzing, bounded)."""

from __future__ import annotations

import gzip
import io

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msprofile.io import InputImageError, load_image

HEADER_BYTES = 352  # NIfTI-1 header and extension flag


def _valid_nifti_bytes() -> bytes:
    rng = np.random.default_rng(0)
    image = nib.Nifti1Image(rng.integers(0, 1000, (24, 20, 6)).astype(np.int16), np.diag([0.9, 0.9, 6.5, 1.0]))
    stream = io.BytesIO()
    file_map = image.make_file_map({"image": stream, "header": stream})
    image.to_file_map(file_map)
    return stream.getvalue()


VALID = _valid_nifti_bytes()


def _load(tmp_path, content: bytes, compressed: bool):
    path = tmp_path / ("fuzz.nii.gz" if compressed else "fuzz.nii")
    path.write_bytes(gzip.compress(content, mtime=0) if compressed else content)
    try:
        data, affine = load_image(path, "fuzz")
    except InputImageError as exc:
        assert str(exc).startswith(f"subject fuzz: {path}: ")
        return None
    assert data.ndim == 3 and np.isfinite(data).all() and affine.shape == (4, 4)
    return data


def test_the_unmodified_file_loads(tmp_path):
    for compressed in (False, True):
        assert _load(tmp_path, VALID, compressed).shape == (24, 20, 6)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(0, HEADER_BYTES - 1), st.integers(0, 255)), min_size=1, max_size=8),
    keep=st.integers(0, len(VALID)),
    compressed=st.booleans(),
)
def test_damaged_headers_and_truncations(tmp_path, edits, keep, compressed):
    content = bytearray(VALID)
    for offset, value in edits:
        content[offset] = value
    _load(tmp_path, bytes(content[:keep]), compressed)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=2000), compressed=st.booleans())
def test_arbitrary_bytes(tmp_path, content, compressed):
    _load(tmp_path, content, compressed)


@pytest.mark.parametrize("shape", [(16384, 16384, 16384), (1024, 1024, 1024)])
def test_a_header_claiming_huge_dimensions_is_refused_before_reading(tmp_path, shape):
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(VALID))
    header["dim"][:4] = [3, *shape]
    stream = io.BytesIO()
    header.write_to(stream)
    path = tmp_path / "huge.nii"
    path.write_bytes(stream.getvalue() + VALID[HEADER_BYTES:])
    with pytest.raises(InputImageError, match="implausible dimensions"):
        load_image(path, "huge")


def test_save_png_drops_alpha_of_an_rgba_image(tmp_path):
    """Figures are written from the canvas's RGBA buffer: the file must be the one of its RGB part."""
    from msprofile.io import save_png

    rgba = np.random.default_rng(0).integers(0, 256, (30, 40, 4), dtype=np.uint8)
    save_png(rgba, tmp_path / "rgba.png", dpi=300)
    save_png(np.ascontiguousarray(rgba[..., :3]), tmp_path / "rgb.png", dpi=300)
    assert (tmp_path / "rgba.png").read_bytes() == (tmp_path / "rgb.png").read_bytes()
