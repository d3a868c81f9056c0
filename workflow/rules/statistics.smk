STATS_DIR = f"{RESULTS}/stats" + (
    "_outliers_removed" if config["stats"]["remove_outliers"] else ""
)
STATS_TABLES = ["descriptives", "tests", "correlations", "regressions"] + (
    ["outliers_removed"] if config["stats"]["remove_outliers"] else []
)


rule statistics:
    input:
        cohort=COHORT_INPUT,
    output:
        **{
            name: report(
                f"{STATS_DIR}/{name}.tsv",
                category="Statistics",
                caption=f"../report/stats_{name}.rst",
            )
            for name in STATS_TABLES
        },
    log:
        f"{LOG_DIR}/statistics.log",
    conda:
        "../envs/statistics.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        lesion_free_shares=config["stats"]["lesion_free_shares"],
        remove_outliers=config["stats"]["remove_outliers"],
    script:
        "../scripts/statistics.py"
