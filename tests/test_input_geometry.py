"""Input geometry and header fidelity, on copies of the real sample subject 104252 built here.

Every case is a kind of input clinical cohorts contain: thick slices of another plane, a
tilted header, partial coverage, a qform that disagrees with the sform, an unknown
orientation, the same scan pre-stripped, on a 512 matrix or at 1 mm isotropic in another axis
order, a 5-D file, NaN outside the head, and manual masks in another axis order. Each runs
the three per-subject jobs (preprocess, segment, lesion metrics) in-process, once per module.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from nibabel.processing import resample_from_to

from msprofile.geometry import Grid, HeaderGeometry, acquisition, resample
from msprofile.io import InputImageError, load_image, load_json, load_manual_labels, read_header_geometry
from msprofile.jobs.lesions import canonical_rule_inputs, lesion_metrics_subject
from msprofile.jobs.preprocess import preprocess_subject
from msprofile.jobs.segmentation import segment_subject
from msprofile.lesions import lesion_profile
from msprofile.preprocess import PreprocessSettings, preprocess
from msprofile.qc import qc_flags

import representations as rep
from conftest import REPO, SampleSubject

#: The shipped default model, as the workflow runs it.
MODEL = REPO / yaml.safe_load((REPO / "config" / "config.yaml").read_text())["segmentation"]["model"]
SUBJECT = "104252"
NATIVE_OUTPUTS = (
    "brain_mask.nii.gz",
    "segmentation.nii.gz",
    "segmentation_uncertainty.nii.gz",
    "lesion_classes.nii.gz",
)


@dataclass
class Run:
    """One case through preprocess, segment and lesion_metrics: its input file and outputs."""

    folder: Path
    input_path: Path
    qc: dict
    metrics: dict

    def output(self, name: str) -> Path:
        return self.folder / name


def run_jobs(folder: Path, image: nib.Nifti1Image, *, skull_stripped: bool = False, subject_id: str = SUBJECT) -> Run:
    folder.mkdir(parents=True, exist_ok=True)
    input_path = folder / "flair.nii.gz"
    nib.save(image, input_path)
    qc = preprocess_subject(
        subject_id,
        input_path,
        skull_stripped=skull_stripped,
        settings=PreprocessSettings(),
        brain_mask_path=folder / "brain_mask.nii.gz",
        flair_preproc_path=folder / "flair_preproc.nii.gz",
        qc_json_path=folder / "preprocess_qc.json",
        qc_png_path=folder / "preprocess_qc.png",
    )
    segment_subject(
        subject_id,
        folder / "flair_preproc.nii.gz",
        folder / "brain_mask.nii.gz",
        MODEL,
        folder / "segmentation.nii.gz",
        folder / "segmentation_uncertainty.nii.gz",
        threads=2,
    )
    metrics = lesion_metrics_subject(
        subject_id,
        folder / "segmentation.nii.gz",
        folder / "segmentation_uncertainty.nii.gz",
        input_path,
        folder / "brain_mask.nii.gz",
        MODEL / "model.json",
        folder / "lesions.parquet",
        folder / "lesion_classes.nii.gz",
        folder / "metrics.json",
        stats_path=folder / "lesion_stats.tsv",
        qc_png_path=folder / "segmentation_qc.png",
    )
    return Run(folder, input_path, qc, metrics)


def raw_header(path: Path) -> nib.Nifti1Header:
    """The header as stored in the file (nibabel's loaded images report scaling as NaN, since
    their data object applies it)."""
    with gzip.open(path) as stream:
        return nib.Nifti1Header.from_fileobj(stream)


@pytest.fixture(scope="module")
def subject() -> SampleSubject:
    return SampleSubject(SUBJECT)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("input_geometry")


@pytest.fixture(scope="module")
def original(subject, workdir) -> Run:
    return run_jobs(workdir / "original", rep.nifti(subject.flair, subject.affine))


def assert_volumes_within_bounds(case: Run, original: Run) -> None:
    """Lesion and ventricle volumes within 10 % of the original's; each lesion class's volume
    within 50 % or 0.1 mL of it, whichever is larger."""
    for key in ("ventricle_volume_ml", "lesion_volume_ml"):
        assert case.metrics[key] == pytest.approx(original.metrics[key], rel=0.10), key
    assert_classes_within_bounds(case.metrics, original)


def assert_classes_within_bounds(metrics: dict, original: Run, *context) -> None:
    """Each lesion class's volume within 50 % or 0.1 mL of the original's, whichever is larger."""
    for key in ("pewmh_volume_ml", "pawmh_volume_ml", "jcwmh_volume_ml"):
        bound = max(0.5 * original.metrics[key], 0.1)
        assert abs(metrics[key] - original.metrics[key]) <= bound, (*context, key, metrics[key], original.metrics[key])


# --- the acquisition plane ----------------------------------------------------------------------


def test_acquisition_plane_from_voxel_sizes_and_affine(subject):
    native = Grid(subject.flair.shape, subject.affine)
    axial = acquisition(native)
    assert (axial.kind, axial.plane, axial.slice_axis) == ("2d", "axial", 2)
    assert axial.slice_thickness_mm == pytest.approx(6.5, abs=0.01) and 15 < axial.tilt_deg < 17
    iso = rep.regrid(subject.flair[:64, :64, :4], subject.affine, [1.0, 1.0, 1.0])[1]
    sagittal_storage = rep.permuted(np.zeros((3, 3, 3)), iso)[1]
    three_d = acquisition(Grid((200, 230, 230), sagittal_storage))
    assert three_d.kind == "3d" and three_d.plane == "axial" and three_d.slice_axis == 1
    slabs = rep.slabs(np.zeros((10, 4, 4)), iso, axis=0, n=5)[1]
    sagittal = acquisition(Grid((2, 4, 4), slabs))
    assert (sagittal.kind, sagittal.plane, sagittal.slice_axis) == ("2d", "sagittal", 0)
    assert "sagittal" in sagittal.problem(30.0) and axial.problem(30.0) is None


@pytest.mark.slow
def test_sagittal_thick_slabs_are_refused_naming_subject_file_and_plane(subject, workdir):
    iso, iso_affine = rep.regrid(subject.flair, subject.affine, [1.0, 1.0, 1.0])
    slab_data, slab_affine = rep.slabs(iso, iso_affine, axis=0, n=5)
    data, affine = rep.permuted(slab_data, slab_affine, axes=(1, 2, 0), flip=())
    assert data.shape == (230, 130, 46)
    with pytest.raises(InputImageError) as refused:
        run_jobs(workdir / "sagittal", rep.nifti(data, affine))
    message = str(refused.value)
    assert message.startswith(f"subject {SUBJECT}: ") and str(workdir / "sagittal" / "flair.nii.gz") in message
    assert "2-D acquisition of 5.0 mm sagittal slices" in message


@pytest.mark.slow
@pytest.mark.parametrize("degrees,words", [(50.0, "coronal slices"), (-50.0, "axial slices tilted 34 degrees")])
def test_thick_slices_tilted_beyond_the_limit_are_refused(subject, workdir, degrees, words):
    affine = rep.tilted(subject.affine, subject.flair.shape, degrees)
    with pytest.raises(InputImageError) as refused:
        run_jobs(workdir / f"tilt{degrees:+.0f}", rep.nifti(subject.flair, affine))
    assert words in str(refused.value) and f"subject {SUBJECT}: " in str(refused.value)


# --- coverage -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("n_slices", [1, 3])
def test_partial_coverage_fails_qc(subject, workdir, original, n_slices):
    case = run_jobs(
        workdir / f"slices{n_slices}", rep.nifti(*rep.middle_slices(subject.flair, subject.affine, n_slices))
    )
    assert case.qc["brain_slices"] == n_slices
    assert "partial_brain_coverage" in qc_flags(case.qc)
    assert "intracranial_volume_implausible" not in qc_flags(case.qc), "a slab's volume is not judged as a head's"
    assert qc_flags(original.qc) == []


# --- the header ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_native_outputs_keep_the_input_geometry_and_scaling(original):
    source = raw_header(original.input_path)
    for name in NATIVE_OUTPUTS:
        header = raw_header(original.output(name))
        assert int(header["sform_code"]) == int(source["sform_code"]) == 2, name
        assert int(header["qform_code"]) == int(source["qform_code"]) == 0, name
        np.testing.assert_allclose(header.get_sform(), source.get_sform(), atol=1e-4, err_msg=name)
        np.testing.assert_allclose(header.get_qform(), source.get_qform(), atol=1e-4, err_msg=name)
    for name in (*NATIVE_OUTPUTS, "flair_preproc.nii.gz"):
        header = raw_header(original.output(name))
        assert (float(header["scl_slope"]), float(header["scl_inter"])) == (1.0, 0.0), name


@pytest.mark.slow
def test_qform_sform_disagreement_is_flagged_and_outputs_keep_both(subject, workdir, original):
    qform = rep.tilted(subject.affine, subject.flair.shape, 10.0)
    qform[:3, 3] += [25.0, 0.0, 0.0]
    image = rep.nifti(subject.flair, subject.affine, qform=qform, qform_code=1, sform_code=2)
    case = run_jobs(workdir / "qform", image)
    assert case.qc["header"]["affine_source"] == "sform"
    assert case.qc["header"]["qform_sform_rotation_deg"] == pytest.approx(10.0, abs=0.01)
    assert "qform_sform_disagree" in qc_flags(case.qc)
    source = read_header_geometry(case.input_path)
    for name in NATIVE_OUTPUTS:
        out = read_header_geometry(case.output(name))
        assert (out.qform_code, out.sform_code) == (1, 2), name
        np.testing.assert_allclose(out.qform, source.qform, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(out.sform, source.sform, atol=1e-4, err_msg=name)
    # The sform was used: the numbers are the original's.
    assert case.metrics["lesion_volume_ml"] == pytest.approx(original.metrics["lesion_volume_ml"], rel=1e-6)


@pytest.mark.slow
def test_unknown_orientation_is_flagged_and_outputs_claim_no_scanner_space(subject, workdir, original):
    case = run_jobs(workdir / "codes0", rep.nifti(subject.flair, subject.affine, sform_code=0, qform_code=0))
    assert case.qc["header"]["affine_source"] == "none"
    assert "orientation_unknown" in qc_flags(case.qc)
    for name in NATIVE_OUTPUTS:
        out = read_header_geometry(case.output(name))
        assert (out.sform_code, out.qform_code) == (0, 0), name
    model_grid = read_header_geometry(case.output("flair_preproc.nii.gz"))
    assert (model_grid.sform_code, model_grid.qform_code) == (2, 2), "aligned to the input, not scanner space"
    assert case.metrics["lesion_volume_ml"] == pytest.approx(original.metrics["lesion_volume_ml"], rel=0.02)


# --- representation invariance -----------------------------------------------------------------


@pytest.mark.slow
def test_pre_stripped_copy_gives_the_same_volumes(subject, workdir, original):
    brain = np.asarray(nib.load(original.output("brain_mask.nii.gz")).dataobj) > 0
    case = run_jobs(workdir / "stripped", rep.nifti(subject.flair * brain, subject.affine), skull_stripped=True)
    assert case.qc["skull_stripped_input"] and qc_flags(case.qc) == []
    assert_volumes_within_bounds(case, original)


OTHER_SUBJECTS = ("105074", "105465", "105755")


@pytest.fixture(scope="module")
def other_original(workdir):
    """The original run of another sample subject, once per module: ``(subject, run)``."""
    runs: dict[str, tuple[SampleSubject, Run]] = {}

    def get(subject_id: str) -> tuple[SampleSubject, Run]:
        if subject_id not in runs:
            other = SampleSubject(subject_id)
            folder = workdir / subject_id / "original"
            runs[subject_id] = (other, run_jobs(folder, rep.nifti(other.flair, other.affine), subject_id=subject_id))
        return runs[subject_id]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("subject_id", OTHER_SUBJECTS)
def test_pre_stripped_copies_of_the_other_sample_subjects_give_the_same_volumes(subject_id, workdir, other_original):
    """msprofile-default (whole slices with scalp z-scored) moved these subjects' lesion volumes
    by +12 to +73 % when given their skull-stripped copies; the brain-only input does not."""
    other, original = other_original(subject_id)
    brain = np.asarray(nib.load(original.output("brain_mask.nii.gz")).dataobj) > 0
    stripped = rep.nifti(other.flair * brain, other.affine)
    case = run_jobs(workdir / subject_id / "stripped", stripped, skull_stripped=True, subject_id=subject_id)
    assert case.qc["skull_stripped_input"] and qc_flags(case.qc) == []
    assert_volumes_within_bounds(case, original)


@pytest.mark.slow
def test_512_matrix_gives_the_same_volumes(subject, workdir, original):
    data, affine = rep.zero_filled(subject.flair, subject.affine, 2)
    assert data.shape == (512, 512, 20)
    case = run_jobs(workdir / "matrix512", rep.nifti(data, affine))
    assert case.metrics["rule_pixel_area_mm2"] == pytest.approx(original.metrics["pixel_area_mm2"])
    assert_volumes_within_bounds(case, original)
    assert qc_flags(case.qc) == []


@pytest.mark.slow
@pytest.mark.parametrize("subject_id", OTHER_SUBJECTS)
def test_512_matrix_of_the_other_sample_subjects_gives_the_same_volumes(subject_id, workdir, other_original):
    """Classified on the 0.45 mm pixels themselves, 105465's juxtacortical volume grew from
    1.15 to 1.73 mL (bound 0.58); on rule pixels of 0.9 mm made of them, 1.29 mL."""
    other, original = other_original(subject_id)
    matrix512 = rep.nifti(*rep.zero_filled(other.flair, other.affine, 2))
    case = run_jobs(workdir / subject_id / "matrix512", matrix512, subject_id=subject_id)
    assert_volumes_within_bounds(case, original)
    assert qc_flags(case.qc) == []


def one_mm_stored_sagittally(flair: np.ndarray, affine: np.ndarray) -> tuple[nib.Nifti1Image, int]:
    """The scan resampled to 1 mm isotropic (cubic spline) and stored sagittally, and its number
    of axial 1 mm slices."""
    iso, iso_affine = rep.regrid(flair, affine, [1.0, 1.0, 1.0])
    return rep.nifti(*rep.permuted(iso, iso_affine, axes=(1, 2, 0), flip=(0,))), iso.shape[2]


def assert_classes_within_bounds_at_every_slab_place(case: Run, original: Run, subject_id: str, n: int) -> None:
    """The case's segmentation classified with the lesion rule's slabs of ``n`` slices at each
    of their ``n`` places, each lesion class within the bounds (:func:`assert_classes_within_bounds`)."""
    labels, affine = load_image(case.output("segmentation.nii.gz"), subject_id, dtype=np.uint8)
    arrays, canonical = canonical_rule_inputs(
        subject_id, labels, Grid(labels.shape, affine), case.input_path, case.output("brain_mask.nii.gz")
    )
    thickness_mm = canonical.voxel_size_mm[2]
    for place in range(n):
        metrics = lesion_profile(*arrays, canonical.voxel_size_mm, slice_origin_mm=place * thickness_mm).metrics
        assert_classes_within_bounds(metrics, original, place)


@pytest.fixture(scope="module")
def iso_run(subject, original, workdir, other_original):
    """The 1 mm copy of a sample subject through the three jobs, once per module, with its
    original run: ``(original, case, number of axial 1 mm slices)``."""
    runs: dict[str, tuple[Run, Run, int]] = {}

    def get(subject_id: str) -> tuple[Run, Run, int]:
        if subject_id not in runs:
            sample, first = (subject, original) if subject_id == SUBJECT else other_original(subject_id)
            image, axial_slices = one_mm_stored_sagittally(sample.flair, sample.affine)
            case = run_jobs(workdir / subject_id / "iso_sagittal", image, subject_id=subject_id)
            runs[subject_id] = (first, case, axial_slices)
        return runs[subject_id]

    return get


@pytest.mark.slow
def test_1mm_isotropic_stored_sagittally_gives_the_same_volumes(iso_run):
    original, case, axial_slices = iso_run(SUBJECT)
    assert case.qc["acquisition"]["kind"] == "3d" and case.qc["acquisition"]["plane"] == "axial"
    assert case.qc["model_grid"]["shape"][2] == axial_slices, "the 1 mm slices are segmented as they are"
    assert case.metrics["slices_per_rule_slice"] == 7, "the lesion rule runs on 7 mm slabs of them"
    assert_volumes_within_bounds(case, original)
    assert qc_flags(case.qc) == []


@pytest.mark.slow
def test_1mm_isotropic_keeps_the_periventricular_split_of_another_subject(iso_run):
    """105074 at 1 mm: the lesion rule's 6.5 mm slabs show the ventricle where half of their
    sections have it (msprofile.lesions.SLAB_VENTRICLE_FRACTION); with any section, the
    ventricles grew to their largest section and 72 % of the paraventricular volume (3.91 ->
    1.09 mL) was called periventricular."""
    original, case, _ = iso_run("105074")
    assert case.metrics["slices_per_rule_slice"] == 7
    for key in ("ventricle_volume_ml", "lesion_volume_ml"):
        assert case.metrics[key] == pytest.approx(original.metrics[key], rel=0.10), key
    for key in ("pewmh_volume_ml", "pawmh_volume_ml"):
        assert case.metrics[key] == pytest.approx(original.metrics[key], rel=0.15), key


@pytest.mark.slow
@pytest.mark.parametrize("subject_id", [SUBJECT, "105074", "105755"])
def test_1mm_lesion_classes_hold_wherever_the_slabs_fall(iso_run, subject_id):
    """The rule's 7-slice slabs are anchored in scanner space, so where they fall on the
    anatomy depends on where the head lay: the same 1 mm segmentation with its slabs at each
    of the 7 possible places keeps the three lesion classes within the bounds. With slabs
    showing the ventricle where a quarter of their sections have it, 104252 failed at 2 of
    the 7, 105074 at 3 and 105755 at 4. (105465's juxtacortical volume is about half its
    thick slices' at every place, outside the bound at 3: a known limit, README.)"""
    original, case, _ = iso_run(subject_id)
    assert_classes_within_bounds_at_every_slab_place(case, original, subject_id, 7)


@pytest.mark.slow
@pytest.mark.parametrize("subject_id", ["105074", "105755"])
def test_2mm_slices_keep_the_lesion_classes_wherever_the_slabs_fall(workdir, other_original, subject_id):
    """Resampled to 2.2 mm slices (isbi02's), the rule groups them in slabs of 3: at each of
    the 3 places the slabs can take the lesion classes stay within the bounds. With slabs
    showing the ventricle where a quarter of their sections have it, both failed at 2 of 3."""
    other, original = other_original(subject_id)
    pixel_mm = Grid(other.flair.shape, other.affine).voxel_size_mm[:2]
    thin = rep.nifti(*rep.regrid(other.flair, other.affine, [*pixel_mm, 2.2]))
    case = run_jobs(workdir / subject_id / "slices_2mm", thin, subject_id=subject_id)
    assert case.metrics["slices_per_rule_slice"] == 3
    assert_classes_within_bounds_at_every_slab_place(case, original, subject_id, 3)


# --- friction with valid input --------------------------------------------------------------------


@pytest.mark.slow
def test_singleton_trailing_dimensions_are_accepted(subject, workdir, original):
    case = run_jobs(workdir / "five_d", rep.nifti(subject.flair[..., None, None], subject.affine))
    assert nib.load(case.input_path).shape == (256, 256, 20, 1, 1)
    assert case.metrics == {**original.metrics}


@pytest.mark.slow
def test_nan_background_is_set_to_zero_and_counted(subject, workdir, original):
    data, n_nan = rep.nan_background(subject.flair)
    assert n_nan > 100_000
    case = run_jobs(workdir / "nan_background", rep.nifti(data, subject.affine))
    assert case.qc["nonfinite_voxels_set_to_zero"] == n_nan
    for key in ("ventricle_volume_ml", "lesion_volume_ml"):
        assert case.metrics[key] == pytest.approx(original.metrics[key], rel=0.10), key
    assert load_json(case.output("preprocess_qc.json"))["nonfinite_voxels_set_to_zero"] == n_nan


def test_nan_in_the_brain_is_refused(subject, tmp_path):
    data = subject.flair.copy()
    data[100:140, 100:140, 10] = np.nan
    path = tmp_path / "flair.nii.gz"
    nib.save(rep.nifti(data, subject.affine), path)
    with pytest.raises(InputImageError, match="1600 voxels are NaN or infinite, 1600 of them in the head"):
        preprocess_subject(
            SUBJECT,
            path,
            skull_stripped=False,
            settings=PreprocessSettings(),
            brain_mask_path=tmp_path / "b.nii.gz",
            flair_preproc_path=tmp_path / "f.nii.gz",
            qc_json_path=tmp_path / "q.json",
            qc_png_path=tmp_path / "q.png",
        )


def test_masks_in_another_axis_order_are_reoriented(subject, tmp_path):
    native = Grid(subject.flair.shape, subject.affine)
    for name, mask in (("wmh", subject.lesions), ("ventricles", subject.ventricles)):
        data, affine = rep.permuted(mask.astype(np.uint8), subject.affine, axes=(1, 0, 2), flip=(1,))
        nib.save(rep.nifti(data, affine), tmp_path / f"{name}.nii.gz")
    labels, grid, classes = load_manual_labels(SUBJECT, tmp_path / "wmh.nii.gz", tmp_path / "ventricles.nii.gz", native)
    assert grid is native
    assert classes == ("ventricles", "lesions")
    np.testing.assert_array_equal(labels == 2, subject.lesions)
    np.testing.assert_array_equal(labels == 1, subject.ventricles & ~subject.lesions)


def test_a_mask_on_another_grid_is_described_by_both_grids(subject, tmp_path):
    native = Grid(subject.flair.shape, subject.affine)
    shifted = subject.affine.copy()
    shifted[:3, 3] += 5.0
    nib.save(rep.nifti(subject.lesions.astype(np.uint8), shifted), tmp_path / "wmh.nii.gz")
    nib.save(rep.nifti(subject.ventricles.astype(np.uint8), subject.affine), tmp_path / "ventricles.nii.gz")
    with pytest.raises(InputImageError) as refused:
        load_manual_labels(SUBJECT, tmp_path / "wmh.nii.gz", tmp_path / "ventricles.nii.gz", native)
    message = str(refused.value)
    assert message.startswith(f"subject {SUBJECT}: {tmp_path / 'wmh.nii.gz'}: lesion mask is not on the FLAIR's grid")
    assert message.count("shape (256, 256, 20)") == 2 and message.count("voxels 0.898 x 0.898 x 6.500 mm") == 2
    assert f" {subject.affine[0, 3] + 5:.3f};" in message and f" {subject.affine[0, 3]:.3f};" in message


def test_header_geometry_difference_and_codes():
    sform = np.diag([0.9, 0.9, 6.5, 1.0])
    same = HeaderGeometry(sform, 1, sform, 1)
    assert same.qform_sform_difference() == pytest.approx((0.0, 0.0), abs=1e-9)
    shifted = sform.copy()
    shifted[0, 3] = 25.0
    assert HeaderGeometry(sform, 1, shifted, 1).qform_sform_difference()[1] == pytest.approx(25.0)
    assert HeaderGeometry(sform, 2, sform, 0).qform_sform_difference() is None
    assert HeaderGeometry(sform, 0, sform, 0).affine_source == "none"
    assert HeaderGeometry(sform, 0, sform, 0).space_code == 2
    assert HeaderGeometry(sform, 0, sform, 1).affine_source == "qform"


@pytest.mark.slow
def test_3d_data_tilted_beyond_the_limit_is_resliced_onto_scanner_axial_slices(subject):
    iso, iso_affine = rep.regrid(subject.flair, subject.affine, [2.0, 2.0, 2.0], order=1)
    oblique = rep.tilted(iso_affine, iso.shape, 40.0)
    data = np.asarray(
        resample_from_to(nib.Nifti1Image(iso, iso_affine), (iso.shape, oblique), order=1).dataobj, dtype=np.float32
    )
    native = Grid(data.shape, oblique)
    acquired = acquisition(native)
    assert acquired.kind == "3d" and acquired.tilt_deg > 30
    result = preprocess(data, oblique)
    model = result.model
    # Scanner-axial slices: the model grid's axes are the scanner's, 0.9 mm pixels, 2 mm slices.
    np.testing.assert_allclose(model.affine[:3, :3], np.diag([0.9, 0.9, 2.0]), atol=1e-9)
    # The whole brain is on it: the brain mask taken there keeps its volume.
    brain_on_model = resample(result.brain_mask, native, model, order=0)
    brain_ml = result.brain_mask.sum() * native.voxel_volume_ml
    assert brain_on_model.sum() * model.voxel_volume_ml == pytest.approx(brain_ml, rel=0.03)
    # And the image is the input's, moved: inside the brain it correlates with a plain reslice.
    plain = resample(data, native, model, order=1)
    inside = brain_on_model > 0
    assert np.corrcoef(plain[inside], result.flair[inside])[0, 1] > 0.9
