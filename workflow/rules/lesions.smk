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
    log:
        f"{LOG_DIR}/lesion_metrics/{{subject}}.log",
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/lesion_metrics.py"
