from msprofile.jobs.training import write_training_slices
from msprofile.workflow import logged

with logged(snakemake.log[0], "training slices"):
    write_training_slices(
        snakemake.params.subjects,
        snakemake.input.flair,
        snakemake.input.brain_mask,
        snakemake.input.labels,
        snakemake.output[0],
    )
