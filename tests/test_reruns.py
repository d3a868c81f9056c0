"""Incremental reruns and the GPU limit, on a small finished project run like a user's.

The project lists five subjects whose FLAIRs are copies of demo phantoms in its own data/
folder. It is run once with ``--cores 4`` and every segment job tagged for the GPU, with the
one-GPU limit left to the default profile (workflow/profiles/default, as on a user's
workstation); each test then changes one thing, asks Snakemake what it would run
(``--dry-run``) and puts the project back as it was.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from msprofile.synthetic.demo_cohort import DEMO_SUBJECTS

from conftest import REPO, change_config, make_project, planned_jobs, run_snakemake

pytestmark = pytest.mark.slow

SUBJECTS = [s.subject_id for s in DEMO_SUBJECTS[:6]]
HEADER = "subject_id\tflair\tgroup\tage\tsex\n"
AGGREGATES = {"cohort_table": 1, "statistics": 1, "figures": 1, "all": 1}


def sheet_row(subject_id: str, group: str = "MS", age: int = 40) -> str:
    return f"{subject_id}\t../data/{subject_id}.nii.gz\t{group}\t{age}\tF\n"


@pytest.fixture(scope="module")
def project(tmp_path_factory, demo_run) -> Path:
    folder = make_project(tmp_path_factory.mktemp("reruns"))
    (folder / "data").mkdir()
    for subject_id in SUBJECTS:
        shutil.copy(
            demo_run / "resources" / "demo" / subject_id / "flair.nii.gz", folder / "data" / f"{subject_id}.nii.gz"
        )
    # Five subjects in the sheet; the sixth FLAIR waits in data/ to be added by a test.
    rows = [sheet_row(s, "MS" if k % 2 else "HC", 30 + 5 * k) for k, s in enumerate(SUBJECTS[:5])]
    (folder / "config" / "subjects.tsv").write_text(HEADER + "".join(rows))
    # No --resources on the command line: the limit of one GPU job must come from the profile.
    run_snakemake(folder, "--cores", "4", "--set-resources", "segment:gpu=1")
    return folder


@pytest.fixture
def restored(project):
    """The project, checked up to date before the test and made so again after it."""
    sheet = project / "config" / "subjects.tsv"
    config = project / "config" / "config.yaml"
    saved = {path: path.read_bytes() for path in [sheet, config, *sorted((project / "data").iterdir())]}
    assert planned_jobs(project) == {}, "the project must start up to date"
    yield project
    for path, content in saved.items():
        if path.read_bytes() != content:
            path.write_bytes(content)
    # Restored inputs are newer than the outputs made from the same content: mark them current.
    run_snakemake(project, "--cores", "1", "--touch")
    assert planned_jobs(project) == {}


def _job_intervals(project: Path, rule: str) -> list[tuple[datetime, datetime]]:
    """(start, end) of every job of ``rule``, from the times its log records (msprofile.workflow.logged)."""
    stamp = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO .*: (started|done in)")
    intervals = []
    for log in sorted((project / "results" / "logs" / rule).glob("*.log")):
        times = {
            m.group(2): datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
            for m in map(stamp.match, log.read_text().splitlines())
            if m
        }
        intervals.append((times["started"], times["done in"]))
    return intervals


def test_gpu_jobs_never_overlap(project):
    segments = sorted(_job_intervals(project, "segment"))
    assert len(segments) == 5
    for (_, end), (next_start, _) in zip(segments, segments[1:]):
        assert end <= next_start, "two segment jobs held the one GPU at the same time"
    # The run was parallel all the same: CPU jobs ran while a segment job did.
    others = _job_intervals(project, "preprocess") + _job_intervals(project, "lesion_metrics")
    assert any(start < s_end and s_start < end for start, end in others for s_start, s_end in segments)


def test_changed_flair_reruns_that_subject_and_the_aggregates(restored):
    path = restored / "data" / f"{SUBJECTS[1]}.nii.gz"
    image = nib.load(path)
    data = np.asarray(image.dataobj).copy()
    data[data.shape[0] // 2, data.shape[1] // 2, :] += 1
    nib.save(nib.Nifti1Image(data, image.affine, image.header), path)
    assert planned_jobs(restored) == {"preprocess": 1, "segment": 1, "lesion_metrics": 1, **AGGREGATES}
    output = run_snakemake(restored, "--dry-run").stdout
    assert re.findall(r"wildcards: subject=(\S+)", output) == [SUBJECTS[1]] * 3


@pytest.mark.parametrize("column,new_value", [("age", "77"), ("group", "HC"), ("sex", "M")])
def test_changed_demographics_rerun_only_the_aggregates(restored, column, new_value):
    sheet = restored / "config" / "subjects.tsv"
    lines = sheet.read_text().splitlines(keepends=True)
    fields = lines[2].rstrip("\n").split("\t")
    fields[HEADER.rstrip("\n").split("\t").index(column)] = new_value
    lines[2] = "\t".join(fields) + "\n"
    sheet.write_text("".join(lines))
    assert planned_jobs(restored) == {**AGGREGATES}


def test_new_subject_runs_its_own_chain_and_the_aggregates(restored):
    sheet = restored / "config" / "subjects.tsv"
    sheet.write_text(sheet.read_text() + sheet_row(SUBJECTS[5]))
    assert planned_jobs(restored) == {"preprocess": 1, "segment": 1, "lesion_metrics": 1, **AGGREGATES}


def test_new_model_reruns_segmentation_and_what_follows(restored):
    shutil.copytree(REPO / "resources" / "models" / "msprofile-default", restored / "data" / "new-model")
    change_config(restored, {"segmentation": {"model": "data/new-model"}})
    try:
        assert planned_jobs(restored) == {"segment": 5, "lesion_metrics": 5, **AGGREGATES}
    finally:
        shutil.rmtree(restored / "data" / "new-model")


def test_changed_statistics_option_reruns_only_statistics_and_figures(restored):
    change_config(restored, {"stats": {"lesion_free_shares": "zero"}})
    assert planned_jobs(restored) == {"statistics": 1, "figures": 1, "all": 1}


SUBJECT_CHAINS = {"preprocess": 5, "segment": 5, "lesion_metrics": 5, **AGGREGATES}


# One case per row of the README's rerun table that is a config change: every config group.
@pytest.mark.parametrize(
    "changes,expected",
    [
        pytest.param({"results": "results_elsewhere"}, SUBJECT_CHAINS, id="results"),
        pytest.param({"groups": ["HC", "MS", "CIS"]}, {}, id="groups"),
        pytest.param({"on_error": "stop"}, {}, id="on_error"),
        pytest.param({"demo": {"seed": 1}}, {}, id="demo.seed"),
        pytest.param({"preprocess": {"denoise_iterations": 2}}, SUBJECT_CHAINS, id="preprocess.denoise_iterations"),
        pytest.param({"preprocess": {"max_slice_tilt_deg": 20.0}}, SUBJECT_CHAINS, id="preprocess.max_slice_tilt_deg"),
        pytest.param({"qc": {"icv_range_ml": [1000.0, 2000.0]}}, AGGREGATES, id="qc.icv_range_ml"),
        pytest.param({"qc": {"min_brain_slices": 12, "max_slice_area_cm2": 200.0}}, AGGREGATES, id="qc.other"),
        pytest.param({"qc": {"uncertainty_robust_z": 2.0}}, AGGREGATES, id="qc.uncertainty_robust_z"),
        pytest.param({"segmentation": {"device": "cpu"}}, {}, id="segmentation.device"),
        pytest.param({"segmentation": {"batch_size": 2}}, {}, id="segmentation.batch_size"),
        pytest.param(
            {"segmentation": {"ensemble_members": 3}},
            {"segment": 5, "lesion_metrics": 5, **AGGREGATES},
            id="segmentation.ensemble_members",
        ),
        pytest.param(
            {"segmentation": {"test_time_flips": True}},
            {"segment": 5, "lesion_metrics": 5, **AGGREGATES},
            id="segmentation.test_time_flips",
        ),
        pytest.param(
            {"segmentation": {"save_probabilities": True}},
            {"segment": 5, "lesion_metrics": 5, **AGGREGATES},
            id="segmentation.save_probabilities",
        ),
        pytest.param({"training": {"epochs": 3, "name": "other"}}, {}, id="training"),
        # The demo has no sessions, so no pairs; tests/test_longitudinal.py checks a cohort with some.
        pytest.param({"longitudinal": {"intensity_change_sd": 3.0}}, {}, id="longitudinal"),
        pytest.param(
            {"stats": {"remove_outliers": True}},
            {"statistics_outliers_removed": 1, "figures_outliers_removed": 1, "all": 1},
            id="stats.remove_outliers",
        ),
    ],
)
def test_config_change_reruns_what_its_row_says(restored, changes, expected):
    change_config(restored, changes)
    assert planned_jobs(restored) == expected


def test_existing_cohort_table_reruns_only_statistics_and_figures(restored):
    shutil.copy(restored / "results" / "cohort" / "cohort.parquet", restored / "data" / "table.parquet")
    try:
        change_config(restored, {"cohort_table": "data/table.parquet"})
        assert planned_jobs(restored) == {"statistics": 1, "figures": 1, "all": 1}
    finally:
        (restored / "data" / "table.parquet").unlink()


def test_reordered_config_keys_rerun_nothing(restored):
    def reversed_keys(value):
        if isinstance(value, dict):
            return {key: reversed_keys(value[key]) for key in reversed(list(value))}
        return value

    config = restored / "config" / "config.yaml"
    config.write_text(yaml.safe_dump(reversed_keys(yaml.safe_load(config.read_text())), sort_keys=False))
    assert planned_jobs(restored) == {}
