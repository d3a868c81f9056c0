"""Synthetic FLAIR phantoms: a head scanned like the sample data, with known masks.

A phantom is an axial thick-slice (2-D multi-slice) FLAIR volume on an LAS grid, slice 0
inferior, covering skull base to vertex like the 1.5 T clinical scans the workflow is built
for. It is made from an analytic head: a brain envelope built from ellipses whose centres and
semi-axes vary with the depth below the vertex, a folded cortex (sulci are the zero lines of
a smooth random field, laid out along the brain surface so that they run inwards), lateral
ventricles that widen with age, deep grey nuclei, extracerebral CSF, skull, scalp, a face in
the lowest slices, and MS lesions placed as periventricular, deep or juxtacortical. Intensities
are in scanner units, tuned so that the lesion / tissue and ventricle / tissue median ratios
match the manual masks of the real sample, then a smooth multiplicative bias field, a slight
in-plane blur and Rician noise are applied.

Everything is a function of ``numpy.random.default_rng(seed)``: the same arguments give
byte-identical arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy import ndimage

from ..labels import LesionClass

#: Tissue signal in scanner units before bias field and noise. Tuned so that the medians of
#: the phantom's lesion and ventricle masks relative to the white matter 3-15 mm around the
#: ventricles fall in the range of the four real sample scans' manual masks (lesion
#: 1.38-1.53, ventricle 0.27-0.63; the ventricle masks include partial-volume voxels).
INTENSITY = {
    "white_matter": 3900.0,
    "cortex": 4700.0,
    "deep_grey": 4250.0,
    "csf": 1150.0,
    "lesion": 6300.0,
    "scalp_fat": 8200.0,
    "muscle": 2600.0,
    "skull": 150.0,
    "diploe": 6500.0,
    "vitreous": 300.0,
    "air": 0.0,
}

#: Largest stored value: the sample scans saturate at 2**14 - 1.
MAX_SIGNAL = 16383


class Tissue(IntEnum):
    """Codes of a phantom's tissue label map (:attr:`Phantom.tissue`): every structure the
    phantom draws, so that images of any contrast can be painted from it (SynthSeg-style
    training images, :mod:`msprofile.segmentation.synthetic`)."""

    AIR = 0
    WHITE_MATTER = 1
    CORTEX = 2
    DEEP_GREY = 3
    CSF = 4
    VENTRICLES = 5
    LESIONS = 6
    SKULL = 7
    DIPLOE = 8
    FAT = 9
    MUSCLE = 10
    VITREOUS = 11


#: Tissue of each signal value outside the brain (the head signal takes exactly these values).
_HEAD_TISSUE = {
    "air": Tissue.AIR,
    "csf": Tissue.CSF,
    "skull": Tissue.SKULL,
    "diploe": Tissue.DIPLOE,
    "scalp_fat": Tissue.FAT,
    "muscle": Tissue.MUSCLE,
    "vitreous": Tissue.VITREOUS,
}

_RICIAN_SIGMA = 50.0  # background of the sample: mean ~50-90, SD ~40-75
_CORTEX_THICKNESS_MM = 2.6
_SKULL_THICKNESS_MM = 5.0
_DIPLOE_THICKNESS_MM = 2.2  # the bright marrow between the skull's dark inner and outer tables
_SCALP_THICKNESS_MM = 4.0
_SMOOTH_UNION_MM = 4.0  # blending radius where two ellipses of the envelope meet
_SULCUS_SPACING_MM = 11.0  # between neighbouring sulci along the brain outline


@dataclass(frozen=True, eq=False)
class Phantom:
    """A synthetic FLAIR volume and its ground truth, all on one grid.

    Every array has shape ``(nx, ny, nz)`` (the ``shape`` asked for), axial slices
    ``[:, :, k]``, slice 0 inferior. Arrays are read-only.

    Attributes:
        flair: int16 signal in scanner units (background ~0 plus Rician noise, brain tissue
            in the thousands, saturating at 16383).
        brain_mask: uint8 0/1, the brain envelope: parenchyma, ventricles, lesions and
            sulcal CSF, filled; excludes the extracerebral CSF, skull and scalp.
        ventricles_mask: uint8 0/1, ventricles (lateral, third, temporal horns).
        lesion_mask: uint8 0/1, white-matter hyperintensities; disjoint from ventricles.
        lesion_location: uint8 :class:`msprofile.labels.LesionClass` code of the location each
            lesion was placed in: 0 none, 1 periventricular,
            2 deep white matter, 3 juxtacortical; non-zero exactly on ``lesion_mask``.
        affine: float64 (4, 4), voxel index -> scanner mm, LAS (axis 0 runs right to left,
            axis 1 posterior to anterior, axis 2 inferior to superior), origin at the
            volume's centre.
        tissue: uint8 :class:`Tissue` code of every voxel (the dominant tissue where the
            phantom mixes two at an edge); ventricles and lesions exactly as their masks.
    """

    flair: np.ndarray
    brain_mask: np.ndarray
    ventricles_mask: np.ndarray
    lesion_mask: np.ndarray
    lesion_location: np.ndarray
    affine: np.ndarray
    tissue: np.ndarray


@dataclass(frozen=True)
class _Subject:
    """Per-subject anatomy drawn once from the generator (lengths in mm, factors unitless)."""

    head_scale: float  # multiplies every template length
    top_slice_depth_mm: float  # depth below the brain vertex of the top slice's centre
    rotation_rad: float  # in-plane yaw of the head
    shift_mm: tuple[float, float]  # in-plane offset of the head (x, y)
    extracerebral_csf_mm: float
    sulcus_half_width_mm: float
    sulcus_depth_mm: float
    ventricle_width_scale: float
    ventricle_length_scale: float


@dataclass(frozen=True)
class _Track:
    """An in-plane ellipse whose shape changes with depth below the vertex.

    ``keyframes`` rows are ``(depth_mm, centre_x_mm, centre_y_mm, semi_x_mm, semi_y_mm,
    angle_deg)`` of the template head (head scale 1), depths increasing; the structure exists
    between the first and last depth and is linearly interpolated in between. ``mirrored``
    tracks have a copy in the other hemisphere (x and angle negated).
    """

    keyframes: tuple[tuple[float, float, float, float, float, float], ...]
    mirrored: bool = False

    def at(self, depth_mm: float) -> list[tuple[float, float, float, float, float]]:
        """Ellipses ``(cx, cy, semi_x, semi_y, angle_rad)`` at ``depth_mm``; empty if absent."""
        table = np.asarray(self.keyframes, dtype=float)
        if not table[0, 0] <= depth_mm <= table[-1, 0]:
            return []
        cx, cy, sx, sy, angle = (np.interp(depth_mm, table[:, 0], table[:, c]) for c in range(1, 6))
        if min(sx, sy) <= 0.0:
            return []
        ellipse = (cx, cy, sx, sy, np.deg2rad(angle))
        if not self.mirrored:
            return [ellipse]
        return [ellipse, (-cx, cy, sx, sy, -ellipse[4])]


def _cerebrum_keyframes(centre_y_mm, semi_x_mm, semi_y_mm, widest_depth_mm=60.0):
    """Keyframes of the cerebrum's dome: an elliptic profile from the vertex to its widest
    depth, constant to 72 mm, then narrowing to end at 104 mm (template mm)."""
    narrowing = ([72.0, 84.0, 92.0, 100.0, 104.0], [1.0, 0.94, 0.85, 0.55, 0.1])
    depths = np.concatenate([np.linspace(0.5, widest_depth_mm, 14), narrowing[0]])
    dome = np.sqrt(1.0 - np.clip((widest_depth_mm - depths) / widest_depth_mm, 0, 1) ** 2)
    profile = np.where(depths <= narrowing[0][0], dome, np.interp(depths, *narrowing))
    return tuple((d, 0.0, centre_y_mm, semi_x_mm * p, semi_y_mm * p, 0.0) for d, p in zip(depths, profile))


# Template anatomy (head scale 1, an adult female head); depth = mm below the brain vertex.
# Rows: (depth, centre x, centre y, semi-axis x, semi-axis y, angle in degrees).
_BRAIN_TRACKS = (
    # cerebrum as an egg: the parietal-occipital part is wider than the frontal part
    _Track(_cerebrum_keyframes(centre_y_mm=12.0, semi_x_mm=60.0, semi_y_mm=70.0)),
    _Track(_cerebrum_keyframes(centre_y_mm=-10.0, semi_x_mm=66.0, semi_y_mm=72.0)),
    # temporal lobes
    _Track(((76, 46, 4, 16, 32, 5), (95, 40, 8, 20, 32, 8), (110, 37, 12, 15, 22, 10), (120, 33, 14, 5, 7, 10)), True),
    _Track(((76, 16, 44, 20, 28, 0), (95, 13, 48, 13, 18, 0), (102, 10, 50, 3, 5, 0)), True),  # frontal base
    _Track(((76, 0, -8, 24, 24, 0), (94, 0, -12, 16, 16, 0), (100, 0, -16, 13, 13, 0))),  # diencephalon, midbrain
    # brainstem, continued by the cord so that no slice of a long stack is empty
    _Track(
        (
            (98, 0, -18, 13, 13, 0),
            (118, 0, -22, 11, 11, 0),
            (140, 0, -26, 8, 8, 0),
            (150, 0, -28, 6, 6, 0),
            (200, 0, -30, 5, 5, 0),
        )
    ),
    _Track(((76, 24, -48, 24, 26, 0), (90, 22, -56, 16, 16, 0), (95, 20, -58, 4, 4, 0)), True),  # occipital base
    # cerebellum
    _Track(
        (
            (94, 20, -54, 12, 10, 0),
            (102, 26, -50, 26, 22, 0),
            (116, 25, -52, 27, 22, 0),
            (128, 20, -52, 16, 13, 0),
            (134, 12, -50, 4, 4, 0),
        ),
        True,
    ),
    _Track(((97, 0, -57, 8, 14, 0), (134, 0, -54, 6, 10, 0))),  # vermis
)

# Ventricles: rows as in _Track; widths scale with age. Septum and third ventricle stay thin.
_LATERAL_VENTRICLE_TRACKS = (
    _Track(((50, 4.0, 20, 3.0, 10, 12), (64, 4.5, 21, 3.8, 12, 14), (78, 4.5, 20, 2.5, 8, 16)), True),  # frontal horn
    _Track(((44, 4.0, -4, 2.5, 16, 2), (56, 4.5, -2, 3.2, 20, 3), (68, 4.5, 0, 2.5, 16, 3)), True),  # body
    # atrium and occipital horn
    _Track(((54, 8.5, -24, 3.5, 10, -22), (68, 10, -27, 4.5, 12, -24), (82, 11, -31, 2.5, 8, -18)), True),
)
_THIRD_VENTRICLE_TRACK = _Track(((70, 0, -8, 1.2, 11, 0), (82, 0, -9, 1.6, 12, 0), (94, 0, -10, 1.0, 8, 0)))
_TEMPORAL_HORN_TRACK = _Track(((88, 30, 2, 1.5, 6, -10), (100, 31, 6, 2.5, 10, -12), (112, 30, 10, 1.0, 5, -12)), True)
_CAUDATE_TRACK = _Track(((52, 11, 15, 4, 8, 15), (66, 12, 14, 5, 10, 15), (82, 10, 14, 4, 7, 15)), True)  # head
_FRONTAL_HORN_REACH_MM = 8.3  # from the midline to the frontal horn's lateral wall, template
_DEEP_GREY_TRACKS = (
    _Track(((62, 22, 2, 5, 13, 12), (76, 23, 2, 7, 16, 12), (90, 20, 4, 4, 10, 12)), True),  # lentiform nucleus
    _Track(((64, 9, -12, 6, 10, 0), (78, 10, -13, 9, 13, 0), (92, 8, -14, 6, 9, 0)), True),  # thalamus
)
_MIDBRAIN_TRACK = _Track(((84, 0, -12, 10, 10, 0), (100, 0, -15, 11, 11, 0)))
_CISTERN_TRACKS = (
    # around the midbrain: wide behind it (ambient, quadrigeminal), thin in front
    _Track(((84, 0, -13.5, 11.5, 12.5, 0), (92, 0, -14, 12.5, 13.5, 0), (100, 0, -17, 13, 13.5, 0))),
    _Track(((86, 0, 6, 3, 4, 0), (92, 0, 6, 6, 5, 0), (98, 0, 6, 4, 4, 0))),  # suprasellar
)

# Face and neck below the cerebrum: soft tissue, eyes with orbital fat, airways.
_LOWER_HEAD_TRACK = _Track(
    ((90, 0, 2, 40, 66, 0), (104, 0, 2, 62, 84, 0), (130, 0, 2, 62, 86, 0), (170, 0, 0, 56, 80, 0))
)
_EYE_TRACK = _Track(
    (
        (104, 31, 60, 2, 2, 0),
        (109, 31, 60, 10, 10, 0),
        (115, 31, 60, 12, 12, 0),
        (121, 31, 60, 10, 10, 0),
        (126, 31, 60, 2, 2, 0),
    ),
    True,
)
_ORBITAL_FAT_TRACK = _Track(((102, 27, 52, 13, 15, 15), (115, 27, 52, 16, 18, 15), (126, 26, 52, 12, 14, 15)), True)
_NASAL_AIR_TRACK = _Track(((110, 4, 64, 3, 14, 0), (130, 4, 64, 5, 18, 0), (170, 4, 58, 4, 16, 0)), True)
_MAXILLARY_AIR_TRACK = _Track(((126, 24, 50, 6, 8, 0), (138, 24, 48, 12, 13, 0), (160, 22, 46, 10, 11, 0)), True)

# Interhemispheric fissure: full length above the corpus callosum, only in front of the genu
# and behind the splenium below it, down to the skull base in front and to the tentorium
# (the top of the cerebellum) behind (template mm).
_CALLOSUM_TOP_DEPTH_MM = 46.0
_CALLOSUM_Y_RANGE_MM = (-38.0, 34.0)
_FRONTAL_FISSURE_END_MM = 100.0
_TENTORIUM_DEPTH_MM = 92.0
_SYLVIAN_DEPTH_RANGE_MM = (66.0, 96.0)


def make_phantom(
    seed: int,
    *,
    group: str,
    age_years: float,
    sex: str,
    shape: tuple[int, int, int] = (256, 256, 20),
    voxel_size_mm: tuple[float, float, float] = (0.9, 0.9, 6.5),
) -> Phantom:
    """Make a synthetic FLAIR head of one subject.

    Args:
        seed: seed of :func:`numpy.random.default_rng`; equal arguments give identical arrays.
        group: ``"MS"`` (8-40 lesions of all three locations) or ``"HC"`` (0-2 small deep ones).
        age_years: age in years; ventricles widen and sulci and the extracerebral CSF grow with it.
        sex: ``"M"`` or ``"F"``; male heads are about 5 % larger.
        shape: ``(nx, ny, nz)`` voxels; ``nz`` thick axial slices from skull base to vertex.
        voxel_size_mm: voxel edge lengths ``(dx, dy, dz)`` in mm.

    Returns:
        A :class:`Phantom` whose arrays all have shape ``shape``.
    """
    if group not in ("MS", "HC"):
        raise ValueError(f"group must be 'MS' or 'HC', got {group!r}")
    if sex not in ("M", "F"):
        raise ValueError(f"sex must be 'M' or 'F', got {sex!r}")
    if len(shape) != 3 or len(voxel_size_mm) != 3 or min(voxel_size_mm) <= 0:
        raise ValueError("shape and voxel_size_mm must have three entries, voxel sizes positive")
    shape = tuple(int(n) for n in shape)
    voxel = tuple(float(v) for v in voxel_size_mm)
    rng = np.random.default_rng(seed)
    subject = _draw_subject(rng, group=group, age_years=float(age_years), sex=sex)

    x_mm, y_mm = _head_plane(shape, voxel, subject)
    depth_mm = subject.top_slice_depth_mm + voxel[2] * np.arange(shape[2] - 1, -1, -1)
    pixel_mm = voxel[0]

    intracranial_sd = _envelope_sd(x_mm, y_mm, depth_mm, subject.head_scale, rng)
    brain = _filled(intracranial_sd < -subject.extracerebral_csf_mm)
    depth_in_mm = _inplane_distance(brain, voxel) - 0.5 * pixel_mm
    outside_mm = _outside_distance(brain, voxel)

    ventricle_fraction = _ventricle_fraction(x_mm, y_mm, depth_mm, subject, voxel) * (depth_in_mm > 3.0)
    ventricles = ventricle_fraction >= 0.35
    deep_grey_tracks = (_caudate_track(subject), *_DEEP_GREY_TRACKS)
    deep_grey_fraction = _structure_fraction(deep_grey_tracks, x_mm, y_mm, depth_mm, subject.head_scale, edge_mm=1.5)
    sulcus_sd = _sulcus_sd(x_mm, y_mm, depth_mm, brain, depth_in_mm, subject, voxel, rng)
    sulcus_sd = np.where(ventricle_fraction > 0, np.inf, sulcus_sd)
    sulcal_csf_fraction = np.clip(0.5 - sulcus_sd / pixel_mm, 0.0, 1.0) * brain
    cortex_distance_mm = np.minimum(sulcus_sd, depth_in_mm)  # to the nearest CSF-filled surface
    cortex_fraction = np.clip(0.5 + (_CORTEX_THICKNESS_MM - cortex_distance_mm) / pixel_mm, 0.0, 1.0) * brain

    parenchyma = brain & ~ventricles & (sulcal_csf_fraction < 0.5)
    white_matter = parenchyma & (cortex_fraction < 0.5) & (deep_grey_fraction < 0.5)
    ventricle_distance_mm = _inplane_distance(~ventricles, voxel, empty_value=np.inf)
    lesion_weight, lesion_signal, lesion_location = _place_lesions(
        rng,
        group=group,
        x_mm=x_mm,
        parenchyma=parenchyma,
        white_matter=white_matter,
        ventricle_distance_mm=ventricle_distance_mm,
        white_matter_depth_mm=cortex_distance_mm - _CORTEX_THICKNESS_MM,
        voxel=voxel,
    )

    signal = _head_signal(x_mm, y_mm, depth_mm, outside_mm, subject, rng)
    tissue = _brain_signal(
        deep_grey_fraction, cortex_fraction, sulcal_csf_fraction, ventricle_fraction, ventricle_distance_mm
    )
    tissue = tissue * (1.0 - lesion_weight) + lesion_signal * lesion_weight
    signal = np.where(brain, tissue, signal)
    flair = _acquire(signal, voxel, rng)

    lesion_mask = lesion_location > 0
    tissue_labels = _tissue_labels(
        signal, brain, deep_grey_fraction, cortex_fraction, sulcal_csf_fraction, ventricles, lesion_mask
    )
    return Phantom(
        flair=_frozen(flair),
        brain_mask=_frozen(brain.astype(np.uint8)),
        ventricles_mask=_frozen(ventricles.astype(np.uint8)),
        lesion_mask=_frozen(lesion_mask.astype(np.uint8)),
        lesion_location=_frozen(lesion_location),
        affine=_frozen(las_affine(shape, voxel)),
        tissue=_frozen(tissue_labels),
    )


def _tissue_labels(head_signal, brain, deep_grey, cortex, sulcal_csf, ventricles, lesions) -> np.ndarray:
    """:class:`Tissue` codes, uint8 of the volume's shape: outside the brain from the head
    signal's exact values, inside from the tissue fractions (the dominant one, half or more)."""
    labels = np.zeros(brain.shape, dtype=np.uint8)
    for name, code in _HEAD_TISSUE.items():
        labels[head_signal == INTENSITY[name]] = code
    inside = np.full(brain.shape, Tissue.WHITE_MATTER, dtype=np.uint8)
    inside[deep_grey >= 0.5] = Tissue.DEEP_GREY
    inside[cortex >= 0.5] = Tissue.CORTEX
    inside[sulcal_csf >= 0.5] = Tissue.CSF
    inside[ventricles] = Tissue.VENTRICLES
    inside[lesions] = Tissue.LESIONS
    return np.where(brain, inside, labels)


def las_affine(shape: tuple[int, int, int], voxel_size_mm: tuple[float, float, float]) -> np.ndarray:
    """LAS voxel-to-mm affine, float64 (4, 4), with the volume's centre at the origin."""
    affine = np.diag([-voxel_size_mm[0], voxel_size_mm[1], voxel_size_mm[2], 1.0])
    centre_index = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    affine[:3, 3] = -affine[:3, :3] @ centre_index
    return affine


# --- subject ---------------------------------------------------------------------------


def _draw_subject(rng: np.random.Generator, *, group: str, age_years: float, sex: str) -> _Subject:
    """Anatomy of one subject: size from sex, atrophy from age (and MS), jitter from ``rng``."""
    atrophy = float(np.clip((age_years - 20.0) / 55.0, 0.0, 1.2))
    if group == "MS":
        atrophy += 0.15  # MS brains are atrophic for their age
    head_scale = (1.08 if sex == "M" else 1.03) * float(np.exp(rng.normal(0.0, 0.03)))
    return _Subject(
        head_scale=head_scale,
        top_slice_depth_mm=float(rng.uniform(3.0, 8.0)),
        rotation_rad=float(np.deg2rad(rng.normal(0.0, 3.0))),
        shift_mm=(float(rng.normal(0.0, 2.0)), float(rng.normal(3.0, 3.0))),
        extracerebral_csf_mm=0.8 + 1.4 * atrophy + float(rng.uniform(0.0, 0.4)),
        sulcus_half_width_mm=0.55 + 0.8 * atrophy + float(rng.uniform(0.0, 0.2)),
        sulcus_depth_mm=17.0 + 3.0 * atrophy + float(rng.uniform(-1.0, 1.0)),
        ventricle_width_scale=(0.75 + 1.5 * atrophy**1.5) * float(np.exp(rng.normal(0.0, 0.15))),
        ventricle_length_scale=(0.95 + 0.2 * atrophy) * float(np.exp(rng.normal(0.0, 0.05))),
    )


def _head_plane(shape, voxel, subject: _Subject) -> tuple[np.ndarray, np.ndarray]:
    """In-plane coordinates (mm) of every voxel in the head's frame, each shape (nx, ny).

    x is the subject's left-right axis (the head is left-right symmetric), y points anterior.
    """
    x_scan = -voxel[0] * (np.arange(shape[0]) - (shape[0] - 1) / 2.0)
    y_scan = voxel[1] * (np.arange(shape[1]) - (shape[1] - 1) / 2.0)
    xs, ys = np.meshgrid(x_scan - subject.shift_mm[0], y_scan - subject.shift_mm[1], indexing="ij")
    cos, sin = np.cos(subject.rotation_rad), np.sin(subject.rotation_rad)
    return (cos * xs + sin * ys).astype(np.float32), (-sin * xs + cos * ys).astype(np.float32)


# --- geometry --------------------------------------------------------------------------


def _ellipse_sd(x, y, ellipse, scale: float) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to an ellipse of the template
    scaled by ``scale``: first-order (q - 1) / |grad q|, exact on the boundary."""
    cx, cy, sx, sy, angle = ellipse
    cos, sin = np.cos(angle), np.sin(angle)
    dx, dy = x - cx * scale, y - cy * scale
    u = (cos * dx - sin * dy) / (sx * scale)
    v = (sin * dx + cos * dy) / (sy * scale)
    q = u * u + v * v
    gradient = 2.0 * np.sqrt((u / (sx * scale)) ** 2 + (v / (sy * scale)) ** 2)
    return (q - 1.0) / np.maximum(gradient, 1e-3)


def _smooth_union(sds: list[np.ndarray], radius_mm: float) -> np.ndarray:
    """Soft minimum of signed distances: shapes merge with rounded creases."""
    if len(sds) == 1:
        return sds[0]
    stack = np.stack(sds)
    nearest = stack.min(axis=0)
    return nearest - radius_mm * np.log(np.exp(-(stack - nearest) / radius_mm).sum(axis=0))


def _tracks_sd(tracks, x, y, depth_mm: float, scale: float, radius_mm: float) -> np.ndarray | None:
    """Smooth union of the ``tracks`` at one depth (mm); ``None`` where none is present."""
    ellipses = [e for track in tracks for e in track.at(depth_mm / scale)]
    if not ellipses:
        return None
    return _smooth_union([_ellipse_sd(x, y, e, scale) for e in ellipses], radius_mm)


def _envelope_sd(x, y, depth_mm, scale, rng) -> np.ndarray:
    """Signed distance (mm) to the intracranial surface, shape (nx, ny, nz).

    The ellipse union is made irregular by a smooth radial bump (up to ~2 mm) that varies
    with the angle around the head and slowly from slice to slice.
    """
    nz = depth_mm.size
    bump = _smooth_noise(rng, (nz, 360), sigma=(0.8, 12.0), wrap_axis=1)
    angle_bin = ((np.arctan2(y, x) + np.pi) * (360 / (2 * np.pi))).astype(int) % 360
    sd = np.full(x.shape + (nz,), np.inf, dtype=np.float32)
    for k in range(nz):
        slice_sd = _tracks_sd(_BRAIN_TRACKS, x, y, depth_mm[k], scale, _SMOOTH_UNION_MM)
        if slice_sd is not None:
            sd[:, :, k] = slice_sd + 1.8 * bump[k][angle_bin]
    return sd


def _filled(mask: np.ndarray) -> np.ndarray:
    """``mask`` with the holes of each axial slice filled."""
    return np.stack([ndimage.binary_fill_holes(mask[:, :, k]) for k in range(mask.shape[2])], axis=2)


def _inplane_distance(mask: np.ndarray, voxel, empty_value: float = 0.0) -> np.ndarray:
    """Per axial slice, distance (mm) from each voxel of ``mask`` to the nearest voxel
    outside it (0 outside ``mask``); ``empty_value`` on slices with no outside voxel."""
    distance = np.full(mask.shape, empty_value, dtype=np.float32)
    for k in range(mask.shape[2]):
        if not mask[:, :, k].all():
            distance[:, :, k] = ndimage.distance_transform_edt(mask[:, :, k], sampling=voxel[:2])
    return distance


def _outside_distance(brain: np.ndarray, voxel) -> np.ndarray:
    """In-plane distance (mm) from each voxel outside ``brain`` to the brain, shape of
    ``brain`` (0 inside), shrunk where the layers around the brain are cut obliquely.

    Where the brain's outline changes fast from slice to slice (the top of the head, the
    skull base), a thick slice cuts CSF, skull and scalp at a slant, so they look thicker
    than they are, by 1 / cos of the tilt: dividing the distance by that factor thickens
    every layer alike, as in the real scans.
    """
    in_plane = _inplane_distance(~brain, voxel, empty_value=np.inf) - 0.5 * voxel[0]
    radius_mm = np.sqrt(brain.sum(axis=(0, 1)) * voxel[0] * voxel[1] / np.pi)
    tilt = np.gradient(radius_mm, voxel[2]) if brain.shape[2] > 1 else np.zeros(1)
    stretch = np.clip(np.sqrt(1.0 + tilt**2), 1.0, 1.8).astype(np.float32)
    return np.where(brain, 0.0, np.maximum(in_plane / stretch, 0.0)).astype(np.float32)


def _central_box(x, y, scale: float) -> tuple[slice, slice]:
    """In-plane index box holding the head's core (70 mm either side of its centre, at
    template scale), where the ventricles and deep nuclei lie: shapes there are evaluated
    on this box only, for speed."""
    core = (np.abs(x) <= 70.0 * scale) & (np.abs(y) <= 70.0 * scale)
    rows, columns = np.flatnonzero(core.any(axis=1)), np.flatnonzero(core.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1)


def _structure_fraction(tracks, x, y, depth_mm, scale, edge_mm: float, sub_depths_mm=(0.0,)) -> np.ndarray:
    """Fraction (0-1) of each voxel inside the union of ``tracks`` (central structures
    only, see :func:`_central_box`), shape (nx, ny, nz).

    The edge ramps over ``edge_mm`` in-plane; ``sub_depths_mm`` are offsets from each slice
    centre at which the shape is sampled and averaged (partial volume of thick slices).
    """
    box = _central_box(x, y, scale)
    fraction = np.zeros(x.shape + (depth_mm.size,), dtype=np.float32)
    for k, depth in enumerate(depth_mm):
        for offset in sub_depths_mm:
            sd = _tracks_sd(tracks, x[box], y[box], depth + offset, scale, radius_mm=1.0)
            if sd is not None:
                fraction[box + (k,)] += np.clip(0.5 - sd / edge_mm, 0.0, 1.0)
    return fraction / len(sub_depths_mm)


def _ventricle_fraction(x, y, depth_mm, subject: _Subject, voxel) -> np.ndarray:
    """Fraction (0-1) of each voxel that is ventricular CSF, shape (nx, ny, nz).

    The lateral ventricles are stretched by the subject's width and length scales, with the
    caudate heads cut out of their lateral walls; each slice averages three depths.
    """
    width, length = subject.ventricle_width_scale, subject.ventricle_length_scale
    tracks = [_scaled_track(t, width, width, length) for t in _LATERAL_VENTRICLE_TRACKS]
    tracks += [_scaled_track(_THIRD_VENTRICLE_TRACK, 1.0, width**0.5, 1.0)]
    tracks += [_scaled_track(_TEMPORAL_HORN_TRACK, 1.0, width**0.7, 1.0)]
    sub_depths_mm = (-voxel[2] / 3.0, 0.0, voxel[2] / 3.0)
    ventricles = _structure_fraction(tracks, x, y, depth_mm, subject.head_scale, 2.0 * voxel[0], sub_depths_mm)
    caudate = _structure_fraction([_caudate_track(subject)], x, y, depth_mm, subject.head_scale, voxel[0])
    return ventricles * (1.0 - caudate)


def _scaled_track(track: _Track, centre_x_scale: float, width_scale: float, length_scale: float) -> _Track:
    """``track`` with its centre moved out from the midline by ``centre_x_scale``, widened
    left-right by ``width_scale`` and stretched front-back by ``length_scale``."""
    rows = tuple(
        (d, cx * centre_x_scale, cy * length_scale, sx * width_scale, sy * length_scale, a)
        for d, cx, cy, sx, sy, a in track.keyframes
    )
    return _Track(rows, track.mirrored)


def _caudate_track(subject: _Subject) -> _Track:
    """The caudate heads, pushed out as far as the widened frontal horns' lateral walls, so
    that they keep denting the horns instead of ending up inside them."""
    shift_mm = _FRONTAL_HORN_REACH_MM * (subject.ventricle_width_scale - 1.0)
    rows = tuple((d, cx + shift_mm, cy, sx, sy, a) for d, cx, cy, sx, sy, a in _CAUDATE_TRACK.keyframes)
    return _Track(rows, _CAUDATE_TRACK.mirrored)


def _sulcus_sd(x, y, depth_mm, brain, depth_in_mm, subject: _Subject, voxel, rng) -> np.ndarray:
    """Signed distance (mm, negative inside) to the sulcal CSF, shape (nx, ny, nz).

    Sulci run inwards from the brain outline every ~11 mm. On a grid of (arc length along
    the outline, depth below it), 1 mm bins, they are the zero lines of ``cos(phase)``: the
    phase grows steadily along the arc and is warped by a smooth random field, so the lines
    wander by a few mm as they go deeper and continue from slice to slice. Every second line
    is a shallow dimple; each ends at its own depth and narrows towards its end. The
    interhemispheric and Sylvian fissures are added as straight clefts.
    """
    nz = depth_mm.size
    arc_bins = int(np.ceil(2 * np.pi * 100 * subject.head_scale)) + 2
    depth_bins = 40
    arc_mm = np.arange(arc_bins, dtype=np.float32)[None, :, None]
    depth_grid_mm = np.arange(depth_bins, dtype=np.float32)[None, None, :]
    warp = _smooth_noise(rng, (nz, arc_bins, depth_bins), sigma=(0.6, 10.0, 5.0), wrap_axis=None)
    phase = (np.pi / _SULCUS_SPACING_MM) * arc_mm + 1.2 * warp
    d_arc, d_depth = np.gradient(phase, axis=(1, 2))
    line_distance_mm = np.abs(np.cos(phase)) / np.sqrt(d_arc**2 + d_depth**2 + 1e-6)
    shallow = np.round(phase / np.pi - 0.5) % 2 == 1
    end_noise = _smooth_noise(rng, (nz, arc_bins), sigma=(0.6, 3.0), wrap_axis=None)[:, :, None]
    end_mm = np.clip(subject.sulcus_depth_mm + 5.0 * end_noise, 6.0, 28.0) * np.where(shallow, 0.45, 1.0)
    half_width_mm = subject.sulcus_half_width_mm * (1.0 - 0.5 * np.minimum(depth_grid_mm / end_mm, 1.0))
    grid_sd = np.maximum(line_distance_mm - half_width_mm, depth_grid_mm - end_mm)

    sd = np.full(brain.shape, np.inf, dtype=np.float32)
    for k in range(nz):
        in_brain = brain[:, :, k]
        if not in_brain.any():
            continue
        slice_sd = _cleft_sd(x, y, depth_mm[k] / subject.head_scale, subject)
        band = in_brain & (depth_in_mm[:, :, k] < depth_bins - 2)
        radius_mm = np.sqrt(in_brain.sum() * voxel[0] * voxel[1] / np.pi)
        centre_x, centre_y = x[in_brain].mean(), y[in_brain].mean()
        arc = (np.arctan2(x[band] - centre_x, y[band] - centre_y) + np.pi) * radius_mm  # seam behind, on the midline
        # a thick slice near the vertex cuts the convexity tangentially: sulci look longer
        reach = 1.0 + 0.8 * np.clip(1.0 - depth_mm[k] / (50.0 * subject.head_scale), 0.0, 1.0)
        depth = np.maximum(depth_in_mm[:, :, k][band], 0.0) / reach
        lines = ndimage.map_coordinates(grid_sd[k], [np.clip(arc, 0, arc_bins - 1), depth], order=1)
        slice_sd[band] = np.minimum(slice_sd[band], lines)
        sd[:, :, k] = np.where(in_brain, slice_sd, np.inf)
    return sd


def _cleft_sd(x, y, template_depth_mm: float, subject: _Subject) -> np.ndarray:
    """Signed distance (mm) to the CSF clefts inside the brain envelope at one depth:
    interhemispheric and Sylvian fissures, and the cisterns around the midbrain."""
    scale = subject.head_scale
    half_width = 0.3 + 0.6 * subject.sulcus_half_width_mm
    sd = np.full(x.shape, np.inf, dtype=np.float32)
    callosum_back, callosum_front = (limit * scale for limit in _CALLOSUM_Y_RANGE_MM)
    front_open = template_depth_mm < _FRONTAL_FISSURE_END_MM
    back_open = template_depth_mm < _TENTORIUM_DEPTH_MM
    open_here = (template_depth_mm < _CALLOSUM_TOP_DEPTH_MM) & back_open
    open_here = open_here | (front_open & (y > callosum_front)) | (back_open & (y < callosum_back))
    sd = np.where(open_here, np.abs(x) - half_width, sd)
    low, high = _SYLVIAN_DEPTH_RANGE_MM
    if low <= template_depth_mm <= high:
        # from the insula (x = 36 mm) out to beyond the lateral surface, sloping backwards
        start = np.array([36.0, 4.0]) * scale
        direction = np.array([0.92, 0.39])  # about 23 degrees
        px, py = np.abs(x) - start[0], y - start[1]
        along = np.clip(px * direction[0] + py * direction[1], 0.0, None)
        across = np.hypot(px - along * direction[0], py - along * direction[1])
        sd = np.minimum(sd, across - 2.0 * half_width)
    cisterns = _tracks_sd(_CISTERN_TRACKS, x, y, template_depth_mm * scale, scale, 1.0)
    if cisterns is not None:
        midbrain = _tracks_sd([_MIDBRAIN_TRACK], x, y, template_depth_mm * scale, scale, 1.0)
        sd = np.minimum(sd, cisterns if midbrain is None else np.maximum(cisterns, -midbrain))
    return sd


def _smooth_noise(rng, shape, sigma, wrap_axis: int | None) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation, float32 ``shape``."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    mode = ["nearest"] * len(shape)
    if wrap_axis is not None:
        mode[wrap_axis] = "wrap"
    smooth = ndimage.gaussian_filter(noise, sigma, mode=mode)
    return smooth / max(float(smooth.std()), 1e-6)


# --- lesions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _LesionShape:
    """Size of an ellipsoid lesion: in-plane long and short semi-axes and vertical semi-axis (mm)."""

    long_mm: float
    short_mm: float
    height_mm: float


def _lesion_plan(rng, group: str) -> list[int]:
    """Location class of every lesion to place, in placement order (big periventricular first)."""
    if group == "HC":
        return [LesionClass.PAWMH] * int(rng.integers(0, 3))
    total = int(rng.integers(8, 41))
    shares = rng.dirichlet([5.0, 3.0, 2.0])
    periventricular = max(2, int(round(shares[0] * total)))
    juxtacortical = max(2, int(round(shares[2] * total)))
    deep = max(2, total - periventricular - juxtacortical)
    return [LesionClass.PEWMH] * periventricular + [LesionClass.PAWMH] * deep + [LesionClass.JCWMH] * juxtacortical


def _log_uniform(rng, low: float, high: float) -> float:
    """A draw between ``low`` and ``high`` with small values as likely as large (log scale)."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _lesion_shape(rng, location: int, group: str, slice_mm: float) -> _LesionShape:
    """Size of one lesion. Periventricular ones are ovoid and up to ~2 cm long; juxtacortical
    ones stay under the reference's 6 mm equivalent diameter; all span 1-3 slices."""
    if location == LesionClass.PEWMH:
        long_mm = _log_uniform(rng, 1.5, 10.0)
        short_mm = long_mm * rng.uniform(0.45, 0.8)
    elif location == LesionClass.JCWMH:
        long_mm = _log_uniform(rng, 1.0, 2.6)
        short_mm = long_mm * rng.uniform(0.6, 1.0)
    else:
        long_mm = rng.uniform(1.0, 2.2) if group == "HC" else _log_uniform(rng, 1.2, 5.0)
        short_mm = long_mm * rng.uniform(0.6, 1.0)
    height_mm = float(np.clip(long_mm * rng.uniform(0.8, 2.5), 0.4 * slice_mm, 1.4 * slice_mm))
    return _LesionShape(float(long_mm), float(short_mm), height_mm)


def _place_lesions(
    rng,
    *,
    group: str,
    x_mm: np.ndarray,
    parenchyma: np.ndarray,
    white_matter: np.ndarray,
    ventricle_distance_mm: np.ndarray,
    white_matter_depth_mm: np.ndarray,
    voxel,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place the subject's lesions; returns (weight 0-1, lesion signal, location class).

    ``weight`` is the share of each voxel's signal that is lesion (ramps down at the edges,
    and with the thick slice's partial volume); ``location`` is the class a lesion was
    placed as, on its mask. Lesions never overlap or touch one another, nor the ventricles.
    A lesion whose mask breaks its class's distance rule is redrawn (up to 40 times):
    periventricular touch a ventricle; deep and juxtacortical stay >= 16 mm from every
    ventricle; deep stay >= 4.5 mm from the cortex, juxtacortical touch it.
    Periventricular lesions grow from the walls of the lateral ventricles (slices where
    these are at least 30 % of their largest area, away from the septum at the midline,
    ``x_mm`` being the in-plane left-right coordinate from the midline).
    """
    near_ventricles_mm = _neighbour_minimum(ventricle_distance_mm)
    ventricle_area = (ventricle_distance_mm == 0).sum(axis=(0, 1))
    main_slices = ventricle_area >= 0.3 * ventricle_area.max()
    ventricle_wall = (ventricle_distance_mm > 0) & (ventricle_distance_mm <= 1.5) & main_slices
    seeds = {
        LesionClass.PEWMH: np.flatnonzero(parenchyma & ventricle_wall & (np.abs(x_mm) > 5.0)[:, :, None]),
        LesionClass.PAWMH: np.flatnonzero(white_matter & (near_ventricles_mm > 22.0) & (white_matter_depth_mm > 8.0)),
        LesionClass.JCWMH: np.flatnonzero(white_matter & (near_ventricles_mm > 20.0) & (white_matter_depth_mm <= 1.2)),
    }
    weight = np.zeros(parenchyma.shape, dtype=np.float32)
    signal = np.zeros(parenchyma.shape, dtype=np.float32)
    location = np.zeros(parenchyma.shape, dtype=np.uint8)
    claimed = np.zeros(parenchyma.shape, dtype=bool)  # lesions and a one-voxel margin around them
    for lesion_class in _lesion_plan(rng, group):
        if seeds[lesion_class].size == 0:
            continue
        for _attempt in range(40):
            seed = np.unravel_index(seeds[lesion_class][rng.integers(seeds[lesion_class].size)], parenchyma.shape)
            shape = _lesion_shape(rng, lesion_class, group, voxel[2])
            centre, angle = _lesion_pose(rng, seed, lesion_class, shape, ventricle_distance_mm, voxel)
            box, lesion_weight, mask = _rasterise_lesion(centre, angle, shape, parenchyma, voxel)
            if mask.sum() < 3 or claimed[box][mask].any():
                continue
            if not _obeys_class_rule(lesion_class, ventricle_distance_mm[box][mask], white_matter_depth_mm[box][mask]):
                continue
            stronger = lesion_weight > weight[box]
            weight[box] = np.where(stronger, lesion_weight, weight[box])
            signal[box] = np.where(stronger, INTENSITY["lesion"] * rng.uniform(0.9, 1.12), signal[box])
            location[box][mask] = lesion_class
            claimed[box] |= ndimage.binary_dilation(mask, structure=np.ones((3, 3, 3), dtype=bool))
            break
    return weight, signal, location


def _neighbour_minimum(distance_mm: np.ndarray) -> np.ndarray:
    """Per voxel, the minimum of ``distance_mm`` over its slice and the two adjacent ones."""
    result = distance_mm.copy()
    result[:, :, 1:] = np.minimum(result[:, :, 1:], distance_mm[:, :, :-1])
    result[:, :, :-1] = np.minimum(result[:, :, :-1], distance_mm[:, :, 1:])
    return result


def _lesion_pose(rng, seed, lesion_class, shape: _LesionShape, ventricle_distance_mm, voxel):
    """Centre (voxel indices, float) and in-plane angle (rad) of a lesion grown from ``seed``.

    A periventricular lesion points away from the ventricle wall (Dawson's finger): its long
    axis follows the gradient of the ventricle distance and its inner end reaches into the
    ventricle (the ventricle is then cut out of the mask). Others get a random angle.
    """
    i, j, k = seed
    vertical = rng.uniform(-0.25, 0.25)  # slices
    if lesion_class != LesionClass.PEWMH:
        return np.array([i, j, k + vertical], dtype=float), rng.uniform(0.0, np.pi)
    distance = ventricle_distance_mm[:, :, k]
    gx = (distance[min(i + 1, distance.shape[0] - 1), j] - distance[max(i - 1, 0), j]) / (2 * voxel[0])
    gy = (distance[i, min(j + 1, distance.shape[1] - 1)] - distance[i, max(j - 1, 0)]) / (2 * voxel[1])
    angle = float(np.arctan2(gy, gx)) if np.hypot(gx, gy) > 0 else rng.uniform(0.0, np.pi)
    reach_mm = shape.long_mm * rng.uniform(0.3, 0.9)
    centre = np.array(
        [i + reach_mm * np.cos(angle) / voxel[0], j + reach_mm * np.sin(angle) / voxel[1], k + vertical], dtype=float
    )
    return centre, angle


def _rasterise_lesion(centre, angle, shape: _LesionShape, parenchyma, voxel):
    """Weight and mask of one ellipsoid lesion inside a bounding box of the volume.

    Returns ``(box, weight, mask)``: ``box`` a tuple of slices into the volume, ``weight``
    (float32, 0-1) the lesion's share of each voxel's signal: the fraction of the slice
    thickness the ellipsoid fills, times an in-plane ramp that fades just past the mask's
    edge; ``mask`` the voxels with the ellipsoid's centre plane inside and at least 35 % of
    the slice thickness filled, restricted to ``parenchyma``.
    """
    reach_px = [int(np.ceil((shape.long_mm + 2.0) / voxel[a])) for a in (0, 1)]
    reach_slices = int(np.ceil(shape.height_mm / voxel[2] + 0.5))
    reach = reach_px + [reach_slices]
    lows = [max(int(round(centre[a])) - reach[a], 0) for a in range(3)]
    highs = [min(int(round(centre[a])) + reach[a] + 1, parenchyma.shape[a]) for a in range(3)]
    box = tuple(slice(lo, hi) for lo, hi in zip(lows, highs))
    ii, jj, kk = np.meshgrid(*(np.arange(lo, hi) for lo, hi in zip(lows, highs)), indexing="ij")
    dx_mm, dy_mm = (ii - centre[0]) * voxel[0], (jj - centre[1]) * voxel[1]
    along = (np.cos(angle) * dx_mm + np.sin(angle) * dy_mm) / shape.long_mm
    across = (-np.sin(angle) * dx_mm + np.cos(angle) * dy_mm) / shape.short_mm
    q = along**2 + across**2  # 1 on the in-plane outline of the centre plane
    half_chord_mm = shape.height_mm * np.sqrt(np.clip(1.0 - q, 0.0, 1.0))
    slice_centre_mm = (kk - centre[2]) * voxel[2]
    top_mm = np.minimum(half_chord_mm, slice_centre_mm + voxel[2] / 2)
    bottom_mm = np.maximum(-half_chord_mm, slice_centre_mm - voxel[2] / 2)
    filled = np.clip((top_mm - bottom_mm) / voxel[2], 0.0, 1.0)
    edge = np.clip((1.25 - q) / 0.6, 0.0, 1.0)
    local_parenchyma = parenchyma[box]
    weight = (np.minimum(filled / 0.8, 1.0) * edge * local_parenchyma).astype(np.float32)
    mask = (q <= 1.0) & (filled >= 0.35) & local_parenchyma
    return box, weight, mask


def _obeys_class_rule(lesion_class: int, ventricle_mm: np.ndarray, white_matter_depth_mm: np.ndarray) -> bool:
    """Whether a lesion's voxels (their ventricle distance and depth below the cortex, mm)
    keep to the rule of the class it is placed as (see :func:`_place_lesions`)."""
    if lesion_class == LesionClass.PEWMH:
        return bool(ventricle_mm.min() <= 2.0)
    if ventricle_mm.min() < 16.0:
        return False
    if lesion_class == LesionClass.PAWMH:
        return bool(white_matter_depth_mm.min() >= 4.5)
    return bool(white_matter_depth_mm.min() <= 1.5)


# --- signal ----------------------------------------------------------------------------


def _head_signal(x, y, depth_mm, outside_mm, subject: _Subject, rng) -> np.ndarray:
    """Signal (scanner units) of everything outside the brain, shape (nx, ny, nz).

    Layers outwards from the brain: extracerebral CSF, skull (dark tables around bright
    diploe), the temporal muscle at the sides, scalp fat. Below the cerebrum the skin bulges
    out into a face and neck whose inside is muscle marbled with fat and bone, with eyes in
    orbital fat and airways.
    """
    csf_mm = subject.extracerebral_csf_mm
    skull_out_mm = csf_mm + _SKULL_THICKNESS_MM
    scale = subject.head_scale
    lateral = np.clip((np.abs(x) / np.maximum(np.hypot(x, y), 1.0) - 0.55) / 0.35, 0.0, 1.0)

    signal = np.zeros(outside_mm.shape, dtype=np.float32)
    for k, depth in enumerate(depth_mm):
        out = outside_mm[:, :, k]
        muscle_mm = np.interp(depth / scale, [70.0, 90.0, 110.0, 125.0], [0.0, 4.0, 4.0, 0.0]) * lateral
        skin_sd = out - (skull_out_mm + muscle_mm + _SCALP_THICKNESS_MM)  # mm, negative inside
        face_sd = _tracks_sd([_LOWER_HEAD_TRACK], x, y, depth, scale, 1.0)
        if face_sd is not None:
            skin_sd = np.minimum(skin_sd, face_sd)
        soft = (skin_sd < 0) & (out > skull_out_mm)
        deep = soft & (skin_sd < -_SCALP_THICKNESS_MM)
        plane = np.where(soft, INTENSITY["scalp_fat"], 0.0)
        plane = np.where(deep, INTENSITY["muscle"], plane)
        if face_sd is not None:
            face = deep & (face_sd < -_SCALP_THICKNESS_MM)
            marbling = _smooth_noise(rng, out.shape, sigma=(3.0, 3.0), wrap_axis=None)
            marbled = np.select(
                [marbling > 1.1, marbling > -0.6],
                [INTENSITY["scalp_fat"], INTENSITY["muscle"]],
                INTENSITY["skull"],
            )
            plane = np.where(face, marbled, plane)
            for tracks, value in (
                ([_ORBITAL_FAT_TRACK], INTENSITY["scalp_fat"]),
                ([_EYE_TRACK], INTENSITY["vitreous"]),
                ([_NASAL_AIR_TRACK, _MAXILLARY_AIR_TRACK], INTENSITY["air"]),
            ):
                sd = _tracks_sd(tracks, x, y, depth, scale, 1.0)
                if sd is not None:
                    plane = np.where(face & (sd < 0), value, plane)

        skull = (out > csf_mm) & (out <= skull_out_mm)
        diploe = np.abs(out - (csf_mm + 0.5 * _SKULL_THICKNESS_MM)) < 0.5 * _DIPLOE_THICKNESS_MM
        if face_sd is not None:
            diploe &= face_sd >= 0  # the skull base is solid bone; marrow lines only in the vault
        plane = np.where(skull, np.where(diploe, INTENSITY["diploe"], INTENSITY["skull"]), plane)
        plane = np.where((out > 0) & (out <= csf_mm), INTENSITY["csf"], plane)
        signal[:, :, k] = plane
    return signal


def _mix(base, value, fraction):
    """``base`` with a ``fraction`` (0-1) of each voxel replaced by ``value``."""
    return base + (value - base) * fraction


def _brain_signal(deep_grey_fraction, cortex_fraction, sulcal_csf_fraction, ventricle_fraction, ventricle_distance_mm):
    """Signal (scanner units) of the brain from its tissue fractions, shape of the inputs.

    The white matter lining the ventricles is slightly brighter (a thin ependymal rim, as
    on the real scans).
    """
    signal = np.full(deep_grey_fraction.shape, INTENSITY["white_matter"], dtype=np.float32)
    signal = _mix(signal, INTENSITY["deep_grey"], deep_grey_fraction)
    signal = _mix(signal, INTENSITY["cortex"], cortex_fraction)
    signal = _mix(signal, INTENSITY["csf"], sulcal_csf_fraction)
    signal *= 1.0 + 0.08 * np.clip(1.0 - ventricle_distance_mm / 2.0, 0.0, 1.0)
    return _mix(signal, INTENSITY["csf"], ventricle_fraction)


def _acquire(signal: np.ndarray, voxel, rng) -> np.ndarray:
    """Scanner output of a noise-free signal: int16 volume of the same shape.

    Tissue texture (+-4 %), a smooth multiplicative bias field (about +-15 %), a slight
    in-plane blur (the point spread of the reconstruction), Rician noise, saturation at
    :data:`MAX_SIGNAL`.
    """
    texture = 1.0 + 0.04 * _smooth_noise(rng, signal.shape, sigma=(1.0, 1.0, 0.0), wrap_axis=None)
    signal = signal * texture * _bias_field(signal.shape, voxel, rng)
    signal = ndimage.gaussian_filter(signal, sigma=(0.6, 0.6, 0.0))
    real = signal + _RICIAN_SIGMA * rng.standard_normal(signal.shape, dtype=np.float32)
    imaginary = _RICIAN_SIGMA * rng.standard_normal(signal.shape, dtype=np.float32)
    magnitude = np.sqrt(real * real + imaginary * imaginary)
    return np.clip(np.rint(magnitude), 0, MAX_SIGNAL).astype(np.int16)


def _bias_field(shape, voxel, rng) -> np.ndarray:
    """Smooth multiplicative field, float32 ``shape``: exp of a random quadratic in the
    scanner coordinates (in units of 100 mm), at most about +-15 % over a head."""
    axes = [voxel[a] * (np.arange(shape[a]) - (shape[a] - 1) / 2.0) / 100.0 for a in range(3)]
    linear, quadratic = rng.normal(0.0, 0.07, 3), rng.normal(0.0, 0.06, 3)
    cross = rng.normal(0.0, 0.05)
    log_field = (
        (linear[0] * axes[0] + quadratic[0] * axes[0] ** 2)[:, None, None]
        + (linear[1] * axes[1] + quadratic[1] * axes[1] ** 2)[None, :, None]
        + (linear[2] * axes[2] + quadratic[2] * axes[2] ** 2)[None, None, :]
        + (cross * axes[0][:, None] * axes[1][None, :])[:, :, None]
    )
    return np.exp(log_field).astype(np.float32)


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only, so a frozen :class:`Phantom` cannot be changed in place."""
    array.setflags(write=False)
    return array
