# The full-cohort statistics and figures are always made. With stats.remove_outliers the
# variant after outlier removal is made beside them, in folders of its own, so that a
# sensitivity analysis needs one run and switching the option never reruns the other variant.
STATS_VARIANTS = {"": False} | (
    {"_outliers_removed": True} if config["stats"]["remove_outliers"] else {}
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
]


def stats_tables(remove_outliers):
    return ["descriptives", "tests", "correlations", "regressions"] + (
        ["outliers_removed"] if remove_outliers else []
    )


def figure_names(remove_outliers):
    return FIGURES + (["outlier_overview"] if remove_outliers else [])


def report_category(kind, remove_outliers):
    return kind + (" (outliers removed)" if remove_outliers else "")


for variant, remove_outliers in STATS_VARIANTS.items():

    rule:
        name:
            f"statistics{variant}"
        input:
            cohort=COHORT_INPUT,
        output:
            **{
                name: report(
                    f"{RESULTS}/stats{variant}/{name}.tsv",
                    category=report_category("Statistical analyses", remove_outliers),
                    caption=f"../report/stats_{name}.rst",
                )
                for name in stats_tables(remove_outliers)
            },
        log:
            f"{LOG_DIR}/statistics{variant}.log",
        conda:
            "../envs/statistics.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            lesion_free_shares=config["stats"]["lesion_free_shares"],
            remove_outliers=remove_outliers,
        script:
            "../scripts/statistics.py"

    rule:
        name:
            f"figures{variant}"
        input:
            cohort=COHORT_INPUT,
        output:
            **{
                f"{name}_png": report(
                    f"{RESULTS}/figures{variant}/{name}.png",
                    category=report_category("Figures", remove_outliers),
                    caption=f"../report/figure_{name}.rst",
                )
                for name in figure_names(remove_outliers)
            },
            **{
                f"{name}_pdf": f"{RESULTS}/figures{variant}/{name}.pdf"
                for name in figure_names(remove_outliers)
            },
        log:
            f"{LOG_DIR}/figures{variant}.log",
        conda:
            "../envs/statistics.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            lesion_free_shares=config["stats"]["lesion_free_shares"],
            remove_outliers=remove_outliers,
        script:
            "../scripts/figures.py"
