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


# Change by group: from the table of longitudinal changes only (a subject without sessions, or
# a cross-sectional measure, reruns nothing here); made only where there are pairs.
rule change_statistics:
    input:
        table=f"{RESULTS}/longitudinal/longitudinal.parquet",
    output:
        **{
            name: report(
                f"{RESULTS}/stats/{name}.tsv",
                category="Longitudinal change",
                caption=f"../report/stats_{name}.rst",
            )
            for name in CHANGE_TABLES
        },
    log:
        f"{LOG_DIR}/change_statistics.log",
    conda:
        "../envs/statistics.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        groups=config["groups"],
    script:
        "../scripts/change_statistics.py"


rule change_figures:
    input:
        table=f"{RESULTS}/longitudinal/longitudinal.parquet",
    output:
        **{
            f"{name}_png": report(
                f"{RESULTS}/figures/{name}.png",
                category="Longitudinal change",
                caption=f"../report/figure_{name}.rst",
            )
            for name in CHANGE_FIGURES
        },
        **{f"{name}_pdf": f"{RESULTS}/figures/{name}.pdf" for name in CHANGE_FIGURES},
    log:
        f"{LOG_DIR}/change_figures.log",
    conda:
        "../envs/statistics.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        groups=config["groups"],
    script:
        "../scripts/change_figures.py"
