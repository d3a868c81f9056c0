from pathlib import Path

from msprofile.jobs.statistics import load_change_table, write_change_statistics
from msprofile.workflow import logged

with logged(snakemake.log[0], "statistics of change"):
    write_change_statistics(
        load_change_table(snakemake.input.table),
        Path(snakemake.output.change_summary).parent,
        groups=snakemake.params.groups,
    )
