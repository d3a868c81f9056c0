"""Label volumes and network inputs on the model grid (docs/method.md sections 2 and 3)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..geometry import Grid, resample, to_canonical

#: The network inputs a model card can name (``input.normalisation``), each made exactly as the
#: model was trained on it. ``slice_zscore``: the preprocessed image with every axial slice
#: z-scored on its own over the whole model-grid slice (:func:`zscored_slices`; the input of
#: msprofile <= 0.2 and of the shipped ``msprofile-default``); ``white_matter_peak``: the
#: preprocessed image anchored to the white-matter peak (:func:`anchor_intensities`), run on the
#: brain's bounding box, optionally with neighbouring slices as channels;
#: ``brain_slice_zscore``: the preprocessed image set to 0 outside the brain mask, then every
#: slice z-scored over the whole slice (:func:`brain_zscored_slices`), run on the brain's
#: bounding box. The network then sees the same input for a scan with skull and for a
#: skull-stripped copy of it, whatever the scalp of the site looks like.
SLICE_ZSCORE = "slice_zscore"
WHITE_MATTER_PEAK = "white_matter_peak"
BRAIN_SLICE_ZSCORE = "brain_slice_zscore"
NORMALISATIONS = (SLICE_ZSCORE, WHITE_MATTER_PEAK, BRAIN_SLICE_ZSCORE)
#: The inputs whose slices are z-scored one by one (training z-scores each augmented patch with
#: its whole slice's mean and SD, as inference does).
ZSCORED_NORMALISATIONS = (SLICE_ZSCORE, BRAIN_SLICE_ZSCORE)
#: The input new trainings use unless ``training.normalisation`` says otherwise (fine-tuning
#: keeps its initial model's input).
NORMALISATION = BRAIN_SLICE_ZSCORE
#: The free-text ``normalisation`` of model cards written before ``input.normalisation`` existed:
#: such a card means :data:`SLICE_ZSCORE`.
LEGACY_NORMALISATION_TEXT = "brain percentiles 1 and 99 mapped to 0 and 1 (preprocess), then each slice z-scored"
#: Anchored intensities are clipped here: nothing in a brain is 6 times as bright as white
#: matter, and the scalp fat of some protocols would otherwise dominate a slice's range.
MAX_ANCHORED = 6.0
#: Bins of the brain histogram whose mode is the parenchyma peak, and their smoothing (bins).
PEAK_BINS = 200
PEAK_SMOOTHING_BINS = 3.0


def labels_to_model(labels: np.ndarray, native: Grid, model: Grid) -> np.ndarray:
    """Bring a native-grid label volume onto the model grid by nearest neighbour (uint8)."""
    canonical_labels, canonical = to_canonical(labels, native)
    return resample(np.ascontiguousarray(canonical_labels), canonical, model, order=0).astype(np.uint8)


def parenchyma_peak(flair_model: np.ndarray, brain_model: np.ndarray) -> float:
    """The white-matter peak: the mode of the brain voxels' intensity histogram.

    ``flair_model``: the preprocessed image (brain percentile 1, about the CSF, at 0); ``brain_model``:
    bool brain mask on the same grid. The histogram of the brain between its 20th and 99.5th
    percentiles (200 bins, Gaussian-smoothed over 3 bins) peaks at the parenchyma, mostly white
    matter, which fills most of the brain whatever the scanner; unlike a high percentile it does
    not move with the lesion load (lesions are 0.1 to 3 % of the brain and sit above the peak).
    Anchoring to tissue peaks is the standard of MS lesion tools (e.g. Shinohara et al.,
    NeuroImage Clin 2014, "Statistical normalization techniques for MRI"). Returns the peak in
    the image's units; ValueError for an empty mask.
    """
    values = np.asarray(flair_model)[np.asarray(brain_model, dtype=bool)]
    if values.size == 0:
        raise ValueError("the brain mask is empty on the model grid: no intensity anchor")
    low, high = np.percentile(values, [20.0, 99.5])
    if high <= low:
        return float(high) if high > 0 else 1.0
    counts, edges = np.histogram(values, bins=PEAK_BINS, range=(low, high))
    smoothed = ndimage.gaussian_filter1d(counts.astype(float), PEAK_SMOOTHING_BINS, mode="nearest")
    top = int(np.argmax(smoothed))
    return float((edges[top] + edges[top + 1]) / 2.0)


def anchor_intensities(flair_model: np.ndarray, brain_model: np.ndarray) -> np.ndarray:
    """The preprocessed image scaled so that the white-matter peak (:func:`parenchyma_peak`) is 1
    and the brain's 1st percentile (CSF, the 0 of :func:`msprofile.preprocess.normalise`) 0;
    clipped to [0, :data:`MAX_ANCHORED`]. float32 of ``flair_model``'s shape (X, Y, Z)."""
    return clip_anchored(scaled_to_peak(flair_model, brain_model))


def scaled_to_peak(flair_model: np.ndarray, brain_model: np.ndarray) -> np.ndarray:
    """The preprocessed image divided by its white-matter peak (:func:`parenchyma_peak`), not
    clipped (the background stays slightly negative, as the preprocessing leaves it). float32 (X, Y, Z)."""
    peak = parenchyma_peak(flair_model, brain_model)
    return (np.asarray(flair_model, dtype=np.float32) / (peak if peak > 0 else 1.0)).astype(np.float32)


def clip_anchored(scaled: np.ndarray) -> np.ndarray:
    """Peak-scaled intensities (:func:`scaled_to_peak`) clipped to [0, :data:`MAX_ANCHORED`], float32."""
    return np.clip(scaled, 0.0, MAX_ANCHORED).astype(np.float32)


def input_normalisation(card: dict) -> str | None:
    """The network input a model card names: ``input.normalisation`` when the card has it, else
    :data:`SLICE_ZSCORE` for a card of msprofile <= 0.2 (no key, or the free-text
    :data:`LEGACY_NORMALISATION_TEXT`); None for a card that names something else."""
    key = card.get("input", {}).get("normalisation")
    if key is not None:
        return key if key in NORMALISATIONS else None
    text = card.get("normalisation")
    return SLICE_ZSCORE if text in (None, LEGACY_NORMALISATION_TEXT) else None


def zscored_slices(flair_model: np.ndarray) -> np.ndarray:
    """Model-grid image (X, Y, Z) -> slices (Z, X, Y) float32, each z-scored on its own over the
    whole slice (a slice with no contrast becomes zeros): the :data:`SLICE_ZSCORE` input, as in
    the reference and msprofile <= 0.2."""
    slices = np.moveaxis(np.asarray(flair_model, dtype=np.float32), 2, 0)
    mean = slices.mean(axis=(1, 2), keepdims=True)
    sd = slices.std(axis=(1, 2), keepdims=True)
    return np.where(sd > 0, (slices - mean) / np.where(sd > 0, sd, 1.0), 0.0).astype(np.float32)


def brain_zscored_slices(flair_model: np.ndarray, brain_model: np.ndarray) -> np.ndarray:
    """Model-grid image (X, Y, Z) and bool brain mask (X, Y, Z) -> slices (Z, X, Y) float32: the
    image set to 0 outside the brain, then each slice z-scored over the whole slice
    (:func:`zscored_slices`), the :data:`BRAIN_SLICE_ZSCORE` input. With the scalp left in, a
    slice's mean and SD move with the scalp's share and brightness: msprofile-default, which
    z-scores whole slices with skull, changed 104252's lesion volume by 12 % and 105755's by
    73 % when given skull-stripped copies of the same scans."""
    return zscored_slices(np.where(np.asarray(brain_model, dtype=bool), np.asarray(flair_model, dtype=np.float32), 0.0))


def brain_to_model(brain: np.ndarray, native: Grid, model: Grid) -> np.ndarray:
    """A native-grid brain mask on the model grid (nearest neighbour), bool (X, Y, Z)."""
    return labels_to_model(np.asarray(brain > 0, dtype=np.uint8), native, model) > 0


def context_stack(slices: np.ndarray, context: int) -> np.ndarray:
    """Slices (Z, X, Y) -> (Z, X, Y, 1 + 2 ``context``): each slice with its ``context``
    neighbours below and above as channels, in order from inferior to superior (the slice itself
    in the middle). Beyond the first and last slice the edge slice repeats."""
    depth = slices.shape[0]
    index = np.clip(np.arange(depth)[:, None] + np.arange(-context, context + 1)[None, :], 0, depth - 1)
    return np.moveaxis(slices[index], 1, -1)


def network_input(anchored: np.ndarray, context: int = 0) -> np.ndarray:
    """Anchored model-grid image (X, Y, Z) (:func:`anchor_intensities`) -> network batch
    (Z, X, Y, 1 + 2 ``context``) float32, one sample per axial slice."""
    slices = np.moveaxis(np.asarray(anchored, dtype=np.float32), 2, 0)
    return np.ascontiguousarray(context_stack(slices, context), dtype=np.float32)


def model_input(flair_model: np.ndarray, brain_model: np.ndarray, normalisation: str, context: int = 0) -> np.ndarray:
    """The network batch (Z, X, Y, 1 + 2 ``context``) float32 of a preprocessed model-grid image
    (X, Y, Z) for a model trained on ``normalisation`` (one of :data:`NORMALISATIONS`;
    ``brain_model``: bool brain mask on the same grid, the anchor of :data:`WHITE_MATTER_PEAK` and
    the extent of :data:`BRAIN_SLICE_ZSCORE`).
    ValueError for another ``normalisation``."""
    if normalisation == SLICE_ZSCORE:
        return np.ascontiguousarray(context_stack(zscored_slices(flair_model), context), dtype=np.float32)
    if normalisation == BRAIN_SLICE_ZSCORE:
        slices = brain_zscored_slices(flair_model, brain_model)
        return np.ascontiguousarray(context_stack(slices, context), dtype=np.float32)
    if normalisation == WHITE_MATTER_PEAK:
        return network_input(anchor_intensities(flair_model, brain_model), context)
    raise ValueError(f"unknown network input normalisation {normalisation!r}; known: {', '.join(NORMALISATIONS)}")


def network_labels(labels_model: np.ndarray) -> np.ndarray:
    """Model-grid labels (X, Y, Z) -> per-slice targets (Z, X, Y), uint8."""
    return np.ascontiguousarray(np.moveaxis(labels_model, 2, 0)).astype(np.uint8)


def from_network(per_slice: np.ndarray) -> np.ndarray:
    """Per-slice array (Z, X, Y, ...) back to a model-grid volume (X, Y, Z, ...)."""
    return np.moveaxis(per_slice, 0, 2)
