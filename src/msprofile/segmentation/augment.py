"""Randomised appearance of training patches: contrast, artefacts and resolution of other scanners.

A network trained on four subjects of one scanner learns that scanner's contrast, noise and
sharpness; on another scanner's scans it then misses lesions or finds them in the cortex. The
functions here draw, for every training patch, an appearance that a FLAIR of another scanner
could have, so that the network has to rely on what all of them share (lesions brighter than
white matter, ventricles dark, the anatomy), in the spirit of domain randomisation for MRI
(Billot et al., SynthSeg, Medical Image Analysis 2023; Zhao et al., "Data augmentation using
learned transformations", CVPR 2019; Tobin et al., IROS 2017).

Every function is pure: a float32 patch (H, W) or (H, W, C) in the network's anchored intensity
units (white-matter peak 1, CSF about 0; :func:`msprofile.segmentation.data.anchor_intensities`)
and a :class:`numpy.random.Generator` in, a new patch out. The C channels of a patch are
neighbouring slices of one scan (2.5-D input), so they share every draw but the noise. Labels
never change, so none of these moves a structure: geometry is left to
:mod:`msprofile.segmentation.train`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Randomisation:
    """How strongly :func:`randomise_appearance` varies a patch (each step drawn independently).

    ``probability_*``: chance that a step is applied to a patch. Ranges are (low, high) of a
    uniform draw unless said otherwise; intensities are in anchored units (white matter 1).

    * ``pixel_size_mm``: in-plane pixel size of a simulated acquisition; the patch is averaged
      down to it and interpolated back to the model grid (``grid_pixel_mm``), so that a scan
      of 1.2 mm pixels is as blurred as it would be on the model grid;
    * ``blur_sigma_px``: extra Gaussian blur (reconstruction filters, motion);
    * ``bias_log_sd``: SD of the log of a smooth multiplicative field (0.25: about +-50 %
      from one side of the head to the other, stronger than any coil of a modern scanner);
    * ``warp_log_sd``: SD of the log slopes of a monotonic piecewise-linear intensity map
      (histogram warp: the contrast between tissues changes, their order does not);
    * ``gamma_log_sd``: SD of log gamma of a power law on the patch's intensity range;
    * ``noise_sd``: SD of Rician noise relative to white matter: 0.02 is a 3 T scan,
      0.08 a noisy 1.5 T one;
    * ``scale``: global intensity factor (an anchor off by this much).
    """

    probability_resolution: float = 0.5
    pixel_size_mm: tuple[float, float] = (0.4, 1.2)
    grid_pixel_mm: float = 0.9
    probability_blur: float = 0.3
    blur_sigma_px: tuple[float, float] = (0.3, 1.2)
    probability_bias: float = 0.8
    bias_log_sd: float = 0.25
    probability_warp: float = 0.8
    warp_log_sd: float = 0.4
    gamma_log_sd: float = 0.25
    probability_noise: float = 0.7
    noise_sd: tuple[float, float] = (0.01, 0.08)
    scale: tuple[float, float] = (0.85, 1.15)


def smooth_field(shape: tuple[int, int], rng: np.random.Generator, log_sd: float, nodes: int = 4) -> np.ndarray:
    """A smooth positive multiplicative field of ``shape`` (H, W): exp of a random surface.

    The surface is cubic interpolation of a ``nodes`` x ``nodes`` grid of normal draws with SD
    ``log_sd`` spanning the image, so it varies over about a third of the field of view, like
    a receive-coil sensitivity. Returns float32 (H, W), geometric mean about 1.
    """
    coarse = rng.normal(0.0, log_sd, (nodes, nodes))
    zoom = (shape[0] / nodes, shape[1] / nodes)
    surface = ndimage.zoom(coarse, zoom, order=3, mode="nearest", grid_mode=True)[: shape[0], : shape[1]]
    return np.exp(surface).astype(np.float32)


def histogram_warp(image: np.ndarray, rng: np.random.Generator, log_sd: float, knots: int = 6) -> np.ndarray:
    """A random monotonic piecewise-linear map of the intensities between 0 and the patch's 99.5th
    percentile (``knots`` segments, slopes exp(N(0, ``log_sd``)) scaled so that both ends stay
    where they were); values outside that range continue the end slopes. The tissues keep their
    order, their contrast changes: grey matter may come closer to white matter or lesions
    further from it, as between FLAIR protocols.
    """
    top = float(np.percentile(image, 99.5))
    if top <= 0:
        return image.astype(np.float32)
    slopes = np.exp(rng.normal(0.0, log_sd, knots))
    slopes *= knots / slopes.sum()  # the mapped range equals the original one
    source = np.linspace(0.0, top, knots + 1)
    target = np.concatenate([[0.0], np.cumsum(slopes) * top / knots])
    inside = np.interp(image, source, target)
    below = image * slopes[0]
    above = target[-1] + (image - top) * slopes[-1]
    return np.where(image < 0, below, np.where(image > top, above, inside)).astype(np.float32)


def gamma(image: np.ndarray, exponent: float) -> np.ndarray:
    """Power law ``exponent`` applied to the image's range [min, max] (both ends kept)."""
    low, high = float(image.min()), float(image.max())
    span = max(high - low, 1e-6)
    return (low + span * ((image - low) / span) ** exponent).astype(np.float32)


def simulate_pixel_size(image: np.ndarray, pixel_mm: float, grid_pixel_mm: float) -> np.ndarray:
    """The image as a scan of ``pixel_mm`` pixels would look on a grid of ``grid_pixel_mm``.

    Coarser pixels: area-averaged (Gaussian anti-aliasing of SD sqrt(r^2 - 1) / 2 coarse
    pixels, r the ratio, as :func:`msprofile.geometry.resample`) down to ``pixel_mm`` and
    linearly interpolated back. Finer pixels than the grid add nothing the grid could show: the
    image is returned unchanged. Same shape, float32.
    """
    ratio = pixel_mm / grid_pixel_mm
    if ratio <= 1.0:
        return image.astype(np.float32)
    if image.ndim == 3:
        channels = [simulate_pixel_size(image[..., c], pixel_mm, grid_pixel_mm) for c in range(image.shape[2])]
        return np.stack(channels, axis=-1)
    smoothed = ndimage.gaussian_filter(image.astype(np.float32), math.sqrt(ratio**2 - 1.0) / 2.0, mode="nearest")
    coarse = ndimage.zoom(smoothed, 1.0 / ratio, order=1, mode="nearest", grid_mode=True)
    back = ndimage.zoom(coarse, np.divide(image.shape, coarse.shape), order=1, mode="nearest", grid_mode=True)
    return back[: image.shape[0], : image.shape[1]].astype(np.float32)


def rician_noise(image: np.ndarray, rng: np.random.Generator, sd: float) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise of SD ``sd`` in each channel (Rician:
    the background becomes a positive noise floor, bright tissue gets Gaussian noise)."""
    real = image + rng.normal(0.0, sd, image.shape)
    imaginary = rng.normal(0.0, sd, image.shape)
    return np.sqrt(real * real + imaginary * imaginary).astype(np.float32)


def randomise_appearance(image: np.ndarray, rng: np.random.Generator, settings: Randomisation) -> np.ndarray:
    """One random appearance of a patch: resolution, blur, bias field, histogram warp and gamma,
    global scale, noise, each drawn as ``settings`` says, in the order an acquisition would
    produce them (the object's contrast, then the coil, then the resolution, then the noise).

    ``image``: (H, W) or (H, W, C) float32 in anchored units (negative values are clipped to 0,
    the floor of a magnitude image). Returns a new float32 patch of the same shape.
    """
    out = np.maximum(image.astype(np.float32), 0.0)
    in_plane = (1.0, 1.0, 0.0)[: out.ndim]
    if rng.random() < settings.probability_warp:
        out = histogram_warp(out, rng, settings.warp_log_sd)
        out = gamma(out, float(np.exp(rng.normal(0.0, settings.gamma_log_sd))))
    if rng.random() < settings.probability_bias:
        field = smooth_field(out.shape[:2], rng, settings.bias_log_sd)
        out = out * (field if out.ndim == 2 else field[:, :, None])
    if rng.random() < settings.probability_resolution:
        out = simulate_pixel_size(out, rng.uniform(*settings.pixel_size_mm), settings.grid_pixel_mm)
    if rng.random() < settings.probability_blur:
        out = ndimage.gaussian_filter(out, np.multiply(in_plane, rng.uniform(*settings.blur_sigma_px)))
    out = out * rng.uniform(*settings.scale)
    if rng.random() < settings.probability_noise:
        out = rician_noise(out, rng, rng.uniform(*settings.noise_sd))
    return out.astype(np.float32)
