from pathlib import Path

from msprofile.jobs.statistics import load_cohort_table, write_figures
from msprofile.workflow import logged

with logged(snakemake.log[0], "figures"):
    write_figures(
        load_cohort_table(snakemake.input.cohort),
        Path(snakemake.output[0]).parent,
        lesion_free_shares=snakemake.params.lesion_free_shares,
        remove_outliers=snakemake.params.remove_outliers,
    )
