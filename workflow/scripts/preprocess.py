from functools import partial
from pathlib import Path

from msprofile.preprocess import PreprocessSettings, preprocess_subject
from msprofile.workflow import logged, run_subject_step

subject = snakemake.wildcards.subject
with logged(snakemake.log[0], f"preprocess {subject}"):
    run_subject_step(
        "preprocess",
        subject,
        partial(
            preprocess_subject,
            subject,
            snakemake.input.flair,
            skull_stripped=bool(snakemake.params.skull_stripped),
            settings=PreprocessSettings.from_config(snakemake.params.settings),
            brain_mask_path=snakemake.output.brain_mask,
            flair_preproc_path=snakemake.output.flair,
            qc_json_path=snakemake.output.qc_json,
            qc_png_path=snakemake.output.qc_png,
        ),
        upstream=[],
        outputs=snakemake.output,
        subject_dir=Path(snakemake.output.qc_json).parent,
        on_error=snakemake.config["on_error"],
    )
