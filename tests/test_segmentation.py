"""Segmentation: the network, training on real slices, post-processing, model files, devices."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from msprofile.geometry import Grid
from msprofile.labels import label_volume
from msprofile.preprocess import preprocess
from msprofile.segmentation.data import labels_to_model, network_input, network_labels
from msprofile.segmentation.infer import postprocess
from msprofile.segmentation.train import configure_tensorflow

from conftest import REPO, SampleSubject

keras = pytest.importorskip("keras")


def test_reference_width_has_the_reference_parameter_count():
    from msprofile.segmentation.model import build_attention_unet

    assert build_attention_unet(base_filters=64).count_params() == 31_380_327


def test_network_is_fully_convolutional():
    from msprofile.segmentation.model import build_attention_unet

    model = build_attention_unet(input_shape=(None, None, 1), base_filters=2)
    out = model(np.zeros((2, 64, 48, 1), dtype=np.float32))
    assert out.shape == (2, 64, 48, 3)
    np.testing.assert_allclose(np.asarray(out).sum(axis=-1), 1.0, rtol=1e-5)


def test_label_volume_lesion_wins_and_masks_are_binarised():
    lesions = np.array([[[0, 1, 255, 0]]], dtype=np.uint8)
    ventricles = np.array([[[255, 1, 0, 0]]], dtype=np.uint8)
    np.testing.assert_array_equal(label_volume(lesions, ventricles), [[[1, 2, 2, 0]]])


def test_network_input_standardises_each_slice():
    volume = np.random.default_rng(0).normal(5.0, 3.0, (16, 12, 3)).astype(np.float32)
    volume[:, :, 1] *= 10
    volume[:, :, 2] = 7.0  # no contrast
    batch = network_input(volume)
    assert batch.shape == (3, 16, 12, 1)
    np.testing.assert_allclose(batch[:2].mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(batch[:2].std(axis=(1, 2, 3)), 1.0, atol=1e-4)
    assert not batch[2].any()


def test_postprocess_drops_small_objects_and_opens_lesions_only():
    probabilities = np.zeros((20, 20, 1, 3), dtype=np.float32)
    probabilities[..., 0] = 1.0
    probabilities[2:4, 2:4, 0, 1] = 2.0  # ventricle blob of 4 pixels: dropped (< 5)
    probabilities[10:13, 10:13, 0, 1] = 2.0  # 9-pixel ventricle: kept, not opened
    probabilities[10:13, 12, 0, 1] = 0.0
    probabilities[5:10, 15:18, 0, 2] = 2.0  # 15-pixel lesion: kept
    probabilities[15, 2:8, 0, 2] = 2.0  # 6-pixel line of lesion: removed by the opening
    labels = postprocess(probabilities)
    assert (labels[2:4, 2:4] == 0).all()
    assert (labels == 1).sum() == 6
    # Opening with a cross keeps the lesion but rounds its corners off.
    assert (labels[6:9, 15:18] == 2).all() and (labels[5:10, 16] == 2).all()
    assert labels[5, 15, 0] == 0 and labels[9, 17, 0] == 0
    assert (labels[15, 2:8] == 0).all()


@pytest.fixture(scope="module")
def real_slices():
    xs, ys = [], []
    for subject_id in ("104252", "105755"):
        subject = SampleSubject(subject_id)
        result = preprocess(subject.flair, subject.affine)
        labels = labels_to_model(
            label_volume(subject.lesions, subject.ventricles), Grid(subject.flair.shape, subject.affine), result.model
        )
        xs.append(network_input(result.flair))
        ys.append(network_labels(labels))
    return np.concatenate(xs), np.concatenate(ys)


def test_labels_reach_the_model_grid(real_slices):
    _, y = real_slices
    assert set(np.unique(y)) == {0, 1, 2}


def test_short_training_on_real_slices_lowers_the_loss(real_slices):
    from msprofile.segmentation.train import TrainingSettings, train

    x, y = real_slices
    settings = TrainingSettings(
        base_filters=8, epochs=8, steps_per_epoch=4, batch_size=4, crop=64, learning_rate=3e-3, seed=1
    )
    model, losses = train(x, y, settings)
    assert len(losses) == 8
    assert np.mean(losses[-2:]) < 0.9 * losses[0]
    # Determinism: the same seed on the same machine gives the same losses and weights (to
    # float32 rounding, 1e-6 relative); another seed does not.
    again, losses_again = train(x, y, settings)
    np.testing.assert_allclose(losses_again, losses, rtol=1e-6)
    for w, w_again in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_allclose(w_again, w, rtol=1e-6, atol=1e-7)
    _, other = train(x, y, replace(settings, seed=2))
    assert not np.allclose(other, losses, rtol=1e-3)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from msprofile.jobs.training import save_trained_model
    from msprofile.segmentation.model import build_attention_unet
    from msprofile.segmentation.train import dice_ce_loss

    model = build_attention_unet(input_shape=(None, None, 1), base_filters=2)
    rng = np.random.default_rng(0)
    # Random biases too, so that the ONNX comparison below is not between two near-constant maps.
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(np.float32) for w in model.get_weights()])
    # Compiled with the training loss, as train() leaves it: saving must not depend on it.
    model.compile(optimizer=keras.optimizers.Adam(), loss=dice_ce_loss())
    model.train_on_batch(rng.normal(size=(2, 32, 32, 1)).astype(np.float32), rng.integers(0, 3, (2, 32, 32)))
    folder = tmp_path_factory.mktemp("model")
    x = rng.normal(size=(2, 32, 32, 1)).astype(np.float32)
    card = save_trained_model(model, folder, {"name": "tiny"}, check_input=x)
    return folder, model, card


def test_model_files_round_trip_keras_and_onnx_agree(tiny_model_dir):
    from msprofile.io.models import load_keras_model
    from msprofile.jobs.segmentation import load_network

    folder, model, card = tiny_model_dir
    assert set(card["files"]) == {"model.keras", "model.onnx"} and card["name"] == "tiny"
    x = np.random.default_rng(1).normal(size=(3, 48, 64, 1)).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    loaded, _ = load_keras_model(folder)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), expected, atol=1e-6)
    network, _ = load_network(folder, device="cpu")
    assert network.device == "cpu"
    np.testing.assert_allclose(network(x), expected, atol=1e-5)


def test_default_width_has_the_documented_parameter_count():
    from msprofile.segmentation.model import build_attention_unet

    assert build_attention_unet(base_filters=16).count_params() == 1_962_975  # README, "Segmentation"


def test_shipped_model_keras_and_onnx_agree_on_a_real_subject():
    """The shipped model's two files compute the same probabilities on a real preprocessed
    subject (the README: the ONNX export is checked against Keras to 1e-4), and its card
    states the network's true parameter count."""
    from msprofile.io.models import load_keras_model
    from msprofile.jobs.segmentation import load_network

    folder = REPO / "resources" / "models" / "msprofile-default"
    subject = SampleSubject("105465")
    batch = network_input(preprocess(subject.flair, subject.affine).flair)[4:12]
    model, card = load_keras_model(folder)
    assert model.count_params() == card["architecture"]["parameters"]
    network, _ = load_network(folder, device="cpu")
    np.testing.assert_allclose(network(batch), np.asarray(model(batch, training=False)), atol=1e-4)


def test_tampered_model_is_refused(tiny_model_dir, tmp_path):
    import shutil

    from msprofile.io.models import ModelError
    from msprofile.jobs.segmentation import load_network

    folder = tmp_path / "copy"
    shutil.copytree(tiny_model_dir[0], folder)
    with open(folder / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match="does not match its card"):
        load_network(folder)


def test_gpu_required_but_absent_is_a_clear_error(tiny_model_dir):
    from msprofile.jobs.segmentation import load_network

    onnxruntime = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has a CUDA provider")
    with pytest.raises(RuntimeError, match="no CUDA provider"):
        load_network(tiny_model_dir[0], device="gpu")
    assert load_network(tiny_model_dir[0], device="auto")[0].device == "cpu"


def test_tensorflow_device_choice():
    assert configure_tensorflow("cpu") == "cpu"
    with pytest.raises(ValueError):
        configure_tensorflow("tpu")


def test_shipped_model_matches_its_card():
    from msprofile.io.models import CARD_FILE, read_card, verified_path

    from conftest import REPO

    folder = REPO / "resources" / "models" / "msprofile-default"
    card = read_card(folder)
    for name, entry in card["files"].items():
        path = verified_path(folder, name, card)
        assert path.stat().st_size == entry["size_bytes"]
        assert entry["size_bytes"] <= 25 * 1024 * 1024, f"{name} is too large for git"
    assert card["classes"] == ["background", "ventricles", "lesions"]
    assert card["validation"]["scheme"] == "leave-one-subject-out"
    assert sorted(card["training"]["subjects"]) == ["104252", "105074", "105465", "105755"]
    assert (folder / CARD_FILE).is_file()
