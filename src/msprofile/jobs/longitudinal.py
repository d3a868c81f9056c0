"""Jobs of ``longitudinal.smk``: the change between two sessions of a subject, and the cohort's
table of changes (one row per pair of consecutive sessions)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..failures import is_placeholder
from ..geometry import Grid, resample, to_canonical
from ..io import (
    load_image,
    load_json,
    load_volumes,
    read_header_geometry,
    save_json,
    save_nifti,
    save_png,
    write_parquet,
    write_tsv,
)
from ..labels import SegmentationClass
from ..longitudinal import ChangeResult, ChangeSettings, Session, analyse_pair
from ..montage import change_montage
from ..registration import RegistrationError, register_rigid, registration_quality

#: Keys of a session's inputs: the raw FLAIR, its brain mask and segmentation, and (optional)
#: the class probabilities, all on the scan's native grid.
SESSION_FILES = ("flair", "brain_mask", "segmentation", "probabilities")
#: Columns of ``longitudinal.parquet`` / ``.tsv`` (one row per pair of consecutive sessions).
TABLE_COLUMNS = (
    "subject_id",
    "group",
    "baseline_session",
    "followup_session",
    "baseline_scan",
    "followup_scan",
    "interval_days",
    "status",
    "qc_flags",
    "registration_correlation",
    "registration_mask_dice",
    "new_lesions",
    "enlarging_lesions",
    "new_or_enlarging_lesions",
    "shrinking_lesions",
    "vanished_lesions",
    "new_volume_ml",
    "enlarging_volume_ml",
    "shrinking_volume_ml",
    "vanished_volume_ml",
)
COUNT_COLUMNS = TABLE_COLUMNS[TABLE_COLUMNS.index("new_lesions") :]


def load_session(scan_id: str, files: dict) -> Session:
    """One session's images (:class:`msprofile.longitudinal.Session`) from its files
    (:data:`SESSION_FILES`; ``probabilities`` may be missing or empty, then the segmentation's
    lesion class stands in as 0/1). Raises :class:`msprofile.io.InputImageError` for a file
    that cannot be used."""
    flair, affine = load_image(files["flair"], scan_id)
    grid = Grid(tuple(flair.shape), affine)
    brain, _ = load_image(files["brain_mask"], scan_id, dtype=np.uint8)
    if files.get("probabilities"):
        probabilities, _ = load_volumes(files["probabilities"])
        lesion = probabilities[..., int(SegmentationClass.LESIONS)]
    else:
        segmentation, _ = load_image(files["segmentation"], scan_id, dtype=np.uint8)
        lesion = (segmentation == SegmentationClass.LESIONS).astype(np.float32)
    return Session(flair=flair, brain=brain > 0, lesion_probability=lesion, grid=grid)


def change_pair(
    subject_id: str,
    baseline_session: str,
    followup_session: str,
    baseline_files: dict,
    followup_files: dict,
    *,
    baseline_scan: str,
    followup_scan: str,
    interval_days: float | None,
    settings: ChangeSettings,
    labels_path,
    change_json_path,
    qc_png_path,
) -> dict:
    """The change from one session of a subject to the next; writes three files.

    ``labels_path``: :class:`msprofile.longitudinal.ChangeClass` codes on the follow-up's
    native grid (uint8, the follow-up brain mask's header). ``change_json_path``: the pair, the
    interval in days (null when unknown), the registration (transform, iterations, quality:
    correlation and brain-mask Dice after registration), the counts and volumes (mL) of new,
    enlarging, shrinking and vanished lesions with one entry per changed lesion, the settings,
    ``qc_flags`` and ``status``: ``ok``, ``poor_registration`` (correlation below
    :attr:`ChangeSettings.poor_registration_correlation`; the counts are written but the cohort
    table leaves them out) or ``registration_failed`` (no counts, an empty change map).
    ``qc_png_path``: the change picture (:func:`msprofile.montage.change_montage`).
    Raises :class:`msprofile.io.InputImageError` for unusable inputs. Returns the JSON's dict.
    """
    baseline = load_session(baseline_scan, baseline_files)
    followup = load_session(followup_scan, followup_files)
    record = {
        "subject_id": subject_id,
        "baseline_session": baseline_session,
        "followup_session": followup_session,
        "baseline_scan": baseline_scan,
        "followup_scan": followup_scan,
        "interval_days": None if interval_days is None or math.isnan(interval_days) else float(interval_days),
        "settings": settings.to_dict(),
    }
    try:
        transform = register_rigid(
            baseline.flair, baseline.grid, baseline.brain, followup.flair, followup.grid, followup.brain
        )
    except RegistrationError as exc:
        transform, error = None, str(exc)
    if transform is None:
        record |= {"status": "registration_failed", "qc_flags": ["registration_failed"]}
        record |= {"registration": {"error": error}, "counts": None, "lesions": []}
        result = None
    else:
        quality = registration_quality(
            baseline.flair,
            baseline.grid,
            baseline.brain,
            followup.flair,
            followup.grid,
            followup.brain,
            transform.matrix,
        )
        poor = quality["correlation"] < settings.poor_registration_correlation
        record |= {
            "status": "poor_registration" if poor else "ok",
            "qc_flags": ["poor_registration"] if poor else [],
            "registration": {**transform.to_dict(), **quality},
        }
        try:
            result = analyse_pair(baseline, followup, transform.matrix, settings)
        except ValueError as exc:
            record |= {"status": "registration_failed", "qc_flags": ["registration_failed"]}
            record["registration"]["error"] = str(exc)
            result = None
    if result is not None:
        record["counts"] = result.counts()
        record["lesions"] = result.lesions.to_dict(orient="records")
    labels = np.zeros(followup.grid.shape, np.uint8) if result is None else result.labels
    save_nifti(
        labels,
        followup.grid.affine,
        labels_path,
        zooms_mm=followup.grid.voxel_size_mm,
        header=read_header_geometry(followup_files["brain_mask"]),
    )
    save_json(record, change_json_path)
    save_png(
        _picture(baseline, followup, result, transform, f"{subject_id} {baseline_session} to {followup_session}"),
        qc_png_path,
    )
    return record


def _picture(baseline: Session, followup: Session, result: ChangeResult | None, transform, title: str) -> np.ndarray:
    if result is None:
        matrix = np.eye(4) if transform is None else transform.matrix
        registered = resample(baseline.flair, baseline.grid, followup.grid, order=1, transform=np.linalg.inv(matrix))
        difference = np.zeros(followup.grid.shape, np.float32)
        labels = np.zeros(followup.grid.shape, np.uint8)
        title += " (registration failed: no change detected)"
    else:
        registered, difference, labels = result.baseline_matched, result.difference_sd, result.labels
    canonical = [to_canonical(a, followup.grid)[0] for a in (registered, followup.flair, difference, labels)]
    return change_montage(*canonical, title=title)


def longitudinal_table(change_json_paths, groups, parquet_path, tsv_path) -> pd.DataFrame:
    """One row per pair (:data:`TABLE_COLUMNS`) from the pairs' ``change.json``, with ``groups``
    (one per path: the group of the pair's baseline scan, from the sheet, so that editing a
    group reruns this table and not the pair); a pair whose job failed (an empty placeholder
    under ``on_error: record``) has status ``failed`` and no counts, and so has a pair whose
    registration failed or was poor (its counts stay in its change.json). Written as Parquet
    and TSV, sorted by subject and pair; returns the table."""
    if len(groups) != len(change_json_paths):
        raise ValueError(f"{len(change_json_paths)} pairs but {len(groups)} groups")
    rows = []
    for path, group in zip(change_json_paths, groups):
        if is_placeholder(path):
            pair = Path(path).parent
            baseline, _, followup = pair.name.partition("_to_")
            row = {
                "subject_id": pair.parent.name,
                "group": group,
                "baseline_session": baseline,
                "followup_session": followup,
            }
            rows.append(row | {"status": "failed", "qc_flags": "job_failed"})
            continue
        record = load_json(path)
        registration = record.get("registration", {})
        row = {key: record.get(key) for key in TABLE_COLUMNS[:7]} | {"group": group}
        row |= {"status": record["status"], "qc_flags": ";".join(record["qc_flags"])}
        row |= {
            "registration_correlation": registration.get("correlation"),
            "registration_mask_dice": registration.get("mask_overlap_dice"),
        }
        if record["status"] == "ok":
            row |= {column: record["counts"][column] for column in COUNT_COLUMNS}
        rows.append(row)
    table = pd.DataFrame.from_records(rows, columns=list(TABLE_COLUMNS))
    table = table.astype({column: float for column in (*COUNT_COLUMNS, "interval_days", "registration_correlation")})
    table = table.astype({"registration_mask_dice": float}).fillna({"qc_flags": "", "status": "failed"})
    write_parquet(table, parquet_path)
    write_tsv(table, tsv_path)
    return table
