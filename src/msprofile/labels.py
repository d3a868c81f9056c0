"""The codes of the workflow's label volumes (docs/method.md sections 2 and 4).

Two kinds of label volume, one enumeration each, both stored as uint8:

* :class:`SegmentationClass`: ``segmentation.nii.gz``, manual labels and the network's classes;
* :class:`LesionClass`: ``lesion_classes.nii.gz``, the location class of every lesion voxel.

The two share values (``SegmentationClass.LESIONS == LesionClass.PAWMH == 2``) but never a
volume: compare a volume only with members of its own enumeration.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class SegmentationClass(IntEnum):
    """Classes of a segmentation: 0 background, 1 ventricles (lateral ventricles), 2 lesions
    (abnormal white-matter hyperintensities). Where a manual lesion and ventricle mask
    overlap, the lesion wins (:func:`label_volume`)."""

    BACKGROUND = 0
    VENTRICLES = 1
    LESIONS = 2


class LesionClass(IntEnum):
    """Location class of a lesion voxel (the reference's 2-D rule): 0 no lesion,
    1 PEWMH (periventricular), 2 PAWMH (paraventricular, i.e. deep white matter),
    3 JCWMH (juxtacortical)."""

    NONE = 0
    PEWMH = 1
    PAWMH = 2
    JCWMH = 3


#: Segmentation class names in code order, as the model card lists them.
SEGMENTATION_CLASS_NAMES: tuple[str, ...] = tuple(c.name.lower() for c in SegmentationClass)
#: The lesion location classes (without NONE), in code order.
LESION_CLASSES: tuple[LesionClass, ...] = (LesionClass.PEWMH, LesionClass.PAWMH, LesionClass.JCWMH)
#: Display colours of the classes (QC pictures, the BIDS derivatives' dseg.tsv), from the
#: Okabe-Ito palette (told apart with every common colour-vision deficiency): ventricles blue,
#: lesions by location class.
VENTRICLES_RGB = (0, 114, 178)
LESION_CLASS_RGB = {
    LesionClass.PEWMH: (230, 159, 0),
    LesionClass.PAWMH: (0, 158, 115),
    LesionClass.JCWMH: (204, 121, 167),
}


def label_volume(lesions: np.ndarray, ventricles: np.ndarray) -> np.ndarray:
    """Three-class labels from two manual masks on the same grid.

    Any non-zero value is the structure (manual masks code one structure with several values,
    e.g. 1 and 255); where both masks are set, the lesion wins. Returns uint8 of the masks'
    shape with :class:`SegmentationClass` codes.
    """
    labels = np.zeros(np.shape(lesions), dtype=np.uint8)
    labels[np.asarray(ventricles) > 0] = SegmentationClass.VENTRICLES
    labels[np.asarray(lesions) > 0] = SegmentationClass.LESIONS
    return labels
