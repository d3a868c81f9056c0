import json
from functools import partial
from pathlib import Path

from msprofile.lesion_jobs import lesion_metrics_subject
from msprofile.workflow import logged, run_subject_step

subject = snakemake.wildcards.subject
with logged(snakemake.log[0], f"lesion metrics {subject}"):
    run_subject_step(
        "lesion_metrics",
        subject,
        partial(
            lesion_metrics_subject,
            subject,
            snakemake.input.segmentation,
            snakemake.input.flair,
            snakemake.input.brain_mask,
            json.loads(Path(snakemake.input.card).read_text()),
            snakemake.output.lesions,
            snakemake.output.classes,
            snakemake.output.metrics,
        ),
        upstream=[snakemake.input.segmentation, snakemake.input.brain_mask],
        outputs=snakemake.output,
        subject_dir=Path(snakemake.output.metrics).parent,
        on_error=snakemake.config["on_error"],
    )
