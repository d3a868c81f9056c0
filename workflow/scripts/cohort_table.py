import pandas as pd

from msprofile.jobs.cohort import cohort_job
from msprofile.qc import QcThresholds
from msprofile.workflow import logged

with logged(snakemake.log[0], "cohort table"):
    cohort_job(
        pd.DataFrame.from_dict(snakemake.params.sheet, orient="index"),
        snakemake.input.metrics,
        snakemake.input.qc,
        snakemake.input.lesions,
        snakemake.output.cohort,
        snakemake.output.cohort_tsv,
        snakemake.output.lesions,
        snakemake.output.failures,
        QcThresholds.from_config(snakemake.params.qc),
    )
