from pathlib import Path

from msprofile.jobs.statistics import load_change_table, write_change_figures
from msprofile.workflow import logged

with logged(snakemake.log[0], "figures of change"):
    write_change_figures(
        load_change_table(snakemake.input.table),
        Path(snakemake.output[0]).parent,
        groups=snakemake.params.groups,
    )
