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
    log:
        f"{LOG_DIR}/segment/{{subject}}.log",
    conda:
        "../envs/segmentation.yaml"
    # One thread: a second ONNX Runtime thread costs about a third more CPU time per subject
    # (it spins while it waits), so on a workstation two one-thread jobs side by side get
    # through a cohort faster, and a SLURM bundle asks for the one CPU it keeps busy.
    threads: 1
    resources:
        gpu=SEGMENT_GPUS,
        mem_mb=4000,
        # Minutes: a job takes seconds; a SLURM bundle asks for the sum over its jobs.
        runtime=1,
    params:
        device=config["segmentation"]["device"],
        batch_size=config["segmentation"]["batch_size"],
    script:
        "../scripts/segment.py"
