"""BIDS in and out: the scan table from a BIDS dataset, its errors, the derivatives, the command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from msprofile import __version__
from msprofile.bids_input import BidsInputError, load_bids_scans
from msprofile.derivatives import DERIVATIVES, PYBIDS_IGNORE, BidsScan, DerivativesError, bids_scans
from msprofile.io import save_nifti
from msprofile.jobs.derivatives import write_bids_derivatives
from msprofile.sheet import OUTPUT_COLUMNS

from conftest import (
    BIDS_PARTICIPANTS,
    BIDS_SCANS,
    BIDS_SESSION_AGES,
    REPO,
    make_bids_dataset,
    make_project,
    run_snakemake,
)

# ---------------------------------------------------------------------------------------------
# The scan table from a BIDS dataset (empty image files: indexing never opens them)


def _dataset(root: Path, files, participants: str | None, description: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if description:
        (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.10.0"}')
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    if participants is not None:
        (root / "participants.tsv").write_text(participants)
    return root


PARTICIPANTS = "participant_id\tage\tsex\tgroup\nsub-01\t44\tM\tMS\nsub-02\tn/a\tfemale\tHC\nsub-10\t89+\tother\tMS\n"
FILES = (
    "sub-01/ses-2/anat/sub-01_ses-2_FLAIR.nii.gz",
    "sub-01/ses-10/anat/sub-01_ses-10_FLAIR.nii.gz",
    "sub-01/ses-2/func/sub-01_ses-2_task-rest_bold.nii.gz",
    "sub-02/ses-2/anat/sub-02_ses-2_FLAIR.nii",
    "sub-02/ses-2/anat/sub-02_ses-2_T1w.nii.gz",
    "sub-10/ses-2/anat/sub-10_ses-2_FLAIR.nii.gz",
)


def test_scans_of_a_bids_dataset(tmp_path):
    root = _dataset(tmp_path / "ds", FILES, PARTICIPANTS)
    (root / "sub-01" / "sub-01_sessions.tsv").write_text("session_id\tage\nses-2\t44.5\nses-10\tn/a\n")
    scans = load_bids_scans(root)
    assert tuple(scans.columns) == OUTPUT_COLUMNS and scans.index.name == "scan_id"
    # Sorted naturally: participant 10 after 02, session 10 after 2.
    assert list(scans.index) == ["sub-01_ses-2", "sub-01_ses-10", "sub-02_ses-2", "sub-10_ses-2"]
    assert list(scans["subject_id"]) == ["sub-01", "sub-01", "sub-02", "sub-10"]
    assert list(scans["session"]) == ["2", "10", "2", "2"]
    assert scans.loc["sub-01_ses-2", "age"] == 44.5, "the age at the session, from sessions.tsv"
    assert scans.loc["sub-01_ses-10", "age"] == 44.0, "participants.tsv where sessions.tsv says n/a"
    assert np.isnan(scans.loc["sub-02_ses-2", "age"]) and scans.loc["sub-10_ses-2", "age"] == 89.0
    assert list(scans["sex"]) == ["M", "M", "F", ""] and list(scans["group"]) == ["MS", "MS", "HC", "MS"]
    assert scans.loc["sub-02_ses-2", "flair"].endswith("sub-02_ses-2_FLAIR.nii")
    assert (scans[["wmh_mask", "ventricles_mask", "brain_mask"]] == "").all().all()


def test_label_filters_and_column_names(tmp_path):
    renamed = PARTICIPANTS.replace("\tage\tsex\tgroup", "\tAge\tgender\tdiagnosis")
    root = _dataset(tmp_path / "ds", FILES, renamed)
    columns = {"age": "Age", "sex": "gender", "group": "diagnosis"}
    scans = load_bids_scans(root, participant_labels=["sub-01", "10"], session_labels=["ses-2"], columns=columns)
    assert list(scans.index) == ["sub-01_ses-2", "sub-10_ses-2"] and list(scans["age"]) == [44.0, 89.0]


def _problems(root: Path, **options) -> str:
    with pytest.raises(BidsInputError) as caught:
        load_bids_scans(root, **options)
    return str(caught.value)


@pytest.mark.parametrize(
    "files,participants,options,expected",
    [
        # A participant listed in participants.tsv without a FLAIR.
        (
            FILES[:3],
            PARTICIPANTS,
            {},
            ["participant sub-02: no FLAIR image", "participant sub-10: no FLAIR image", "2 problems"],
        ),
        # A participant with a FLAIR who is not in participants.tsv.
        (
            (*FILES, "sub-03/anat/sub-03_FLAIR.nii.gz"),
            PARTICIPANTS,
            {},
            ["participant sub-03: has a FLAIR but is not listed in participants.tsv"],
        ),
        # Filters that name what the dataset does not have.
        (
            FILES,
            PARTICIPANTS,
            {"participant_labels": ["07"]},
            ["participant label '07' (participant_label): no participant sub-07 in the dataset"],
        ),
        (
            FILES,
            PARTICIPANTS,
            {"session_labels": ["3"]},
            ["session label '3' (session_label): no selected participant has a FLAIR in session ses-3"],
        ),
        (
            FILES,
            PARTICIPANTS,
            {"participant_labels": ["02"], "session_labels": ["10"]},
            ["session label '10' (session_label): no selected participant has a FLAIR in session ses-10"],
        ),
        (FILES, PARTICIPANTS, {"flair_filters": {"colour": "x"}}, ["bids.flair_filters", "colour"]),
        # Two FLAIRs in one session.
        (
            (*FILES, "sub-10/ses-2/anat/sub-10_ses-2_acq-3D_FLAIR.nii.gz"),
            PARTICIPANTS,
            {},
            ["participant sub-10 session ses-2: 2 FLAIR images", "bids.flair_filters"],
        ),
        # Bad demographics.
        (
            FILES,
            PARTICIPANTS.replace("sub-02\tn/a\tfemale\tHC", "sub-02\tforty\tfemme\tPD"),
            {},
            [
                "participant sub-02 session ses-2: group 'PD' in participants.tsv is not an allowed group",
                "participant sub-02 session ses-2: age 'forty' in participants.tsv is not a number",
                "participant sub-02 session ses-2: sex 'femme' in participants.tsv is not one of",
            ],
        ),
        (FILES, PARTICIPANTS.replace("\tgroup", "\tdx"), {}, ["participants.tsv has no column 'group'"]),
        (FILES, None, {}, ["participants.tsv not found"]),
    ],
)
def test_what_the_dataset_lacks_is_named(tmp_path, files, participants, options, expected):
    message = _problems(_dataset(tmp_path / "ds", files, participants), **options)
    assert message.startswith(f"BIDS dataset {tmp_path / 'ds'}: ")
    for words in expected:
        assert words in message, message


def test_participants_without_flair_may_be_left_out(tmp_path, caplog):
    root = _dataset(tmp_path / "ds", FILES[:3], PARTICIPANTS)
    scans = load_bids_scans(root, require_flair=False)
    assert list(scans.index) == ["sub-01_ses-2", "sub-01_ses-10"]
    assert "2 participants have no FLAIR and are left out: sub-02, sub-10" in caplog.text
    # A participant asked for by name must have a FLAIR all the same.
    assert "participant sub-02: no FLAIR image" in _problems(root, participant_labels=["02"], require_flair=False)


def test_not_a_bids_dataset(tmp_path):
    assert "dataset_description.json" in _problems(_dataset(tmp_path / "ds", FILES, PARTICIPANTS, description=False))
    assert "not a folder" in _problems(tmp_path / "missing")


def test_brain_masks_from_a_derivatives_dataset(tmp_path):
    root = _dataset(tmp_path / "ds", FILES, PARTICIPANTS)
    masks = _dataset(
        tmp_path / "masks",
        [
            "sub-01/ses-2/anat/sub-01_ses-2_desc-brain_mask.nii.gz",
            "sub-01/ses-10/anat/sub-01_ses-10_desc-brain_mask.nii.gz",
            "sub-01/ses-10/anat/sub-01_ses-10_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz",
            "sub-02/ses-2/anat/sub-02_ses-2_desc-brain_mask.nii.gz",
        ],
        None,
    )
    description = {"Name": "masks", "BIDSVersion": "1.10.0", "DatasetType": "derivative"}
    (masks / "dataset_description.json").write_text(json.dumps(description | {"GeneratedBy": [{"Name": "synthstrip"}]}))
    message = _problems(root, brain_mask_dir=masks)
    assert "participant sub-10 session ses-2: no brain mask *_desc-brain_mask.nii[.gz]" in message
    scans = load_bids_scans(root, brain_mask_dir=masks, participant_labels=["01", "02"])
    assert scans.loc["sub-01_ses-10", "brain_mask"].endswith("sub-01_ses-10_desc-brain_mask.nii.gz"), "native space"
    assert scans.loc["sub-02_ses-2", "brain_mask"].endswith("sub-02_ses-2_desc-brain_mask.nii.gz")


def test_bad_bids_input_stops_the_workflow_before_any_job(tmp_path):
    root = _dataset(tmp_path / "ds", FILES[:3], PARTICIPANTS)
    project = make_project(tmp_path / "project")
    result = run_snakemake(project, "--cores", "1", "--config", f"bids_dir={root}", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "participant sub-02: no FLAIR image" in output and "participant sub-10: no FLAIR image" in output
    result = run_snakemake(
        project, "--cores", "1", "--config", f"bids_dir={root}", "bids={participant_label: ['07']}", check=False
    )
    assert "participant label '07' (participant_label): no participant sub-07" in result.stdout + result.stderr
    assert not (project / "results").exists()


def test_derivatives_need_ids_that_are_bids_labels():
    scans = pd.DataFrame(
        {"subject_id": ["s_1", "sub-2", "2", "p3"], "session": ["", "", "", "a-b"], "flair": ["x.nii"] * 4},
        index=["s_1", "sub-2", "2", "p3_ses-a-b"],
    )
    with pytest.raises(DerivativesError) as caught:
        bids_scans(scans)
    message = str(caught.value)
    assert "scan s_1: subject ID 's_1' is not letters and digits only" in message
    assert "scan 2: would have the BIDS name sub-2 of scan sub-2" in message
    assert "scan p3_ses-a-b: subject ID 'p3' or session 'a-b'" in message
    assert "bids_derivatives: false" in message


def _scan_folder(folder: Path, seed: int, *, failed: bool = False) -> Path:
    """A scan's output folder as the per-scan rules leave it (small images), or with the empty
    placeholders of a failed scan."""
    folder.mkdir(parents=True)
    if failed:
        for name in DERIVATIVES:
            (folder / name).write_bytes(b"")
        (folder / "preprocess_qc.json").write_bytes(b"")
        return folder
    rng = np.random.default_rng(seed)
    affine = np.diag([0.9, 0.9, 5.0, 1.0])
    labels = rng.integers(0, 3, (16, 16, 4)).astype(np.uint8)
    save_nifti((labels >= 0).astype(np.uint8), affine, folder / "brain_mask.nii.gz")
    save_nifti(labels, affine, folder / "segmentation.nii.gz")
    save_nifti(
        np.where(labels == 2, rng.integers(1, 4, labels.shape), 0).astype(np.uint8),
        affine,
        folder / "lesion_classes.nii.gz",
    )
    probabilities = rng.dirichlet(np.ones(3), labels.shape).astype(np.float32)
    save_nifti(probabilities, affine, folder / "probabilities.nii.gz")
    save_nifti(rng.random(labels.shape).astype(np.float32), affine, folder / "segmentation_uncertainty.nii.gz")
    (folder / "lesion_stats.tsv").write_text("class\tn_lesions\nall\t1\n")
    (folder / "preprocess_qc.json").write_text(json.dumps({"brain_mask_source": "given" if seed == 2 else "workflow"}))
    for name in ("preprocess_qc.png", "segmentation_qc.png"):
        (folder / name).write_bytes(b"\x89PNG" + bytes([seed]))
    return folder


def test_derivatives_of_scans_failed_and_gone(tmp_path):
    results = tmp_path / "results"
    scans = [
        BidsScan("sub-01_ses-01", "01", "01", "sub-01/ses-01/anat/sub-01_ses-01_FLAIR.nii.gz"),
        BidsScan("sub-02_ses-01", "02", "01", "sub-02/ses-01/anat/sub-02_ses-01_FLAIR.nii.gz"),
        BidsScan("sub-03_ses-01", "03", "01", "sub-03/ses-01/anat/sub-03_ses-01_FLAIR.nii.gz"),
    ]
    folders = [_scan_folder(results / "subjects" / s.scan_id, k, failed=k == 3) for k, s in enumerate(scans, 1)]

    def write(scans, folders):
        return write_bids_derivatives(
            scans,
            folders,
            results,
            version="9.9.9",
            raw_dir_from_results="../raw",
            probabilities=True,
            description_path=results / "dataset_description.json",
            bidsignore_path=results / ".bidsignore",
            readme_path=results / "README.md",
        )

    summary = write(scans, folders)
    assert summary["scans"] == 2 and summary["failed"] == 1
    anat = results / "sub-01" / "ses-01" / "anat"
    dseg = anat / "sub-01_ses-01_desc-ventriclesLesions_dseg.nii.gz"
    assert dseg.read_bytes() == (folders[0] / "segmentation.nii.gz").read_bytes()
    probabilities = np.asarray(nib.load(folders[0] / "probabilities.nii.gz").dataobj)
    lesions = nib.load(anat / "sub-01_ses-01_label-lesions_probseg.nii.gz")
    np.testing.assert_array_equal(np.asarray(lesions.dataobj), probabilities[..., 2])
    np.testing.assert_allclose(lesions.affine, nib.load(folders[0] / "probabilities.nii.gz").affine)
    assert not (results / "sub-03").exists(), "a failed scan has no derivatives"
    given = json.loads((results / "sub-02/ses-01/anat/sub-02_ses-01_desc-brain_mask.json").read_text())
    assert given["Type"] == "Brain" and "given with the input" in given["Description"] and "Sources" not in given
    probseg = json.loads((anat / "sub-01_ses-01_label-ventricles_probseg.json").read_text())
    assert probseg["Sources"][0] == "bids:raw:sub-01/ses-01/anat/sub-01_ses-01_FLAIR.nii.gz"
    uncertainty = anat / "sub-01_ses-01_desc-uncertainty_probseg.nii.gz"
    assert uncertainty.read_bytes() == (folders[0] / "segmentation_uncertainty.nii.gz").read_bytes()
    described = json.loads(uncertainty.with_name(uncertainty.name.replace(".nii.gz", ".json")).read_text())
    assert "not a class probability" in described["Description"]

    validator = _validator()
    if validator is not None:
        report = json.loads(
            subprocess.run([validator, "--format", "json", str(results)], capture_output=True, text=True).stdout
        )
        assert not [i for i in report["issues"]["issues"] if i["severity"] == "error"]

    assert write(scans, folders)["written"] == 0, "a rerun with nothing new writes nothing"
    # The second scan leaves the dataset: its files go, the first scan's stay.
    summary = write(scans[:1], folders[:1])
    assert summary["removed"] > 0 and not (results / "sub-02").exists() and dseg.is_file()


# ---------------------------------------------------------------------------------------------
# The workflow on a BIDS dataset made from the real sample, run by the msprofile command


@pytest.fixture(scope="module")
def bids_run(tmp_path_factory) -> tuple[Path, Path]:
    """(BIDS dataset, output folder) of ``msprofile BIDS OUTPUT participant --cores 2``."""
    root = tmp_path_factory.mktemp("bids")
    dataset = make_bids_dataset(root / "rawdata")
    output = root / "derivatives" / "msprofile"
    result = subprocess.run(
        [sys.executable, "-m", "msprofile.cli", str(dataset), str(output), "participant", "--cores", "2"],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return dataset, output


def _scan_ids():
    return [f"sub-{label}_ses-{session}" for label, session, _ in BIDS_SCANS]


@pytest.mark.slow
def test_cohort_table_has_every_scan_with_the_bids_demographics(bids_run):
    _, output = bids_run
    cohort = pd.read_parquet(output / "cohort" / "cohort.parquet")
    assert list(cohort["scan_id"]) == _scan_ids()
    assert list(cohort["subject_id"]) == [f"sub-{label}" for label, _, _ in BIDS_SCANS]
    assert list(cohort["session"]) == [session for _, session, _ in BIDS_SCANS]
    assert (cohort["status"] == "ok").all()
    expected_ages = [BIDS_SESSION_AGES["01"], BIDS_SESSION_AGES["02"], 39.0, np.nan]
    np.testing.assert_array_equal(cohort["age_years"].to_numpy(float), expected_ages)
    assert list(cohort["sex"]) == ["M", "M", "F", "F"]
    assert list(cohort["group"]) == [BIDS_PARTICIPANTS[label][2] for label, _, _ in BIDS_SCANS]
    assert (cohort["msprofile_version"] == __version__).all()
    # The two sessions of participant 01 hold the same scan: the same measures.
    first, second = cohort.iloc[0], cohort.iloc[1]
    assert first["lesion_volume_ml"] == second["lesion_volume_ml"] > 0

    tsv = pd.read_csv(output / "cohort" / "cohort.tsv", sep="\t", dtype={"session": str})
    assert list(tsv.columns) == list(cohort.columns)
    np.testing.assert_array_equal(tsv["age_years"].to_numpy(float), expected_ages)
    np.testing.assert_allclose(tsv["lesion_volume_ml"], cohort["lesion_volume_ml"], rtol=1e-12)
    # The statistics count participant 01 once.
    log = (output / "logs" / "statistics.log").read_text()
    assert "1 later sessions of 1 subjects are left out of the statistics" in log


@pytest.mark.slow
def test_every_scan_has_lesion_stats_and_qc_pictures(bids_run):
    _, output = bids_run
    for scan in _scan_ids():
        folder = output / "subjects" / scan
        stats = pd.read_csv(folder / "lesion_stats.tsv", sep="\t", keep_default_na=False)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert list(stats["class"]) == ["periventricular", "juxtacortical", "paraventricular", "all"]
        assert stats["volume_ml"].iloc[-1] == pytest.approx(metrics["lesion_volume_ml"], rel=1e-5)
        classes = np.asarray(nib.load(folder / "lesion_classes.nii.gz").dataobj)
        assert stats["n_voxels"].iloc[-1] == (classes > 0).sum() > 0
        for name in ("preprocess_qc.png", "segmentation_qc.png"):
            assert (folder / name).stat().st_size > 50_000, f"{scan}: {name}"


def _validator() -> str | None:
    return shutil.which("bids-validator-deno") or (
        str(Path(sys.executable).parent / "bids-validator-deno")
        if (Path(sys.executable).parent / "bids-validator-deno").is_file()
        else None
    )


@pytest.mark.slow
def test_derivatives_pass_the_bids_validator(bids_run):
    """The official validator (bids-standard's schema-based one, from PyPI as
    bids-validator-deno, a test dependency): no error."""
    _, output = bids_run
    validator = _validator()
    if validator is None:
        pytest.skip("bids-validator-deno is not installed (pip install -e '.[test]' installs it)")
    result = subprocess.run([validator, "--format", "json", str(output)], capture_output=True, text=True)
    report = json.loads(result.stdout)
    errors = [issue for issue in report["issues"]["issues"] if issue["severity"] == "error"]
    assert not errors, errors
    assert sorted(report["summary"]["subjects"]) == ["01", "02", "03"]
    assert sorted(report["summary"]["sessions"]) == ["01", "02"]
    assert report["summary"]["dataProcessed"] is True


@pytest.mark.slow
def test_derivatives_are_indexed_by_pybids(bids_run):
    from bids import BIDSLayout, BIDSLayoutIndexer

    dataset, output = bids_run
    layout = BIDSLayout(output, is_derivative=True, indexer=BIDSLayoutIndexer(ignore=PYBIDS_IGNORE))
    description = json.loads((output / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0] == {
        "Name": "msprofile",
        "Version": __version__,
        "Description": description["GeneratedBy"][0]["Description"],
    }
    assert (output / description["DatasetLinks"]["raw"]).resolve() == dataset.resolve()
    for label, session, _ in BIDS_SCANS:
        scan = output / "subjects" / f"sub-{label}_ses-{session}"
        found = {
            (f.entities.get("desc"), f.entities["suffix"]): f
            for f in layout.get(subject=label, session=session, extension=".nii.gz")
        }
        assert set(found) == {
            ("brain", "mask"),
            ("ventriclesLesions", "dseg"),
            ("lesionClasses", "dseg"),
            ("uncertainty", "probseg"),
        }
        for key, source in (
            (("brain", "mask"), "brain_mask.nii.gz"),
            (("ventriclesLesions", "dseg"), "segmentation.nii.gz"),
            (("lesionClasses", "dseg"), "lesion_classes.nii.gz"),
            (("uncertainty", "probseg"), "segmentation_uncertainty.nii.gz"),
        ):
            assert Path(found[key].path).read_bytes() == (scan / source).read_bytes()
        flair = f"sub-{label}/ses-{session}/anat/sub-{label}_ses-{session}_FLAIR.nii.gz"
        sidecar = found[("lesionClasses", "dseg")].get_metadata()
        assert sidecar["Sources"][0] == f"bids:raw:{flair}" and (dataset / flair).is_file()
        assert sidecar["SpatialReference"] == f"bids:raw:{flair}"
        assert found[("brain", "mask")].get_metadata()["Type"] == "Brain"
        lookup = pd.read_csv(Path(found[("ventriclesLesions", "dseg")].path.replace(".nii.gz", ".tsv")), sep="\t")
        assert list(lookup["index"]) == [1, 2] and list(lookup["abbreviation"]) == ["VENT", "WMH"]


@pytest.mark.slow
def test_snakemake_with_bids_dir_plans_what_the_command_ran(bids_run):
    """``snakemake --config bids_dir=...`` is the other way to the same run: nothing left to do."""
    dataset, output = bids_run
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(output),
            "--configfile",
            str(REPO / "config" / "config.yaml"),
            "--dry-run",
            "--config",
            f"bids_dir={dataset}",
            f"results={output}",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_command_filters_by_participant_and_session(bids_run, tmp_path):
    dataset, _ = bids_run
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "msprofile.cli",
            str(dataset),
            str(tmp_path / "out"),
            "participant",
            "--participant-label",
            "01",
            "03",
            "--session-label",
            "ses-02",
            "--dry-run",
            "--quiet",
            "rules",
        ],
        capture_output=True,
        text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "1 participants have no FLAIR in session ses-02 and are left out: sub-03" in output
    jobs = {}
    for line in output[output.index("Job stats:") :].splitlines()[3:]:
        if len(line.split()) != 2 or line.startswith("total"):
            break
        jobs[line.split()[0]] = int(line.split()[1])
    assert jobs["preprocess"] == jobs["segment"] == jobs["lesion_metrics"] == 1, "sub-01 session 02 only"
    bad = subprocess.run(
        [sys.executable, "-m", "msprofile.cli", str(dataset), str(tmp_path / "out"), "participant"]
        + ["--participant-label", "04", "--dry-run"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "no participant sub-04 in the dataset" in bad.stdout + bad.stderr


def test_command_version_is_the_package_version():
    result = subprocess.run([sys.executable, "-m", "msprofile.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"msprofile {__version__}"
