rule training_labels:
    input:
        wmh=subject_value("wmh_mask"),
        # Empty for a subject with a lesion mask alone (its ventricles are unknown).
        ventricles=lambda w: ALL_SUBJECTS.at[w.subject, "ventricles_mask"] or [],
        flair=f"{SUBJECT_DIR}/flair_preproc.nii.gz",
        brain_mask=f"{SUBJECT_DIR}/brain_mask.nii.gz",
    output:
        f"{SUBJECT_DIR}/labels_model.nii.gz",
    log:
        f"{LOG_DIR}/training_labels/{{subject}}.log",
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/training_labels.py"


rule training_slices:
    input:
        training_needs_ventricles,
        flair=expand(
            f"{SUBJECT_DIR}/flair_preproc.nii.gz", subject=TRAINING_SUBJECTS.index
        ),
        brain_mask=expand(
            f"{SUBJECT_DIR}/brain_mask.nii.gz", subject=TRAINING_SUBJECTS.index
        ),
        labels=expand(
            f"{SUBJECT_DIR}/labels_model.nii.gz", subject=TRAINING_SUBJECTS.index
        ),
    output:
        f"{TRAINING_DIR}/slices.npz",
    log:
        f"{LOG_DIR}/training_slices.log",
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        subjects=list(TRAINING_SUBJECTS.index),
    script:
        "../scripts/training_slices.py"


rule training_phantoms:
    output:
        f"{TRAINING_DIR}/phantoms.npz",
    log:
        f"{LOG_DIR}/training_phantoms.log",
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        phantoms=config["training"]["phantoms"],
        seed=config["training"]["seed"],
        matrix=config["preprocess"]["matrix"],
        pixel_size_mm=config["preprocess"]["pixel_size_mm"],
    script:
        "../scripts/training_phantoms.py"


rule train_fold:
    input:
        unpack(lambda w: training_extras()),
        slices=f"{TRAINING_DIR}/slices.npz",
        flair=f"{SUBJECT_DIR}/flair_preproc.nii.gz",
        brain_mask=f"{SUBJECT_DIR}/brain_mask.nii.gz",
        wmh=subject_value("wmh_mask"),
        ventricles=lambda w: ALL_SUBJECTS.at[w.subject, "ventricles_mask"] or [],
    output:
        result=f"{TRAINING_DIR}/folds/{{subject}}.json",
        member=f"{TRAINING_DIR}/folds/{{subject}}.onnx",
    log:
        f"{LOG_DIR}/train_fold/{{subject}}.log",
    conda:
        "../envs/segmentation.yaml"
    threads: 2
    resources:
        gpu=SEGMENT_GPUS,
        mem_mb=8000,
        runtime=240,
    params:
        settings=training_settings(),
        init_model=INIT_MODEL,
        flips=config["segmentation"]["test_time_flips"],
        device=config["segmentation"]["device"],
    script:
        "../scripts/train_fold.py"


rule train_model:
    input:
        unpack(lambda w: training_extras()),
        slices=f"{TRAINING_DIR}/slices.npz",
        folds=expand(f"{TRAINING_DIR}/folds/{{subject}}.json", subject=FOLD_SUBJECTS),
        members=expand(f"{TRAINING_DIR}/folds/{{subject}}.onnx", subject=FOLD_SUBJECTS),
    output:
        model=f"{TRAINED_MODEL_DIR}/model.keras",
        onnx=f"{TRAINED_MODEL_DIR}/model.onnx",
        card=f"{TRAINED_MODEL_DIR}/model.json",
        members=expand(
            f"{TRAINED_MODEL_DIR}/members/fold-{{subject}}.onnx", subject=FOLD_SUBJECTS
        ),
    log:
        f"{LOG_DIR}/train_model.log",
    conda:
        "../envs/segmentation.yaml"
    threads: 2
    resources:
        gpu=SEGMENT_GPUS,
        mem_mb=8000,
        runtime=240,
    params:
        name=config["training"]["name"],
        settings=training_settings(),
        init_model=INIT_MODEL,
        preprocessing=config["preprocess"],
        flips=config["segmentation"]["test_time_flips"],
        device=config["segmentation"]["device"],
    script:
        "../scripts/train_model.py"


rule train:
    input:
        rules.train_model.output,
