"""Shared fixtures: the real sample data in ../shared/data and helpers to run the workflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
FLAIR_SAMPLE = SHARED_DATA / "flair_sample"
SAMPLE_IDS = ("104252", "105074", "105465", "105755")
ISBI_SAMPLE = SHARED_DATA / "isbi_sample"


COHORT_SEED_TABLE = SHARED_DATA / "cohort_seed" / "brain_mri_analysis_results_PROCESSED_updated.csv"
LESJAK = SHARED_DATA / "lesjak_longitudinal"


def require_shared_data(path: Path, what: str) -> Path:
    """``path`` (under ../shared/data), or stop the test where it is absent: locally it skips
    with a message saying where the data should be; under CI (environment variable ``CI`` set)
    it fails, so that a CI run without the data cannot pass by skipping every real-data test."""
    if path.exists():
        return path
    message = f"{what} not found at {path} (it ships beside the repository as ../shared/data)"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {message}: the CI machine must provide ../shared/data", pytrace=False)
    pytest.skip(message)


def require_flair_sample() -> Path:
    """The real sample folder ../shared/data/flair_sample (see :func:`require_shared_data`)."""
    return require_shared_data(FLAIR_SAMPLE / "subjects.tsv", "real FLAIR sample").parent


def require_reference_table() -> Path:
    """The reference study's 1,380-subject cohort table (see :func:`require_shared_data`)."""
    return require_shared_data(COHORT_SEED_TABLE, "reference cohort table")


def require_lesjak() -> Path:
    """Another site's skull-on FLAIRs with brain masks, ../shared/data/lesjak_longitudinal (see
    :func:`require_shared_data`)."""
    return require_shared_data(LESJAK / "scans.tsv", "Lesjak longitudinal FLAIRs").parent


def lesjak_reference_brain_mask(patient: str, study: int) -> np.ndarray:
    """The database's brain mask of ``patient`` (e.g. ``"patient01"``) on the grid of its raw
    ``study`` FLAIR (bool, the NIfTI's array order, as nibabel reads it).

    The mask lies on the patient's common-space grid; ``studyS_to_common_space.txt`` is an ITK
    transform that maps a common-space point to the raw FLAIR's point (LPS mm), so the mask is
    resampled onto the FLAIR through its inverse (SimpleITK: the reading of ITK transform files
    and the LPS handling are ITK's own), linearly, and kept where at least half a voxel is brain.
    """
    import SimpleITK as sitk

    folder = require_lesjak() / patient
    flair = sitk.ReadImage(str(folder / f"study{study}_flair.nii.gz"))
    common_mask = sitk.ReadImage(str(folder / "brainmask_common_space.nii.gz"), sitk.sitkFloat32)
    common_to_flair = sitk.ReadTransform(str(folder / f"study{study}_to_common_space.txt"))
    on_flair = sitk.Resample(common_mask, flair, common_to_flair.GetInverse(), sitk.sitkLinear, 0.0)
    # SimpleITK arrays are (z, y, x); nibabel's are (x, y, z).
    return sitk.GetArrayFromImage(on_flair).transpose(2, 1, 0) >= 0.5


def require_isbi_sample() -> Path:
    """The ISBI 2015 validation scans (another scanner, lesion masks of two raters) (see
    :func:`require_shared_data`)."""
    return require_shared_data(ISBI_SAMPLE / "subjects.tsv", "ISBI sample").parent


class SampleSubject:
    """One real sample subject: FLAIR data and manual masks (bool), all on the native grid."""

    def __init__(self, subject_id: str):
        folder = require_flair_sample() / subject_id
        self.subject_id = subject_id
        self.flair_path = folder / "flair.nii.gz"
        img = nib.load(self.flair_path)
        self.affine = img.affine
        self.flair = np.asarray(img.dataobj, dtype=np.float32)
        self.lesions = np.asarray(nib.load(folder / "wmh_manual.nii.gz").dataobj) > 0
        self.ventricles = np.asarray(nib.load(folder / "ventricles_manual.nii.gz").dataobj) > 0


@pytest.fixture(scope="session", params=SAMPLE_IDS)
def sample_subject(request) -> SampleSubject:
    return SampleSubject(request.param)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * (a & b).sum() / total)


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run this repository's workflow in ``workdir`` (which holds config/ and a sheet).

    Snakemake comes from the same environment as the tests, so the test of a clean
    checkout exercises exactly what the README installs.
    """
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        )
    return result


def planned_jobs(project: Path, *args: str) -> dict[str, int]:
    """``{rule: number of jobs}`` that ``snakemake --dry-run`` would run in ``project``."""
    result = run_snakemake(project, "--dry-run", "--quiet", "rules", *args)
    output = result.stdout + result.stderr
    if "Nothing to be done" in output:
        return {}
    counts = {}
    for line in output[output.index("Job stats:") :].splitlines()[3:]:
        fields = line.split()
        if len(fields) != 2 or fields[0] == "total":
            break
        counts[fields[0]] = int(fields[1])
    return counts


def make_project(tmp_path: Path, sheet_text: str | None = None, config_changes: dict | None = None) -> Path:
    """A user's project folder: the repository's config (with ``config_changes`` merged into
    its sections), the shipped models, and the given sheet (default: the demo's)."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "models").symlink_to(REPO / "resources" / "models")
    if sheet_text is not None:
        (tmp_path / "config" / "subjects.tsv").write_text(sheet_text)
    if config_changes:
        change_config(tmp_path, config_changes)
    return tmp_path


def change_config(project: Path, changes: dict) -> None:
    """Merge ``changes`` into the sections of the project's ``config/config.yaml``."""
    config_path = project / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    for section, values in changes.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    config_path.write_text(yaml.safe_dump(config))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """A finished local run of the demo cohort (the README's main command), shared by the
    tests that read its outputs and must not change them."""
    project = make_project(tmp_path_factory.mktemp("demo"))
    run_snakemake(project, "--cores", "2")
    return project


#: The BIDS dataset of :func:`make_bids_dataset`: (participant, session, sample subject whose FLAIR it holds).
BIDS_SCANS = (("01", "01", "104252"), ("01", "02", "104252"), ("02", "01", "105074"), ("03", "01", "105465"))
#: participants.tsv of :func:`make_bids_dataset`: label -> (age, sex, group), sexes spelt as BIDS recommends.
BIDS_PARTICIPANTS = {"01": ("44", "male", "MS"), "02": ("39", "F", "MS"), "03": ("n/a", "female", "HC")}
#: sub-01_sessions.tsv: the age of participant 01 at each session.
BIDS_SESSION_AGES = {"01": 44.0, "02": 45.5}


def make_bids_dataset(root: Path) -> Path:
    """A BIDS dataset at ``root`` from the real sample: :data:`BIDS_SCANS` (participant 01 scanned
    in two sessions, here twice the same scan), ``participants.tsv`` (:data:`BIDS_PARTICIPANTS`)
    and ``sub-01_sessions.tsv`` with the age at each session."""
    sample = require_flair_sample()
    (root / "dataset_description.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text('{"Name": "msprofile test", "BIDSVersion": "1.10.0"}\n')
    for label, session, sample_id in BIDS_SCANS:
        anat = root / f"sub-{label}" / f"ses-{session}" / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample / sample_id / "flair.nii.gz", anat / f"sub-{label}_ses-{session}_FLAIR.nii.gz")
    rows = ["participant_id\tage\tsex\tgroup"]
    rows += [f"sub-{label}\t{age}\t{sex}\t{group}" for label, (age, sex, group) in BIDS_PARTICIPANTS.items()]
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    ages = "".join(f"ses-{session}\t{age}\n" for session, age in BIDS_SESSION_AGES.items())
    (root / "sub-01" / "sub-01_sessions.tsv").write_text("session_id\tage\n" + ages)
    return root
