"""Rigid registration of two scans of one head, with SimpleITK (the Insight Toolkit's registration
framework): the follow-up FLAIR onto the baseline FLAIR, within their brain masks.

Arrays in (the images on their native grids, with the nibabel affines that map voxel indices to
scanner RAS+ millimetres), a :class:`RigidTransform` out. SimpleITK works in LPS+ physical
coordinates; the conversion happens here and nowhere else, so the rest of the package sees RAS+
affines only.

The method (docs/method.md section 8): a 6-degree-of-freedom rigid transform (Euler angles and a
translation), started from the alignment of the two brain masks' centres of mass, fitted by
maximising Mattes mutual information (robust to the contrast and bias-field differences between
two sessions, even of two scanners) over the voxels inside the baseline's brain mask and the
follow-up's, in three resolution levels, with a regular-step gradient descent. Deterministic
by construction: the metric samples a share of the masked voxels on a regular grid whose
jitter comes from a fixed seed, and the registration runs on one thread (the metric and the
pyramid's filters), so that the same inputs give the same transform to the last bit (a
multi-threaded metric sums partial results in an order that depends on the thread count).
Another SimpleITK or ITK version may still differ in the last bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import Grid, resample

#: RAS+ <-> LPS+ (ITK's physical space): the first two axes change sign.
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


class RegistrationError(ValueError):
    """The registration could not run or did not converge to a transform (the message says why)."""


@dataclass(frozen=True)
class RegistrationSettings:
    """Settings of :func:`register_rigid`.

    ``histogram_bins``: bins of the Mattes mutual information (50 is ITK's example value).
    ``shrink_factors`` and ``smoothing_sigmas_mm``: the resolution levels, coarse to fine, as the
    in-plane subsampling of each level and the Gaussian smoothing before it (mm).
    ``sampling_percentage``: share of the masked voxels the metric sees, on a regular grid.
    ``max_iterations``: gradient-descent iterations per level. ``min_step``: the step length
    (parameter units: radians and mm after scaling) at which the descent stops.
    """

    histogram_bins: int = 50
    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_sigmas_mm: tuple[float, ...] = (2.0, 1.0, 0.0)
    sampling_percentage: float = 0.25
    max_iterations: int = 200
    min_step: float = 1e-4


@dataclass(frozen=True)
class RigidTransform:
    """A rigid transform between two scans' scanner spaces.

    ``matrix``: 4 x 4, maps a point of the **baseline** (fixed) scanner space (RAS+ mm) to the
    matching point of the **follow-up** (moving) scanner space, the direction resampling the
    follow-up onto the baseline needs (ITK's convention). ``rotation_deg``: the Euler angles about
    the x, y and z axes (degrees); ``translation_mm``: its translation (mm), both as ITK reports
    them in LPS+ (the sign of x and y is flipped from RAS+). ``metric``: the final Mattes mutual
    information (negative; lower is better). ``iterations``: at the finest level.
    ``stop_condition``: the optimizer's reason for stopping.
    """

    matrix: np.ndarray
    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    metric: float
    iterations: int
    stop_condition: str

    def inverse_matrix(self) -> np.ndarray:
        """4 x 4: a follow-up scanner point (RAS+ mm) to the matching baseline point."""
        return np.linalg.inv(self.matrix)

    def to_dict(self) -> dict:
        """JSON-ready description (angles in degrees, translation in mm, the 4 x 4 matrix)."""
        return {
            "rotation_deg": [round(float(v), 4) for v in self.rotation_deg],
            "translation_mm": [round(float(v), 4) for v in self.translation_mm],
            "matrix_baseline_to_followup_ras": [[round(float(v), 6) for v in row] for row in self.matrix],
            "mattes_mutual_information": round(float(self.metric), 6),
            "iterations": int(self.iterations),
            "stop_condition": self.stop_condition,
        }


def to_sitk(data: np.ndarray, grid: Grid):
    """A SimpleITK image of ``data`` (X, Y, Z, on ``grid``, RAS+ affine) with the same voxels in
    the same places: spacing, direction and origin from the affine, in LPS+."""
    import SimpleITK as sitk

    affine = _RAS_TO_LPS @ np.asarray(grid.affine, dtype=np.float64)
    spacing = grid.voxel_size_mm
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(v) for v in affine[:3, 3]])
    image.SetDirection([float(v) for v in (affine[:3, :3] / spacing).ravel()])
    return image


def register_rigid(
    fixed: np.ndarray,
    fixed_grid: Grid,
    fixed_mask: np.ndarray,
    moving: np.ndarray,
    moving_grid: Grid,
    moving_mask: np.ndarray,
    settings: RegistrationSettings = RegistrationSettings(),
) -> RigidTransform:
    """Fit the rigid transform that maps the ``fixed`` scan (the baseline) onto the ``moving``
    one (the follow-up): see the module's docstring for the method.

    ``fixed``, ``moving``: intensities (X, Y, Z) on their grids; ``fixed_mask``, ``moving_mask``:
    bool brain masks on the same grids, both non-empty. Raises :class:`RegistrationError` when
    ITK cannot run the registration (for example when too few masked voxels overlap).
    """
    import SimpleITK as sitk

    if not np.any(fixed_mask) or not np.any(moving_mask):
        raise RegistrationError("a brain mask is empty")
    fixed_image = sitk.Cast(to_sitk(np.asarray(fixed, np.float32), fixed_grid), sitk.sitkFloat32)
    moving_image = sitk.Cast(to_sitk(np.asarray(moving, np.float32), moving_grid), sitk.sitkFloat32)
    fixed_mask_image = to_sitk(np.asarray(fixed_mask, np.uint8), fixed_grid)
    moving_mask_image = to_sitk(np.asarray(moving_mask, np.uint8), moving_grid)

    initial = sitk.CenteredTransformInitializer(
        fixed_mask_image,
        moving_mask_image,
        sitk.Euler3DTransform(),
        sitk.CenteredTransformInitializerFilter.MOMENTS,
    )
    method = sitk.ImageRegistrationMethod()
    # One thread everywhere (the metric, and the pyramid's smoothing filters, which take the
    # global default): a multi-threaded sum depends on the thread count in its last bits.
    method.SetNumberOfThreads(1)
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    method.SetMetricSamplingStrategy(method.REGULAR)
    method.SetMetricSamplingPercentage(settings.sampling_percentage, seed=1)
    method.SetMetricFixedMask(fixed_mask_image)
    method.SetMetricMovingMask(moving_mask_image)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0,
        minStep=settings.min_step,
        numberOfIterations=settings.max_iterations,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(settings.shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(settings.smoothing_sigmas_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=False)
    default_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        fitted = method.Execute(fixed_image, moving_image)
    except RuntimeError as exc:
        raise RegistrationError(f"ITK registration failed: {str(exc).strip().splitlines()[-1]}") from None
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(default_threads)
    euler = sitk.Euler3DTransform(sitk.CompositeTransform(fitted).GetNthTransform(0))
    matrix = itk_affine_to_ras(euler.GetMatrix(), euler.GetTranslation(), euler.GetCenter())
    metric = float(method.GetMetricValue())
    if not np.all(np.isfinite(matrix)) or not np.isfinite(metric):
        raise RegistrationError("the registration gave a transform that is not finite")
    return RigidTransform(
        matrix=matrix,
        rotation_deg=tuple(float(np.degrees(a)) for a in (euler.GetAngleX(), euler.GetAngleY(), euler.GetAngleZ())),
        translation_mm=tuple(float(v) for v in euler.GetTranslation()),
        metric=metric,
        iterations=int(method.GetOptimizerIteration()),
        stop_condition=method.GetOptimizerStopConditionDescription(),
    )


def itk_affine_to_ras(matrix, translation, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """The 4 x 4 RAS+ matrix of an ITK affine transform given in LPS+ physical coordinates:
    ``matrix`` (9 numbers, row-major 3 x 3), ``translation`` and ``center`` (3 each, mm), the
    parameters ITK writes to an "Insight Transform File" (``x -> A (x - c) + c + t``). The
    result maps the same points as ITK's transform, in RAS+ mm."""
    rotation = np.asarray(matrix, dtype=np.float64).reshape(3, 3)
    center = np.asarray(center, dtype=np.float64)
    lps = np.eye(4)
    lps[:3, :3] = rotation
    lps[:3, 3] = np.asarray(translation, dtype=np.float64) + center - rotation @ center
    return _RAS_TO_LPS @ lps @ _RAS_TO_LPS


def registration_quality(
    fixed: np.ndarray,
    fixed_grid: Grid,
    fixed_mask: np.ndarray,
    moving: np.ndarray,
    moving_grid: Grid,
    moving_mask: np.ndarray,
    matrix: np.ndarray,
) -> dict:
    """How well two scans of one head agree once registered: the moving scan is resampled
    (linear) onto the fixed grid through ``matrix`` (fixed point -> moving point, RAS+ mm,
    :attr:`RigidTransform.matrix`) and compared inside both brain masks.

    Returns ``correlation``: Pearson's correlation of the intensities in that overlap (about
    0.9 for two sessions of one head on one protocol, about 0.3-0.5 for two different heads:
    a FLAIR's contrast is mostly grey/white matter and CSF, whose layout is individual), and
    ``mask_overlap_dice``: Dice of the fixed brain mask and the registered moving one (a gross
    failure leaves the brains apart). Both are 0 when the masks do not overlap at all.
    """

    registered = resample(np.asarray(moving, np.float32), moving_grid, fixed_grid, order=1, transform=matrix)
    registered_mask = (
        resample(np.asarray(moving_mask, np.uint8), moving_grid, fixed_grid, order=0, transform=matrix) > 0
    )
    fixed_mask = np.asarray(fixed_mask, bool)
    overlap = fixed_mask & registered_mask
    total = int(fixed_mask.sum()) + int(registered_mask.sum())
    if overlap.sum() < 2 or total == 0:
        return {"correlation": 0.0, "mask_overlap_dice": 0.0}
    a = np.asarray(fixed, np.float64)[overlap]
    b = registered.astype(np.float64)[overlap]
    spread = a.std() * b.std()
    correlation = float(((a - a.mean()) * (b - b.mean())).mean() / spread) if spread > 0 else 0.0
    return {"correlation": round(correlation, 6), "mask_overlap_dice": round(float(2.0 * overlap.sum() / total), 6)}
