from pathlib import Path

from msprofile.stats import load_reference_table, run_statistics
from msprofile.workflow import logged

with logged(snakemake.log[0], "statistics"):
    run_statistics(
        load_reference_table(snakemake.input.cohort),
        Path(snakemake.output.descriptives).parent,
        lesion_free_shares=snakemake.params.lesion_free_shares,
        remove_outliers=snakemake.params.remove_outliers,
    )
