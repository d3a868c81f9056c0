EVALUATED_SUBJECTS = SUBJECTS[
    (SUBJECTS["wmh_mask"] != "") & (SUBJECTS["ventricles_mask"] != "")
]


rule evaluate_segmentation:
    input:
        segmentations=expand(
            f"{SUBJECT_DIR}/segmentation.nii.gz", subject=EVALUATED_SUBJECTS.index
        ),
        wmh=list(EVALUATED_SUBJECTS["wmh_mask"]),
        ventricles=list(EVALUATED_SUBJECTS["ventricles_mask"]),
    output:
        table=f"{RESULTS}/evaluation/segmentation_per_subject.tsv",
        summary=report(
            f"{RESULTS}/evaluation/segmentation_summary.tsv",
            category="Segmentation accuracy",
            caption="../report/segmentation_summary.rst",
        ),
        figure_png=report(
            f"{RESULTS}/evaluation/segmentation_dice.png",
            category="Segmentation accuracy",
            caption="../report/segmentation_dice.rst",
        ),
        figure_pdf=f"{RESULTS}/evaluation/segmentation_dice.pdf",
    log:
        f"{LOG_DIR}/evaluate_segmentation.log",
    conda:
        "../envs/statistics.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        subjects=list(EVALUATED_SUBJECTS.index),
    script:
        "../scripts/evaluate_segmentation.py"
