"""Jobs of ``demo.smk``: the synthetic demo subjects written as NIfTI files."""

from __future__ import annotations

import os
from pathlib import Path

from ..io import save_nifti
from ..synthetic.demo_cohort import phantom_for
from ..synthetic.phantom import Phantom


def demo_phantom(subject_id: str, seed: int, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write demo subject ``subject_id`` of the cohort seed ``seed``
    (:func:`msprofile.synthetic.demo_cohort.phantom_for`) into ``out_dir``, atomically:
    ``flair.nii.gz`` (int16) and its exact masks ``wmh_manual``, ``ventricles_manual``,
    ``brain`` and ``lesion_location`` (uint8), all on the phantom's affine. Returns the paths
    by name."""
    return write_phantom(phantom_for(subject_id, seed), out_dir)


def write_phantom(phantom: Phantom, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write a phantom's FLAIR and masks as NIfTI files into ``out_dir`` (see
    :func:`demo_phantom`), atomically; returns the paths by name."""
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
