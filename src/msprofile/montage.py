"""Per-scan QC pictures: montages of axial slices with masks and labels drawn on the FLAIR.

Two pictures, one style: eight axial slices spread over the brain, in two rows, in
radiological view (the subject's right on the image's left, anterior up), the slice number in
each tile and a header line that says what is drawn.

* :func:`brain_mask_montage`: the brain mask's outline in red (``preprocess_qc.png``);
* :func:`segmentation_montage`: ventricles and lesions coloured by location class
  (``segmentation_qc.png``), on the same slices as the brain-mask picture so that the two can
  be read side by side.

Arrays in, RGB uint8 arrays out; :func:`msprofile.io.save_png` writes them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .labels import LESION_CLASS_RGB, VENTRICLES_RGB, LesionClass, SegmentationClass

#: Height of one header line in pixels (PIL's default font is 11 px high).
HEADER_LINE_PX = 16
_WHITE = (255, 255, 255)
_SLICE_LABEL = (255, 255, 0)
#: The brain mask's outline.
MASK_OUTLINE_RGB = (255, 40, 40)
LESION_CLASS_LEGEND = {
    LesionClass.PEWMH: "periventricular",
    LesionClass.PAWMH: "paraventricular (deep)",
    LesionClass.JCWMH: "juxtacortical",
}
#: Opacity of the label colours over the FLAIR: the tissue under a label stays visible.
FILL_OPACITY = 0.6
RADIOLOGICAL_NOTE = "radiological view: R on left, anterior up"


def spread_slices(mask: np.ndarray, n_slices: int = 8) -> list[int]:
    """Indices of up to ``n_slices`` axial slices (last axis) spread evenly from the first to the
    last slice where ``mask`` (bool, X x Y x Z) is set."""
    occupied = np.flatnonzero(np.asarray(mask).any(axis=(0, 1)))
    if occupied.size == 0:
        occupied = np.arange(np.shape(mask)[2])
    return [int(k) for k in np.unique(np.linspace(occupied[0], occupied[-1], n_slices).round().astype(int))]


def grey_slices(image: np.ndarray, slices: list[int]) -> np.ndarray:
    """Axial ``slices`` of ``image`` (X, Y, Z) as RGB uint8 (X, Y, len(slices), 3), windowed from 0
    to the whole image's 99.5th percentile."""
    window_high = float(np.percentile(image, 99.5)) or 1.0
    grey = np.clip(image[:, :, slices] / window_high * 255.0, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def brain_mask_montage(image: np.ndarray, mask: np.ndarray, title: str) -> np.ndarray:
    """The brain mask's outline (red) on eight axial slices spread over the mask.

    ``image``, ``mask``: canonical (RAS+) arrays (X, Y, Z), FLAIR intensities and bool.
    Returns RGB uint8 (H, W, 3).
    """
    slices = spread_slices(mask)
    shown = mask[:, :, slices]
    outline = shown & ~ndimage.binary_erosion(shown, np.ones((3, 3, 1), dtype=bool))
    rgb = grey_slices(image, slices)
    rgb[outline] = MASK_OUTLINE_RGB
    header = [(f"{title}   brain mask outline (red), {RADIOLOGICAL_NOTE}", _WHITE)]
    return montage(rgb, slices, header)


def segmentation_montage(
    image: np.ndarray, brain: np.ndarray, labels: np.ndarray, lesion_classes: np.ndarray, title: str
) -> np.ndarray:
    """Ventricles and lesions, coloured by location class, on eight axial slices spread over the
    brain (the slices of :func:`brain_mask_montage`).

    ``image`` (FLAIR intensities), ``brain`` (bool), ``labels``
    (:class:`~msprofile.labels.SegmentationClass` codes) and ``lesion_classes``
    (:class:`~msprofile.labels.LesionClass` codes): canonical (RAS+) arrays of one shape
    (X, Y, Z). Colours: :data:`VENTRICLES_RGB` and :data:`LESION_CLASS_RGB`, at
    :data:`FILL_OPACITY` over the FLAIR. Returns RGB uint8 (H, W, 3).
    """
    slices = spread_slices(brain)
    rgb = grey_slices(image, slices).astype(np.float32)
    fills = [(labels[:, :, slices] == SegmentationClass.VENTRICLES, VENTRICLES_RGB)]
    fills += [(lesion_classes[:, :, slices] == code, colour) for code, colour in LESION_CLASS_RGB.items()]
    for where, colour in fills:
        rgb[where] = (1 - FILL_OPACITY) * rgb[where] + FILL_OPACITY * np.asarray(colour, dtype=np.float32)
    header = [(f"{title}   ", _WHITE), ("ventricles", VENTRICLES_RGB)]
    header += [(f"  {LESION_CLASS_LEGEND[code]}", colour) for code, colour in LESION_CLASS_RGB.items()]
    header += [(f"   lesions by class, {RADIOLOGICAL_NOTE}", _WHITE)]
    return montage(np.round(rgb).astype(np.uint8), slices, header)


def montage(rgb: np.ndarray, slices: list[int], header: list[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
    """Lay out canonical RGB slices (X, Y, n, 3) as radiological tiles in two rows, under a header.

    ``slices``: the slice index of each tile, written in its corner. ``header``: pieces of text
    with their colours, written left to right and wrapped onto further lines where the montage
    is too narrow. Returns RGB uint8 (H, W, 3).
    """
    from PIL import Image, ImageDraw

    # Canonical x runs to the subject's right and y to anterior: flipping both and transposing
    # puts the right on the image's left and anterior up.
    tiles = [rgb[::-1, ::-1, k].transpose(1, 0, 2) for k in range(rgb.shape[2])]
    tile_h, tile_w = tiles[0].shape[:2]
    columns = (len(tiles) + 1) // 2
    tiles += [np.zeros_like(tiles[0])] * (2 * columns - len(tiles))
    rows = [np.concatenate(tiles[r * columns : (r + 1) * columns], axis=1) for r in range(2)]
    body = np.concatenate(rows, axis=0)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    lines = _wrap(header, body.shape[1] - 8, measure)
    top = HEADER_LINE_PX * len(lines)
    canvas = Image.new("RGB", (body.shape[1], body.shape[0] + top))
    canvas.paste(Image.fromarray(body), (0, top))
    draw = ImageDraw.Draw(canvas)
    for number, line in enumerate(lines):
        x = 4.0
        for text, colour in line:
            draw.text((x, 2 + number * HEADER_LINE_PX), text, fill=colour)
            x += measure(text)
    for i, k in enumerate(slices):
        draw.text(((i % columns) * tile_w + 4, top + (i // columns) * tile_h + 4), f"z={k}", fill=_SLICE_LABEL)
    return np.asarray(canvas)


def _wrap(pieces: list[tuple[str, tuple]], width_px: float, measure) -> list[list[tuple[str, tuple]]]:
    """The header's pieces split into lines at most ``width_px`` wide (``measure(text)`` gives a
    text's width in pixels), breaking between pieces (a piece wider than a line gets its own)."""
    lines, line, used = [], [], 0.0
    for text, colour in pieces:
        if line and used + measure(text) > width_px:
            lines.append(line)
            line, used, text = [], 0.0, text.lstrip()
        line.append((text, colour))
        used += measure(text)
    return [*lines, line]


#: Colours of the change picture: new lesions vermillion, the grown part of enlarging ones yellow
#: (Okabe-Ito).
CHANGE_RGB = {1: (213, 94, 0), 2: (240, 228, 66)}


def change_montage(
    baseline: np.ndarray, followup: np.ndarray, difference_sd: np.ndarray, labels: np.ndarray, title: str
) -> np.ndarray:
    """Two axial slices (the two with the most change, else two spread over the brain), each as
    four tiles: the registered, intensity-matched baseline, the follow-up, the difference
    (follow-up minus baseline, -5 to +5 robust SDs from black to white) and the change labels
    on the follow-up (:data:`CHANGE_RGB`). Canonical (RAS+) arrays (X, Y, Z) of one shape;
    ``labels``: :class:`msprofile.longitudinal.ChangeClass` codes. Returns RGB uint8 (H, W, 3).
    """
    per_slice = np.asarray(labels > 0).sum(axis=(0, 1))
    if per_slice.any():
        slices = sorted(int(k) for k in np.argsort(-per_slice, kind="stable")[:2])
    else:
        slices = spread_slices(difference_sd != 0, 4)[1:3]
    slices = (slices * 2)[:2]
    window_high = float(np.percentile(followup, 99.5)) or 1.0
    tiles = []
    for k in slices:
        grey = [np.clip(image[:, :, k] / window_high * 255.0, 0, 255) for image in (baseline, followup)]
        grey.append(np.clip((difference_sd[:, :, k] + 5.0) / 10.0 * 255.0, 0, 255))
        grey.append(grey[1])
        rgb = [np.repeat(g[..., None], 3, axis=-1).astype(np.float32) for g in grey]
        for code, colour in CHANGE_RGB.items():
            where = labels[:, :, k] == code
            rgb[3][where] = (1 - FILL_OPACITY) * rgb[3][where] + FILL_OPACITY * np.asarray(colour, np.float32)
        tiles.extend(rgb)
    stack = np.round(np.stack(tiles, axis=2)).astype(np.uint8)
    header = [(f"{title}   baseline (registered) | follow-up | difference | ", _WHITE)]
    header += [("new", CHANGE_RGB[1]), (" enlarging", CHANGE_RGB[2]), (f"   {RADIOLOGICAL_NOTE}", _WHITE)]
    return montage(stack, [k for k in slices for _ in range(4)], header)
