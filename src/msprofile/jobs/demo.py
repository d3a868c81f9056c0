"""Jobs of ``demo.smk``: the synthetic demo subjects written as NIfTI files."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..io import copy_file, json_text, save_nifti, write_text
from ..synthetic.demo_cohort import DEMO_BIDS_SCANS, demo_bids_label, demo_bids_participants, phantom_for
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


def write_demo_bids(flair_paths: dict[str, str | os.PathLike], out_dir: str | os.PathLike) -> list[Path]:
    """Write the demo BIDS dataset into ``out_dir`` from the demo subjects' FLAIRs (``flair_paths``
    by demo subject ID): every scan of :data:`~msprofile.synthetic.demo_cohort.DEMO_BIDS_SCANS`
    as ``sub-<label>/ses-<session>/anat/sub-<label>_ses-<session>_FLAIR.nii.gz``,
    ``participants.tsv`` and ``dataset_description.json``. Returns the FLAIR paths written."""
    out_dir = Path(out_dir)
    written = []
    for subject_id, session in DEMO_BIDS_SCANS:
        label = demo_bids_label(subject_id)
        path = out_dir / f"sub-{label}" / f"ses-{session}" / "anat" / f"sub-{label}_ses-{session}_FLAIR.nii.gz"
        copy_file(flair_paths[subject_id], path)
        written.append(path)
    participants = pd.DataFrame(demo_bids_participants())
    write_text(participants.to_csv(sep="\t", index=False, lineterminator="\n"), out_dir / "participants.tsv")
    description = {"Name": "msprofile demo phantoms", "BIDSVersion": "1.10.0", "DatasetType": "raw"}
    write_text(json_text(description), out_dir / "dataset_description.json")
    return written
