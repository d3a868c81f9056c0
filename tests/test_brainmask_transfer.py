"""Brain extraction on another site's skull-on FLAIRs (../shared/data/lesjak_longitudinal).

The database's brain masks lie on a common space per patient; conftest maps them onto each raw
FLAIR through the database's ITK transforms. The floors are today's measured figures less a
small margin (docs/method.md, brain extraction). The target of issue 12 (mean >= 0.95, none below
0.93) is not reached, and patient03 cannot reach it honestly: its database mask leaves out the
frontal pole (about 1 cm of cortex at the midline) and is cut flat one slice below the vertex and
through the cerebellum, so about 85 mL of what the workflow's mask adds beyond it, on each study,
is tissue of brain intensity more than 3 mm outside it. ``test_patient03_difference_is_brain``
keeps that finding checked.
"""

from __future__ import annotations

import functools

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from msprofile.geometry import Grid, to_canonical
from msprofile.preprocess import PreprocessSettings, preprocess
from msprofile.qc import qc_flags

from conftest import dice, lesjak_reference_brain_mask, require_lesjak

# (patient, study): (Dice floor, floor of the share of the reference mask inside ours).
# Measured: Dice 0.946, 0.939, 0.908, 0.902; reference inside ours 0.924, 0.907, 0.976, 0.980.
FLOORS = {
    ("patient01", 1): (0.94, 0.91),
    ("patient01", 2): (0.93, 0.89),
    ("patient03", 1): (0.90, 0.96),
    ("patient03", 2): (0.895, 0.96),
}


def _preprocess(patient: str, study: int):
    image = nib.load(require_lesjak() / patient / f"study{study}_flair.nii.gz")
    flair = np.asarray(image.dataobj, dtype=np.float32)
    return image, flair, preprocess(flair, image.affine, settings=PreprocessSettings())


@functools.cache
def _scan(patient: str, study: int):
    """The scan's image, its data, the preprocessing result and the database's mask on its grid."""
    return *_preprocess(patient, study), lesjak_reference_brain_mask(patient, study)


@pytest.mark.parametrize(("patient", "study"), sorted(FLOORS))
def test_brain_mask_agrees_with_the_database(patient, study):
    _, _, result, reference = _scan(patient, study)
    mask = result.brain_mask > 0
    dice_floor, inside_floor = FLOORS[(patient, study)]
    assert dice(mask, reference) >= dice_floor
    assert (mask & reference).sum() / reference.sum() >= inside_floor
    assert not qc_flags(result.qc)


@pytest.mark.parametrize("study", [1, 2])
def test_patient03_difference_is_brain(study):
    """Where the workflow's mask reaches more than 3 mm beyond the database's on patient03, on the
    slices that mask covers, the image is mostly at brain intensity: that mask misses brain there."""
    image, flair, result, reference = _scan("patient03", study)
    voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000.0
    covered = reference.any(axis=(0, 1))[None, None, :]
    beyond = ndimage.distance_transform_edt(~reference, sampling=image.header.get_zooms()[:3]) > 3.0
    extra = (result.brain_mask > 0) & beyond & covered
    bright = extra & (flair > 0.7 * np.median(flair[reference]))
    assert extra.sum() * voxel_ml >= 70
    assert bright.sum() >= 0.8 * extra.sum()


def test_patient04_brain_mask_is_plausible():
    """The single scan of patient04 (no reference mask): an adult brain covered whole, no QC flag,
    and on the widest slices the mask stays out of the outer 4 mm of the head (scalp and skull)."""
    image, _, result = _preprocess("patient04", 1)
    qc = result.qc
    assert 1100 <= qc["intracranial_volume_ml"] <= 1800
    assert qc["brain_z_extent_mm"] >= 100
    assert not qc_flags(qc)
    canonical_mask, canonical = to_canonical(result.brain_mask > 0, Grid(image.shape, image.affine))
    head = result.canonical_image > 0.15 * np.percentile(result.canonical_image, 90)
    for k in np.argsort(head.sum(axis=(0, 1)))[-6:]:
        # This site's scalp is thin and its outline broken at that threshold: close it first.
        closed = ndimage.binary_closing(np.pad(head[:, :, k], 8), iterations=6)[8:-8, 8:-8]
        filled = ndimage.binary_fill_holes(ndimage.binary_opening(closed, iterations=2))
        depth_mm = ndimage.distance_transform_edt(filled) * canonical.voxel_size_mm[0]
        band = filled & (depth_mm < 4.0)
        assert (canonical_mask[:, :, k] & band).sum() <= 0.01 * band.sum()
