"""Bad input through the workflow: every problem gets a message naming the subject, the file
and the problem; under ``on_error: record`` one bad subject never stops the others."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from msprofile.synthetic.demo_cohort import DEMO_SUBJECTS

from conftest import REPO, make_project, run_snakemake
from representations import permuted

pytestmark = pytest.mark.slow

HEADER = "subject_id\tflair\tgroup\tage\tsex\n"
GOOD = [s.subject_id for s in DEMO_SUBJECTS[:2]] + [s.subject_id for s in DEMO_SUBJECTS[8:10]]


def _nifti(path: Path, data, affine=None) -> None:
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), np.eye(4) if affine is None else affine), path)


def _singular_affine_nifti(path: Path, data) -> None:
    """A NIfTI whose sform has a zero slice axis (nibabel refuses to build one from an affine)."""
    image = nib.Nifti1Image(np.asarray(data, np.float32), np.eye(4))
    image.set_qform(None, code=0)
    image.set_sform(np.diag([0.9, 0.9, 0.0, 1.0]), code=1)
    nib.save(image, path)


def _bad_images(folder: Path, good_flair: Path) -> dict[str, tuple[str, str]]:
    """Write the bad-image catalogue into ``folder``: ``{subject: (file name, words of the expected message)}``."""
    good = nib.load(good_flair)
    data = np.asarray(good.dataobj, np.float32)
    raw = good_flair.read_bytes()
    catalogue = {
        "truncated": ("cannot be read, the file may be truncated", lambda p: p.write_bytes(raw[: len(raw) // 2])),
        "not-nifti": (
            "not a readable NIfTI image",
            lambda p: p.write_bytes(gzip.compress(b"patient,age\n1,40\n" * 50)),
        ),
        "two-d": ("expected a 3-D image, got 2-D", lambda p: _nifti(p, np.ones((64, 64)))),
        "four-d": ("expected a 3-D image, got 4-D", lambda p: _nifti(p, np.ones((64, 64, 20, 3)))),
        "all-zero": ("image is constant", lambda p: _nifti(p, np.zeros((128, 128, 20)), good.affine)),
        "nan-voxels": (
            "voxels are NaN or infinite",
            lambda p: _nifti(p, np.where(data > data.mean(), np.nan, data), good.affine),
        ),
        "huge-voxels": ("implausible voxel size", lambda p: _nifti(p, data, np.diag([90.0, 90.0, 90.0, 1.0]))),
        "absurd-dims": ("implausible dimensions", lambda p: _nifti(p, np.ones((4096, 16, 2)))),
        "flat-affine": ("degenerate affine", lambda p: _singular_affine_nifti(p, data)),
    }
    out = {}
    for subject_id, (words, write) in catalogue.items():
        path = folder / f"{subject_id}.nii.gz"
        write(path)
        out[subject_id] = (path.name, words)
    return out


@pytest.fixture(scope="module")
def catalogue_run(tmp_path_factory, demo_run):
    """Four good subjects (one stored as 4-D with a single volume, which is fine) and every
    bad image of the catalogue, run with the default ``on_error: record``."""
    project = make_project(tmp_path_factory.mktemp("bad_images"))
    data = project / "data"
    data.mkdir()
    rows = []
    for k, subject_id in enumerate(GOOD):
        source = demo_run / "resources" / "demo" / subject_id / "flair.nii.gz"
        if k == 0:
            image = nib.load(source)
            nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[..., None], image.affine), data / f"{subject_id}.nii.gz")
        else:
            shutil.copy(source, data / f"{subject_id}.nii.gz")
        rows.append(f"{subject_id}\t../data/{subject_id}.nii.gz\t{'MS' if k % 2 else 'HC'}\t{40 + k}\tF\n")
    bad = _bad_images(data, demo_run / "resources" / "demo" / GOOD[1] / "flair.nii.gz")
    rows += [f"{subject_id}\t../data/{name}\tMS\t50\tM\n" for subject_id, (name, _) in bad.items()]
    (project / "config" / "subjects.tsv").write_text(HEADER + "".join(rows))
    result = run_snakemake(project, "--cores", "2")
    return project, bad, result


def test_every_bad_image_is_recorded_with_subject_file_and_problem(catalogue_run):
    project, bad, _ = catalogue_run
    failures = pd.read_csv(project / "results" / "cohort" / "failures.tsv", sep="\t", dtype=str)
    assert sorted(failures["subject_id"]) == sorted(bad)
    assert set(failures["failed_step"]) == {"preprocess"}
    for subject_id, error in zip(failures["subject_id"], failures["error"]):
        name, words = bad[subject_id]
        assert error.startswith(f"subject {subject_id}: ") and name in error and words in error, error
        record = json.loads((project / "results" / "subjects" / subject_id / "failure.json").read_text())
        assert record == {"subject_id": subject_id, "step": "preprocess", "error": error}
        segment_log = (project / "results" / "logs" / "segment" / f"{subject_id}.log").read_text()
        assert "not run, an earlier step failed (preprocess" in segment_log


def test_good_subjects_complete_and_the_cohort_is_analysed(catalogue_run):
    project, bad, result = catalogue_run
    cohort = pd.read_parquet(project / "results" / "cohort" / "cohort.parquet")
    assert cohort["subject_id"].tolist() == GOOD + list(bad), "every subject keeps its row, in sheet order"
    status = dict(zip(cohort["subject_id"], cohort["status"]))
    assert all(status[s] == "ok" for s in GOOD) and all(status[s] == "failed" for s in bad)
    ok = cohort[cohort["status"] == "ok"]
    assert (
        ok["TotalVentricleArea"].gt(0).all()
        and cohort.loc[cohort["status"] == "failed", "TotalVentricleArea"].isna().all()
    )
    descriptives = pd.read_csv(project / "results" / "stats" / "descriptives.tsv", sep="\t")
    pooled = descriptives.query(
        "variable == 'TotalVentricleArea' and group == 'all' and sex == 'all' and age_group == 'all'"
    )
    assert pooled["n"].tolist() == [len(GOOD)]
    # The end-of-run warning and the statistics log name exactly the failed scans.
    warning = next(line for line in result.stderr.splitlines() if "scans failed and are left out" in line)
    assert f"{len(bad)} of {len(GOOD) + len(bad)} scans failed" in warning
    assert sorted(warning.rsplit(": ", 1)[1].split(", ")) == sorted(bad)
    statistics_log = (project / "results" / "logs" / "statistics.log").read_text()
    left_out = next(line for line in statistics_log.splitlines() if "failed processing and are left out" in line)
    assert f"{len(bad)} of {len(GOOD) + len(bad)} subjects failed processing and are left out" in left_out
    assert sorted(left_out.rsplit(": ", 1)[1].split(", ")) == sorted(bad)


def test_report_builds_with_failed_subjects(catalogue_run):
    project, _, _ = catalogue_run
    run_snakemake(project, "--report", "report.html")
    assert (project / "report.html").stat().st_size > 100_000


def test_fixed_subject_reruns_and_its_failure_record_goes(catalogue_run, demo_run):
    project, bad, _ = catalogue_run
    shutil.copy(demo_run / "resources" / "demo" / GOOD[1] / "flair.nii.gz", project / "data" / "truncated.nii.gz")
    run_snakemake(project, "--cores", "2")
    cohort = pd.read_parquet(project / "results" / "cohort" / "cohort.parquet").set_index("subject_id")
    assert cohort.at["truncated", "status"] == "ok" and cohort.at["truncated", "TotalVentricleArea"] > 0
    assert not (project / "results" / "subjects" / "truncated" / "failure.json").exists()
    failures = pd.read_csv(project / "results" / "cohort" / "failures.tsv", sep="\t", dtype=str)
    assert "truncated" not in set(failures["subject_id"]) and len(failures) == len(bad) - 1


def test_on_error_stop_fails_the_run_with_the_message(tmp_path, demo_run):
    project = make_project(tmp_path)
    (project / "data").mkdir()
    shutil.copy(demo_run / "resources" / "demo" / GOOD[1] / "flair.nii.gz", project / "data" / "good.nii.gz")
    (project / "data" / "bad.nii.gz").write_bytes((project / "data" / "good.nii.gz").read_bytes()[:5000])
    (project / "config" / "subjects.tsv").write_text(
        HEADER + "good\t../data/good.nii.gz\tHC\t40\tF\nbad\t../data/bad.nii.gz\tMS\t50\tM\n"
    )
    result = run_snakemake(project, "--cores", "2", "--keep-going", "--config", "on_error=stop", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "subject bad: " in output and "bad.nii.gz" in output and "truncated" in output
    # --keep-going: the good subject's own chain still finished; the cohort table could not.
    assert (project / "results" / "subjects" / "good" / "metrics.json").stat().st_size > 0
    assert not (project / "results" / "cohort" / "cohort.parquet").exists()
    assert not (project / "results" / "subjects" / "bad" / "failure.json").exists()


# ---------------------------------------------------------------------------------------------
# Manual masks (evaluation and training)


def test_bad_masks_are_named_and_left_out_of_the_evaluation(tmp_path, demo_run):
    source = demo_run / "resources" / "demo" / GOOD[0]
    flair = nib.load(source / "flair.nii.gz")
    wmh = np.asarray(nib.load(source / "wmh_manual.nii.gz").dataobj, np.float32)
    ventricles = np.asarray(nib.load(source / "ventricles_manual.nii.gz").dataobj, np.float32)
    project = make_project(tmp_path)
    data = project / "data"
    data.mkdir()
    shutil.copy(source / "flair.nii.gz", data / "flair.nii.gz")
    shifted = flair.affine.copy()
    shifted[0, 3] += 10
    masks = {  # subject: (lesion mask, ventricle mask, expected words; None: fine)
        "masks-ok": (wmh, ventricles, None),
        "no-lesions": (np.zeros_like(wmh), ventricles, None),
        "wrong-shape": (wmh[:128], ventricles, "lesion mask is not on the FLAIR's grid: mask shape (128, 256, 20)"),
        "wrong-affine": (wmh, ventricles, "lesion mask is not on the FLAIR's grid: mask shape (256, 256, 20)"),
        "probabilities": (wmh * 0.4, ventricles, "mask values must be whole numbers from 0 to 255"),
        "negative": (wmh, -ventricles, "mask values must be whole numbers from 0 to 255"),
        "empty-ventricles": (wmh, np.zeros_like(ventricles), "ventricle mask is empty"),
    }
    # The same masks stored in another axis order (as after fslreorient2std) are reoriented.
    masks["other-axis-order"] = (*(permuted(m, flair.affine)[0] for m in (wmh, ventricles)), None)
    rows = []
    for subject_id, (lesions, vents, _) in masks.items():
        affine = {"wrong-affine": shifted, "other-axis-order": permuted(wmh, flair.affine)[1]}.get(
            subject_id, flair.affine
        )
        _nifti(data / f"{subject_id}_wmh.nii.gz", lesions, affine)
        _nifti(data / f"{subject_id}_vent.nii.gz", vents, flair.affine if subject_id == "wrong-affine" else affine)
        rows.append(
            f"{subject_id}\t../data/flair.nii.gz\tMS\t40\tF\t../data/{subject_id}_wmh.nii.gz\t"
            f"../data/{subject_id}_vent.nii.gz\n"
        )
    (project / "config" / "subjects.tsv").write_text(
        "subject_id\tflair\tgroup\tage\tsex\twmh_mask\tventricles_mask\n" + "".join(rows)
    )
    run_snakemake(project, "--cores", "2", "results/evaluation/segmentation_per_subject.tsv")
    table = pd.read_csv(project / "results" / "evaluation" / "segmentation_per_subject.tsv", sep="\t")
    assert sorted(set(table["subject_id"])) == ["masks-ok", "no-lesions", "other-axis-order"]
    same = table.set_index(["subject_id", "class_name"])
    assert same.loc["other-axis-order"].equals(same.loc["masks-ok"])
    log = (project / "results" / "logs" / "evaluate_segmentation.log").read_text()
    for subject_id, (_, _, words) in masks.items():
        if words:
            line = next(line for line in log.splitlines() if f"subject {subject_id}: " in line)
            assert "_wmh.nii.gz" in line or "_vent.nii.gz" in line
            assert words in line, line
    # With on_error: stop the first bad mask stops the evaluation, with the same message.
    failed = run_snakemake(
        project,
        "results/evaluation/segmentation_per_subject.tsv",
        "--cores",
        "2",
        "--forcerun",
        "evaluate_segmentation",
        "--config",
        "on_error=stop",
        check=False,
    )
    assert failed.returncode != 0 and "is not on the FLAIR's grid" in failed.stdout + failed.stderr


# ---------------------------------------------------------------------------------------------
# Interruption and determinism


def _three_subject_project(folder: Path, demo_run: Path) -> Path:
    project = make_project(folder)
    (project / "data").mkdir()
    rows = []
    for k, subject_id in enumerate(GOOD[:3]):
        shutil.copy(
            demo_run / "resources" / "demo" / subject_id / "flair.nii.gz", project / "data" / f"{subject_id}.nii.gz"
        )
        rows.append(f"{subject_id}\t../data/{subject_id}.nii.gz\t{'MS' if k % 2 else 'HC'}\t{45 + k}\tM\n")
    (project / "config" / "subjects.tsv").write_text(HEADER + "".join(rows))
    return project


def _kill_when_started(project: Path, log: str, timeout_s: float = 300) -> None:
    """Start the workflow and SIGKILL it, jobs and all, once ``log`` (under results/logs/) says
    its job started."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(project),
        "--cores",
        "1",
    ]
    process = subprocess.Popen(
        command, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    path = project / "results" / "logs" / log
    deadline = time.monotonic() + timeout_s
    try:
        while not (path.is_file() and ": started" in path.read_text()):
            assert process.poll() is None, f"the run ended before {log} started"
            assert time.monotonic() < deadline, f"{log} never started"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _assert_no_partial_outputs(results: Path) -> None:
    """Every NIfTI, Parquet and JSON under ``results`` reads whole; no temporary file is left
    under an output's name."""
    for path in results.rglob("*"):
        if path.name.endswith(".nii.gz"):
            np.asarray(nib.load(path).dataobj)
        elif path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())


def _output_files(results: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(results)): p.read_bytes()
        for p in sorted(results.rglob("*"))
        if p.is_file() and "logs" not in p.parts
    }


def test_killed_runs_resume_to_the_same_outputs(tmp_path, demo_run):
    reference = _three_subject_project(tmp_path / "reference", demo_run)
    run_snakemake(reference, "--cores", "1")
    killed = _three_subject_project(tmp_path / "killed", demo_run)

    _kill_when_started(killed, f"segment/{GOOD[1]}.log")
    _assert_no_partial_outputs(killed / "results")
    run_snakemake(killed, "--unlock")
    _kill_when_started(killed, "figures.log")
    _assert_no_partial_outputs(killed / "results")
    run_snakemake(killed, "--unlock")
    run_snakemake(killed, "--cores", "1")  # the default profile reruns what was cut off

    expected, got = _output_files(reference / "results"), _output_files(killed / "results")
    assert sorted(got) == sorted(expected), "same files, no leftovers"
    different = [name for name in expected if got[name] != expected[name]]
    assert not different, f"differ from an uninterrupted run: {different}"


def test_two_runs_give_identical_bytes(tmp_path, demo_run):
    """The demo run twice: every output file (tables, statistics, images, figures) identical."""
    again = make_project(tmp_path)
    run_snakemake(again, "--cores", "2")
    expected, got = _output_files(demo_run / "results"), _output_files(again / "results")
    assert sorted(got) == sorted(expected)
    different = [name for name in expected if got[name] != expected[name]]
    assert not different, f"differ between two runs: {different}"


# ---------------------------------------------------------------------------------------------
# Privacy


def test_no_header_text_or_path_reaches_the_outputs(tmp_path, demo_run):
    project = make_project(tmp_path)
    folder = project / "data" / "DOE_JOHN_19610101"
    folder.mkdir(parents=True)
    image = nib.load(demo_run / "resources" / "demo" / GOOD[0] / "flair.nii.gz")
    header = image.header.copy()
    header["descrip"] = b"PATIENT DOE^JOHN MRN4711"
    header["db_name"] = b"HOSPITALDB"
    header["aux_file"] = b"AUXSECRET"
    header.set_intent("t test", (10.0,), name="INTENTSECRET")
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), image.affine, header), folder / "flair.nii.gz")
    (project / "config" / "subjects.tsv").write_text(
        HEADER
        + "anon01\t../data/DOE_JOHN_19610101/flair.nii.gz\tMS\t50\tF\n"
        + "anon02\t../data/DOE_JOHN_19610101/flair.nii.gz\tHC\t40\tM\n"
    )
    run_snakemake(project, "--cores", "2")
    secrets = [b"DOE", b"JOHN", b"19610101", b"MRN4711", b"HOSPITALDB", b"AUXSECRET", b"INTENTSECRET"]
    checked = 0
    for path in (project / "results").rglob("*"):
        if not path.is_file() or "logs" in path.parts:
            continue
        content = path.read_bytes()
        if path.name.endswith(".gz"):
            content = gzip.decompress(content)
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
            content += table.to_csv().encode() + repr(table.attrs).encode()
        found = [s for s in secrets if s in content]
        assert not found, f"{path.relative_to(project)} holds {found}"
        checked += 1
    assert checked > 20


# ---------------------------------------------------------------------------------------------
# The subject sheet, through the workflow


def _sheet_project(tmp_path: Path, text: str) -> Path:
    project = make_project(tmp_path)
    (project / "data").mkdir()
    (project / "data" / "s1.nii.gz").write_bytes(b"")  # existence is what the sheet check sees
    (project / "data" / "s2.nii.gz").write_bytes(b"")
    (project / "config" / "subjects.tsv").write_text(text)
    return project


def test_every_sheet_problem_is_reported_at_once_before_any_job(tmp_path):
    rows = [
        "s1\t../data/s1.nii.gz\tMS\t40\tF",
        "s1\t../data/s2.nii.gz\tHC\t41\tM",  # duplicate ID
        "../s3\t../data/s1.nii.gz\tMS\t40\tF",  # ID unsafe for a file name
        "s4\t../data/s1.nii.gz\tPD\t40\tfemale",  # unknown group and sex
        "s5\t../data/s1.nii.gz\tMS\tforty\tF",  # age not a number
        "s6\t../data/s1.nii.gz\tMS\t140\tF",  # age out of range
        "s7\t../data/missing.nii.gz\tHC\t40\tF",  # missing file
        "s8\t../data/s1.mgz\tHC\t40\tF",  # unsupported extension
    ]
    project = _sheet_project(tmp_path, HEADER + "\n".join(rows) + "\n")
    result = run_snakemake(project, "--cores", "1", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    sheet = "config/subjects.tsv"
    assert f"subject sheet {sheet}: 9 problems" in output, output[-3000:]
    expected = [
        ("line 2 (subject s1), column subject_id", "duplicate subject ID, also on line 3"),
        ("line 3 (subject s1), column subject_id", "duplicate subject ID, also on line 2"),
        ("line 4 (subject ../s3), column subject_id", "not a safe subject ID"),
        ("line 5 (subject s4), column group", "PD"),
        ("line 5 (subject s4), column sex", "female"),
        ("line 6 (subject s5), column age", "not a number"),
        ("line 7 (subject s6), column age", "'140' is outside the allowed range"),
        ("line 8 (subject s7), column flair", "file not found"),
        ("line 9 (subject s8), column flair", "unsupported extension"),
    ]
    for where, words in expected:
        line = next((line for line in output.splitlines() if where in line), None)
        assert line is not None and words in line, (where, output[-3000:])
    assert not (project / "results").exists(), "no job ran"


@pytest.mark.parametrize(
    "text,words",
    [
        (
            "subject_id\tflair\tage\tsex\ns1\t../data/s1.nii.gz\t40\tF\n",
            "line 1, column group: required column is missing from the header",
        ),
        ("", "the file is empty"),
        (HEADER, "the sheet has a header but no subject rows"),
    ],
)
def test_sheet_without_a_column_or_rows_stops_with_the_reason(tmp_path, text, words):
    project = _sheet_project(tmp_path, text)
    result = run_snakemake(project, "--cores", "1", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "config/subjects.tsv" in output and words in output, output[-2000:]
