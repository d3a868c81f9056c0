import json
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from msprofile import __version__ as msprofile_version
from msprofile.bids_input import BidsInputError, load_bids_scans
from msprofile.derivatives import DERIVATIVES, DerivativesError, bids_scans
from msprofile.outputs import (
    CHANGE_FIGURES,
    CHANGE_TABLES,
    figure_names,
    stats_tables,
)
from msprofile.scheduling import coalesce_scheduler_wakeups
from msprofile.segmentation.config import (
    training_settings as training_settings_from_config,
)
from msprofile.scans import (
    SCAN_ID_PATTERN,
    SESSION_PATTERN,
    SUBJECT_ID_PATTERN,
    session_sort_key,
)
from msprofile.synthetic import demo_cohort
from msprofile.sheet import SheetError, load_subject_sheet

validate(config, schema="../schemas/config.schema.yaml")

# Snakemake's scheduler otherwise wakes itself once more per second for every job started so
# far while others wait for cores: on a large cohort the main process takes CPU from the jobs.
coalesce_scheduler_wakeups()


def _sorted_keys(value):
    """``value`` with every mapping's keys in sorted order."""
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


# Snakemake compares a job's params with the last run's by their text: reordering keys in a
# config file (or filling in defaults) must not look like a change and rerun every subject.
_config_sorted = _sorted_keys(config)
config.clear()
config.update(_config_sorted)

RESULTS = config["results"]
# One folder per scan, named by its scan ID (msprofile.scans): the subject ID when the subject
# has no sessions. The `subject` wildcard holds the scan ID.
SUBJECT_DIR = f"{RESULTS}/subjects/{{subject}}"
LOG_DIR = f"{RESULTS}/logs"
# Fixed, not configurable: the demo sheet's paths point here.
DEMO_DIR = "resources/demo"
DEMO_IDS = [s.subject_id for s in demo_cohort.DEMO_SUBJECTS]
DEMO_FILES = ("flair.nii.gz", "wmh_manual.nii.gz", "ventricles_manual.nii.gz")
# The demo BIDS dataset (target demo_bids): a few demo phantoms as a BIDS dataset, to try BIDS input.
DEMO_BIDS_DIR = "resources/demo_bids"
DEMO_BIDS_SCANS = demo_cohort.DEMO_BIDS_SCANS
DEMO_BIDS_SUBJECTS = list(dict.fromkeys(subject for subject, _ in DEMO_BIDS_SCANS))
demo_bids_label = demo_cohort.demo_bids_label


BIDS_DIR = config["bids_dir"]


def _load_subjects():
    """The scan table (msprofile.sheet.OUTPUT_COLUMNS, indexed by scan ID): from the BIDS
    dataset of bids_dir, or from the subject sheet."""
    if BIDS_DIR:
        settings = config["bids"]
        try:
            return load_bids_scans(
                BIDS_DIR,
                participant_labels=settings["participant_label"],
                session_labels=settings["session_label"],
                flair_filters=settings["flair_filters"],
                columns=settings["columns"],
                allowed_groups=config["groups"],
                require_flair=settings["require_flair"],
                brain_mask_dir=settings["brain_masks"],
                brain_mask_desc=settings["brain_mask_desc"],
            )
        except BidsInputError as exc:
            raise WorkflowError(str(exc)) from None
    generated = [f"{DEMO_DIR}/{sid}/{name}" for sid in DEMO_IDS for name in DEMO_FILES]
    try:
        return load_subject_sheet(
            config["subjects"],
            schema_path=workflow.source_path("../schemas/subjects.schema.yaml"),
            allowed_groups=config["groups"],
            generated_paths=generated,
        )
    except SheetError as exc:
        raise WorkflowError(str(exc)) from None


# The scan table: one row per scan (a subject with several sessions has several).
SUBJECTS = _load_subjects()
INPUT_NAME = BIDS_DIR or config["subjects"]


def _model_dir():
    """The model folder: as configured, relative to the working directory; a relative path that
    is not there but is in this repository (the shipped model) is taken from the repository, so
    that runs from another working directory (the msprofile command) find the shipped model.
    """
    configured = config["segmentation"]["model"]
    shipped = Path(workflow.basedir).parent / configured
    if (
        Path(configured).is_absolute()
        or Path(configured).exists()
        or not shipped.exists()
    ):
        return configured
    return str(shipped.resolve())


MODEL_DIR = config["segmentation"]["model"] = _model_dir()
# An existing cohort table replaces the subjects as the input of the statistics.
COHORT_TABLE = config["cohort_table"]
# The per-scan outputs as a BIDS derivatives dataset under RESULTS: with BIDS input, or on request.
BIDS_DERIVATIVES = not COHORT_TABLE and (
    config["bids_derivatives"] is True
    or (config["bids_derivatives"] == "auto" and bool(BIDS_DIR))
)


def _derivative_scans():
    if not BIDS_DERIVATIVES:
        return []
    try:
        return bids_scans(SUBJECTS, BIDS_DIR or None)
    except DerivativesError as exc:
        raise WorkflowError(str(exc)) from None


DERIVATIVE_SCANS = _derivative_scans()
# What the derivatives are made from, in each scan's folder.
DERIVATIVE_INPUTS = [
    *DERIVATIVES,
    "preprocess_qc.json",
    *(["probabilities.nii.gz"] if config["segmentation"]["save_probabilities"] else []),
]
COHORT_INPUT = COHORT_TABLE or f"{RESULTS}/cohort/cohort.parquet"
# The full-cohort statistics and figures are always made. With stats.remove_outliers the
# variant after outlier removal is made beside them, in folders of its own, so that a
# sensitivity analysis needs one run and switching the option never reruns the other variant.
STATS_VARIANTS = {"": False} | (
    {"_outliers_removed": True} if config["stats"]["remove_outliers"] else {}
)


def report_category(kind, remove_outliers):
    """The report category of a statistics table or figure, and of its outlier-removed variant."""
    return kind + (" (outliers removed)" if remove_outliers else "")


def _gpu_present():
    """A GPU on this machine, as the NVIDIA driver's nvidia-smi tells."""
    return shutil.which("nvidia-smi") is not None


# `auto` tags segment jobs for the GPU only where a GPU is seen at planning time; on a
# cluster whose login node has none, set segmentation.device: gpu.
SEGMENT_GPUS = {"gpu": 1, "cpu": 0, "auto": int(_gpu_present())}[
    config["segmentation"]["device"]
]


def _training_subjects():
    """Subjects of the training sheet (or of the main sheet) with a manual lesion mask (the
    ventricle mask is optional: a fine-tuning site may label lesions alone)."""
    sheet = SUBJECTS
    if config["training"]["subjects"]:
        try:
            sheet = load_subject_sheet(
                config["training"]["subjects"],
                schema_path=workflow.source_path("../schemas/subjects.schema.yaml"),
                allowed_groups=config["groups"],
            )
        except SheetError as exc:
            raise WorkflowError(str(exc)) from None
    both_sheets = sheet.index.intersection(SUBJECTS.index)
    differing = [
        s for s in both_sheets if sheet.at[s, "flair"] != SUBJECTS.at[s, "flair"]
    ]
    if differing:
        raise WorkflowError(
            f"training sheet {config['training']['subjects']}: subject IDs {', '.join(differing)} "
            f"are also in {config['subjects']} with a different FLAIR file; per-subject outputs "
            "would collide: rename them in one of the sheets"
        )
    return sheet[sheet["wmh_mask"] != ""]


def training_needs_ventricles(wildcards):
    """Input function of training_slices: no input, but refuses a training set without any
    ventricle mask unless it fine-tunes. Checked when a training job is planned, not at
    start-up: a sheet of lesion masks alone is fine for segmenting and evaluating."""
    if (
        not (TRAINING_SUBJECTS["ventricles_mask"] != "").any()
        and not config["training"]["init_model"]
    ):
        raise WorkflowError(
            "no training subject has a ventricle mask: a model trained from scratch would never "
            "learn the ventricles; add ventricle masks or fine-tune an existing model "
            "(training.init_model)"
        )
    return []


TRAINING_SUBJECTS = _training_subjects()
# Per-subject rules look subjects up here: the main sheet and the training sheet together.
ALL_SUBJECTS = pd.concat(
    [SUBJECTS, TRAINING_SUBJECTS[~TRAINING_SUBJECTS.index.isin(SUBJECTS.index)]]
)


# The scan-ID pattern, not an alternation of every ID: Snakemake inlines the constraint into
# every path it fills in, so a list of 13,810 IDs made planning quadratic.
wildcard_constraints:
    subject=SCAN_ID_PATTERN,


def subject_value(column):
    """Input/params function: the sheet's ``column`` for the job's subject."""
    # A dict made once, not a DataFrame lookup per job: planning calls this for every
    # subject's jobs, and pandas' .at costs ten times a dict's lookup. The values are the
    # column's own NumPy scalars and strings, exactly what .at returns.
    values = dict(zip(ALL_SUBJECTS.index, ALL_SUBJECTS[column].to_numpy()))
    return lambda wildcards: values[wildcards.subject]


def _session_pairs():
    """The longitudinal pairs: per subject with two or more sessions, each session and the next
    one, in the order of the sheet's days where every session of the subject has them, else of
    the session labels sorted naturally. Keyed by (subject ID, baseline session, follow-up
    session); values give the two scan IDs and the interval in days (None when unknown).
    """
    pairs = {}
    scans = SUBJECTS[SUBJECTS["session"] != ""]
    for subject_id, rows in scans.groupby("subject_id", sort=True):
        by_days = bool(rows["days"].notna().all())
        order = sorted(
            rows.index,
            key=lambda scan: (
                rows.at[scan, "days"] if by_days else 0.0,
                session_sort_key(rows.at[scan, "session"]),
            ),
        )
        for baseline, followup in zip(order, order[1:]):
            interval = rows.at[followup, "days"] - rows.at[baseline, "days"]
            pairs[
                (subject_id, rows.at[baseline, "session"], rows.at[followup, "session"])
            ] = {
                "baseline_scan": baseline,
                "followup_scan": followup,
                "interval_days": None if pd.isna(interval) else float(interval),
            }
    return pairs


SESSION_PAIRS = _session_pairs()
# One folder per pair of consecutive sessions of a subject.
PAIR_DIR = f"{RESULTS}/longitudinal/{{subject_id}}/{{baseline}}_to_{{followup}}"
PAIR_FILES = ("new_or_enlarging_lesions.nii.gz", "change.json", "change_qc.png")


def pair_value(wildcards):
    """Params function: the pair's scans and interval (SESSION_PAIRS)."""
    return SESSION_PAIRS[(wildcards.subject_id, wildcards.baseline, wildcards.followup)]


def pair_inputs(wildcards):
    """Input function: each session's FLAIR, brain mask, segmentation and (with
    segmentation.save_probabilities) class probabilities, as baseline_* and followup_*.
    """
    pair = pair_value(wildcards)
    files = {}
    for role in ("baseline", "followup"):
        scan = pair[f"{role}_scan"]
        files[f"{role}_flair"] = ALL_SUBJECTS.at[scan, "flair"]
        names = ["brain_mask", "segmentation"]
        if config["segmentation"]["save_probabilities"]:
            names.append("probabilities")
        for name in names:
            files[f"{role}_{name}"] = f"{RESULTS}/subjects/{scan}/{name}.nii.gz"
    return files


def pair_groups():
    """Params of longitudinal_table: each pair's group (that of its baseline scan), in the
    order of SESSION_PAIRS; only the pairs' subjects, so that adding a subject without
    sessions does not rerun the table."""
    return [
        SUBJECTS.at[pair["baseline_scan"], "group"] for pair in SESSION_PAIRS.values()
    ]


def change_statistics_outputs():
    """The statistics and figures of change by group, where the cohort has pairs (none for a
    cross-sectional cohort, and none from an existing cohort table)."""
    if not SESSION_PAIRS or COHORT_TABLE:
        return []
    return [*rules.change_statistics.output, *rules.change_figures.output]


def longitudinal_outputs():
    """Every pair's change files and the cohort's table of changes (none without pairs)."""
    if not SESSION_PAIRS:
        return []
    return [
        *(
            f"{RESULTS}/longitudinal/{subject_id}/{baseline}_to_{followup}/{name}"
            for subject_id, baseline, followup in SESSION_PAIRS
            for name in PAIR_FILES
        ),
        f"{RESULTS}/longitudinal/longitudinal.parquet",
        f"{RESULTS}/longitudinal/longitudinal.tsv",
    ]


_GIVEN_BRAIN_MASK_PATH = subject_value("brain_mask")


def given_brain_mask(wildcards):
    """Input function: the brain mask given for the scan (sheet column brain_mask, or
    bids.brain_masks), or nothing."""
    return _GIVEN_BRAIN_MASK_PATH(wildcards) or []


def preprocess_outputs():
    """Every subject's preprocessing outputs."""
    return expand(
        [
            f"{SUBJECT_DIR}/brain_mask.nii.gz",
            f"{SUBJECT_DIR}/flair_preproc.nii.gz",
            f"{SUBJECT_DIR}/preprocess_qc.json",
            f"{SUBJECT_DIR}/preprocess_qc.png",
        ],
        subject=SUBJECTS.index,
    )


def segment_outputs():
    """Every subject's segmentation, and its probabilities with
    segmentation.save_probabilities (so that switching it on writes them for every subject,
    not only for those segmented afterwards)."""
    names = ["segmentation.nii.gz"]
    if config["segmentation"]["save_probabilities"]:
        names.append("probabilities.nii.gz")
    return expand([f"{SUBJECT_DIR}/{name}" for name in names], subject=SUBJECTS.index)


def lesion_outputs():
    """Every scan's lesion classes, metrics, statistics and segmentation picture."""
    return expand(
        [
            f"{SUBJECT_DIR}/lesions.parquet",
            f"{SUBJECT_DIR}/lesion_classes.nii.gz",
            f"{SUBJECT_DIR}/metrics.json",
            f"{SUBJECT_DIR}/lesion_stats.tsv",
            f"{SUBJECT_DIR}/segmentation_qc.png",
        ],
        subject=SUBJECTS.index,
    )


def evaluation_outputs():
    """The segmentation evaluation, when some subject of the sheet has a manual lesion mask."""
    return (
        [f"{RESULTS}/evaluation/segmentation_summary.tsv"]
        if (SUBJECTS["wmh_mask"] != "").any()
        else []
    )


def training_settings():
    """The training section's hyper-parameters (msprofile.segmentation.train.TrainingSettings);
    fine-tuning (training.init_model) trains for finetune_epochs at finetune_learning_rate
    with finetune_randomisation.
    """
    section = config["training"]
    return training_settings_from_config(section, finetune=bool(section["init_model"]))


TRAINING_DIR = f"{RESULTS}/training/{config['training']['name']}"
TRAINED_MODEL_DIR = f"resources/models/{config['training']['name']}"
INIT_MODEL = config["training"]["init_model"]
SYNTHETIC = config["training"]["synthetic_fraction"] > 0
FOLD_SUBJECTS = (
    list(TRAINING_SUBJECTS.index) if config["training"]["cross_validate"] else []
)


def training_extras():
    """Inputs every training job shares: the phantoms and the initial model, where used."""
    extras = {}
    if SYNTHETIC:
        extras["phantoms"] = f"{TRAINING_DIR}/phantoms.npz"
    if INIT_MODEL:
        extras["init_keras"] = f"{INIT_MODEL}/model.keras"
        extras["init_card"] = f"{INIT_MODEL}/model.json"
    return extras


def final_outputs():
    """What `snakemake` makes by default: the whole per-subject and cohort chain, or only the
    statistics of an existing cohort table."""
    statistics = [
        path
        for variant in STATS_VARIANTS
        for rule_name in (f"statistics{variant}", f"figures{variant}")
        for path in getattr(rules, rule_name).output
    ]
    if COHORT_TABLE:
        return statistics
    return [
        *preprocess_outputs(),
        *segment_outputs(),
        *lesion_outputs(),
        *evaluation_outputs(),
        *longitudinal_outputs(),
        *change_statistics_outputs(),
        *rules.cohort_table.output,
        *(rules.bids_derivatives.output if BIDS_DERIVATIVES else []),
        *statistics,
    ]


def report_summary():
    """Facts about this run for the report's front page (report/workflow.rst), which sees only
    the config: the sheet or BIDS dataset, the scans and subjects per group, the model and the
    failures recorded so far.
    """
    subjects = SUBJECTS.drop_duplicates("subject_id")
    summary = {
        "version": msprofile_version,
        "results": RESULTS,
        "input": INPUT_NAME,
        "input_kind": "BIDS dataset" if BIDS_DIR else "subject sheet",
        "cohort_table": COHORT_TABLE,
        "n_scans": len(SUBJECTS),
        "n_subjects": len(subjects),
        "n_by_group": subjects["group"].value_counts().sort_index().to_dict(),
        "n_pairs": 0 if COHORT_TABLE else len(SESSION_PAIRS),
        "n_pair_subjects": len({subject_id for subject_id, _, _ in SESSION_PAIRS}),
        "model": MODEL_DIR,
        "model_name": "",
        "model_sha256": "",
        "failed": [],
    }
    card = Path(MODEL_DIR) / "model.json"
    if card.is_file():
        model_card = json.loads(card.read_text())
        summary["model_name"] = model_card.get("name", "")
        summary["model_sha256"] = (
            model_card.get("files", {}).get("model.onnx", {}).get("sha256", "")
        )
    failures = Path(RESULTS) / "cohort" / "failures.tsv"
    if not COHORT_TABLE and failures.is_file():
        summary["failed"] = (
            pd.read_csv(failures, sep="\t", dtype=str)
            .fillna("")
            .to_dict(orient="records")
        )
    return summary


def report_failures():
    """After a successful run: say how many scans failed (on_error: record) and where the
    reasons are, so that nobody takes a finished run for a complete one."""
    path = Path(RESULTS) / "cohort" / "failures.tsv"
    if COHORT_TABLE or not path.is_file():
        return
    failures = pd.read_csv(path, sep="\t", dtype=str)
    if len(failures) and "scan_id" in failures:
        logger.warning(
            f"{len(failures)} of {len(SUBJECTS)} scans failed and are left out of the "
            f"cohort statistics (on_error: record); reasons in {path}: "
            + ", ".join(failures["scan_id"])
        )
