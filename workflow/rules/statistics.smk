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
