


def run_statistics(table: pd.DataFrame, out_dir: str | os.PathLike, *, lesion_free_shares: str = "missing",
                   remove_outliers: bool = False) -> dict[str, pd.DataFrame]:
    """The statistics stage: derive, optionally remove outliers, and write ``descriptives.tsv``,
    ``tests.tsv``, ``correlations.tsv``, ``regressions.tsv`` (and ``outliers_removed.tsv``
    when ``remove_outliers``) into ``out_dir``. Returns the tables by file stem."""
    derived = derive(table, lesion_free_shares=lesion_free_shares)
    notes = derived.attrs.get("notes", {})
    derived = derived.sort_values("subject_id", kind="stable").reset_index(drop=True)
    results: dict[str, pd.DataFrame] = {}
    if remove_outliers:
        derived, results["outliers_removed"] = outliers(derived)
        log.info("outlier rule removed %d subjects", len(results["outliers_removed"]))
    derived.attrs["notes"] = notes
    results["descriptives"] = descriptives(derived)
    results["tests"] = tests(derived)
    results["correlations"] = correlations(derived)
    results["regressions"] = regressions(derived)
    out_dir = Path(out_dir)
    for name in ("descriptives", "tests", "correlations", "regressions", "outliers_removed"):
        if name in results:
            write_tsv(results[name], out_dir / f"{name}.tsv")
    return results


def all_figures(table: pd.DataFrame, out_dir: str | os.PathLike, *, lesion_free_shares: str = "missing",
                remove_outliers: bool = False) -> dict[str, tuple[Path, Path]]:
    """Write every cohort figure as ``out_dir/<name>.png`` and ``out_dir/<name>.pdf``; return
    ``{name: (png_path, pdf_path)}`` in :func:`figure_names` order.

    The table is derived once (``lesion_free_shares``) and the statistics the figures draw
    (descriptives, regressions, correlations) are computed once. With ``remove_outliers`` the
    reference rule (:func:`msprofile.stats.outliers`, defaults) removes subjects first, as the
    statistics stage does; every figure then shows the kept subjects and says so under its
    title, and ``outlier_overview`` (drawn on the table before removal) shows who was removed
    and why. Without outlier removal there is nothing to overview, so that figure is not
    written (a placeholder saying so would only add a file); a stale ``outlier_overview`` file
    from an earlier run with removal is left alone.
    """
    out_dir = Path(out_dir)
    d = _prepare(table, lesion_free_shares)
    data, note = d, None
    if remove_outliers:
        data, removed = stats.outliers(d)
        data.attrs["notes"] = dict(d.attrs.get("notes", {}))
        note = f"after outlier removal: {len(removed)} of {len(d)} subjects removed (reference rule)"
    precomputed = {
        "ventricular_burden": {"descriptives": stats.descriptives(data)},
        "correlation_heatmaps": {"correlations": stats.correlations(data)},
        "burden_vs_age": {"regressions": stats.regressions(data)},
    }
    precomputed["lesion_burden"] = precomputed["ms_lesion_profile"] = precomputed["ventricular_burden"]
    written: dict[str, tuple[Path, Path]] = {}
    for name in figure_names(remove_outliers):
        png, pdf = out_dir / f"{name}.png", out_dir / f"{name}.pdf"
        if name == "outlier_overview":
            outlier_overview(d, png, pdf, lesion_free_shares=lesion_free_shares)
        else:
            FIGURES[name](data, png, pdf, lesion_free_shares=lesion_free_shares, note=note,
                          **precomputed.get(name, {}))
        written[name] = (png, pdf)
    return written
