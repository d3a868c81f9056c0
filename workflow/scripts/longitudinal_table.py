from msprofile.jobs.longitudinal import longitudinal_table
from msprofile.workflow import logged

with logged(snakemake.log[0], "longitudinal table"):
    longitudinal_table(snakemake.input, snakemake.params.groups, snakemake.output.parquet, snakemake.output.tsv)
