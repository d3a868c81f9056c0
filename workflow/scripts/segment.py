from functools import partial

from msprofile.jobs.segmentation import segment_subject
from msprofile.workflow import run_subject_job

run_subject_job(
    snakemake,
    "segment",
    partial(
        segment_subject,
        snakemake.wildcards.subject,
        snakemake.input.flair,
        snakemake.input.brain_mask,
        snakemake.config["segmentation"]["model"],
        snakemake.output.segmentation,
        snakemake.output.uncertainty,
        snakemake.output.get("probabilities"),
        members=snakemake.params.members,
        flips=snakemake.params.flips,
        device=snakemake.config["segmentation"]["device"],
        batch_size=snakemake.config["segmentation"]["batch_size"],
        threads=snakemake.threads,
    ),
    upstream=[snakemake.input.flair, snakemake.input.brain_mask],
)
