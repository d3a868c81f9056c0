from functools import partial
from pathlib import Path

from msprofile.segmentation.jobs import segment_subject
from msprofile.workflow import logged, run_subject_step

subject = snakemake.wildcards.subject
with logged(snakemake.log[0], f"segment {subject}"):
    run_subject_step(
        "segment",
        subject,
        partial(
            segment_subject,
            subject,
            snakemake.input.flair,
            snakemake.input.brain_mask,
            snakemake.config["segmentation"]["model"],
            snakemake.output.segmentation,
            snakemake.output.get("probabilities"),
            device=snakemake.params.device,
            batch_size=snakemake.params.batch_size,
            threads=snakemake.threads,
        ),
        upstream=[snakemake.input.flair, snakemake.input.brain_mask],
        outputs=snakemake.output,
        subject_dir=Path(snakemake.output.segmentation).parent,
        on_error=snakemake.config["on_error"],
    )
