rule preprocess:
    input:
        flair=subject_value("flair"),
        given_brain_mask=given_brain_mask,
    output:
        brain_mask=f"{SUBJECT_DIR}/brain_mask.nii.gz",
        flair=f"{SUBJECT_DIR}/flair_preproc.nii.gz",
        qc_json=f"{SUBJECT_DIR}/preprocess_qc.json",
        qc_png=report(
            f"{SUBJECT_DIR}/preprocess_qc.png",
            category="Scan QC",
            subcategory="{subject}",
            caption="../report/preprocess_qc.rst",
        ),
    log:
        f"{LOG_DIR}/preprocess/{{subject}}.log",
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        # Minutes: a job takes seconds, a large 3-D scan under a minute; a SLURM bundle asks
        # for the sum over its jobs.
        runtime=2,
    params:
        skull_stripped=subject_value("skull_stripped"),
        settings=config["preprocess"],
    script:
        "../scripts/preprocess.py"
