"""QC judgement: the flags of one subject's preprocessing measures, under the QC thresholds.

Preprocessing measures (``preprocess_qc.json``: volumes, extents, the acquisition and the
header's geometry) depend on the image and the image settings only; whether a subject passes
depends on thresholds as well. Keeping the two apart means that a changed threshold (config
group ``qc``) re-judges every subject from its small JSON file in the cohort table, without
reopening an image. Every flag makes ``qc_pass`` false; :data:`QC_FLAGS` says what each means.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Every flag with what it means (README, "Outputs"; docs/method.md section 1).
QC_FLAGS: dict[str, str] = {
    "orientation_unknown": "qform and sform codes are both 0: the header does not say how the image lies in the "
    "scanner, so left and right (and every orientation-dependent output) are guesses",
    "qform_sform_disagree": "the header's qform and sform place the image differently (more than "
    "1 degree or 1 mm apart); the sform was used, as nibabel, ITK and FSL do (preprocess_qc.json, "
    "header.affine_source), and tools that read the qform see the image elsewhere",
    "partial_brain_coverage": "the brain spans fewer slices or less height than a whole-brain FLAIR "
    "(qc.min_brain_slices, qc.min_brain_z_extent_mm): a localizer, a slab or a truncated transfer",
    "brain_touches_image_edge": "the brain is cut off by the field of view",
    "brain_larger_than_model_grid": "the brain does not fit the model grid's field of view",
    "intracranial_volume_implausible": "intracranial volume outside qc.icv_range_ml on a scan that covers the brain",
    "slice_area_implausible": "an axial brain section larger than qc.max_slice_area_cm2",
    "skull_not_removed": "the brain mask fills more than 90 % of the head on its widest slices",
    "segmentation_uncertainty_high": "the scan's mean segmentation uncertainty over its predicted lesions and "
    "ventricles lies qc.uncertainty_robust_z or more robust SDs above the cohort's median "
    "(segmentation_uncertainty_z; judged across the cohort, in cohorts of qc.uncertainty_min_scans or more): "
    "look at its segmentation before using its numbers",
}
#: The flags judged across the cohort (:func:`uncertainty_z_scores`), not from one scan's measures.
COHORT_QC_FLAGS = ("segmentation_uncertainty_high",)
#: qform and sform further apart than this (degrees of rotation, or mm of displacement of a
#: 256 mm cube's corners) place the image differently; dcm2niix writes them equal to float
#: precision, and an oblique sform's quaternion approximation stays far below it.
QFORM_SFORM_TOLERANCE = 1.0
#: The brain mask fills more than this share of the head on its widest slices: no skull was
#: found around it (the scalp and skull take at least a fifth of an adult head's section).
SKULL_NOT_REMOVED_RATIO = 0.9


@dataclass(frozen=True)
class QcThresholds:
    """The thresholds of :func:`qc_flags` (config group ``qc``).

    ``icv_range_ml``: plausible intracranial volume (mL), judged on scans with full coverage.
    ``min_brain_z_extent_mm``, ``min_brain_slices``: a whole-brain FLAIR's brain spans at least
    this height and this many slices (adult brains are 120-150 mm high; 2-D FLAIR slices are at
    most 8 mm thick in clinical protocols). ``max_slice_area_cm2``: no axial brain section is
    larger. ``uncertainty_robust_z``: a scan whose mean segmentation uncertainty lies this many
    robust SDs (1.4826 MAD) above the cohort's median is flagged; ``uncertainty_min_scans``:
    in a cohort of fewer scans with a value, what is usual is not known and nothing is flagged.
    """

    icv_range_ml: tuple[float, float] = (900.0, 2200.0)
    min_brain_z_extent_mm: float = 100.0
    min_brain_slices: int = 10
    max_slice_area_cm2: float = 250.0
    uncertainty_robust_z: float = 3.0
    uncertainty_min_scans: int = 5

    @classmethod
    def from_config(cls, section: dict) -> QcThresholds:
        """Build from the config's ``qc`` mapping (keys as the field names)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items()})

    def to_dict(self) -> dict:
        """JSON-ready (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


#: The config's defaults.
DEFAULT_QC_THRESHOLDS = QcThresholds()


def qc_flags(qc: dict, thresholds: QcThresholds = DEFAULT_QC_THRESHOLDS) -> list[str]:
    """The QC flags of one subject's preprocessing measures ``qc`` (the content of
    ``preprocess_qc.json``, :func:`msprofile.preprocess.qc_measures`), in the order of
    :data:`QC_FLAGS`; the :data:`COHORT_QC_FLAGS` are judged across the cohort
    (:func:`uncertainty_z_scores`). An empty list means the subject passes its preprocessing QC."""
    header = qc["header"]
    full_coverage = qc["brain_z_extent_mm"] >= thresholds.min_brain_z_extent_mm
    full_coverage &= qc["brain_slices"] >= thresholds.min_brain_slices
    low, high = thresholds.icv_range_ml
    shift = header["qform_sform_shift_mm"]
    raised = {
        "orientation_unknown": header["affine_source"] == "none",
        "qform_sform_disagree": shift is not None
        and max(header["qform_sform_rotation_deg"], shift) > QFORM_SFORM_TOLERANCE,
        "partial_brain_coverage": not full_coverage,
        "brain_touches_image_edge": qc["brain_touches_image_edge"],
        "brain_larger_than_model_grid": qc["brain_larger_than_model_grid"],
        "intracranial_volume_implausible": full_coverage and not low <= qc["intracranial_volume_ml"] <= high,
        "slice_area_implausible": qc["max_slice_area_cm2"] > thresholds.max_slice_area_cm2,
        "skull_not_removed": not qc["skull_stripped_input"]
        and (qc["brain_to_head_area_ratio"] or 0.0) > SKULL_NOT_REMOVED_RATIO,
    }
    return [flag for flag in QC_FLAGS if flag not in COHORT_QC_FLAGS and raised[flag]]


#: Robust SD floor of :func:`uncertainty_z_scores`: a cohort of near-identical values must not
#: flag a scan for a difference in the fourth decimal (uncertainty is in [0, 1]).
UNCERTAINTY_MIN_SPREAD = 0.005


def uncertainty_z_scores(uncertainty: np.ndarray, thresholds: QcThresholds = DEFAULT_QC_THRESHOLDS) -> np.ndarray:
    """Robust z-scores of the scans' mean segmentation uncertainty (``segmentation_uncertainty``
    of ``metrics.json``; float array, NaN where a scan has none) against the cohort:
    (value - median) / max(1.4826 MAD, :data:`UNCERTAINTY_MIN_SPREAD`) over the finite values.
    All NaN when fewer than ``thresholds.uncertainty_min_scans`` scans have a value. A scan
    with ``thresholds.uncertainty_robust_z`` or more gets ``segmentation_uncertainty_high``."""
    values = np.asarray(uncertainty, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if len(finite) < thresholds.uncertainty_min_scans:
        return np.full(values.shape, np.nan)
    median = float(np.median(finite))
    spread = 1.4826 * float(np.median(np.abs(finite - median)))
    return (values - median) / max(spread, UNCERTAINTY_MIN_SPREAD)
