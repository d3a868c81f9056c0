rule demo_phantom:
    output:
        flair=f"{DEMO_DIR}/{{demo_subject}}/flair.nii.gz",
        wmh=f"{DEMO_DIR}/{{demo_subject}}/wmh_manual.nii.gz",
        ventricles=f"{DEMO_DIR}/{{demo_subject}}/ventricles_manual.nii.gz",
        brain=f"{DEMO_DIR}/{{demo_subject}}/brain.nii.gz",
        lesion_location=f"{DEMO_DIR}/{{demo_subject}}/lesion_location.nii.gz",
    log:
        f"{LOG_DIR}/demo_phantom/{{demo_subject}}.log",
    wildcard_constraints:
        demo_subject="|".join(re.escape(s) for s in DEMO_IDS),
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        # Minutes: a job takes seconds; a SLURM bundle asks for the sum over its jobs.
        runtime=1,
    params:
        seed=config["demo"]["seed"],
    script:
        "../scripts/demo_phantom.py"


rule demo_bids:
    input:
        flair=expand(f"{DEMO_DIR}/{{subject}}/flair.nii.gz", subject=DEMO_BIDS_SUBJECTS),
    output:
        description=f"{DEMO_BIDS_DIR}/dataset_description.json",
        participants=f"{DEMO_BIDS_DIR}/participants.tsv",
        flairs=[
            f"{DEMO_BIDS_DIR}/sub-{demo_bids_label(s)}/ses-{ses}/anat/sub-{demo_bids_label(s)}_ses-{ses}_FLAIR.nii.gz"
            for s, ses in DEMO_BIDS_SCANS
        ],
    log:
        f"{LOG_DIR}/demo_bids.log",
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        subjects=DEMO_BIDS_SUBJECTS,
    script:
        "../scripts/demo_bids.py"
