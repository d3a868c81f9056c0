from msprofile.segmentation.jobs import segment_subject
from msprofile.workflow import logged

with logged(snakemake.log[0], f"segment {snakemake.wildcards.subject}"):
    segment_subject(
        snakemake.wildcards.subject,
        snakemake.input.flair,
        snakemake.input.brain_mask,
        snakemake.config["segmentation"]["model"],
        snakemake.output.segmentation,
        snakemake.output.get("probabilities"),
        device=snakemake.params.device,
        batch_size=snakemake.params.batch_size,
        threads=snakemake.threads,
    )
