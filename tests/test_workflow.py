"""The workflow itself: lint, formatting, the demo cohort and the real sample end to end."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from msprofile.qc import qc_flags
from msprofile.synthetic.demo_cohort import DEMO_SUBJECTS

from conftest import (
    REPO,
    SAMPLE_IDS,
    SampleSubject,
    change_config,
    dice,
    make_project,
    require_flair_sample,
    require_reference_table,
    run_snakemake,
)

pytestmark = pytest.mark.slow

PREPROCESS_FILES = ("brain_mask.nii.gz", "flair_preproc.nii.gz", "preprocess_qc.json", "preprocess_qc.png")


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


PYTHON_PATHS = ("src", "workflow/scripts", "tests", "benchmarks")


def test_python_is_linted():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *PYTHON_PATHS], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_python_is_formatted():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *PYTHON_PATHS], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefiles_are_formatted():
    files = [REPO / "workflow" / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", *map(str, files)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_demo_cohort_is_preprocessed(demo_run):
    for subject in DEMO_SUBJECTS:
        folder = demo_run / "results" / "subjects" / subject.subject_id
        for name in PREPROCESS_FILES:
            assert (folder / name).is_file(), f"{subject.subject_id}: {name} missing"
        assert (demo_run / "results" / "logs" / "preprocess" / f"{subject.subject_id}.log").is_file()


def test_demo_brain_masks_match_the_phantom_truth(demo_run):
    for subject in DEMO_SUBJECTS:
        truth = np.asarray(nib.load(demo_run / "resources" / "demo" / subject.subject_id / "brain.nii.gz").dataobj) > 0
        mask = (
            np.asarray(nib.load(demo_run / "results" / "subjects" / subject.subject_id / "brain_mask.nii.gz").dataobj)
            > 0
        )
        assert dice(mask, truth) >= 0.965, subject.subject_id  # README: 0.968 to 0.994


def test_demo_is_segmented_and_evaluated(demo_run):
    for subject in DEMO_SUBJECTS:
        folder = demo_run / "results" / "subjects" / subject.subject_id
        flair = nib.load(demo_run / "resources" / "demo" / subject.subject_id / "flair.nii.gz")
        segmentation = nib.load(folder / "segmentation.nii.gz")
        assert segmentation.shape == flair.shape
        np.testing.assert_allclose(segmentation.affine, flair.affine, atol=1e-4)
        assert set(np.unique(np.asarray(segmentation.dataobj))) <= {0, 1, 2}
    summary = pd.read_csv(demo_run / "results" / "evaluation" / "segmentation_summary.tsv", sep="\t")
    assert list(summary["class_name"]) == ["ventricles", "lesions"]
    assert (summary["n_subjects"] == len(DEMO_SUBJECTS)).all()
    # Accuracy floors against the phantoms' exact masks (pooled Dice 0.80 and 0.64 with the
    # shipped msprofile-brain, 0.71 and 0.72 with msprofile-default): a model that finds
    # nothing, or only one class, fails here.
    pooled = summary.set_index("class_name")["dice_pooled"]
    assert pooled["ventricles"] >= 0.6 and pooled["lesions"] >= 0.6, pooled.to_dict()
    per_subject = pd.read_csv(demo_run / "results" / "evaluation" / "segmentation_per_subject.tsv", sep="\t")
    ms_lesions = per_subject[(per_subject["class_name"] == "lesions") & per_subject["subject_id"].str.contains("-MS-")]
    assert len(ms_lesions) == 8 and (ms_lesions["dice"] >= 0.2).all(), ms_lesions[["subject_id", "dice"]]
    assert (demo_run / "results" / "evaluation" / "segmentation_dice.pdf").stat().st_size > 0


def test_demo_report_holds_every_figure_and_table(demo_run):
    """`snakemake --report` embeds each result file (base64 data URI): every QC image, the
    segmentation accuracy table and figure, every statistics table and every cohort figure."""
    from msprofile.outputs import figure_names

    result = run_snakemake(demo_run, "--report", "report.html")
    assert "WARNING" not in result.stdout + result.stderr, "docutils warnings break report captions"
    html = (demo_run / "report.html").read_text()
    results = demo_run / "results"
    expected = [
        results / "subjects" / s.subject_id / name
        for s in DEMO_SUBJECTS
        for name in ("preprocess_qc.png", "segmentation_qc.png")
    ]
    expected += [results / "evaluation" / "segmentation_summary.tsv", results / "evaluation" / "segmentation_dice.png"]
    expected += [results / "stats" / f"{name}.tsv" for name in ("descriptives", "tests", "correlations", "regressions")]
    expected += [results / "figures" / f"{name}.png" for name in figure_names()]
    for path in expected:
        assert f'"{path.relative_to(demo_run)}"' in html, f"{path.name} is not in the report"
        assert base64.b64encode(path.read_bytes()).decode() in html, f"{path.name}: the report holds other content"


def test_demo_rerun_has_nothing_to_do(demo_run):
    result = run_snakemake(demo_run, "--cores", "2", "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_real_sample_through_the_workflow(tmp_path):
    sample = require_flair_sample()
    rows = ["subject_id\tflair\tgroup\tage\tsex"]
    rows += [f"{sid}\t{sample / sid / 'flair.nii.gz'}\tMS\t40\tF" for sid in SAMPLE_IDS]
    project = make_project(tmp_path, "\n".join(rows) + "\n")
    run_snakemake(project, "--cores", "2")
    for sid in SAMPLE_IDS:
        folder = project / "results" / "subjects" / sid
        qc = json.loads((folder / "preprocess_qc.json").read_text())
        assert qc_flags(qc) == []
        subject = SampleSubject(sid)
        mask_img = nib.load(folder / "brain_mask.nii.gz")
        np.testing.assert_allclose(mask_img.affine, subject.affine, atol=1e-4)
        mask = np.asarray(mask_img.dataobj) > 0
        structures = subject.lesions | subject.ventricles
        assert (mask & structures).sum() == structures.sum(), "the mask must hold every labelled voxel"


def test_bad_sheet_stops_before_any_job(tmp_path):
    project = make_project(tmp_path, "subject_id\tflair\tgroup\tage\tsex\ns1\tmissing.nii.gz\tMS\tabc\tX\n")
    result = run_snakemake(project, "--cores", "1", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "line 2 (subject s1), column age" in output
    assert "line 2 (subject s1), column sex" in output
    assert "line 2 (subject s1), column flair: file not found" in output
    assert not (project / "results").exists()


def _one_real_subject_project(tmp_path: Path, config_changes: dict | None = None) -> Path:
    sample = require_flair_sample()
    sid = "104252"
    sheet = f"subject_id\tflair\tgroup\tage\tsex\n{sid}\t{sample / sid / 'flair.nii.gz'}\tMS\t44\tM\n"
    return make_project(tmp_path, sheet, config_changes)


def test_segment_rule_on_a_real_subject(tmp_path):
    project = _one_real_subject_project(tmp_path)
    run_snakemake(project, "--cores", "2", "results/subjects/104252/segmentation.nii.gz")
    subject = SampleSubject("104252")
    segmentation = nib.load(project / "results" / "subjects" / "104252" / "segmentation.nii.gz")
    assert segmentation.shape == subject.flair.shape and segmentation.get_data_dtype() == np.uint8
    np.testing.assert_allclose(segmentation.affine, subject.affine, atol=1e-4)
    labels = np.asarray(segmentation.dataobj)
    assert set(np.unique(labels)) == {0, 1, 2}
    # The shipped model saw this subject in training: this checks the grid round trip, not accuracy.
    assert dice(labels == 1, subject.ventricles) > 0.7
    brain = np.asarray(nib.load(project / "results" / "subjects" / "104252" / "brain_mask.nii.gz").dataobj) > 0
    assert not (labels[~brain]).any()
    log = (project / "results" / "logs" / "segment" / "104252.log").read_text()
    assert "segmented on cpu" in log


@pytest.mark.parametrize("device,gpus", [("gpu", 1), ("cpu", 0)])
def test_segment_rule_carries_the_gpu_resource(tmp_path, device, gpus):
    project = _one_real_subject_project(tmp_path, {"segmentation": {"device": device}})
    result = run_snakemake(project, "--cores", "2", "--dry-run", "results/subjects/104252/segmentation.nii.gz")
    output = result.stdout + result.stderr
    segment_job = output[output.index("rule segment:") :]
    resources = next(line for line in segment_job.splitlines() if "resources:" in line)
    assert f"gpu={gpus}" in resources


def test_required_gpu_that_is_absent_fails_clearly(tmp_path):
    """segmentation.device: gpu on a machine without one is an error, not a silent CPU run."""
    project = _one_real_subject_project(tmp_path, {"segmentation": {"device": "gpu"}})
    failed = run_snakemake(project, "--cores", "2", "results/subjects/104252/segmentation.nii.gz", check=False)
    assert failed.returncode != 0
    assert "no CUDA provider" in (project / "results" / "logs" / "segment" / "104252.log").read_text()


def test_existing_reference_cohort_table_is_reanalysed(tmp_path):
    table = require_reference_table()
    project = make_project(tmp_path, config_changes={"stats": {"remove_outliers": True}})
    run_snakemake(project, "--cores", "2", "--config", f"cohort_table={table}")
    stats_dir = project / "results" / "stats"
    assert sorted(p.name for p in stats_dir.iterdir()) == [
        "correlations.tsv",
        "descriptives.tsv",
        "regressions.tsv",
        "tests.tsv",
    ]
    removed_dir = project / "results" / "stats_outliers_removed"
    assert sorted(p.name for p in removed_dir.iterdir()) == [
        "correlations.tsv",
        "descriptives.tsv",
        "outliers_removed.tsv",
        "regressions.tsv",
        "tests.tsv",
    ]
    removed = pd.read_csv(removed_dir / "outliers_removed.tsv", sep="\t", dtype={"subject_id": str})
    kept = pd.read_csv(removed_dir / "descriptives.tsv", sep="\t")
    kept_n = kept.query("variable == 'TotalVentricleArea' and group == 'all' and sex == 'all' and age_group == 'all'")
    assert len(removed) > 0 and kept_n["n"].tolist() == [1380 - len(removed)], "removed + kept = everyone"
    assert not (project / "results" / "subjects").exists(), "no subject should be processed"
    descriptives = pd.read_csv(stats_dir / "descriptives.tsv", sep="\t")
    pooled = descriptives[
        (descriptives["group"] == "all") & (descriptives["sex"] == "all") & (descriptives["age_group"] == "all")
    ]
    n_by_variable = dict(zip(pooled["variable"], pooled["n"]))
    assert n_by_variable["TotalVentricleArea"] == 1380, "every subject counts"
    assert n_by_variable["age_years"] == 1371, "nine subjects have no age"
    by_group = descriptives[
        (descriptives["variable"] == "TotalVentricleArea")
        & (descriptives["sex"] == "all")
        & (descriptives["age_group"] == "all")
    ].set_index("group")["n"]
    assert by_group["HC"] == 999 and by_group["MS"] == 381
    tests_table = pd.read_csv(stats_dir / "tests.tsv", sep="\t")
    hc_vs_ms = tests_table[tests_table["analysis"] == "hc_vs_ms"]
    assert len(hc_vs_ms) and set(zip(hc_vs_ms["n1"], hc_vs_ms["n2"])) == {(381, 999)}
    assert hc_vs_ms["p_adjusted"].notna().all()
    from msprofile.outputs import figure_names

    for folder, remove_outliers in (("figures", False), ("figures_outliers_removed", True)):
        written = sorted(p.name for p in (project / "results" / folder).iterdir())
        assert written == sorted(f"{name}.{ext}" for name in figure_names(remove_outliers) for ext in ("png", "pdf"))
        assert all((project / "results" / folder / name).stat().st_size > 10_000 for name in written)
    # Switching outlier removal off again reruns nothing: the full-cohort variant stays as it is.
    change_config(project, {"stats": {"remove_outliers": False}})
    dry = run_snakemake(project, "--cores", "2", "--dry-run", "--config", f"cohort_table={table}")
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_planning_imports_no_numerical_library_it_does_not_use():
    """Every `snakemake` run, dry runs included, executes common.smk's imports before it plans:
    SciPy alone costs about 0.25 s there (2 % of planning 1,381 subjects), matplotlib,
    statsmodels, TensorFlow and ONNX Runtime more. The jobs import them, the planner must not."""
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    imports = common[: common.index("\nvalidate(")]
    heavy = ("scipy", "matplotlib", "statsmodels", "tensorflow", "onnxruntime", "skimage", "nibabel")
    check = f"import sys\n{imports}\nprint(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", check], check=True, capture_output=True, text=True).stdout.strip()
    assert loaded == "", f"planning imports {loaded}"
