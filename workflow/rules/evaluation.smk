# Every subject with a manual lesion mask is evaluated; the ventricles only where the sheet
# gives a ventricle mask too (the ISBI 2015 scans, for one, come with lesion masks alone).
EVALUATED_SUBJECTS = SUBJECTS[SUBJECTS["wmh_mask"] != ""]


rule evaluate_segmentation:
    input:
        segmentations=expand(
            f"{SUBJECT_DIR}/segmentation.nii.gz", subject=EVALUATED_SUBJECTS.index
        ),
        uncertainties=expand(
            f"{SUBJECT_DIR}/segmentation_uncertainty.nii.gz",
            subject=EVALUATED_SUBJECTS.index,
        ),
        brain_masks=expand(
            f"{SUBJECT_DIR}/brain_mask.nii.gz", subject=EVALUATED_SUBJECTS.index
        ),
        wmh=list(EVALUATED_SUBJECTS["wmh_mask"]),
        ventricles=[p for p in EVALUATED_SUBJECTS["ventricles_mask"] if p],
    output:
        table=f"{RESULTS}/evaluation/segmentation_per_subject.tsv",
        summary=report(
            f"{RESULTS}/evaluation/segmentation_summary.tsv",
            category="Segmentation accuracy",
            caption="../report/segmentation_summary.rst",
        ),
        uncertainty=report(
            f"{RESULTS}/evaluation/uncertainty_auroc.tsv",
            category="Segmentation accuracy",
            caption="../report/uncertainty_auroc.rst",
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
        # One entry per subject, empty where it has no ventricle mask (inputs drop empties).
        ventricles=list(EVALUATED_SUBJECTS["ventricles_mask"]),
    script:
        "../scripts/evaluate_segmentation.py"
