from msprofile.preprocess import PreprocessSettings, preprocess_subject
from msprofile.workflow import logged

with logged(snakemake.log[0], f"preprocess {snakemake.wildcards.subject}"):
    preprocess_subject(
        snakemake.wildcards.subject,
        snakemake.input.flair,
        skull_stripped=bool(snakemake.params.skull_stripped),
        settings=PreprocessSettings.from_config(snakemake.params.settings),
        brain_mask_path=snakemake.output.brain_mask,
        flair_preproc_path=snakemake.output.flair,
        qc_json_path=snakemake.output.qc_json,
        qc_png_path=snakemake.output.qc_png,
    )
