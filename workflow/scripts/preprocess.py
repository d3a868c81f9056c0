from functools import partial

from msprofile.jobs.preprocess import preprocess_subject
from msprofile.preprocess import PreprocessSettings
from msprofile.workflow import run_subject_job

run_subject_job(
    snakemake,
    "preprocess",
    partial(
        preprocess_subject,
        snakemake.wildcards.subject,
        snakemake.input.flair,
        skull_stripped=bool(snakemake.params.skull_stripped),
        settings=PreprocessSettings.from_config(snakemake.params.settings),
        brain_mask_path=snakemake.output.brain_mask,
        flair_preproc_path=snakemake.output.flair,
        qc_json_path=snakemake.output.qc_json,
        qc_png_path=snakemake.output.qc_png,
        given_brain_mask_path=snakemake.input.given_brain_mask or None,
    ),
)
