rule lesion_metrics:
    input:
        segmentation=f"{SUBJECT_DIR}/segmentation.nii.gz",
        uncertainty=f"{SUBJECT_DIR}/segmentation_uncertainty.nii.gz",
        brain_mask=f"{SUBJECT_DIR}/brain_mask.nii.gz",
        flair=subject_value("flair"),
        card=f"{MODEL_DIR}/model.json",
    output:
        lesions=f"{SUBJECT_DIR}/lesions.parquet",
        classes=f"{SUBJECT_DIR}/lesion_classes.nii.gz",
        metrics=f"{SUBJECT_DIR}/metrics.json",
        stats=f"{SUBJECT_DIR}/lesion_stats.tsv",
        qc_png=report(
            f"{SUBJECT_DIR}/segmentation_qc.png",
            category="Scan QC",
            subcategory="{subject}",
            caption="../report/segmentation_qc.rst",
        ),
    log:
        f"{LOG_DIR}/lesion_metrics/{{subject}}.log",
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        # Minutes: a job takes seconds; a SLURM bundle asks for the sum over its jobs.
        runtime=1,
    script:
        "../scripts/lesion_metrics.py"
