"""Jobs of ``preprocess.smk``: one subject's FLAIR in, brain mask, model-grid image and QC out."""

from __future__ import annotations

from pathlib import Path

from ..geometry import Grid, HeaderGeometry
from ..io import InputImageError, load_image, load_mask, read_header_geometry, save_json, save_nifti, save_png
from ..preprocess import PreprocessSettings, preprocess, qc_image, settings_dict


def preprocess_subject(
    subject_id: str,
    flair_path: str | Path,
    *,
    skull_stripped: bool,
    settings: PreprocessSettings,
    brain_mask_path: str | Path,
    flair_preproc_path: str | Path,
    qc_json_path: str | Path,
    qc_png_path: str | Path,
    given_brain_mask_path: str | Path | None = None,
) -> dict:
    """Run :func:`msprofile.preprocess.preprocess` on one subject's file and write its four
    outputs: the brain mask on the native grid (uint8, with the input's sform and qform and
    their codes), the normalised FLAIR on the model grid (float32), the QC measures (JSON) and
    the QC montage (PNG). ``given_brain_mask_path``: a brain mask made by another tool, which
    must lie on the FLAIR's grid and is used instead of the brain extraction.

    Errors in the input (among them an acquisition the network cannot segment, and NaN in the
    head) raise :class:`msprofile.io.InputImageError` naming the subject, the file and the
    problem. Returns the QC dictionary that was written.
    """
    flair, affine = load_image(flair_path, subject_id, allow_nonfinite=True)
    header = read_header_geometry(flair_path)
    given_mask = None
    if given_brain_mask_path:
        given_mask, _ = load_mask(given_brain_mask_path, subject_id, "brain", Grid(tuple(flair.shape), affine))
    try:
        result = preprocess(
            flair, affine, skull_stripped=skull_stripped, settings=settings, header=header, given_mask=given_mask
        )
    except ValueError as exc:
        raise InputImageError(subject_id, flair_path, str(exc)) from None
    native_zooms = Grid(tuple(flair.shape), affine).voxel_size_mm
    save_nifti(result.brain_mask, affine, brain_mask_path, zooms_mm=native_zooms, header=header)
    save_nifti(
        result.flair,
        result.model.affine,
        flair_preproc_path,
        zooms_mm=result.model.voxel_size_mm,
        header=HeaderGeometry.derived(result.model.affine, header.space_code),
    )
    qc = {"subject_id": subject_id, "settings": settings_dict(settings), **result.qc}
    save_json(qc, qc_json_path)
    title = subject_id if given_mask is None else f"{subject_id} (given brain mask)"
    save_png(qc_image(result.canonical_image, result.canonical_mask, title=title), qc_png_path)
    return qc
