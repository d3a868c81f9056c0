from pathlib import Path

from msprofile.derivatives import BidsScan
from msprofile.jobs.derivatives import write_bids_derivatives
from msprofile.workflow import logged

with logged(snakemake.log[0], "BIDS derivatives"):
    write_bids_derivatives(
        [BidsScan(**scan) for scan in snakemake.params.scans],
        [Path(path).parent for path in snakemake.input.preprocess_qc],
        Path(snakemake.output.description).parent,
        version=snakemake.params.version,
        raw_dir_from_results=snakemake.params.raw,
        probabilities=snakemake.params.probabilities,
        description_path=snakemake.output.description,
        bidsignore_path=snakemake.output.bidsignore,
        readme_path=snakemake.output.readme,
    )
