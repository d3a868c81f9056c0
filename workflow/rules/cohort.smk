rule cohort_table:
    input:
        metrics=expand(f"{SUBJECT_DIR}/metrics.json", subject=SUBJECTS.index),
        qc=expand(f"{SUBJECT_DIR}/preprocess_qc.json", subject=SUBJECTS.index),
        lesions=expand(f"{SUBJECT_DIR}/lesions.parquet", subject=SUBJECTS.index),
    output:
        cohort=f"{RESULTS}/cohort/cohort.parquet",
        cohort_tsv=f"{RESULTS}/cohort/cohort.tsv",
        lesions=f"{RESULTS}/cohort/lesions.parquet",
        failures=f"{RESULTS}/cohort/failures.tsv",
    log:
        f"{LOG_DIR}/cohort_table.log",
    conda:
        "../envs/statistics.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        # Demographics come from the scan table as parameters: editing an age or a group reruns
        # this table and what follows it, never a scan's images.
        sheet=SUBJECTS[["subject_id", "session", "group", "age", "sex"]].to_dict(
            orient="index"
        ),
        # QC is judged here from each scan's measures: a changed threshold re-judges the
        # cohort without rerunning any image work.
        qc=config["qc"],
    script:
        "../scripts/cohort_table.py"
