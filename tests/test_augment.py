"""Appearance randomisation, synthetic images from phantom label maps and the network input's
intensity anchor: pure functions, checked on constructed images and on the real sample."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from msprofile.geometry import Grid
from msprofile.labels import SegmentationClass
from msprofile.preprocess import preprocess
from msprofile.segmentation import augment
from msprofile.segmentation.augment import Randomisation
from msprofile.segmentation.data import (
    MAX_ANCHORED,
    anchor_intensities,
    brain_to_model,
    context_stack,
    network_input,
    parenchyma_peak,
)
from msprofile.segmentation.synthetic import TISSUE_INTENSITY, paint, segmentation_labels
from msprofile.synthetic.phantom import Tissue, make_phantom


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_smooth_field_is_positive_smooth_and_as_strong_as_asked():
    weak = augment.smooth_field((128, 96), _rng(), log_sd=0.05)
    strong = augment.smooth_field((128, 96), _rng(), log_sd=0.4)
    assert weak.shape == (128, 96) and weak.dtype == np.float32 and (weak > 0).all()
    assert np.log(strong).std() > 4 * np.log(weak).std()
    # Smooth: neighbouring pixels differ by a small fraction of the field's range.
    steps = np.abs(np.diff(np.log(strong), axis=0)).max()
    assert steps < 0.05 * np.ptp(np.log(strong))


def test_histogram_warp_is_monotonic_and_keeps_the_range():
    image = np.linspace(0.0, 2.0, 4001, dtype=np.float32).reshape(1, -1)
    for seed in range(10):
        warped = augment.histogram_warp(image, _rng(seed), log_sd=0.6)
        assert (np.diff(warped[0]) >= 0).all(), "tissue order must survive a warp"
        top = np.percentile(image, 99.5)
        assert warped[0, 0] == pytest.approx(0.0, abs=1e-6)
        assert np.interp(top, image[0], warped[0]) == pytest.approx(top, rel=1e-3)
    assert not np.allclose(augment.histogram_warp(image, _rng(1), 0.6), image, atol=0.02)
    np.testing.assert_allclose(augment.histogram_warp(image, _rng(1), 0.0), image, atol=1e-5)


def test_gamma_keeps_both_ends():
    image = np.linspace(0.2, 3.0, 50, dtype=np.float32)
    out = augment.gamma(image, 2.0)
    assert out[0] == pytest.approx(0.2) and out[-1] == pytest.approx(3.0)
    assert out[25] < image[25]


def test_simulated_pixel_size_blurs_only_coarser_acquisitions():
    image = np.zeros((64, 64), dtype=np.float32)
    image[::2] = 1.0  # finest stripes the 0.9 mm grid can hold
    assert augment.simulate_pixel_size(image, 0.5, 0.9) is not image
    np.testing.assert_array_equal(augment.simulate_pixel_size(image, 0.5, 0.9), image)
    coarse = augment.simulate_pixel_size(image, 1.2, 0.9)
    assert coarse.shape == image.shape
    assert coarse[10:50, 10:50].std() < 0.3 * image.std()  # the stripes are averaged away
    assert coarse.mean() == pytest.approx(image.mean(), abs=0.05)
    # A blob larger than the pixel survives with its contrast.
    blob = np.zeros((64, 64), dtype=np.float32)
    blob[24:40, 24:40] = 1.0
    assert augment.simulate_pixel_size(blob, 1.2, 0.9)[32, 32] > 0.9
    stacked = augment.simulate_pixel_size(np.stack([image, blob], axis=-1), 1.2, 0.9)
    np.testing.assert_allclose(stacked[..., 1], augment.simulate_pixel_size(blob, 1.2, 0.9))


def test_rician_noise_has_the_asked_sd_on_tissue_and_a_floor_on_background():
    flat = np.ones((200, 200), dtype=np.float32)
    noisy = augment.rician_noise(flat, _rng(), 0.05)
    assert noisy.std() == pytest.approx(0.05, rel=0.1)
    background = augment.rician_noise(np.zeros((200, 200), np.float32), _rng(), 0.05)
    assert (background >= 0).all() and background.mean() == pytest.approx(0.05 * np.sqrt(np.pi / 2), rel=0.1)


def test_randomise_appearance_varies_the_image_and_keeps_contrast_order():
    image = np.zeros((96, 96, 3), dtype=np.float32)
    image[20:76, 20:76] = 1.0  # white matter
    image[40:56, 30:46] = 0.1  # a ventricle
    image[60:70, 60:70] = 1.7  # a lesion
    outs = [augment.randomise_appearance(image, _rng(seed), Randomisation()) for seed in range(12)]
    for out in outs:
        assert out.shape == image.shape and out.dtype == np.float32 and np.isfinite(out).all()
        core = out[..., 1]
        lesion, matter, ventricle = (
            np.median(core[r]) for r in (np.s_[62:68, 62:68], np.s_[22:30, 22:74], np.s_[44:52, 34:42])
        )
        assert lesion > matter > ventricle
    assert np.std([np.median(o[22:30, 22:74, 1]) for o in outs]) > 0.03, "appearance must vary between draws"
    # The channels (neighbouring slices) share the draws: identical inputs stay nearly identical.
    assert np.abs(outs[0][..., 0] - outs[0][..., 2]).mean() < 0.2
    nothing = Randomisation(
        probability_resolution=0,
        probability_blur=0,
        probability_bias=0,
        probability_warp=0,
        probability_noise=0,
        scale=(1.0, 1.0),
    )
    np.testing.assert_allclose(augment.randomise_appearance(image, _rng(), nothing), image, atol=1e-6)


def test_parenchyma_peak_ignores_lesion_load_and_scales_with_the_scanner():
    rng = _rng(3)
    brain = np.ones((60, 60, 10), dtype=bool)
    image = rng.normal(0.55, 0.05, brain.shape).astype(np.float32)  # parenchyma
    image[:10] = rng.normal(0.05, 0.03, (10, 60, 10))  # CSF
    peak = parenchyma_peak(image, brain)
    assert peak == pytest.approx(0.55, abs=0.02)
    loaded = image.copy()
    loaded[50:] = rng.normal(1.0, 0.1, (10, 60, 10))  # a sixth of the brain lesion
    assert parenchyma_peak(loaded, brain) == pytest.approx(peak, abs=0.02)
    assert np.percentile(loaded, 99) > np.percentile(image, 99) + 0.3  # what a percentile anchor would do
    assert parenchyma_peak(image * 1.7, brain) == pytest.approx(1.7 * peak, rel=0.03)
    anchored = anchor_intensities(image * 1.7, brain)
    assert np.median(anchored[10:50]) == pytest.approx(1.0, abs=0.04)
    assert anchored.min() >= 0 and anchored.max() <= MAX_ANCHORED
    with pytest.raises(ValueError, match="empty"):
        parenchyma_peak(image, np.zeros_like(brain))


def test_anchor_puts_real_white_matter_at_one_on_every_sample_subject(sample_subject):
    result = preprocess(sample_subject.flair, sample_subject.affine)
    native = Grid(sample_subject.flair.shape, sample_subject.affine)
    brain = brain_to_model(result.brain_mask, native, result.model)
    anchored = anchor_intensities(result.flair, brain)
    from msprofile.segmentation.data import labels_to_model

    lesions = labels_to_model(sample_subject.lesions.astype(np.uint8), native, result.model) > 0
    ventricles = labels_to_model(sample_subject.ventricles.astype(np.uint8), native, result.model) > 0
    # White matter next to the ventricles (3 to 10 pixels out, no lesion): about 1.
    ring = ndimage.binary_dilation(ventricles, np.ones((3, 3, 1)), iterations=10) & ~ndimage.binary_dilation(
        ventricles, np.ones((3, 3, 1)), iterations=3
    )
    ring &= brain & ~lesions
    assert 0.8 < np.median(anchored[ring]) < 1.25
    assert np.median(anchored[lesions]) > 1.2
    assert np.median(anchored[ventricles]) < 0.6


def test_context_stack_and_network_input():
    volume = np.arange(4 * 3 * 5, dtype=np.float32).reshape(4, 3, 5)
    batch = network_input(volume, context=1)
    assert batch.shape == (5, 4, 3, 3)
    np.testing.assert_array_equal(batch[2, ..., 1], volume[:, :, 2])
    np.testing.assert_array_equal(batch[2, ..., 0], volume[:, :, 1])
    np.testing.assert_array_equal(batch[2, ..., 2], volume[:, :, 3])
    np.testing.assert_array_equal(batch[0, ..., 0], volume[:, :, 0])  # the edge repeats
    np.testing.assert_array_equal(batch[4, ..., 2], volume[:, :, 4])
    assert network_input(volume).shape == (5, 4, 3, 1)
    slices = np.moveaxis(volume, 2, 0)
    np.testing.assert_array_equal(context_stack(slices, 2)[..., 2], slices)


@pytest.fixture(scope="module")
def thin_phantom():
    return make_phantom(5, group="MS", age_years=50, sex="F", shape=(192, 192, 30), voxel_size_mm=(0.9, 0.9, 3.0))


def test_phantom_tissue_map_covers_the_head_and_agrees_with_the_masks(thin_phantom):
    tissue = np.asarray(thin_phantom.tissue)
    np.testing.assert_array_equal(tissue == Tissue.VENTRICLES, thin_phantom.ventricles_mask > 0)
    np.testing.assert_array_equal(tissue == Tissue.LESIONS, thin_phantom.lesion_mask > 0)
    inside = thin_phantom.brain_mask > 0
    assert set(np.unique(tissue[inside])) <= {
        Tissue.WHITE_MATTER,
        Tissue.CORTEX,
        Tissue.DEEP_GREY,
        Tissue.CSF,
        Tissue.VENTRICLES,
        Tissue.LESIONS,
    }
    # Every tissue of a head is drawn, and bright signal away from the head's edge (where the
    # acquisition's blur spills over) is never labelled air.
    assert {Tissue.SKULL, Tissue.FAT, Tissue.CORTEX, Tissue.WHITE_MATTER} <= set(np.unique(tissue))
    far_air = ~ndimage.binary_dilation(tissue != Tissue.AIR, np.ones((5, 5, 1), dtype=bool))
    assert not (far_air & (thin_phantom.flair > 2000)).any()


def test_painted_phantom_slices_look_like_flair_and_vary(thin_phantom):
    tissue = np.moveaxis(np.asarray(thin_phantom.tissue), 2, 0)[15]
    labels = segmentation_labels(tissue)
    assert set(np.unique(labels)) <= {0, SegmentationClass.VENTRICLES, SegmentationClass.LESIONS}
    images = [paint(tissue, _rng(seed)) for seed in range(6)]
    wm = tissue == Tissue.WHITE_MATTER
    for image in images:
        assert image.shape == tissue.shape and image.dtype == np.float32
        assert np.median(image[wm]) == pytest.approx(1.0, abs=0.1)
        if (tissue == Tissue.VENTRICLES).any():
            assert np.median(image[tissue == Tissue.VENTRICLES]) < 0.5
    cortex = [np.median(im[tissue == Tissue.CORTEX]) for im in images]
    assert np.ptp(cortex) > 0.1, "grey matter contrast must vary between paintings"
    assert TISSUE_INTENSITY[Tissue.LESIONS][0] > TISSUE_INTENSITY[Tissue.WHITE_MATTER][1]
    stacked = paint(np.stack([tissue] * 3, axis=-1), _rng(1))
    assert stacked.shape == (*tissue.shape, 3)
    # Neighbouring slices share the tissue brightnesses (their texture is their own).
    assert np.median(stacked[..., 0][wm]) == pytest.approx(np.median(stacked[..., 2][wm]), abs=0.01)
    assert np.abs(stacked[..., 0] - stacked[..., 2]).mean() < 0.05
    # Lesions are painted brighter than white matter, as on every FLAIR.
    lesion = tissue == Tissue.LESIONS
    if lesion.sum() > 20:
        assert np.median(images[0][lesion]) > np.median(images[0][wm])
