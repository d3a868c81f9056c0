"""New, enlarging, shrinking and vanished lesions between two sessions of one subject.

Arrays in, arrays and a table out (docs/method.md section 8). Both sessions' FLAIRs, lesion
probabilities and brain masks are given on one grid, the follow-up's native grid: the baseline's
are resampled onto it through the rigid registration (:mod:`msprofile.registration`) before
this module sees them.

Why not subtract the two segmentations: a lesion segmented slightly differently twice (a
probability of 0.45 once and 0.55 the next time, a partial-volume edge on thick slices) looks
like change. A change is called only where the segmentations disagree **and** the FLAIR
itself changed: the follow-up is brighter than the intensity-matched baseline by
:attr:`ChangeSettings.intensity_change_sd` robust standard deviations of the difference image
(new and enlarging), or darker (shrinking and vanished). The difference image is freed of the
two sessions' smooth differential bias field and lightly smoothed first (:func:`difference_sd`):
two scans of two protocols (Lesjak patient 03: 0.57 x 3.3 mm, then 0.72 x 3 mm) otherwise
differ by a slowly varying offset larger than most lesions' change. A follow-up lesion is "the same" as a
baseline one where the baseline's lesion probability reaches the lower
:attr:`ChangeSettings.existing_probability` (a hysteresis: the baseline need not have crossed
the segmentation threshold there), so a lesion the baseline segmentation just missed is not new.
The same approach (segmentations gated by a subtraction image) is that of the LST longitudinal
pipeline (Schmidt et al., NeuroImage: Clinical 2019) and of Lesjak et al. (Neuroinformatics 2016).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import IntEnum

import numpy as np
import pandas as pd
from scipy import ndimage

from .geometry import Grid, resample

#: 26-connectivity, as :func:`msprofile.lesions.lesion_table` counts 3-D lesions.
_TWENTY_SIX = ndimage.generate_binary_structure(3, 3)
#: 1.4826 x the median absolute deviation estimates a normal distribution's standard deviation.
_MAD_TO_SD = 1.4826
#: The smallest difference spread, as a share of the follow-up's intensity spread in the brain
#: (two real scans of one head differ by far more: noise alone is some 5-10 %).
_MIN_DIFFERENCE_SD = 1e-3


class ChangeClass(IntEnum):
    """Voxel codes of ``new_or_enlarging_lesions.nii.gz``: 0 no change, 1 a new lesion, 2 the
    grown part of an enlarging lesion."""

    NONE = 0
    NEW = 1
    ENLARGING = 2


@dataclass(frozen=True)
class ChangeSettings:
    """Settings of :func:`detect_change`.

    ``lesion_probability``: a voxel is lesion in a session at this lesion-class probability
    (the segmentation's argmax is about 0.5). ``existing_probability``: a baseline lesion
    probability at least this high marks a place as "lesion already there" (hysteresis, see
    the module docstring). ``intensity_change_sd``: how many robust standard deviations of the
    difference image a voxel must brighten (or darken) to count as changed.
    ``min_change_volume_ml``: a new lesion, or the grown / lost part of a lesion, smaller than
    this is not counted (0.01 mL is 10 mm^3, about the size of the smallest lesions experts
    count on 3 mm slices). ``min_changed_fraction``: the changed part must be at least this
    share of the lesion: of a new lesion's volume (a stable lesion segmented at follow-up only
    has a few noisy voxels past the intensity threshold, a new one most of its voxels), and of
    an enlarging lesion's baseline volume (the clinical rule of thumb calls a lesion enlarging
    when it grew by about half; a 2-D FLAIR's partial volume makes smaller growth noise).
    ``poor_registration_correlation``: a registration whose intensity correlation inside the
    brain (:func:`msprofile.registration.registration_quality`) is below this is flagged poor:
    two sessions of one head gave 0.63-0.89 on the Lesjak data, two different heads 0.44.
    ``bias_field_mm``: sigma (mm) of the smooth differential bias field removed from the
    difference image (0: none); ``difference_smoothing_mm``: sigma (mm) of the Gaussian that
    averages the difference image's voxel noise (0: none); see :func:`difference_sd`.
    """

    lesion_probability: float = 0.5
    existing_probability: float = 0.25
    intensity_change_sd: float = 2.0
    min_change_volume_ml: float = 0.01
    min_changed_fraction: float = 0.5
    poor_registration_correlation: float = 0.5
    bias_field_mm: float = 10.0
    difference_smoothing_mm: float = 1.0

    def to_dict(self) -> dict:
        """JSON-ready settings."""
        return asdict(self)


@dataclass(frozen=True)
class ChangeResult:
    """What :func:`detect_change` found.

    ``labels``: uint8 :class:`ChangeClass` codes on the grid of the inputs. ``lesions``: one row
    per changed lesion (``change``: new, enlarging, shrinking or vanished; ``volume_ml``: the
    changed part, the whole lesion for new and vanished ones; ``baseline_volume_ml`` and
    ``followup_volume_ml`` of the lesion; ``centroid_voxel``: its centre in the follow-up's
    voxel indices). ``difference_sd``: the intensity difference (follow-up minus matched
    baseline) in robust standard deviations, float32, 0 outside the brain.
    ``baseline_matched``: the baseline FLAIR with the follow-up's intensities
    (:func:`match_intensities`), float32, for pictures.
    """

    labels: np.ndarray
    lesions: pd.DataFrame
    difference_sd: np.ndarray
    baseline_matched: np.ndarray

    def counts(self) -> dict:
        """Counts and volumes (mL) of each kind of change, JSON-ready."""
        summary = {}
        for change in ("new", "enlarging", "shrinking", "vanished"):
            rows = self.lesions[self.lesions["change"] == change]
            summary[f"{change}_lesions"] = int(len(rows))
            summary[f"{change}_volume_ml"] = round(float(rows["volume_ml"].sum()), 4)
        summary["new_or_enlarging_lesions"] = summary["new_lesions"] + summary["enlarging_lesions"]
        return summary


LESION_COLUMNS = ("change", "volume_ml", "baseline_volume_ml", "followup_volume_ml", "centroid_voxel")


def match_intensities(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``source`` with its intensities mapped so that their distribution inside ``mask``
    matches ``target``'s there (piecewise-linear mapping of the 0th to 100th percentiles, one
    per percent; Nyul and Udupa's histogram standardisation with one landmark per percentile).

    Two sessions' FLAIRs differ by scanner gain, coil and sometimes sequence; a monotone
    mapping of the whole brain's histogram removes that without touching local contrast.
    ``source``, ``target``: images of one shape; ``mask``: bool, the voxels (inside both
    brains) whose histograms are matched, non-empty. Returns float32 of ``source``'s shape.
    Raises ValueError when ``mask`` is empty.
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("the brain masks of the two sessions do not overlap")
    levels = np.linspace(0.0, 100.0, 101)
    source_landmarks = np.percentile(source[mask], levels)
    target_landmarks = np.percentile(target[mask], levels)
    # Landmarks of a flat stretch of the histogram repeat; np.interp needs them increasing.
    source_landmarks, keep = np.unique(source_landmarks, return_index=True)
    return np.interp(source, source_landmarks, target_landmarks[keep]).astype(np.float32)


def _smooth_inside(values: np.ndarray, mask: np.ndarray, sigma_mm: float, voxel_size_mm) -> np.ndarray:
    """Gaussian smoothing (``sigma_mm``, per axis in voxels from ``voxel_size_mm``) of ``values``
    inside ``mask`` only (normalised convolution: the voxels outside do not pull the edge down)."""
    sigma = [sigma_mm / float(size) for size in voxel_size_mm]
    weight = ndimage.gaussian_filter(mask.astype(np.float32), sigma)
    smoothed = ndimage.gaussian_filter(np.where(mask, values, 0.0).astype(np.float32), sigma)
    return smoothed / np.maximum(weight, 1e-3)


def _robust_sd(values: np.ndarray) -> float:
    return _MAD_TO_SD * float(np.median(np.abs(values - np.median(values))))


def difference_sd(
    matched: np.ndarray,
    followup: np.ndarray,
    brain: np.ndarray,
    voxel_size_mm=(1.0, 1.0, 1.0),
    bias_field_mm: float = 0.0,
    smoothing_mm: float = 0.0,
) -> np.ndarray:
    """Follow-up minus the intensity-matched baseline (:func:`match_intensities`), in robust
    standard deviations of that difference inside ``brain`` (1.4826 x its median absolute
    deviation, at least :data:`_MIN_DIFFERENCE_SD` of the follow-up's own spread): float32, 0
    outside the brain.

    ``bias_field_mm`` > 0 first removes the differential bias field (two sessions' coil and
    receiver fields differ smoothly, so one histogram mapping leaves a slowly varying offset
    across the brain): the difference, clipped to +-2 robust SDs so that lesions do not pull
    it, is smoothed inside the brain by a Gaussian of that sigma (mm) and subtracted (Lewis and
    Fox 2004, differential bias correction). ``smoothing_mm`` > 0 then smooths the difference
    by a Gaussian of that sigma (mm) inside the brain, which averages the voxel noise of two
    scans while keeping lesions of a few mm. ``voxel_size_mm``: the grid's voxel size (3).
    """
    brain = np.asarray(brain, bool)
    difference = np.where(brain, np.asarray(followup, np.float32) - matched, 0.0).astype(np.float32)
    if bias_field_mm > 0:
        spread = max(_robust_sd(difference[brain]), np.finfo(np.float32).tiny)
        clipped = np.clip(difference, -2.0 * spread, 2.0 * spread)
        difference = difference - _smooth_inside(clipped, brain, bias_field_mm, voxel_size_mm)
    if smoothing_mm > 0:
        difference = _smooth_inside(difference, brain, smoothing_mm, voxel_size_mm)
    inside = difference[brain]
    # Two identical scans (a sheet listing one file twice) differ by float rounding only: the
    # floor keeps rounding from being scaled up to "change".
    floor = _MIN_DIFFERENCE_SD * _robust_sd(np.asarray(followup, np.float32)[brain])
    spread = max(_robust_sd(inside), floor, np.finfo(np.float32).tiny)
    return np.where(brain, (difference - np.median(inside)) / spread, 0.0).astype(np.float32)


def detect_change(
    baseline_flair: np.ndarray,
    baseline_lesion_probability: np.ndarray,
    followup_flair: np.ndarray,
    followup_lesion_probability: np.ndarray,
    brain: np.ndarray,
    voxel_volume_ml: float,
    settings: ChangeSettings = ChangeSettings(),
    voxel_size_mm=None,
) -> ChangeResult:
    """New, enlarging, shrinking and vanished lesions between two registered sessions.

    All arrays (X, Y, Z) on one grid (the follow-up's): the FLAIRs (any intensity scale), the
    lesion-class probabilities in [0, 1] (a binary segmentation as 0/1 works too), and
    ``brain``: bool, where both sessions have brain. ``voxel_volume_ml``: the grid's voxel
    volume; ``voxel_size_mm``: its voxel size (3 numbers, mm; None: cubic voxels of that
    volume), for the difference image's smoothing in mm. Method (module docstring): a follow-up
    lesion (26-connected component of probability >= ``lesion_probability``) is **new** when no voxel of it
    was lesion at baseline (probability >= ``existing_probability``) and at least ``min_change_volume_ml`` of
    it, and ``min_changed_fraction`` of it, brightened by ``intensity_change_sd``; it is
    **enlarging** when it overlaps a baseline lesion and its brightened part outside the
    baseline lesion is at least ``min_change_volume_ml`` and ``min_changed_fraction`` of the
    baseline lesion's volume there. Baseline lesions are classed **vanished** or **shrinking** the same way with the
    sessions swapped and darkening. The label map holds whole new lesions (code 1) and the grown
    parts of enlarging ones (code 2). Raises ValueError when the shapes differ or the brain
    masks do not overlap.
    """
    shapes = {np.shape(a) for a in (baseline_flair, baseline_lesion_probability, followup_flair)}
    shapes |= {np.shape(followup_lesion_probability), np.shape(brain)}
    if len(shapes) != 1:
        raise ValueError(f"the two sessions' arrays must share one grid, got shapes {sorted(shapes)}")
    brain = np.asarray(brain, bool)
    matched = match_intensities(baseline_flair, followup_flair, brain)
    if voxel_size_mm is None:
        voxel_size_mm = (1e3 * voxel_volume_ml) ** (1.0 / 3.0) * np.ones(3)
    change_sd = difference_sd(
        matched,
        followup_flair,
        brain,
        voxel_size_mm,
        bias_field_mm=settings.bias_field_mm,
        smoothing_mm=settings.difference_smoothing_mm,
    )
    baseline_p = np.where(brain, baseline_lesion_probability, 0.0)
    followup_p = np.where(brain, followup_lesion_probability, 0.0)
    labels = np.zeros(brain.shape, np.uint8)
    rows = []
    for direction in ("appeared", "disappeared"):
        if direction == "appeared":
            before, after, changed = baseline_p, followup_p, change_sd >= settings.intensity_change_sd
        else:
            before, after, changed = followup_p, baseline_p, change_sd <= -settings.intensity_change_sd
        existing = before >= settings.existing_probability
        components, count = ndimage.label(after >= settings.lesion_probability, structure=_TWENTY_SIX)
        for index, box in enumerate(ndimage.find_objects(components), start=1):
            lesion = components[box] == index
            was_there = existing[box] & lesion
            changed_part = lesion & changed[box] & ~existing[box]
            changed_ml = float(changed_part.sum()) * voxel_volume_ml
            if changed_ml < settings.min_change_volume_ml:
                continue
            lesion_ml = float(lesion.sum()) * voxel_volume_ml
            before_ml = float((before[box] >= settings.lesion_probability)[lesion].sum()) * voxel_volume_ml
            if not was_there.any():
                if changed_ml < settings.min_changed_fraction * lesion_ml:
                    continue
                kind = "new" if direction == "appeared" else "vanished"
                part, volume_ml = lesion, lesion_ml
            elif changed_ml >= settings.min_changed_fraction * float(was_there.sum()) * voxel_volume_ml:
                kind = "enlarging" if direction == "appeared" else "shrinking"
                part, volume_ml = changed_part, changed_ml
            else:
                continue
            if direction == "appeared":
                code = ChangeClass.NEW if kind == "new" else ChangeClass.ENLARGING
                labels[box][part] = code
                followup_ml, baseline_ml = lesion_ml, before_ml
            else:
                followup_ml, baseline_ml = before_ml, lesion_ml
            centroid = np.argwhere(lesion).mean(axis=0) + [s.start for s in box]
            rows.append(
                {
                    "change": kind,
                    "volume_ml": round(volume_ml, 5),
                    "baseline_volume_ml": round(baseline_ml, 5),
                    "followup_volume_ml": round(followup_ml, 5),
                    "centroid_voxel": [round(float(c), 1) for c in centroid],
                }
            )
    lesions = pd.DataFrame(rows, columns=list(LESION_COLUMNS))
    return ChangeResult(labels=labels, lesions=lesions, difference_sd=change_sd, baseline_matched=matched)


@dataclass(frozen=True)
class Session:
    """One session's images on its native grid: ``flair`` (X, Y, Z), ``brain`` (bool),
    ``lesion_probability`` (lesion-class probability in [0, 1], or a 0/1 segmentation) and the
    ``grid`` they share (:class:`msprofile.geometry.Grid`)."""

    flair: np.ndarray
    brain: np.ndarray
    lesion_probability: np.ndarray
    grid: Grid


def analyse_pair(
    baseline: Session, followup: Session, baseline_to_followup: np.ndarray, settings: ChangeSettings = ChangeSettings()
) -> ChangeResult:
    """:func:`detect_change` on the follow-up's native grid: the baseline's FLAIR and lesion
    probability are resampled (linear) and its brain mask (nearest neighbour) onto that grid
    through ``baseline_to_followup`` (4 x 4, a baseline point to the matching follow-up point,
    RAS+ mm: :attr:`msprofile.registration.RigidTransform.matrix`). Raises ValueError as
    :func:`detect_change` does."""
    followup_to_baseline = np.linalg.inv(baseline_to_followup)
    source, target = baseline.grid, followup.grid
    flair = resample(np.asarray(baseline.flair, np.float32), source, target, order=1, transform=followup_to_baseline)
    probability = resample(
        np.asarray(baseline.lesion_probability, np.float32), source, target, order=1, transform=followup_to_baseline
    )
    brain = resample(np.asarray(baseline.brain, np.uint8), source, target, order=0, transform=followup_to_baseline)
    return detect_change(
        flair,
        probability,
        followup.flair,
        followup.lesion_probability,
        (brain > 0) & np.asarray(followup.brain, bool),
        target.voxel_volume_ml,
        settings,
        voxel_size_mm=target.voxel_size_mm,
    )


def change_detection_scores(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Agreement of a change map with an expert's, as Lesjak et al. (2016) score it.

    ``predicted``, ``truth``: bool arrays of one grid (new or enlarging lesion voxels).
    Lesions are 26-connected components. ``sensitivity``: share of the expert's lesions that
    the prediction touches (NaN when the expert found none); ``precision``: share of the
    predicted lesions that touch an expert lesion (NaN when none was predicted); ``dice``:
    voxel Dice of the two maps (1.0 when both are empty); with the lesion counts.
    """
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    truth_lesions, n_truth = ndimage.label(truth, structure=_TWENTY_SIX)
    predicted_lesions, n_predicted = ndimage.label(predicted, structure=_TWENTY_SIX)
    found = np.count_nonzero(np.unique(truth_lesions[predicted & truth]))
    right = np.count_nonzero(np.unique(predicted_lesions[predicted & truth]))
    total = int(predicted.sum() + truth.sum())
    return {
        "sensitivity": found / n_truth if n_truth else math.nan,
        "precision": right / n_predicted if n_predicted else math.nan,
        "dice": 2.0 * float((predicted & truth).sum()) / total if total else 1.0,
        "expert_lesions": int(n_truth),
        "predicted_lesions": int(n_predicted),
    }
