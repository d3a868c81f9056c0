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


FIGURES_DIR = f"{RESULTS}/figures" + (
    "_outliers_removed" if config["stats"]["remove_outliers"] else ""
)
# The figures msprofile.figures.all_figures writes (msprofile.figures.figure_names; a test
# keeps the two lists equal). Named here so that planning a run never imports matplotlib.
FIGURES = [
    "demographics",
    "ventricular_burden",
    "lesion_burden",
    "ms_lesion_profile",
    "burden_vs_age",
    "correlation_heatmaps",
] + (["outlier_overview"] if config["stats"]["remove_outliers"] else [])


rule figures:
    input:
        cohort=COHORT_INPUT,
    output:
        **{
            f"{name}_png": report(
                f"{FIGURES_DIR}/{name}.png",
                category="Figures",
                caption=f"../report/figure_{name}.rst",
            )
            for name in FIGURES
        },
        **{f"{name}_pdf": f"{FIGURES_DIR}/{name}.pdf" for name in FIGURES},
    log:
        f"{LOG_DIR}/figures.log",
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
        "../scripts/figures.py"
