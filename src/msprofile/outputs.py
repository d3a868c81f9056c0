"""Names of the cohort-level statistics tables and figures, in one place.

The rule files take their output lists from here and :mod:`msprofile.jobs.statistics` writes
exactly these files. Nothing here imports matplotlib or the statistics stack, so planning a
run stays fast.
"""

from __future__ import annotations

#: The statistics tables (``<name>.tsv``), in the order they are written.
STATS_TABLES: tuple[str, ...] = ("descriptives", "tests", "correlations", "regressions", "outliers_removed")
#: The cohort figures (``<name>.png`` and ``<name>.pdf``), in the order they are drawn.
FIGURE_NAMES: tuple[str, ...] = (
    "demographics",
    "ventricular_burden",
    "lesion_burden",
    "ms_lesion_profile",
    "burden_vs_age",
    "correlation_heatmaps",
    "outlier_overview",
)
#: The outputs that exist only with outlier removal.
OUTLIER_ONLY: frozenset[str] = frozenset({"outliers_removed", "outlier_overview"})


def stats_tables(remove_outliers: bool = False) -> tuple[str, ...]:
    """The tables the statistics stage writes: all of :data:`STATS_TABLES`, without
    ``outliers_removed`` unless ``remove_outliers``."""
    return tuple(n for n in STATS_TABLES if remove_outliers or n not in OUTLIER_ONLY)


def figure_names(remove_outliers: bool = False) -> tuple[str, ...]:
    """The figures the figures stage writes: all of :data:`FIGURE_NAMES`, without
    ``outlier_overview`` unless ``remove_outliers`` (without removal there is nothing to show)."""
    return tuple(n for n in FIGURE_NAMES if remove_outliers or n not in OUTLIER_ONLY)


#: The statistics of longitudinal change by group (``<name>.tsv`` beside :data:`STATS_TABLES`),
#: made only where the cohort has pairs of sessions.
CHANGE_TABLES: tuple[str, ...] = ("change_summary", "change_descriptives", "change_tests")
#: The figures of longitudinal change (``<name>.png`` and ``.pdf`` beside :data:`FIGURE_NAMES`).
CHANGE_FIGURES: tuple[str, ...] = ("change_by_group", "change_vs_interval")
