import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from msprofile import demo
from msprofile.sheet import SheetError, load_subject_sheet

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results"]
SUBJECT_DIR = f"{RESULTS}/subjects/{{subject}}"
LOG_DIR = f"{RESULTS}/logs"
# Fixed, not configurable: the demo sheet's paths point here.
DEMO_DIR = "resources/demo"
DEMO_IDS = [s.subject_id for s in demo.DEMO_SUBJECTS]
DEMO_FILES = ("flair.nii.gz", "wmh_manual.nii.gz", "ventricles_manual.nii.gz")


def _load_subjects():
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


SUBJECTS = _load_subjects()


wildcard_constraints:
    subject="|".join(re.escape(s) for s in SUBJECTS.index),


def subject_value(column):
    """Input/params function: the sheet's ``column`` for the job's subject."""
    return lambda wildcards: SUBJECTS.at[wildcards.subject, column]


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
