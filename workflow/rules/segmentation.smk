rule segment:
    input:
        flair=f"{SUBJECT_DIR}/flair_preproc.nii.gz",
        brain_mask=f"{SUBJECT_DIR}/brain_mask.nii.gz",
        model=f"{MODEL_DIR}/model.onnx",
        card=f"{MODEL_DIR}/model.json",
    output:
        **(
            {"probabilities": f"{SUBJECT_DIR}/probabilities.nii.gz"}
            if config["segmentation"]["save_probabilities"]
            else {}
        ),
        segmentation=f"{SUBJECT_DIR}/segmentation.nii.gz",
        uncertainty=f"{SUBJECT_DIR}/segmentation_uncertainty.nii.gz",
    log:
        f"{LOG_DIR}/segment/{{subject}}.log",
    conda:
        "../envs/segmentation.yaml"
    threads: 2
    resources:
        gpu=SEGMENT_GPUS,
        mem_mb=4000,
        runtime=5,
    params:
        device=config["segmentation"]["device"],
        batch_size=config["segmentation"]["batch_size"],
        members=config["segmentation"]["ensemble_members"],
        flips=config["segmentation"]["test_time_flips"],
    script:
        "../scripts/segment.py"
