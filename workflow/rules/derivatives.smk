rule bids_derivatives:
    input:
        **{
            name.split(".")[0]: expand(
                f"{SUBJECT_DIR}/{name}", subject=[s.scan_id for s in DERIVATIVE_SCANS]
            )
            for name in DERIVATIVE_INPUTS
        },
    output:
        description=f"{RESULTS}/dataset_description.json",
        bidsignore=f"{RESULTS}/.bidsignore",
        readme=f"{RESULTS}/README.md",
    log:
        f"{LOG_DIR}/bids_derivatives.log",
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        scans=[asdict(s) for s in DERIVATIVE_SCANS],
        version=msprofile_version,
        raw=(
            os.path.relpath(os.path.abspath(BIDS_DIR), os.path.abspath(RESULTS))
            if BIDS_DIR
            else None
        ),
        probabilities=config["segmentation"]["save_probabilities"],
    script:
        "../scripts/bids_derivatives.py"
