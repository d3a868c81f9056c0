"""Tests of the synthetic FLAIR phantom and the demo cohort spec."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from msprofile.jobs.demo import write_phantom
from msprofile.labels import LesionClass
from msprofile.synthetic import demo_cohort as demo
from msprofile.synthetic.phantom import MAX_SIGNAL, Phantom, make_phantom

from conftest import FLAIR_SAMPLE, SAMPLE_IDS, require_flair_sample

PERIVENTRICULAR, DEEP, JUXTACORTICAL = LesionClass.PEWMH, LesionClass.PAWMH, LesionClass.JCWMH

VOXEL_MM = (0.9, 0.9, 6.5)
EIGHT_CONNECTED_3D = np.ones((3, 3, 3), dtype=bool)


@pytest.fixture(scope="module")
def ms_phantom() -> Phantom:
    return make_phantom(11, group="MS", age_years=45, sex="F")


@pytest.fixture(scope="module")
def hc_phantom() -> Phantom:
    return make_phantom(12, group="HC", age_years=60, sex="M")


def _fields(phantom: Phantom) -> dict[str, np.ndarray]:
    names = ("flair", "brain_mask", "ventricles_mask", "lesion_mask", "lesion_location", "affine")
    return {name: getattr(phantom, name) for name in names}


def _inplane_distance_to(mask: np.ndarray, pixel_mm: tuple[float, float]) -> np.ndarray:
    """Per slice, in-plane distance (mm) to the nearest voxel of ``mask``; inf on slices without any."""
    distance = np.full(mask.shape, np.inf)
    for k in range(mask.shape[2]):
        if mask[:, :, k].any():
            distance[:, :, k] = ndimage.distance_transform_edt(~mask[:, :, k], sampling=pixel_mm)
    return distance


def contrast_ratios(flair, lesions, ventricles, pixel_mm) -> tuple[float, float]:
    """(median lesion / median tissue, median ventricle / median tissue).

    Tissue is the white matter around the ventricles, which both the real scans and the
    phantom have without a brain mask: voxels 3-15 mm in-plane from a ventricle on the
    same slice, minus lesions.
    """
    distance = _inplane_distance_to(ventricles, pixel_mm)
    tissue = (distance > 3.0) & (distance <= 15.0) & ~lesions
    tissue_median = np.median(flair[tissue])
    return float(np.median(flair[lesions]) / tissue_median), float(np.median(flair[ventricles]) / tissue_median)


@pytest.fixture(scope="module")
def real_ratios() -> np.ndarray:
    """Contrast ratios of the four real sample scans, shape (4, 2), from their manual masks."""
    require_flair_sample()
    ratios = []
    for subject_id in SAMPLE_IDS:
        folder = FLAIR_SAMPLE / subject_id
        image = nib.load(folder / "flair.nii.gz")
        flair = np.asanyarray(image.dataobj).astype(float)
        lesions = np.asanyarray(nib.load(folder / "wmh_manual.nii.gz").dataobj) > 0
        ventricles = np.asanyarray(nib.load(folder / "ventricles_manual.nii.gz").dataobj) > 0
        ratios.append(contrast_ratios(flair, lesions, ventricles, image.header.get_zooms()[:2]))
    return np.array(ratios)


# --- determinism -------------------------------------------------------------------------


def test_same_arguments_give_identical_arrays(ms_phantom):
    again = make_phantom(11, group="MS", age_years=45, sex="F")
    for name, array in _fields(ms_phantom).items():
        other = getattr(again, name)
        assert array.dtype == other.dtype and array.tobytes() == other.tobytes(), name


def test_different_seeds_give_different_phantoms(ms_phantom):
    other = make_phantom(13, group="MS", age_years=45, sex="F")
    assert not np.array_equal(ms_phantom.flair, other.flair)
    assert not np.array_equal(ms_phantom.lesion_mask, other.lesion_mask)


def test_dtypes_and_shapes(ms_phantom):
    assert ms_phantom.flair.dtype == np.int16
    for name in ("brain_mask", "ventricles_mask", "lesion_mask", "lesion_location"):
        array = getattr(ms_phantom, name)
        assert array.dtype == np.uint8, name
        assert array.shape == (256, 256, 20), name
    for name in ("brain_mask", "ventricles_mask", "lesion_mask"):
        assert set(np.unique(getattr(ms_phantom, name))) <= {0, 1}, name
    assert set(np.unique(ms_phantom.lesion_location)) <= {0, 1, 2, 3}
    assert ms_phantom.flair.shape == (256, 256, 20)
    assert ms_phantom.affine.dtype == np.float64 and ms_phantom.affine.shape == (4, 4)


def test_arrays_are_read_only(ms_phantom):
    with pytest.raises(ValueError):
        ms_phantom.flair[0, 0, 0] = 1


def test_affine_is_las_with_the_voxel_sizes_and_centred(ms_phantom):
    affine = ms_phantom.affine
    assert nib.aff2axcodes(affine) == ("L", "A", "S")
    assert affine[0, 0] < 0
    np.testing.assert_allclose(np.sqrt((affine[:3, :3] ** 2).sum(axis=0)), VOXEL_MM)
    centre = (np.array(ms_phantom.flair.shape) - 1) / 2
    np.testing.assert_allclose(affine[:3, :3] @ centre + affine[:3, 3], 0.0, atol=1e-9)


def test_custom_grid_is_honoured():
    phantom = make_phantom(3, group="HC", age_years=30, sex="F", shape=(200, 220, 24), voxel_size_mm=(1.0, 1.0, 5.5))
    assert phantom.flair.shape == phantom.brain_mask.shape == (200, 220, 24)
    np.testing.assert_allclose(np.sqrt((phantom.affine[:3, :3] ** 2).sum(axis=0)), (1.0, 1.0, 5.5))
    assert phantom.brain_mask.any()


@pytest.mark.parametrize("kwargs", [{"group": "PD"}, {"sex": "X"}])
def test_bad_arguments_are_refused(kwargs):
    arguments = {"group": "MS", "age_years": 40, "sex": "F"} | kwargs
    with pytest.raises(ValueError):
        make_phantom(0, **arguments)


# --- masks ------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["ms_phantom", "hc_phantom"])
def test_masks_are_consistent(which, request):
    phantom = request.getfixturevalue(which)
    brain = phantom.brain_mask > 0
    ventricles = phantom.ventricles_mask > 0
    lesions = phantom.lesion_mask > 0
    assert ventricles.any()
    assert not (ventricles & ~brain).any(), "ventricles outside the brain mask"
    assert not (lesions & ~brain).any(), "lesions outside the brain mask"
    assert not (lesions & ventricles).any(), "lesion and ventricle masks overlap"
    np.testing.assert_array_equal(phantom.lesion_location > 0, lesions)


def test_brain_mask_is_filled_and_excludes_extracerebral_csf(ms_phantom):
    brain = ms_phantom.brain_mask > 0
    for k in range(brain.shape[2]):
        np.testing.assert_array_equal(ndimage.binary_fill_holes(brain[:, :, k]), brain[:, :, k])
    # the first voxels outside the mask are CSF and skull: dark next to the brain
    ring = np.stack([ndimage.binary_dilation(brain[:, :, k]) & ~brain[:, :, k] for k in range(brain.shape[2])], axis=2)
    flair = ms_phantom.flair.astype(float)
    assert np.median(flair[ring]) < 0.5 * np.median(flair[brain])


def test_brain_is_small_at_the_top_and_bottom(ms_phantom):
    area = ms_phantom.brain_mask.sum(axis=(0, 1))
    assert area.argmax() not in (0, 1, area.size - 2, area.size - 1)
    assert area[-1] < 0.6 * area.max()
    assert area[0] < 0.6 * area.max()
    assert (area > 0).all()


def test_ms_phantom_has_lesions_of_every_location(ms_phantom):
    assert {PERIVENTRICULAR, DEEP, JUXTACORTICAL} <= set(np.unique(ms_phantom.lesion_location))
    _, count = ndimage.label(ms_phantom.lesion_mask, structure=EIGHT_CONNECTED_3D)
    assert 8 <= count <= 60


def test_lesions_keep_to_the_rule_of_their_location(ms_phantom):
    ventricle_mm = _inplane_distance_to(ms_phantom.ventricles_mask > 0, VOXEL_MM[:2])
    labels, count = ndimage.label(ms_phantom.lesion_mask, structure=EIGHT_CONNECTED_3D)
    for label in range(1, count + 1):
        lesion = labels == label
        locations = np.unique(ms_phantom.lesion_location[lesion])
        assert locations.size == 1, "one lesion, one location"
        nearest_mm = ventricle_mm[lesion].min()
        if locations[0] == PERIVENTRICULAR:
            assert nearest_mm <= 2.0
        else:  # beyond the reference's 7.5 mm edge rule with a margin
            assert nearest_mm >= 10.0
        if locations[0] == JUXTACORTICAL:  # at most the reference's 28.27 mm^2 in any slice
            assert lesion.sum(axis=(0, 1)).max() * VOXEL_MM[0] * VOXEL_MM[1] <= np.pi * 6**2 / 4


def test_controls_have_at_most_two_small_deep_lesions(hc_phantom):
    others = [make_phantom(seed, group="HC", age_years=35, sex="F") for seed in (21, 22)]
    for phantom in [hc_phantom, *others]:
        _, count = ndimage.label(phantom.lesion_mask, structure=EIGHT_CONNECTED_3D)
        assert count <= 2
        assert set(np.unique(phantom.lesion_location)) <= {0, DEEP}
        assert phantom.lesion_mask.sum() <= 100


def test_age_enlarges_ventricles_and_csf():
    young = make_phantom(7, group="HC", age_years=22, sex="F")
    old = make_phantom(7, group="HC", age_years=74, sex="F")
    assert old.ventricles_mask.sum() > 1.5 * young.ventricles_mask.sum()
    # atrophy: the brain shrinks inside the same skull
    assert old.brain_mask.sum() < young.brain_mask.sum()


def test_male_heads_are_larger():
    female = make_phantom(8, group="HC", age_years=40, sex="F")
    male = make_phantom(8, group="HC", age_years=40, sex="M")
    assert male.brain_mask.sum() > 1.05 * female.brain_mask.sum()


# --- intensities ------------------------------------------------------------------------


def test_intensity_scale_is_like_the_scanner(ms_phantom):
    flair = ms_phantom.flair
    corner = flair[:20, :20, :].astype(float)
    assert 20 < corner.mean() < 200, "background is ~0 plus Rician noise"
    assert flair.min() >= 0 and flair.max() <= MAX_SIGNAL
    tissue = flair[(ms_phantom.brain_mask > 0) & (ms_phantom.lesion_mask == 0) & (ms_phantom.ventricles_mask == 0)]
    assert 2000 < np.median(tissue) < 8000


def test_contrasts_match_the_real_sample(ms_phantom, real_ratios):
    lesion_ratio, ventricle_ratio = contrast_ratios(
        ms_phantom.flair.astype(float), ms_phantom.lesion_mask > 0, ms_phantom.ventricles_mask > 0, VOXEL_MM[:2]
    )
    low, high = real_ratios.min(axis=0), real_ratios.max(axis=0)
    assert 0.9 * low[0] <= lesion_ratio <= 1.1 * high[0], (lesion_ratio, real_ratios[:, 0])
    assert 0.9 * low[1] <= ventricle_ratio <= 1.1 * high[1], (ventricle_ratio, real_ratios[:, 1])


# --- files ------------------------------------------------------------------------------


def test_write_phantom_round_trip(ms_phantom, tmp_path):
    paths = write_phantom(ms_phantom, tmp_path / "subject")
    expected = {
        "flair": ms_phantom.flair,
        "wmh_manual": ms_phantom.lesion_mask,
        "ventricles_manual": ms_phantom.ventricles_mask,
        "brain": ms_phantom.brain_mask,
        "lesion_location": ms_phantom.lesion_location,
    }
    assert set(paths) == set(expected)
    for name, array in expected.items():
        assert paths[name] == tmp_path / "subject" / f"{name}.nii.gz"
        image = nib.load(paths[name])
        assert image.get_data_dtype() == array.dtype, name
        np.testing.assert_array_equal(np.asanyarray(image.dataobj), array)
        np.testing.assert_allclose(image.affine, ms_phantom.affine, atol=1e-6)
        assert nib.aff2axcodes(image.affine) == ("L", "A", "S")


# --- demo cohort ------------------------------------------------------------------------


def test_demo_cohort_spec():
    subjects = demo.DEMO_SUBJECTS
    assert len(subjects) == 16
    ids = [s.subject_id for s in subjects]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", i) for i in ids)
    for group in ("MS", "HC"):
        members = [s for s in subjects if s.group == group]
        assert len(members) == 8
        assert {s.sex for s in members} == {"F", "M"}
        ages = [s.age_years for s in members if s.age_years is not None]
        for low, high in ((18, 30), (30, 40), (40, 50), (50, 60), (60, 200)):
            assert any(low <= age < high for age in ages), (group, low)
    assert sum(s.age_years is None for s in subjects) == 1


def test_phantom_for_is_reproducible_and_differs_between_subjects():
    first = demo.phantom_for("demo-MS-01", seed=1)
    assert np.array_equal(first.flair, demo.phantom_for("demo-MS-01", seed=1).flair)
    assert not np.array_equal(first.flair, demo.phantom_for("demo-MS-02", seed=1).flair)
    assert not np.array_equal(first.flair, demo.phantom_for("demo-MS-01", seed=2).flair)


def test_phantom_for_missing_age_and_unknown_id():
    missing = next(s.subject_id for s in demo.DEMO_SUBJECTS if s.age_years is None)
    assert demo.phantom_for(missing, seed=0).flair.dtype == np.int16
    with pytest.raises(KeyError, match="not a demo subject"):
        demo.phantom_for("sub-unknown", seed=0)


def test_demo_sheet():
    rows = demo.demo_sheet_rows("demo")
    assert [list(row) for row in rows] == [list(demo.SHEET_COLUMNS)] * 16
    first = rows[0]
    assert first["flair"] == f"demo/{first['subject_id']}/flair.nii.gz"
    assert first["wmh_mask"] == f"demo/{first['subject_id']}/wmh_manual.nii.gz"
    assert first["ventricles_mask"] == f"demo/{first['subject_id']}/ventricles_manual.nii.gz"
    assert {row["skull_stripped"] for row in rows} == {"false"}
    assert sorted(row["age"] for row in rows if not row["age"].isdigit()) == [""]


def test_shipped_sheet_is_the_demo_cohort():
    """config/subjects.tsv lists exactly the demo subjects, as demo_sheet_rows writes them."""
    data = (Path(__file__).resolve().parents[1] / "config" / "subjects.tsv").read_bytes()
    assert b"\r" not in data
    lines = data.decode().splitlines()
    assert lines[0].split("\t") == list(demo.SHEET_COLUMNS)
    assert [line.split("\t") for line in lines[1:]] == [
        [row[c] for c in demo.SHEET_COLUMNS] for row in demo.demo_sheet_rows("../resources/demo")
    ]
