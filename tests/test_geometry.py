"""Grids: exact reorientation, model-grid affines, and resampling through the affines."""

from itertools import permutations, product

import numpy as np
import pytest
from nibabel import aff2axcodes

from msprofile.geometry import Grid, from_canonical, labels_to_native, model_grid, resample, to_canonical


def _affine(order, flips, zooms=(0.9, 0.8, 6.5)) -> np.ndarray:
    """A voxel-to-mm affine whose axes are a permutation/flip of RAS, slightly oblique."""
    affine = np.zeros((4, 4))
    for voxel_axis, (world_axis, flip) in enumerate(zip(order, flips)):
        affine[world_axis, voxel_axis] = (-1 if flip else 1) * zooms[voxel_axis]
    rotation = np.eye(4)
    c, s = np.cos(0.08), np.sin(0.08)
    rotation[1:3, 1:3] = [[c, -s], [s, c]]
    affine = rotation @ affine
    affine[:3, 3] = (10.0, -20.0, 30.0)
    affine[3, 3] = 1.0
    return affine


@pytest.mark.parametrize("order,flips", list(product(permutations(range(3)), product((False, True), repeat=3))))
def test_canonical_round_trip_is_exact_in_every_orientation(order, flips):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 1000, size=(7, 5, 3)).astype(np.int16)
    native = Grid(data.shape, _affine(order, flips))
    canonical_data, canonical = to_canonical(data, native)
    assert aff2axcodes(canonical.affine) == ("R", "A", "S")
    np.testing.assert_array_equal(from_canonical(canonical_data, native), data)
    # Same voxel, same world position: the canonical affine describes the moved voxels.
    i, j, k = np.unravel_index(int(np.argmax(data)), data.shape)
    world = native.affine @ [i, j, k, 1]
    ci, cj, ck = np.round(np.linalg.solve(canonical.affine, world)[:3]).astype(int)
    assert canonical_data[ci, cj, ck] == data[i, j, k]
    assert canonical.voxel_volume_ml == pytest.approx(native.voxel_volume_ml)


def test_slice_origin_moves_with_the_slices_alone():
    """The slabs of the lesion rule are anchored on it: padding a scan with slices below moves it
    down by their thickness, cropping it in-plane does not, on an oblique grid too."""
    affine = _affine((0, 1, 2), (False, False, False))
    grid = Grid((7, 5, 3), affine)
    thickness = grid.voxel_size_mm[2]
    padded, cropped = affine.copy(), affine.copy()
    padded[:3, 3] -= 2 * affine[:3, 2]
    cropped[:3, 3] += 3 * affine[:3, 0] + 1 * affine[:3, 1]
    assert Grid((7, 5, 5), padded).slice_origin_mm == pytest.approx(grid.slice_origin_mm - 2 * thickness)
    assert Grid((4, 4, 3), cropped).slice_origin_mm == pytest.approx(grid.slice_origin_mm)
    axial = np.diag([0.9, 0.9, 6.5, 1.0])
    axial[:3, 3] = (10.0, -20.0, 30.0)
    assert Grid((7, 5, 3), axial).slice_origin_mm == pytest.approx(30.0)


def test_model_grid_has_requested_pixels_and_keeps_slices():
    canonical = Grid((256, 256, 20), np.diag([0.898, 0.898, 6.5, 1.0]))
    model = model_grid(canonical, matrix=(200, 180), pixel_size_mm=1.0, centre_voxel=np.array([120.0, 130.0]))
    assert model.shape == (200, 180, 20)
    np.testing.assert_allclose(model.voxel_size_mm, [1.0, 1.0, 6.5])
    # Centred on the requested canonical voxel, within one canonical voxel (offset is rounded).
    centre_world = model.affine @ [99.5, 89.5, 0, 1]
    centre_canonical = np.linalg.solve(canonical.affine, centre_world)
    np.testing.assert_allclose(centre_canonical[:2], [120.0, 130.0], atol=0.5 + 1e-9)
    assert centre_canonical[2] == pytest.approx(0.0)


def test_resample_follows_the_affines():
    """A linear function of world position stays that function after linear resampling."""
    source = Grid((64, 64, 4), np.array([[0.9, 0, 0, -30], [0, 0.9, 0, -25], [0, 0, 5.0, 0], [0, 0, 0, 1.0]]))
    i, j, k = np.meshgrid(*(np.arange(n) for n in source.shape), indexing="ij")
    world = np.einsum("ab,bijk->aijk", source.affine[:3], np.stack([i, j, k, np.ones_like(i)]))
    field = (2.0 * world[0] - 3.0 * world[1] + 0.5 * world[2]).astype(np.float32)
    target = model_grid(source, matrix=(40, 40), pixel_size_mm=1.1, centre_voxel=np.array([31.5, 31.5]))
    resampled = resample(field, source, target, order=1)
    ti, tj, tk = np.meshgrid(*(np.arange(n) for n in target.shape), indexing="ij")
    target_world = np.einsum("ab,bijk->aijk", target.affine[:3], np.stack([ti, tj, tk, np.ones_like(ti)]))
    expected = 2.0 * target_world[0] - 3.0 * target_world[1] + 0.5 * target_world[2]
    inner = (slice(2, -2), slice(2, -2), slice(None))  # away from the zero padding at the edge
    np.testing.assert_allclose(resampled[inner], expected[inner], atol=1e-3)


def test_labels_to_native_is_exact_when_pixels_coincide():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=(50, 40, 6)).astype(np.uint8)
    native = Grid(labels.shape, _affine((0, 1, 2), (True, False, False), zooms=(1.0, 1.0, 5.0)))
    canonical_labels, canonical = to_canonical(labels, native)
    model = model_grid(canonical, matrix=(64, 64), pixel_size_mm=1.0, centre_voxel=np.array([24.5, 19.5]))
    on_model = resample(canonical_labels, canonical, model, order=0)
    assert set(np.unique(on_model)) <= {0, 1, 2}
    np.testing.assert_array_equal(labels_to_native(on_model, model, native), labels)


def test_inplane_box_spans_every_slice_and_clamps_its_margin():
    from msprofile.geometry import inplane_box

    mask = np.zeros((10, 8, 3), dtype=bool)
    mask[3, 5, 0] = mask[7, 2, 2] = True
    assert inplane_box(mask) == (slice(3, 8), slice(2, 6))
    assert inplane_box(mask, margin=3) == (slice(0, 10), slice(0, 8))
    with pytest.raises(IndexError):
        inplane_box(np.zeros((4, 4, 2), dtype=bool))
