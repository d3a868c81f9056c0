"""Brain extraction on other sites' skull-on FLAIRs (../shared/data/lesjak_longitudinal, isbi_sample).

The database's brain masks lie on a common space per patient; conftest maps them onto each raw
FLAIR through the database's ITK transforms. The floors are today's measured figures less a
small margin (docs/method.md, brain extraction). Patient01 meets the target of issue 12 (>= 0.95);
patient03 cannot reach it honestly: its database mask leaves out the frontal pole (about 1 cm of
cortex at the midline) and is cut flat one slice below the vertex and through the cerebellum, so
about 100 mL of what the workflow's mask adds beyond it, on each study, is tissue of brain
intensity more than 3 mm outside it. ``test_patient03_difference_is_brain`` keeps that finding
checked.
"""

from __future__ import annotations

import functools

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from msprofile.brainmask import head_mask
from msprofile.geometry import Grid, to_canonical
from msprofile.preprocess import PreprocessSettings, preprocess
from msprofile.qc import qc_flags

from conftest import dice, lesjak_reference_brain_mask, require_isbi_sample, require_lesjak

# (patient, study): (Dice floor, floor of the share of the reference mask inside ours).
# Measured: Dice 0.955, 0.951, 0.896, 0.887; reference inside ours 0.953, 0.943, 0.993, 0.994
# (before the head's outline was closed over gaps in a thin scalp: 0.946, 0.939, 0.908, 0.902 and
# 0.924, 0.907, 0.976, 0.980; patient03 fell as the mask took in more of the brain its database
# mask leaves out).
FLOORS = {
    ("patient01", 1): (0.95, 0.945),
    ("patient01", 2): (0.945, 0.935),
    ("patient03", 1): (0.885, 0.985),
    ("patient03", 2): (0.88, 0.985),
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
    # Measured: 133 mL beyond, 100 mL of it bright (study 1); the rest is the partial-volume rim.
    assert bright.sum() * voxel_ml >= 80
    assert bright.sum() >= 0.7 * extra.sum()


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


@functools.cache
def _isbi(subject: str):
    """The scan's canonical brain mask, canonical image and canonical grid after preprocessing."""
    image = nib.load(require_isbi_sample() / subject / "flair.nii.gz")
    flair = np.asarray(image.dataobj, dtype=np.float32)
    result = preprocess(flair, image.affine, settings=PreprocessSettings())
    mask, canonical = to_canonical(result.brain_mask > 0, Grid(image.shape, image.affine))
    return mask, result.canonical_image, canonical


def test_isbi01_vertex_mask_stays_below_the_scalp():
    """Above the head's widest section thick slices cut scalp and skull obliquely, so a mask that
    keeps a fixed in-plane distance from the head's outline reaches the scalp near the vertex (it
    took up to 5,300 voxels a slice of scalp and skull on isbi01's slices 28-33). Measured in 3-D
    (distance to the nearest background voxel centre of the head, the volume's top not counted as
    surface), no brain lies within 6 mm of the head's surface: adult scalp and skull together are
    thicker than that, and this scan's measure 13 mm on its widest slices."""
    mask, canonical_image, canonical = _isbi("isbi01")
    head = head_mask(canonical_image, float(canonical.voxel_size_mm[:2].mean()))
    # The head carries on above the volume's top: repeat its top slice there.
    padded = np.concatenate([head, np.repeat(head[:, :, -1:], 4, axis=2)], axis=2)
    depth_mm = ndimage.distance_transform_edt(padded, sampling=canonical.voxel_size_mm)[:, :, : head.shape[2]]
    # Slices above the widest one: below it, ear canals and nasal cavity open the head's outline.
    above = slice(int(np.argmax(head.sum(axis=(0, 1)))) + 1, None)
    assert (mask[:, :, above] & (depth_mm[:, :, above] < 6.0)).sum() <= 0.002 * mask[:, :, above].sum()


@pytest.mark.parametrize("subject", ["isbi03", "isbi04", "isbi05"])
def test_isbi_lowest_slices_hold_no_jaw_or_neck_muscle(subject):
    """On the brain's lowest two slices of these 3 T scans only the cerebellum and the medulla are
    brain, and both lie behind the head's centre; the jaw and neck muscles in front of it are of
    brain intensity and wide, and the regrowth used to take an octagon of them (up to 1,900 voxels
    a slice on all three)."""
    image = nib.load(require_isbi_sample() / subject / "flair.nii.gz")
    flair = np.asarray(image.dataobj, dtype=np.float32)
    result = preprocess(flair, image.affine, settings=PreprocessSettings())
    grid = Grid(image.shape, image.affine)
    mask = to_canonical(result.brain_mask > 0, grid)[0]
    canonical_image = result.canonical_image
    slices = np.flatnonzero(mask.any(axis=(0, 1)))
    assert len(slices) >= 25
    for k in slices[:2]:
        head = canonical_image[:, :, k] > 0.3 * np.percentile(canonical_image, 90)
        anterior = np.arange(mask.shape[1])[None, :] > np.nonzero(head)[1].mean()
        assert (mask[:, :, k] & anterior).sum() <= 0.02 * mask[:, :, k].sum()
