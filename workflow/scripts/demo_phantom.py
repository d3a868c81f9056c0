from pathlib import Path

from msprofile.demo import phantom_for
from msprofile.phantom import write_phantom
from msprofile.workflow import logged

with logged(snakemake.log[0], f"demo phantom {snakemake.wildcards.demo_subject}"):
    phantom = phantom_for(snakemake.wildcards.demo_subject, snakemake.params.seed)
    write_phantom(phantom, Path(snakemake.output.flair).parent)
