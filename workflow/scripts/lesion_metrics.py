import json
from functools import partial
from pathlib import Path

from msprofile.lesion_jobs import lesion_metrics_subject
from msprofile.workflow import run_subject_job

run_subject_job(
    snakemake,
    "lesion_metrics",
    partial(
        lesion_metrics_subject,
        snakemake.wildcards.subject,
        snakemake.input.segmentation,
        snakemake.input.flair,
        snakemake.input.brain_mask,
        json.loads(Path(snakemake.input.card).read_text()),
        snakemake.output.lesions,
        snakemake.output.classes,
        snakemake.output.metrics,
    ),
    upstream=[snakemake.input.segmentation, snakemake.input.brain_mask],
)
