"""Jobs of ``derivatives.smk``: every scan's outputs gathered into a BIDS derivatives dataset.

One job for the whole cohort, not one per scan: it costs one Snakemake job rather than 13,810,
and a scan that failed (under ``on_error: record``) simply has no derivatives, where a per-scan
rule would have to leave empty placeholder images in the dataset. Images are hard links to the
scan's own outputs (copies where the file system has no links), sidecars and tables are
rewritten only when their content changes, so a rerun after one new scan touches that scan's
files and the dataset description only.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..derivatives import (
    BIDSIGNORE,
    DERIVATIVES,
    OWNED_ENDINGS,
    PROBSEG_LABELS,
    BidsScan,
    dataset_description,
    dseg_table,
    readme,
    sidecar,
)
from ..failures import is_placeholder
from ..io import json_text, link_or_copy, load_json, load_volumes, save_nifti, write_text

log = logging.getLogger(__name__)


def write_bids_derivatives(
    scans: list[BidsScan],
    scan_dirs,
    results_dir,
    *,
    version: str,
    raw_dir_from_results: str | None,
    probabilities: bool,
    description_path,
    bidsignore_path,
    readme_path,
) -> dict:
    """Write the derivatives of every scan of ``scans`` (:func:`msprofile.derivatives.bids_scans`)
    from its output folder (``scan_dirs``, same order) into ``results_dir``, then
    ``dataset_description.json``, ``.bidsignore`` and ``README.md`` (the dataset-level files, last,
    so that a killed job is redone). Scans that failed are left out; files this module named that
    no longer belong to a scan (a scan taken out of the sheet, or failed since) are removed.
    ``probabilities``: each scan has ``probabilities.nii.gz`` (native grid, one volume per class),
    written as one probseg image per class. Returns ``{"scans", "failed", "written", "removed"}``.
    """
    results_dir = Path(results_dir)
    expected: set[Path] = set()
    written = failed = 0
    for scan, scan_dir in zip(scans, map(Path, scan_dirs)):
        if any(is_placeholder(scan_dir / name) for name in DERIVATIVES):
            failed += 1
            log.warning("scan %s: no BIDS derivatives, its processing failed (on_error: record)", scan.scan_id)
            continue
        files = _scan_files(scan, scan_dir, probabilities)
        expected.update(results_dir / path for path in files)
        written += sum(_write(results_dir / path, what) for path, what in files.items())
    removed = _remove_stale(results_dir, expected)
    write_text("".join(f"{pattern}\n" for pattern in BIDSIGNORE), bidsignore_path)
    write_text(readme(version), readme_path)
    write_text(json_text(dataset_description(version, raw_dir_from_results)), description_path)
    summary = {"scans": len(scans) - failed, "failed": failed, "written": written, "removed": removed}
    log.info("BIDS derivatives in %s: %s", results_dir, summary)
    return summary


def _scan_files(scan: BidsScan, scan_dir: Path, probabilities: bool) -> dict[str, tuple]:
    """``{dataset-relative path: what to write}`` of one scan: ``("link", source)``,
    ``("text", content)`` or ``("volume", source, index)``."""
    qc = load_json(scan_dir / "preprocess_qc.json")
    given_mask = qc.get("brain_mask_source") == "given"
    files: dict[str, tuple] = {}
    for name, (entities_suffix, kind) in DERIVATIVES.items():
        path = scan.path(entities_suffix, kind)
        files[path] = ("link", scan_dir / name)
        if kind in ("mask", "dseg", "probseg"):
            files[_swap(path, ".json")] = ("text", json_text(sidecar(scan, kind, name, given_brain_mask=given_mask)))
        if kind == "dseg":
            files[_swap(path, ".tsv")] = ("text", dseg_table(name).to_csv(sep="\t", index=False, lineterminator="\n"))
    if probabilities:
        for index, label in PROBSEG_LABELS.items():
            path = scan.path(f"label-{label}_probseg.nii.gz")
            files[path] = ("volume", scan_dir / "probabilities.nii.gz", int(index))
            files[_swap(path, ".json")] = ("text", json_text(sidecar(scan, "probseg", "probabilities.nii.gz")))
    return files


def _swap(path: str, extension: str) -> str:
    return path.removesuffix(".nii.gz") + extension


def _write(path: Path, what: tuple) -> bool:
    if what[0] == "link":
        return link_or_copy(what[1], path)
    if what[0] == "text":
        return write_text(what[1], path)
    source, index = what[1], what[2]
    if path.is_file() and path.stat().st_mtime >= Path(source).stat().st_mtime:
        return False
    volumes, affine = load_volumes(source)
    save_nifti(volumes[..., index], affine, path)
    return True


def _remove_stale(results_dir: Path, expected: set[Path]) -> int:
    """Remove files under ``sub-*/`` that this module would name but no scan now has, and the
    folders that leaves empty; return how many files went."""
    removed = 0
    for subject_dir in sorted(results_dir.glob("sub-*")):
        if not subject_dir.is_dir():
            continue
        for path in sorted(subject_dir.rglob("*"), reverse=True):
            if path.is_file() and path.name.endswith(OWNED_ENDINGS) and path not in expected:
                path.unlink()
                removed += 1
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        if not any(subject_dir.iterdir()):
            subject_dir.rmdir()
    return removed
