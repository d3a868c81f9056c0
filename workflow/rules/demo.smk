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
