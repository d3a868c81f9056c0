"""Per-subject preprocessing: canonical orientation, denoising, brain mask, normalisation,
resampling to the model grid, and QC measures (docs/method.md section 1).

The reference sharpened instead of denoising, fitted an ellipse instead of extracting the
brain, normalised with a window taken outside the brain and never updated the affine. Here:

* the acquisition is read from the voxel sizes and the affine (:func:`msprofile.geometry.acquisition`):
  thick slices of another plane than axial, or tilted beyond ``max_slice_tilt_deg``, are
  refused with the reason; 3-D data of any orientation is taken;
* the input is reoriented to RAS+ without interpolation (:mod:`msprofile.geometry`), so 2-D
  axial, 3-D isotropic and any stored orientation all give axial slices on the last axis;
* NaN or infinite voxels outside the head (SPM's reslicing leaves NaN outside the field of
  view) are set to 0 and counted; in the head or next to the brain they are refused;
* denoising is an edge-preserving Perona-Malik diffusion within each slice;
* the brain mask follows the brain surface (:mod:`msprofile.brainmask`);
* intensities are scaled by robust percentiles of the brain voxels;
* the image is resampled in-plane to a fixed matrix and pixel size centred on the brain,
  slices kept (3-D data tilted beyond ``max_slice_tilt_deg`` is resliced onto scanner-axial
  slices instead), with an affine that is correct by construction.

QC judgement (flags, ``qc_pass``) is :mod:`msprofile.qc`'s, from the measures made here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from . import __version__
from .brainmask import BrainMaskSettings, brain_mask, given_brain_mask
from .geometry import (
    Grid,
    HeaderGeometry,
    acquisition,
    axial_model_grid,
    from_canonical,
    inplane_box,
    model_grid,
    resample,
    to_canonical,
)
from .montage import brain_mask_montage


@dataclass(frozen=True)
class PreprocessSettings:
    """Settings of :func:`preprocess` (the ``preprocess`` section of the config).

    ``matrix``: model grid in-plane size (pixels). ``pixel_size_mm``: model grid pixel size.
    ``denoise_iterations``: Perona-Malik steps (0 switches denoising off).
    ``normalise_percentiles``: brain-voxel percentiles mapped to 0 and 1.
    ``max_slice_tilt_deg``: the steepest tilt of axial slices from the scanner's axial plane
    that the network is given as they are (head positioning along the AC-PC line tilts axial
    slices by up to about 25 degrees); thick slices tilted further are refused, 3-D data
    tilted further is resliced onto scanner-axial slices.
    """

    matrix: tuple[int, int] = (256, 256)
    pixel_size_mm: float = 0.9
    denoise_iterations: int = 3
    normalise_percentiles: tuple[float, float] = (1.0, 99.0)
    max_slice_tilt_deg: float = 30.0
    brain_mask: BrainMaskSettings = field(default_factory=BrainMaskSettings)

    @classmethod
    def from_config(cls, section: dict) -> PreprocessSettings:
        """Build from the config's ``preprocess`` mapping (keys as the field names)."""
        section = dict(section)
        mask = BrainMaskSettings(**section.pop("brain_mask", {}))
        tuples = {k: tuple(v) for k, v in section.items() if isinstance(v, list)}
        return cls(**{**section, **tuples, "brain_mask": mask})


@dataclass(frozen=True)
class Preprocessed:
    """Result of :func:`preprocess`.

    ``brain_mask``: uint8 0/1 on the native grid. ``flair``: float32 normalised image on the
    ``model`` grid. ``canonical_image`` and ``canonical_mask`` (RAS+ grid) feed the QC figure.
    ``qc``: JSON-ready QC measures.
    """

    brain_mask: np.ndarray
    flair: np.ndarray
    model: Grid
    canonical_image: np.ndarray
    canonical_mask: np.ndarray
    qc: dict


def denoise(image: np.ndarray, iterations: int = 3, step: float = 0.2) -> np.ndarray:
    """Edge-preserving Perona-Malik diffusion within each axial slice (last axis).

    ``image``: float array (X, Y, Z). The conductance ``exp(-(grad / kappa)^2)`` lets noise
    (small gradients) diffuse and stops at tissue edges (large gradients); ``kappa`` is twice
    the robust noise gradient, taken from the median absolute in-plane difference.
    ``step`` <= 0.25 keeps the explicit scheme stable. Returns float32, same shape.
    """
    out = np.array(image, dtype=np.float32)
    if iterations <= 0:
        return out
    differences = np.abs(np.diff(out, axis=0))
    kappa = 2.0 * 1.4826 * float(np.median(differences[differences > 0])) if differences.any() else 1.0
    for _ in range(iterations):
        for axis in (0, 1):
            lower = [slice(None)] * 3
            upper = [slice(None)] * 3
            lower[axis], upper[axis] = slice(None, -1), slice(1, None)
            lower, upper = tuple(lower), tuple(upper)
            # flux = step * gradient * exp(-(gradient / kappa)^2), in place (same arithmetic).
            gradient = np.subtract(out[upper], out[lower])
            conductance = np.divide(gradient, kappa)
            np.square(conductance, out=conductance)
            np.negative(conductance, out=conductance)
            np.exp(conductance, out=conductance)
            flux = np.multiply(gradient, step, out=gradient)
            flux *= conductance
            out[lower] += flux
            out[upper] -= flux
    return out


def normalise(image: np.ndarray, mask: np.ndarray, percentiles: tuple[float, float]) -> tuple[np.ndarray, float, float]:
    """Map the ``percentiles`` of ``image[mask]`` to 0 and 1 (not clipped: lesions may exceed 1).

    Returns ``(normalised float32, low value, high value)`` with the values in input units.
    """
    low, high = (float(v) for v in np.percentile(image[mask], percentiles))
    scale = high - low if high > low else 1.0
    return ((image - low) / scale).astype(np.float32), low, high


def preprocess(
    flair: np.ndarray,
    affine: np.ndarray,
    *,
    skull_stripped: bool = False,
    settings: PreprocessSettings = PreprocessSettings(),
    header: HeaderGeometry | None = None,
    given_mask: np.ndarray | None = None,
) -> Preprocessed:
    """Preprocess one FLAIR volume.

    ``flair``: array (X, Y, Z) in any orientation, NaN or infinite outside the head allowed;
    ``affine``: its 4 x 4 voxel-to-mm matrix; ``header``: the file's two affines with their
    codes, recorded in the QC (default: ``affine`` as the sform and qform, scanner space).
    ``given_mask``: a brain mask made by another tool on the same grid (non-zero is brain),
    used instead of the brain extraction; the QC records ``brain_mask_source`` ``given`` (else
    ``workflow``). Raises ``ValueError`` with the reason for an acquisition the network cannot
    segment (:meth:`msprofile.geometry.Acquisition.problem`), an image with no contrast, NaN or
    infinite voxels in the head, or no brain found.
    """
    native = Grid(tuple(flair.shape), np.asarray(affine, dtype=np.float64))
    acquired = acquisition(native)
    problem = acquired.problem(settings.max_slice_tilt_deg)
    if problem:
        raise ValueError(problem)
    nonfinite = ~np.isfinite(flair)
    flair = np.where(nonfinite, np.float32(0), flair) if nonfinite.any() else flair
    canonical_image, canonical = to_canonical(flair, native)
    if np.ptp(canonical_image) == 0:
        raise ValueError("image is constant (every voxel has the same value)")
    denoised = denoise(canonical_image, settings.denoise_iterations)
    pixel_size_mm = float(canonical.voxel_size_mm[:2].mean())
    if given_mask is None:
        extraction = brain_mask(
            denoised,
            pixel_size_mm,
            float(canonical.voxel_size_mm[2]),
            skull_stripped=skull_stripped,
            settings=settings.brain_mask,
        )
    else:
        extraction = given_brain_mask(denoised, to_canonical(np.asarray(given_mask) > 0, native)[0], pixel_size_mm)
    mask = extraction.mask
    if nonfinite.any():
        _check_nonfinite(to_canonical(nonfinite, native)[0], extraction.head, mask)
    if not mask.any():
        raise ValueError("brain extraction found no brain (is this a head FLAIR?)")
    normalised, low, high = normalise(denoised, mask, settings.normalise_percentiles)
    if acquired.axial_within(settings.max_slice_tilt_deg):
        centre = np.array([(box.start + box.stop - 1) / 2.0 for box in inplane_box(mask)])
        model = model_grid(canonical, matrix=settings.matrix, pixel_size_mm=settings.pixel_size_mm, centre_voxel=centre)
    else:
        model = axial_model_grid(
            canonical,
            mask,
            matrix=settings.matrix,
            pixel_size_mm=settings.pixel_size_mm,
            slice_spacing_mm=float(native.voxel_size_mm.max()),
        )
    flair_model = resample(normalised, canonical, model, order=1).astype(np.float32)
    qc = qc_measures(canonical_image, mask, extraction.head, canonical, native, model, skull_stripped, settings)
    qc["acquisition"] = acquired.to_dict()
    qc["header"] = (header or HeaderGeometry.derived(native.affine, 1)).to_dict()
    qc["nonfinite_voxels_set_to_zero"] = int(nonfinite.sum())
    qc["brain_mask_source"] = "workflow" if given_mask is None else "given"
    qc["scalp_thickness_mm"] = _rounded(extraction.scalp_thickness_mm)
    qc["normalisation"] = {
        "method": "brain_percentiles",
        "percentiles": list(settings.normalise_percentiles),
        "low_value": _rounded(low),
        "high_value": _rounded(high),
    }
    return Preprocessed(
        brain_mask=from_canonical(mask, native).astype(np.uint8),
        flair=flair_model,
        model=model,
        canonical_image=canonical_image,
        canonical_mask=mask,
        qc=qc,
    )


def _check_nonfinite(nonfinite: np.ndarray, head: np.ndarray, mask: np.ndarray) -> None:
    """Refuse NaN or infinite voxels (set to 0 by then) that lie in the head, next to the brain
    or in an image where no brain was found: there they replace anatomy, not background."""
    near_brain = ndimage.binary_dilation(mask, np.ones((3, 3, 3), dtype=bool)) if mask.any() else mask
    inside = int((nonfinite & (head | near_brain)).sum())
    if inside or not mask.any():
        raise ValueError(
            f"{int(nonfinite.sum())} voxels are NaN or infinite, {inside} of them in the head or next to the brain "
            "(only background outside the head may be NaN: it is set to 0)"
        )


def qc_measures(
    image: np.ndarray,
    mask: np.ndarray,
    head: np.ndarray,
    canonical: Grid,
    native: Grid,
    model: Grid,
    skull_stripped: bool,
    settings: PreprocessSettings,
) -> dict:
    """QC measures of a brain mask on the canonical grid (the flags are judged from them by
    :func:`msprofile.qc.qc_flags`).

    Volumes in mL, areas in cm^2, lengths in mm, intensities in input units.
    ``brain_slices`` and ``brain_z_extent_mm`` (slices with brain times the slice spacing)
    measure coverage; ``brain_touches_image_edge`` and ``brain_larger_than_model_grid`` say
    whether the field of view of the input or of the model grid cuts the brain.
    """
    voxel_area_cm2 = float(np.prod(canonical.voxel_size_mm[:2])) / 100.0
    slice_area_cm2 = mask.sum(axis=(0, 1)) * voxel_area_cm2
    brain_slices = np.flatnonzero(slice_area_cm2 > 0)
    z_extent_mm = float(len(brain_slices) * canonical.voxel_size_mm[2])
    icv_ml = float(mask.sum() * canonical.voxel_volume_ml)
    widest = np.argsort(head.sum(axis=(0, 1)), kind="stable")[-6:]
    head_area = head[:, :, widest].sum()
    brain_to_head = float(mask[:, :, widest].sum() / head_area) if head_area else float("nan")
    outside_brain = head & ~mask
    brain_p1, brain_p50, brain_p99 = np.percentile(image[mask], [1, 50, 99])

    border = np.zeros(mask.shape[:2], dtype=bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    brain_extent_mm = np.array([box.stop - box.start for box in inplane_box(mask)]) * canonical.voxel_size_mm[:2]

    return {
        "msprofile_version": __version__,
        "native_grid": native.to_dict(),
        "canonical_grid": canonical.to_dict(),
        "model_grid": model.to_dict(),
        "skull_stripped_input": bool(skull_stripped),
        "intracranial_volume_ml": _rounded(icv_ml),
        "brain_slices": int(len(brain_slices)),
        "brain_z_extent_mm": _rounded(z_extent_mm),
        "max_slice_area_cm2": _rounded(float(slice_area_cm2.max())),
        "brain_to_head_area_ratio": _rounded(brain_to_head),
        "brain_touches_image_edge": bool(mask[border].any()),
        "brain_larger_than_model_grid": bool(
            np.any(brain_extent_mm > np.asarray(model.shape[:2]) * settings.pixel_size_mm)
        ),
        "intensity": {
            "brain_p1": _rounded(brain_p1),
            "brain_p50": _rounded(brain_p50),
            "brain_p99": _rounded(brain_p99),
            "head_outside_brain_p50": _rounded(np.median(image[outside_brain])) if outside_brain.any() else None,
        },
    }


def qc_image(image: np.ndarray, mask: np.ndarray, title: str) -> np.ndarray:
    """The brain-mask QC picture (:func:`msprofile.montage.brain_mask_montage`): RGB uint8 (H, W, 3)."""
    return brain_mask_montage(image, mask, title)


def _rounded(value, digits: int = 4):
    value = float(value)
    return round(value, digits) if np.isfinite(value) else None


def settings_dict(settings: PreprocessSettings) -> dict:
    """``settings`` as a JSON-ready mapping (tuples as lists), as written into the QC file."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}
