


def preprocess_subject(subject_id: str, flair_path: str | Path, *, skull_stripped: bool, settings: PreprocessSettings,
                       brain_mask_path: str | Path, flair_preproc_path: str | Path, qc_json_path: str | Path,
                       qc_png_path: str | Path) -> dict:
    """Run :func:`preprocess` on one subject's file and write its four outputs.

    Errors in the input raise :class:`msprofile.io.InputImageError` naming the subject, the
    file and the problem. Returns the QC dictionary that was written.
    """
    flair, affine = load_image(flair_path, subject_id)
    try:
        result = preprocess(flair, affine, skull_stripped=skull_stripped, settings=settings)
    except ValueError as exc:
        raise InputImageError(subject_id, flair_path, str(exc)) from None
    native_zooms = Grid(tuple(flair.shape), affine).voxel_size_mm
    save_nifti(result.brain_mask, affine, brain_mask_path, zooms_mm=native_zooms)
    save_nifti(result.flair, result.model.affine, flair_preproc_path, zooms_mm=result.model.voxel_size_mm)
    qc = {"subject_id": subject_id, "settings": _settings_dict(settings), **result.qc}
    save_json(qc, qc_json_path)
    write_qc_png(result.canonical_image, result.canonical_mask, qc_png_path, title=subject_id)
    return qc


def _settings_dict(settings: PreprocessSettings) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}
