from pathlib import Path

from msprofile.figures import all_figures
from msprofile.stats import load_reference_table
from msprofile.workflow import logged

with logged(snakemake.log[0], "figures"):
    all_figures(
        load_reference_table(snakemake.input.cohort),
        Path(snakemake.output[0]).parent,
        lesion_free_shares=snakemake.params.lesion_free_shares,
        remove_outliers=snakemake.params.remove_outliers,
    )
