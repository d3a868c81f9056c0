"""The per-scan outputs as a BIDS derivatives dataset: names, sidecars and look-up tables.

With BIDS input (or ``bids_derivatives: true``) the results folder is also a BIDS derivatives
dataset (BIDS 1.10, "Derivatives"): per scan, under ``sub-<label>/[ses-<label>/]anat/``,

* ``<prefix>_desc-brain_mask.nii.gz``: the brain mask (:data:`DERIVATIVES`);
* ``<prefix>_desc-ventriclesLesions_dseg.nii.gz``: the segmentation, with its ``.tsv`` of labels;
* ``<prefix>_desc-lesionClasses_dseg.nii.gz``: every lesion voxel's location class, with its
  ``.tsv``;
* ``<prefix>_desc-uncertainty_probseg.nii.gz``: the segmentation's uncertainty map (normalised
  predictive entropy in [0, 1], :data:`msprofile.segmentation.infer.UNCERTAINTY_MEASURE`): not a
  class probability, but the closest BIDS image type, a per-voxel map in [0, 1] of the
  segmentation, told apart from the class probabilities by ``desc`` instead of ``label``;
* ``<prefix>_label-<class>_probseg.nii.gz``: with ``segmentation.save_probabilities``, the
  probability of each class;

each with a JSON sidecar (``Description``, ``Sources`` and ``SpatialReference`` as BIDS URIs
into the input dataset, ``bids:raw:...``, and into this one, ``bids::...``), plus the lesion
statistics ``<prefix>_desc-lesionClasses_stats.tsv`` and the two QC pictures under
``sub-<label>/figures/``, which BIDS does not name and ``.bidsignore`` lists. All images are on
the FLAIR's own grid, so no ``space`` entity is given. ``dataset_description.json`` says
``DatasetType: derivative`` and ``GeneratedBy`` msprofile with its version.

This module names and describes; :mod:`msprofile.jobs.derivatives` writes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import pandas as pd

from .labels import LESION_CLASS_RGB, VENTRICLES_RGB, LesionClass, SegmentationClass
from .scans import bids_label

#: The BIDS version the derivatives follow.
BIDS_VERSION = "1.10.0"
#: Name of the input dataset in BIDS URIs (``bids:raw:sub-01/anat/sub-01_FLAIR.nii.gz``).
RAW_DATASET = "raw"
#: Files of a scan's output folder that become derivatives: file name -> (entities and suffix,
#: kind). Kinds: ``mask``, ``dseg`` (with a look-up table), ``probseg``, ``stats`` and ``figure``.
DERIVATIVES = {
    "brain_mask.nii.gz": ("desc-brain_mask.nii.gz", "mask"),
    "segmentation.nii.gz": ("desc-ventriclesLesions_dseg.nii.gz", "dseg"),
    "lesion_classes.nii.gz": ("desc-lesionClasses_dseg.nii.gz", "dseg"),
    "segmentation_uncertainty.nii.gz": ("desc-uncertainty_probseg.nii.gz", "probseg"),
    "lesion_stats.tsv": ("desc-lesionClasses_stats.tsv", "stats"),
    "preprocess_qc.png": ("desc-brainMask_qc.png", "figure"),
    "segmentation_qc.png": ("desc-segmentation_qc.png", "figure"),
}
#: The probability map's volumes (class order of :class:`SegmentationClass`) that become probseg
#: files, by ``label`` entity; the background is left out.
PROBSEG_LABELS = {SegmentationClass.VENTRICLES: "ventricles", SegmentationClass.LESIONS: "lesions"}
#: What ``.bidsignore`` lists: the workflow's own folders beside the derivatives, the QC
#: pictures and the statistics tables, which BIDS has no names for. (The validator flags a
#: folder itself unless its pattern names it without a trailing slash.)
BIDSIGNORE = (
    "/subjects",
    "/cohort",
    "/evaluation",
    "/training",
    "/logs",
    "/longitudinal",
    "/stats*",
    "/figures*",
    "sub-*/figures",
    "*_stats.tsv",
)
#: The same folders for pybids, which does not read ``.bidsignore``:
#: ``BIDSLayout(results, is_derivative=True, indexer=BIDSLayoutIndexer(ignore=PYBIDS_IGNORE))``.
PYBIDS_IGNORE = [re.compile(r"^/(subjects|cohort|evaluation|training|logs|longitudinal|stats[^/]*|figures[^/]*)(/|$)")]
#: Endings of every file this module names: what a rerun may remove when it no longer belongs.
OWNED_ENDINGS = ("_mask.nii.gz", "_mask.json", "_dseg.nii.gz", "_dseg.json", "_dseg.tsv", "_probseg.nii.gz")
OWNED_ENDINGS += ("_probseg.json", "_stats.tsv", "_qc.png")


class DerivativesError(ValueError):
    """Scans whose IDs cannot name BIDS files; the message lists them."""


@dataclass(frozen=True)
class BidsScan:
    """One scan's place in the derivatives: its ``sub`` and ``ses`` labels and, with BIDS input,
    its FLAIR's path inside the input dataset (``flair_in_raw``, None otherwise)."""

    scan_id: str
    subject_label: str
    session_label: str
    flair_in_raw: str | None

    @property
    def prefix(self) -> str:
        """``sub-<label>[_ses-<label>]``, the start of every file name of the scan."""
        return f"sub-{self.subject_label}" + (f"_ses-{self.session_label}" if self.session_label else "")

    @property
    def anat_dir(self) -> str:
        """``sub-<label>/[ses-<label>/]anat``, relative to the dataset root."""
        session = f"/ses-{self.session_label}" if self.session_label else ""
        return f"sub-{self.subject_label}{session}/anat"

    @property
    def figures_dir(self) -> str:
        return f"sub-{self.subject_label}/figures"

    def path(self, entities_suffix: str, kind: str = "") -> str:
        """The dataset-relative path of the scan's file ``<prefix>_<entities_suffix>``."""
        folder = self.figures_dir if kind == "figure" else self.anat_dir
        return f"{folder}/{self.prefix}_{entities_suffix}"


def bids_scans(scans: pd.DataFrame, raw_dir: str | os.PathLike | None = None) -> list[BidsScan]:
    """Every scan of the scan table ``scans`` (indexed by scan ID, with ``subject_id``,
    ``session`` and ``flair``) with its BIDS labels: the subject ID and session without a leading
    ``sub-``/``ses-``. ``raw_dir``: the input BIDS dataset, whose FLAIRs the sidecars cite.

    Raises :class:`DerivativesError` listing the scans whose IDs are not letters and digits
    (all a BIDS label may hold) or whose labels collide.
    """
    result, problems, seen = [], [], {}
    for scan, row in scans.iterrows():
        subject, session = bids_label(row["subject_id"], "sub"), bids_label(row["session"], "ses")
        if subject is None or (row["session"] and session is None):
            problems.append(
                f"scan {scan}: subject ID {row['subject_id']!r}"
                + (f" or session {row['session']!r}" if row["session"] else "")
                + " is not letters and digits only"
            )
            continue
        flair_in_raw = None
        if raw_dir is not None:
            flair_in_raw = os.path.relpath(os.path.abspath(row["flair"]), os.path.abspath(raw_dir)).replace(os.sep, "/")
        bids_scan = BidsScan(scan, subject, session or "", flair_in_raw)
        if bids_scan.prefix.casefold() in seen:
            problems.append(
                f"scan {scan}: would have the BIDS name {bids_scan.prefix} of scan {seen[bids_scan.prefix.casefold()]}"
            )
            continue
        seen[bids_scan.prefix.casefold()] = scan
        result.append(bids_scan)
    if problems:
        raise DerivativesError(
            "BIDS derivatives (bids_derivatives) need subject IDs and sessions that are BIDS labels "
            "(letters and digits, optionally after sub-/ses-): "
            + "; ".join(problems[:20])
            + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
            + ". Rename them in the sheet or set bids_derivatives: false"
        )
    return result


def dataset_description(version: str, raw_dir_from_results: str | None) -> dict:
    """``dataset_description.json`` of the derivatives: ``DatasetType`` derivative, ``GeneratedBy``
    msprofile ``version``, and with BIDS input the input dataset as ``raw`` in ``DatasetLinks``
    (a path relative to the results folder, so that no absolute path reaches the outputs)."""
    description = {
        "Name": "msprofile: brain masks, ventricle and lesion segmentations and lesion classes of FLAIR MRI",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "msprofile",
                "Version": version,
                "Description": "Neuroanatomical profiling of multiple sclerosis from FLAIR MRI (Snakemake workflow)",
            }
        ],
    }
    if raw_dir_from_results is not None:
        description["DatasetLinks"] = {RAW_DATASET: raw_dir_from_results}
    return description


def readme(version: str) -> str:
    """The derivatives' ``README.md``: what the dataset holds and where the rest is."""
    return (
        f"# msprofile {version} derivatives\n\n"
        "Per scan, under `sub-<label>/[ses-<label>/]anat/`: the brain mask (`desc-brain_mask`), the\n"
        "segmentation of ventricles and lesions (`desc-ventriclesLesions_dseg`), the location class of\n"
        "every lesion voxel (`desc-lesionClasses_dseg`), the segmentation's uncertainty\n"
        "(`desc-uncertainty_probseg`: normalised predictive entropy of the ensemble, 0 certain, 1 all\n"
        "classes equally likely; not a class probability), with `segmentation.save_probabilities` the\n"
        "class probabilities (`label-<class>_probseg`), and the lesion statistics per class\n"
        "(`desc-lesionClasses_stats.tsv`); QC pictures under `sub-<label>/figures/`. All images lie on\n"
        "the input FLAIR's grid. The cohort table (`cohort/cohort.tsv`), statistics and figures of\n"
        "the workflow are beside them, listed in `.bidsignore`.\n"
    )


def sidecar(scan: BidsScan, kind: str, source_name: str, *, given_brain_mask: bool = False) -> dict:
    """The JSON sidecar of a scan's derivative image made from its output ``source_name``
    (a key of :data:`DERIVATIVES`, or ``probabilities.nii.gz``): ``Description``, ``Sources`` and
    ``SpatialReference`` (BIDS URIs; the input FLAIR only with BIDS input), and ``Type`` for the
    brain mask. ``given_brain_mask``: the mask came with the input, not from the workflow."""
    flair = [f"bids:{RAW_DATASET}:{scan.flair_in_raw}"] if scan.flair_in_raw else []
    own_mask = f"bids::{scan.path(DERIVATIVES['brain_mask.nii.gz'][0])}"
    descriptions = {
        "brain_mask.nii.gz": (
            "Brain mask given with the input (sheet column brain_mask or bids.brain_masks), used instead of the "
            "workflow's brain extraction"
            if given_brain_mask
            else "Brain mask made by msprofile's brain extraction (msprofile.brainmask)"
        ),
        "segmentation.nii.gz": "Lateral ventricles and white-matter lesions segmented by the Attention U-Net "
        "(msprofile.segmentation), kept inside the brain mask",
        "lesion_classes.nii.gz": "Location class of every lesion voxel: periventricular, paraventricular (deep) "
        "or juxtacortical (msprofile.lesions, the reference study's 2-D rule)",
        "segmentation_uncertainty.nii.gz": "Uncertainty of the segmentation (desc-ventriclesLesions_dseg), not a "
        "class probability: normalised predictive entropy of the class probabilities averaged over the ensemble "
        "of Attention U-Nets, 0 certain, 1 all classes equally likely; 0 outside the brain mask; on the FLAIR's "
        "grid (linear interpolation from the model grid)",
        "probabilities.nii.gz": "Probability of the class from the Attention U-Net ensemble, on the FLAIR's grid "
        "(linear interpolation from the model grid)",
    }
    content = {"Description": descriptions[source_name]}
    if kind == "mask":
        content["Type"] = "Brain"
        sources = [] if given_brain_mask else flair
    elif source_name == "lesion_classes.nii.gz":
        sources = [*flair, own_mask, f"bids::{scan.path(DERIVATIVES['segmentation.nii.gz'][0])}"]
    else:
        sources = [*flair, own_mask]
    if sources:
        content["Sources"] = sources
    if flair:
        content["SpatialReference"] = flair[0]
    return content


def dseg_table(source_name: str) -> pd.DataFrame:
    """The look-up table (``_dseg.tsv``) of a segmentation: ``index``, ``name``, ``abbreviation``,
    ``color`` (hex, as in the QC pictures) of every label but 0 (background, nothing)."""
    if source_name == "segmentation.nii.gz":
        rows = [
            (SegmentationClass.VENTRICLES, "lateral ventricles", "VENT", VENTRICLES_RGB),
            (SegmentationClass.LESIONS, "white-matter lesions", "WMH", (255, 255, 255)),
        ]
    else:
        names = {
            LesionClass.PEWMH: "periventricular lesion",
            LesionClass.PAWMH: "paraventricular (deep white-matter) lesion",
            LesionClass.JCWMH: "juxtacortical lesion",
        }
        rows = [(code, names[code], code.name, LESION_CLASS_RGB[code]) for code in names]
    return pd.DataFrame(
        [
            {"index": int(code), "name": name, "abbreviation": abbreviation, "color": "#" + bytes(rgb).hex()}
            for code, name, abbreviation, rgb in rows
        ]
    )
