"""Synthetic training images painted from phantom label maps, in the spirit of SynthSeg.

SynthSeg (Billot et al., Medical Image Analysis 2023) trains on images painted from label maps
with intensities drawn at random per label, so that the network never sees the same contrast
twice and must segment by shape and relative brightness. Here the label maps are the workflow's
own phantoms (:func:`msprofile.synthetic.phantom.make_phantom`, exact masks, any slice
thickness), painted with FLAIR-like but random contrasts: every tissue's brightness relative
to white matter is drawn from a range wider than the FLAIR protocols in use, lesions always
brighter than white matter and CSF always dark (what makes a FLAIR a FLAIR). The painted
slices then go through the same appearance randomisation as the real ones
(:mod:`msprofile.segmentation.augment`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..labels import SegmentationClass
from ..synthetic.phantom import Tissue, make_phantom

#: Brightness of each tissue relative to white matter (anchored units: white matter 1, CSF 0),
#: drawn uniformly per painted image. Ventricles take the CSF's value plus a small offset
#: (partial volume and flow differ between them).
TISSUE_INTENSITY = {
    Tissue.AIR: (0.0, 0.05),
    Tissue.WHITE_MATTER: (0.95, 1.05),
    Tissue.CORTEX: (0.95, 1.5),
    Tissue.DEEP_GREY: (0.85, 1.4),
    Tissue.CSF: (0.0, 0.3),
    Tissue.LESIONS: (1.3, 2.3),
    Tissue.SKULL: (0.0, 0.3),
    Tissue.DIPLOE: (0.3, 2.5),
    Tissue.FAT: (0.5, 3.0),
    Tissue.MUSCLE: (0.3, 1.2),
    Tissue.VITREOUS: (0.0, 0.4),
}
VENTRICLE_OFFSET = (-0.05, 0.15)
#: Within-tissue texture (relative SD of a smooth random field) and partial-volume blur (pixels).
TEXTURE_SD = (0.02, 0.08)
PARTIAL_VOLUME_SIGMA_PX = (0.4, 1.0)
#: Slice thicknesses (mm) and in-plane pixel size (mm) of the phantoms of a bank.
SLICE_THICKNESS_MM = (1.5, 8.0)
COVERAGE_MM = 130.0


def segmentation_labels(tissue: np.ndarray) -> np.ndarray:
    """:class:`~msprofile.labels.SegmentationClass` codes (uint8) of a tissue label map."""
    labels = np.zeros(np.shape(tissue), dtype=np.uint8)
    labels[tissue == Tissue.VENTRICLES] = SegmentationClass.VENTRICLES
    labels[tissue == Tissue.LESIONS] = SegmentationClass.LESIONS
    return labels


def paint(tissue: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random FLAIR-like image of a tissue label map (H, W) or (H, W, C) (C neighbouring
    slices, painted alike): per-tissue brightness from :data:`TISSUE_INTENSITY`, smooth texture
    and partial-volume blur. float32 in anchored units, the shape of ``tissue``."""
    table = np.zeros(len(Tissue), dtype=np.float32)
    for code, (low, high) in TISSUE_INTENSITY.items():
        table[code] = rng.uniform(low, high)
    table[Tissue.VENTRICLES] = max(table[Tissue.CSF] + rng.uniform(*VENTRICLE_OFFSET), 0.0)
    image = table[np.asarray(tissue)]
    in_plane = (1.0, 1.0, 0.0)[: image.ndim]
    texture = ndimage.gaussian_filter(rng.normal(0.0, 1.0, image.shape).astype(np.float32), np.multiply(in_plane, 2.0))
    texture *= rng.uniform(*TEXTURE_SD) / max(float(texture.std()), 1e-6)
    image = image * (1.0 + texture)
    return ndimage.gaussian_filter(image, np.multiply(in_plane, rng.uniform(*PARTIAL_VOLUME_SIGMA_PX))).astype(
        np.float32
    )


def phantom_bank(count: int, seed: int, *, matrix=(256, 256), pixel_size_mm: float = 0.9) -> dict[str, np.ndarray]:
    """Tissue label maps of ``count`` phantoms for synthetic training images.

    Each phantom is a different head (seed, group MS or HC one time in four, age 20 to 70, sex)
    scanned with a slice thickness drawn log-uniformly from :data:`SLICE_THICKNESS_MM` over
    :data:`COVERAGE_MM`, on the model grid's matrix and pixel size, so thin-slice and thick-slice
    partial volume both occur. Returns ``tissue`` (N, H, W) uint8 slices of all phantoms in
    order, ``volume`` (N,) the phantom each slice belongs to and ``slice_mm`` (count,) each
    phantom's slice thickness. Every slice is kept, so that neighbours stay neighbours.
    Deterministic for a ``seed``.
    """
    rng = np.random.default_rng(seed)
    tissue, volume, thickness = [], [], []
    for index in range(count):
        slice_mm = float(np.exp(rng.uniform(*np.log(SLICE_THICKNESS_MM))))
        depth = max(int(round(COVERAGE_MM / slice_mm)), 3)
        phantom = make_phantom(
            int(rng.integers(2**31)),
            group="HC" if rng.random() < 0.25 else "MS",
            age_years=float(rng.uniform(20, 70)),
            sex="F" if rng.random() < 0.5 else "M",
            shape=(*matrix, depth),
            voxel_size_mm=(pixel_size_mm, pixel_size_mm, slice_mm),
        )
        tissue.append(np.moveaxis(np.asarray(phantom.tissue)[::-1], 2, 0))  # LAS -> RAS, as the model grid
        volume += [index] * depth
        thickness.append(slice_mm)
    return {"tissue": np.concatenate(tissue), "volume": np.array(volume), "slice_mm": np.array(thickness)}
