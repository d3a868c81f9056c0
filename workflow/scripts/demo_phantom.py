from pathlib import Path

from msprofile.jobs.demo import demo_phantom
from msprofile.workflow import logged

with logged(snakemake.log[0], f"demo phantom {snakemake.wildcards.demo_subject}"):
    demo_phantom(snakemake.wildcards.demo_subject, snakemake.params.seed, Path(snakemake.output.flair).parent)
