from msprofile.jobs.training import write_training_labels
from msprofile.workflow import logged

with logged(snakemake.log[0], f"training labels {snakemake.wildcards.subject}"):
    write_training_labels(
        snakemake.wildcards.subject,
        snakemake.input.wmh,
        snakemake.input.ventricles,
        snakemake.input.flair,
        snakemake.input.brain_mask,
        snakemake.output[0],
    )
