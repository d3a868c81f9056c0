"""Jobs of ``statistics.smk``: the cohort table in, the statistics tables and figures out; the
table of longitudinal changes in, the statistics and figures of change by group out."""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from .. import stats
from ..io import read_table, save_figure, write_tsv
from ..outputs import CHANGE_FIGURES, CHANGE_TABLES, stats_tables

if TYPE_CHECKING:
    from ..figures import CohortFigure

# The figures module (matplotlib) is imported by the figures job only: the statistics rule
# runs in a process of its own, and matplotlib is a third of its imports.

log = logging.getLogger(__name__)


def load_cohort_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a cohort table (the reference study's CSV, or a CSV, TSV or Parquet file with this
    workflow's columns, such as its ``cohort.parquet``) into the shape
    :func:`msprofile.stats.cohort_input` gives. Raises ``FileNotFoundError`` when there is no
    file and ``ValueError`` naming the file and the problem when the table does not fit."""
    raw = read_table(path, string_columns=("PatientID", "subject_id"))
    return stats.cohort_input(raw, source=str(path))


def write_statistics(
    table: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    lesion_free_shares: str = "missing",
    remove_outliers: bool = False,
) -> dict[str, pd.DataFrame]:
    """The statistics stage on a cohort table (:func:`load_cohort_table`): derive, optionally
    remove outliers, and write :func:`msprofile.outputs.stats_tables` (``descriptives.tsv``,
    ``tests.tsv``, ``correlations.tsv``, ``regressions.tsv``, and ``outliers_removed.tsv`` when
    ``remove_outliers``) into ``out_dir``. Returns the tables by file stem."""
    derived = stats.derive(table, lesion_free_shares=lesion_free_shares)
    notes = derived.attrs.get("notes", {})
    derived = derived.sort_values("subject_id", kind="stable").reset_index(drop=True)
    results: dict[str, pd.DataFrame] = {}
    if remove_outliers:
        derived, results["outliers_removed"] = stats.outliers(derived)
        log.info("outlier rule removed %d subjects", len(results["outliers_removed"]))
    derived.attrs["notes"] = notes
    results["descriptives"] = stats.descriptives(derived)
    results["tests"] = stats.tests(derived)
    results["correlations"] = stats.correlations(derived)
    results["regressions"] = stats.regressions(derived)
    out_dir = Path(out_dir)
    for name in stats_tables(remove_outliers):
        write_tsv(results[name], out_dir / f"{name}.tsv", float_format=stats.FLOAT_FORMAT, na_rep=stats.NA_REP)
    return results


def write_figures(
    table: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    lesion_free_shares: str = "missing",
    remove_outliers: bool = False,
) -> dict[str, dict]:
    """The figures stage on a cohort table (:func:`load_cohort_table`): every figure of
    :func:`msprofile.figures.all_figures` written as ``out_dir/<name>.png`` and
    ``out_dir/<name>.pdf``. Returns what :func:`write_figure` returns, by name."""
    from .. import figures

    # Everything imported so far (pandas, SciPy, statsmodels, matplotlib) lives until the job
    # ends: frozen, it is left out of the collector's full passes, which the thousands of
    # artists a figure creates set off; a tenth of this job's time.
    gc.freeze()
    drawn = figures.all_figures(table, lesion_free_shares=lesion_free_shares, remove_outliers=remove_outliers)
    out_dir = Path(out_dir)
    return {
        name: write_figure(figure, out_dir / f"{name}.png", out_dir / f"{name}.pdf") for name, figure in drawn.items()
    }


def write_figure(figure: CohortFigure, png_path, pdf_path) -> dict:
    """Write a cohort figure as PNG and PDF (:func:`msprofile.io.save_figure`, in the figures'
    style); return its summary with ``name``, ``png``, ``pdf``, ``size_px``
    (width, height) and ``texts`` (every text drawn)."""
    import matplotlib

    from .. import figures

    with matplotlib.rc_context(figures.STYLE):
        size_px = save_figure(figure.figure, png_path, pdf_path, dpi=figures.FIGURE_DPI)
    return {
        "name": figure.name,
        "png": Path(png_path),
        "pdf": Path(pdf_path),
        "size_px": size_px,
        "texts": figure.texts,
        **figure.summary,
    }


def load_change_table(path) -> pd.DataFrame:
    """``longitudinal.parquet`` (or its TSV) as :func:`msprofile.stats.change_input` gives it.
    Raises ``FileNotFoundError`` without the file and ``ValueError`` naming it when the table
    does not fit."""
    raw = read_table(path, string_columns=("subject_id", "group", "baseline_session", "followup_session"))
    return stats.change_input(raw, source=str(path))


def write_change_statistics(table: pd.DataFrame, out_dir, *, groups=()) -> dict[str, pd.DataFrame]:
    """The statistics of change by group (:data:`msprofile.outputs.CHANGE_TABLES`:
    :func:`msprofile.stats.change_summary`, ``change_descriptives``, ``change_tests``; groups
    in the order of ``groups``, the first present the reference) written as ``out_dir/<name>.tsv``
    (``%.12g``, ``NA``). Returns the tables by name."""
    results = {
        "change_summary": stats.change_summary(table, groups),
        "change_descriptives": stats.change_descriptives(table, groups),
        "change_tests": stats.change_tests(table, groups),
    }
    excluded = results["change_summary"].iloc[-1]
    log.info(
        "%d of %d pairs analysed; left out: %d poor registration, %d failed registration, %d failed jobs",
        excluded["n_analysed"],
        excluded["n_pairs"],
        excluded["n_poor_registration"],
        excluded["n_registration_failed"],
        excluded["n_job_failed"],
    )
    for name in CHANGE_TABLES:
        write_tsv(results[name], Path(out_dir) / f"{name}.tsv", float_format=stats.FLOAT_FORMAT, na_rep=stats.NA_REP)
    return results


def write_change_figures(table: pd.DataFrame, out_dir, *, groups=()) -> dict[str, dict]:
    """The figures of change by group (:data:`msprofile.outputs.CHANGE_FIGURES`,
    :func:`msprofile.figures.change_figures`) as ``out_dir/<name>.png`` and ``.pdf``; returns
    what :func:`msprofile.jobs.statistics.write_figure` returns, by name."""
    from .. import figures

    drawn = figures.change_figures(table, groups=groups)
    return {
        name: write_figure(drawn[name], Path(out_dir) / f"{name}.png", Path(out_dir) / f"{name}.pdf")
        for name in CHANGE_FIGURES
    }
