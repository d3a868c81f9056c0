from msprofile.jobs.training import write_phantom_bank
from msprofile.workflow import logged

with logged(snakemake.log[0], "training phantoms"):
    write_phantom_bank(
        snakemake.params.phantoms,
        snakemake.params.seed,
        snakemake.params.matrix,
        snakemake.params.pixel_size_mm,
        snakemake.output[0],
    )
