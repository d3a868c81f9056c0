TRAINING_DIR = f"{RESULTS}/training/{config['training']['name']}"
TRAINED_MODEL_DIR = f"resources/models/{config['training']['name']}"


rule training_labels:
    input:
        wmh=subject_value("wmh_mask"),
        ventricles=subject_value("ventricles_mask"),
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
        flair=expand(
            f"{SUBJECT_DIR}/flair_preproc.nii.gz", subject=TRAINING_SUBJECTS.index
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


rule train_fold:
    input:
        slices=f"{TRAINING_DIR}/slices.npz",
        flair=f"{SUBJECT_DIR}/flair_preproc.nii.gz",
        brain_mask=f"{SUBJECT_DIR}/brain_mask.nii.gz",
        wmh=subject_value("wmh_mask"),
        ventricles=subject_value("ventricles_mask"),
    output:
        f"{TRAINING_DIR}/folds/{{subject}}.json",
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
        device=config["segmentation"]["device"],
    script:
        "../scripts/train_fold.py"


rule train_model:
    input:
        slices=f"{TRAINING_DIR}/slices.npz",
        folds=expand(
            f"{TRAINING_DIR}/folds/{{subject}}.json",
            subject=(
                TRAINING_SUBJECTS.index if config["training"]["cross_validate"] else []
            ),
        ),
    output:
        model=f"{TRAINED_MODEL_DIR}/model.keras",
        onnx=f"{TRAINED_MODEL_DIR}/model.onnx",
        card=f"{TRAINED_MODEL_DIR}/model.json",
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
        preprocessing=config["preprocess"],
        device=config["segmentation"]["device"],
    script:
        "../scripts/train_model.py"


rule train:
    input:
        rules.train_model.output,
