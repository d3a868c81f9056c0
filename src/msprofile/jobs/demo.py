


def write_phantom(phantom: Phantom, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write a phantom as NIfTI files in ``out_dir`` (created if needed), atomically.

    Returns the paths by name: ``flair`` (int16), ``wmh_manual``, ``ventricles_manual``,
    ``brain`` and ``lesion_location`` (uint8), all on ``phantom.affine``.
    """
    out_dir = Path(out_dir)
    volumes = {
        "flair": phantom.flair,
        "wmh_manual": phantom.lesion_mask,
        "ventricles_manual": phantom.ventricles_mask,
        "brain": phantom.brain_mask,
        "lesion_location": phantom.lesion_location,
    }
    paths = {}
    for name, data in volumes.items():
        paths[name] = out_dir / f"{name}.nii.gz"
        save_nifti(data, phantom.affine, paths[name])
    return paths
