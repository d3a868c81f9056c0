# Longitudinal change between consecutive sessions of a subject (SESSION_PAIRS in common.smk):
# rigid registration of the follow-up to the baseline, new / enlarging / shrinking / vanished
# lesions, and the cohort's table of changes.


rule longitudinal_change:
    input:
        unpack(pair_inputs),
    output:
        labels=f"{PAIR_DIR}/new_or_enlarging_lesions.nii.gz",
        change=f"{PAIR_DIR}/change.json",
        qc_png=report(
            f"{PAIR_DIR}/change_qc.png",
            category="Longitudinal QC",
            subcategory="{subject_id}",
            caption="../report/change_qc.rst",
        ),
    log:
        f"{LOG_DIR}/longitudinal_change/{{subject_id}}/{{baseline}}_to_{{followup}}.log",
    wildcard_constraints:
        subject_id=SUBJECT_ID_PATTERN,
        baseline=SESSION_PATTERN,
        followup=SESSION_PATTERN,
    conda:
        "../envs/imaging.yaml"
    # Registration runs on one thread by design (reproducible to the bit).
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        pair=pair_value,
        settings=config["longitudinal"],
    script:
        "../scripts/longitudinal_change.py"


rule longitudinal_table:
    input:
        [
            f"{RESULTS}/longitudinal/{subject_id}/{baseline}_to_{followup}/change.json"
            for subject_id, baseline, followup in SESSION_PAIRS
        ],
    output:
        parquet=f"{RESULTS}/longitudinal/longitudinal.parquet",
        tsv=f"{RESULTS}/longitudinal/longitudinal.tsv",
    log:
        f"{LOG_DIR}/longitudinal_table.log",
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        groups=pair_groups(),
    script:
        "../scripts/longitudinal_table.py"
