


def cohort_job(sheet: pd.DataFrame, metrics_paths, qc_paths, lesion_paths, cohort_path, lesions_path,
               failures_path) -> None:
    """Write ``cohort.parquet``, ``lesions.parquet`` and ``failures.tsv`` for the cohort."""
    cohort = build_cohort_table(sheet, metrics_paths, qc_paths)
    write_parquet(cohort, cohort_path)
    write_parquet(concat_lesion_tables(p for p in lesion_paths if not is_placeholder(p)), lesions_path)
    failures = failures_table(cohort)
    with atomic_path(failures_path, suffix=".tsv") as tmp:
        failures.to_csv(tmp, sep="\t", index=False, lineterminator="\n")
    if len(failures):
        log.warning("%d of %d subjects failed and are listed in %s: %s", len(failures), len(cohort), failures_path,
                    ", ".join(failures["subject_id"]))
