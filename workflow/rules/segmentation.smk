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
    # One thread: a second ONNX Runtime thread costs about a third more CPU time per subject
    # (it spins while it waits), so on a workstation two one-thread jobs side by side get
    # through a cohort faster, and a SLURM bundle asks for the one CPU it keeps busy.
    threads: 1
    resources:
        gpu=SEGMENT_GPUS,
        # Peak measured one slice per pass: 243 MB for 20 slices, 478 MB for 70 slices with
        # the probabilities written.
        mem_mb=2000,
        # Minutes: a job takes seconds (each ensemble member a forward pass); a SLURM bundle
        # asks for the sum over its jobs.
        runtime=1,
    # segmentation.device and .batch_size are read by the script from the config, not passed
    # as params: where and in what batches the network runs changes its result by float
    # rounding at most, so changing them must not rerun the cohort's segmentations. The
    # ensemble's members and flips change the result, so they are params and rerun it.
    params:
        members=config["segmentation"]["ensemble_members"],
        flips=config["segmentation"]["test_time_flips"],
    script:
        "../scripts/segment.py"
