import json
from pathlib import Path

from msprofile.lesion_jobs import lesion_metrics_subject
from msprofile.workflow import logged

with logged(snakemake.log[0], f"lesion metrics {snakemake.wildcards.subject}"):
    lesion_metrics_subject(
        snakemake.wildcards.subject,
        snakemake.input.segmentation,
        snakemake.input.flair,
        snakemake.input.brain_mask,
        json.loads(Path(snakemake.input.card).read_text()),
        snakemake.output.lesions,
        snakemake.output.classes,
        snakemake.output.metrics,
    )
