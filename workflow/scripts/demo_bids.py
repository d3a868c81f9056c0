from pathlib import Path

from msprofile.jobs.demo import write_demo_bids
from msprofile.workflow import logged

with logged(snakemake.log[0], "demo BIDS dataset"):
    write_demo_bids(
        dict(zip(snakemake.params.subjects, snakemake.input.flair)), Path(snakemake.output.description).parent
    )
