from pathlib import Path

from msprofile.jobs.statistics import load_cohort_table, write_statistics
from msprofile.workflow import logged

with logged(snakemake.log[0], "statistics"):
    write_statistics(
        load_cohort_table(snakemake.input.cohort),
        Path(snakemake.output.descriptives).parent,
        lesion_free_shares=snakemake.params.lesion_free_shares,
        remove_outliers=snakemake.params.remove_outliers,
    )
