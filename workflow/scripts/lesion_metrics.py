from functools import partial

from msprofile.jobs.lesions import lesion_metrics_subject
from msprofile.workflow import run_subject_job

run_subject_job(
    snakemake,
    "lesion_metrics",
    partial(
        lesion_metrics_subject,
        snakemake.wildcards.subject,
        snakemake.input.segmentation,
        snakemake.input.uncertainty,
        snakemake.input.flair,
        snakemake.input.brain_mask,
        snakemake.input.card,
        snakemake.output.lesions,
        snakemake.output.classes,
        snakemake.output.metrics,
        stats_path=snakemake.output.stats,
        qc_png_path=snakemake.output.qc_png,
    ),
    upstream=[snakemake.input.segmentation, snakemake.input.uncertainty, snakemake.input.brain_mask],
)
