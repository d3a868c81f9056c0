"""Segmentation: the network, training on real slices, post-processing, model files, devices."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from msprofile.geometry import Grid
from msprofile.labels import label_volume
from msprofile.preprocess import preprocess
from msprofile.segmentation.data import (
    anchor_intensities,
    brain_to_model,
    labels_to_model,
    network_input,
    network_labels,
)
from msprofile.segmentation.infer import postprocess
from msprofile.segmentation.train import configure_tensorflow

from conftest import REPO, SampleSubject

keras = pytest.importorskip("keras")

#: The ISBI 2015 scan the shipped model is tested on zero-shot, and the floors of its lesion
#: Dice against rater 1 and of its uncertainty map's AUROC for wrong voxels. msprofile-brain,
#: the default (one network, no flips), measured 0.604 and 0.972 on it (mean Dice over
#: isbi01-05: 0.496); msprofile-default 0.558 and 0.939 (0.500).
ISBI_SUBJECT = "isbi03"
ISBI_LESION_DICE_FLOOR = 0.50
ISBI_UNCERTAINTY_AUROC_FLOOR = 0.90
#: The models in resources/models/: the default (brain-only input) and msprofile 0.2's.
SHIPPED_MODELS = ("msprofile-brain", "msprofile-default")


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
        native = Grid(subject.flair.shape, subject.affine)
        labels = labels_to_model(label_volume(subject.lesions, subject.ventricles), native, result.model)
        brain = brain_to_model(result.brain_mask, native, result.model)
        xs.append(network_input(anchor_intensities(result.flair, brain)))
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


def _random_network(seed: int, channels: int = 1):
    from msprofile.segmentation.model import build_attention_unet

    keras.utils.set_random_seed(seed)
    model = build_attention_unet(input_shape=(None, None, channels), base_filters=2)
    rng = np.random.default_rng(seed)
    # Random biases too, so that the ONNX comparisons are not between two near-constant maps.
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from msprofile.jobs.training import save_trained_model
    from msprofile.segmentation.data import NORMALISATION
    from msprofile.segmentation.model import inference_copy
    from msprofile.segmentation.onnx_export import checked_onnx
    from msprofile.segmentation.train import dice_ce_loss

    model = _random_network(0)
    rng = np.random.default_rng(0)
    # Compiled with the training loss, as train() leaves it: saving must not depend on it.
    model.compile(optimizer=keras.optimizers.Adam(), loss=dice_ce_loss())
    model.train_on_batch(rng.normal(size=(2, 32, 32, 1)).astype(np.float32), rng.integers(0, 3, (2, 32, 32)))
    folder = tmp_path_factory.mktemp("model")
    x = rng.normal(size=(2, 32, 32, 1)).astype(np.float32)
    members = {f"fold-{i}": checked_onnx(inference_copy(_random_network(i)), x, half_weights=True) for i in (1, 2)}
    card = {"name": "tiny", "input": {"normalisation": NORMALISATION, "context_slices": 0}}
    card = save_trained_model(model, folder, card, check_input=x, members=members)
    return folder, model, card


def test_model_files_round_trip_keras_and_onnx_agree(tiny_model_dir):
    from msprofile.io.models import load_keras_model
    from msprofile.jobs.segmentation import load_network

    folder, model, card = tiny_model_dir
    assert set(card["files"]) == {"model.keras", "model.onnx", "members/fold-1.onnx", "members/fold-2.onnx"}
    assert card["name"] == "tiny"
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


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_model_keras_and_onnx_agree_on_a_real_subject(name):
    """Each shipped model's two files compute the same probabilities on a real preprocessed
    subject (the README: the ONNX export is checked against Keras to 1e-4), and its card
    states the network's true parameter count."""
    from msprofile.io.models import load_keras_model
    from msprofile.jobs.segmentation import load_network
    from msprofile.segmentation.data import input_normalisation, model_input

    folder = REPO / "resources" / "models" / name
    subject = SampleSubject("105465")
    result = preprocess(subject.flair, subject.affine)
    brain = brain_to_model(result.brain_mask, Grid(subject.flair.shape, subject.affine), result.model)
    model, card = load_keras_model(folder)
    batch = model_input(result.flair, brain, input_normalisation(card))[4:12]
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


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_model_matches_its_card(name):
    from msprofile.io.models import CARD_FILE, read_card, verified_path

    from conftest import REPO

    folder = REPO / "resources" / "models" / name
    card = read_card(folder)
    for file_name, entry in card["files"].items():
        path = verified_path(folder, file_name, card)
        assert path.stat().st_size == entry["size_bytes"]
        assert entry["size_bytes"] <= 25 * 1024 * 1024, f"{file_name} is too large for git"
    assert card["classes"] == ["background", "ventricles", "lesions"]
    assert card["validation"]["scheme"] == "leave-one-subject-out"
    assert sorted(card["training"]["subjects"]) == ["104252", "105074", "105465", "105755"]
    assert (folder / CARD_FILE).is_file()


def test_ensemble_members_are_float16_verified_and_in_order(tiny_model_dir, tmp_path):
    import shutil

    from msprofile.io.models import ModelError, load_ensemble
    from msprofile.jobs.segmentation import load_networks

    folder, model, card = tiny_model_dir
    assert card["ensemble"]["networks"] == ["model.onnx", "members/fold-1.onnx", "members/fold-2.onnx"]
    # float16 weights: the member files are about half the main network's.
    main_size = card["files"]["model.onnx"]["size_bytes"]
    assert card["files"]["members/fold-1.onnx"]["size_bytes"] < 0.6 * main_size
    x = np.random.default_rng(5).normal(size=(2, 32, 48, 1)).astype(np.float32)
    networks, _ = load_networks(folder, 5, device="cpu")
    assert len(networks) == 3, "asking for more members than the folder holds gives them all"
    assert len(load_networks(folder, 2, device="cpu")[0]) == 2
    np.testing.assert_allclose(networks[0](x), np.asarray(model(x, training=False)), atol=1e-5)
    member = np.asarray(_random_network(1)(x, training=False))
    # float16 weights: the same output up to their rounding.
    assert np.abs(networks[1](x) - member).mean() < 2e-3 and np.abs(networks[1](x) - member).max() < 0.05
    assert not np.allclose(networks[1](x), networks[2](x), atol=1e-3)
    with pytest.raises(ModelError, match="at least one"):
        load_ensemble(folder, 0)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    with open(copy / "members" / "fold-2.onnx", "ab") as handle:
        handle.write(b"\0")
    load_ensemble(copy, 2)  # the damaged member is not asked for
    with pytest.raises(ModelError, match="does not match its card"):
        load_ensemble(copy, 3)


def test_saving_again_removes_members_of_the_earlier_model(tiny_model_dir, tmp_path):
    import shutil

    from msprofile.jobs.training import save_trained_model

    folder, model, card = tiny_model_dir
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    x = np.zeros((1, 32, 32, 1), np.float32)
    written = save_trained_model(model, copy, {"name": "alone"}, check_input=x)
    assert written["ensemble"]["networks"] == ["model.onnx"]
    assert not list((copy / "members").glob("*.onnx"))


def test_ensemble_probabilities_average_members_and_flips():
    from msprofile.segmentation.infer import brain_box, ensemble_probabilities, keras_network

    rng = np.random.default_rng(0)
    flair = rng.uniform(0, 2, (80, 72, 6)).astype(np.float32)
    brain = np.zeros(flair.shape, dtype=bool)
    brain[20:50, 15:60, 1:5] = True
    rows, columns, slices = brain_box(brain)
    assert (rows.stop - rows.start) % 16 == 0 and (columns.stop - columns.start) % 16 == 0
    assert rows.start <= 20 - 8 and rows.stop >= 50 + 8 and columns.start <= 15 - 8 and columns.stop >= 60 + 8
    np.testing.assert_array_equal(slices, [1, 2, 3, 4])
    a, b = _random_network(3), _random_network(4)
    one = ensemble_probabilities([keras_network(a)], flair, brain)
    two = ensemble_probabilities([keras_network(b)], flair, brain)
    both = ensemble_probabilities([keras_network(a), keras_network(b)], flair, brain)
    assert both.shape == (80, 72, 6, 3)
    np.testing.assert_allclose(both, (one + two) / 2, atol=1e-6)
    np.testing.assert_allclose(both.sum(axis=-1), 1.0, atol=1e-5)
    # Outside the box and on slices without brain: background, certain.
    assert (both[:, :, 0, 0] == 1).all() and (both[0, 0, :, 0] == 1).all()
    # Flips: the average of the network on the slices and on their mirror images.
    mirrored = ensemble_probabilities([keras_network(a)], flair[::-1], brain[::-1])[::-1]
    flipped = ensemble_probabilities([keras_network(a)], flair, brain, flips=True)
    inside = np.s_[24:46, 20:55, 1:5]
    np.testing.assert_allclose(flipped[inside], (one[inside] + mirrored[inside]) / 2, atol=1e-5)


def test_predictive_entropy_and_the_subject_mean():
    from msprofile.segmentation.infer import predictive_entropy, segmentation_uncertainty

    p = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(predictive_entropy(p), [0.0, 1.0, np.log(2) / np.log(3)], atol=1e-5)
    labels = np.array([[[0, 1, 2, 2]]], dtype=np.uint8)
    uncertainty = np.array([[[0.9, 0.2, 0.4, 0.6]]], dtype=np.float32)
    means = segmentation_uncertainty(labels, uncertainty)
    assert means["segmentation_uncertainty"] == pytest.approx(0.4)
    assert means["segmentation_uncertainty_lesions"] == pytest.approx(0.5)
    assert means["segmentation_uncertainty_ventricles"] == pytest.approx(0.2)
    assert np.isnan(segmentation_uncertainty(np.zeros_like(labels), uncertainty)["segmentation_uncertainty_lesions"])


def test_segment_subject_writes_labels_uncertainty_and_native_probabilities(tiny_model_dir, tmp_path):
    import nibabel as nib

    from msprofile.jobs.preprocess import preprocess_subject
    from msprofile.jobs.segmentation import segment_subject
    from msprofile.preprocess import PreprocessSettings

    subject = SampleSubject("105755")
    paths = {k: tmp_path / f"{k}.nii.gz" for k in ("brain", "flair", "seg", "unc", "prob")}
    preprocess_subject(
        "105755",
        subject.flair_path,
        skull_stripped=False,
        settings=PreprocessSettings(),
        brain_mask_path=paths["brain"],
        flair_preproc_path=paths["flair"],
        qc_json_path=tmp_path / "qc.json",
        qc_png_path=tmp_path / "qc.png",
    )
    summary = segment_subject(
        "105755",
        paths["flair"],
        paths["brain"],
        tiny_model_dir[0],
        paths["seg"],
        paths["unc"],
        paths["prob"],
        members=3,
        device="cpu",
    )
    assert summary["networks"] == 3
    native = nib.load(subject.flair_path)
    uncertainty = nib.load(paths["unc"])
    probabilities = nib.load(paths["prob"])
    assert uncertainty.shape == native.shape and np.allclose(uncertainty.affine, native.affine, atol=1e-4)
    assert uncertainty.get_data_dtype() == np.float32
    u = np.asarray(uncertainty.dataobj)
    brain = np.asarray(nib.load(paths["brain"]).dataobj) > 0
    assert u.min() >= 0 and u.max() <= 1 and (u[~brain] == 0).all() and u[brain].mean() > 0.01
    p = np.asarray(probabilities.dataobj)
    assert p.shape == (*native.shape, 3) and probabilities.get_data_dtype() == np.float32
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-4)
    assert (p[~brain, 0] == 1).all()


def test_network_input_follows_the_card_and_unknown_inputs_are_refused():
    from msprofile.io.models import ModelError, read_card
    from msprofile.jobs.segmentation import check_model_fits
    from msprofile.segmentation.data import (
        LEGACY_NORMALISATION_TEXT,
        SLICE_ZSCORE,
        WHITE_MATTER_PEAK,
        input_normalisation,
    )

    from conftest import REPO

    shipped = read_card(REPO / "resources" / "models" / "msprofile-default")
    assert input_normalisation(shipped) == SLICE_ZSCORE
    assert (
        input_normalisation({"input": {"normalisation": WHITE_MATTER_PEAK, "context_slices": 1}}) == WHITE_MATTER_PEAK
    )
    # Cards of msprofile <= 0.2 (no key): their free text, or nothing at all, means slice z-scores.
    assert input_normalisation({"normalisation": LEGACY_NORMALISATION_TEXT, "input": {"shape": [None, None, 1]}}) == (
        SLICE_ZSCORE
    )
    assert input_normalisation({"name": "old", "input": {"shape": [None, None, 1]}}) == SLICE_ZSCORE
    grid = Grid((256, 256, 20), np.diag([0.9, 0.9, 6.5, 1.0]))
    check_model_fits(shipped, grid)
    for card in (
        {"name": "odd", "input": {"normalisation": "histogram_matched"}},
        {"name": "odd", "normalisation": "volume z-scored"},
    ):
        with pytest.raises(ModelError, match="retrain"):
            check_model_fits(card, grid)


def test_brain_slice_zscores_are_the_same_with_and_without_skull():
    """The network input of new models hardly moves when the scan comes skull-stripped; whole-slice
    z-scores (msprofile-default's input) move with the scalp. On 104252 the brain-masked input
    differed by 0.065 SD on average inside the brain, whole-slice z-scores by 0.42 SD."""
    from msprofile.segmentation.data import BRAIN_SLICE_ZSCORE, SLICE_ZSCORE, model_input

    subject = SampleSubject("104252")
    native = Grid(subject.flair.shape, subject.affine)
    whole = preprocess(subject.flair, subject.affine)
    stripped = preprocess(subject.flair * (whole.brain_mask > 0), subject.affine, skull_stripped=True)
    brains = [brain_to_model(result.brain_mask, native, result.model) for result in (whole, stripped)]
    inside = np.moveaxis(brains[0] & brains[1], 2, 0)
    inputs = {
        normalisation: [
            model_input(result.flair, brain, normalisation)[..., 0] for result, brain in zip((whole, stripped), brains)
        ]
        for normalisation in (SLICE_ZSCORE, BRAIN_SLICE_ZSCORE)
    }
    change = {key: float(np.abs(pair[0] - pair[1])[inside].mean()) for key, pair in inputs.items()}
    assert change[BRAIN_SLICE_ZSCORE] < 0.1
    assert change[BRAIN_SLICE_ZSCORE] < 0.25 * change[SLICE_ZSCORE]
    # Outside the brain the input is the z-score of 0 in every slice.
    masked = inputs[BRAIN_SLICE_ZSCORE][0]
    brain_slices = np.moveaxis(brains[0], 2, 0)
    for index in np.flatnonzero(brain_slices.any(axis=(1, 2))):
        assert np.ptp(masked[index][~brain_slices[index]]) == 0


def test_slice_zscore_model_gets_exactly_the_probabilities_of_msprofile_0_2(tmp_path):
    """The shipped model (trained on slice z-scores) sees exactly the input and runs on exactly
    the slices it did before the white-matter-peak input existed; the oracle is the 0.2 code
    (every whole slice z-scored, batches of 8, all slices), written out here. The batch size
    (one slice per call by default) changes no bit of it."""
    from msprofile.jobs.segmentation import load_networks
    from msprofile.segmentation.data import SLICE_ZSCORE
    from msprofile.segmentation.infer import ensemble_probabilities

    from conftest import REPO

    subject = SampleSubject("105755")
    result = preprocess(subject.flair, subject.affine)
    brain = brain_to_model(result.brain_mask, Grid(subject.flair.shape, subject.affine), result.model)
    networks, card = load_networks(REPO / "resources" / "models" / "msprofile-default", 5, device="cpu", threads=2)
    assert len(networks) == 1, "the shipped model has no ensemble members"
    slices = np.moveaxis(result.flair.astype(np.float32), 2, 0)
    mean = slices.mean(axis=(1, 2), keepdims=True)
    sd = slices.std(axis=(1, 2), keepdims=True)
    batch = np.where(sd > 0, (slices - mean) / np.where(sd > 0, sd, 1.0), 0.0)[..., None].astype(np.float32)
    oracle = np.moveaxis(np.concatenate([networks[0](batch[i : i + 8]) for i in range(0, len(batch), 8)]), 0, 2)
    for batch_size in (1, 3, 8, len(batch)):
        probabilities = ensemble_probabilities(
            networks, result.flair, brain, normalisation=SLICE_ZSCORE, batch_size=batch_size
        )
        np.testing.assert_array_equal(probabilities, oracle)
    flipped = ensemble_probabilities(networks, result.flair, brain, normalisation=SLICE_ZSCORE, flips=True)
    assert not np.array_equal(flipped, oracle)
    np.testing.assert_allclose(flipped.sum(axis=-1), 1.0, atol=1e-5)


def test_float16_weights_halve_the_file_and_keep_the_output():
    from msprofile.segmentation.model import inference_copy
    from msprofile.segmentation.onnx_export import OnnxNetwork, checked_onnx

    model = inference_copy(_random_network(7, channels=3))
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    full = checked_onnx(model, x)
    half = checked_onnx(model, x, half_weights=True)
    assert len(half) < 0.6 * len(full)
    np.testing.assert_allclose(OnnxNetwork(half, device="cpu")(x), OnnxNetwork(full, device="cpu")(x), atol=5e-3)


def test_float16_members_of_a_sharp_network_are_kept_and_a_wrong_export_is_refused(monkeypatch):
    """A network whose softmax is steep (logits scaled up, as fine-tuning sharpens them) moves
    some probabilities by more than 0.01 when its weights are rounded to float16: the member is
    still written (a fine-tuning fold failed on this at 1.06e-2). A float16 network that
    computes something else is refused."""
    from onnx import numpy_helper

    from msprofile.segmentation import onnx_export
    from msprofile.segmentation.model import inference_copy

    model = _random_network(7, channels=3)
    weights = model.get_weights()
    model.set_weights([*weights[:-2], 400 * weights[-2], 400 * weights[-1]])
    model = inference_copy(model)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    half = onnx_export.checked_onnx(model, x, half_weights=True)
    rounding = np.abs(onnx_export.OnnxNetwork(half, device="cpu")(x) - expected).max()
    assert 0.01 < rounding < onnx_export.HALF_WEIGHTS_ATOL

    rounded = onnx_export.float16_weights

    def wrong(onnx_model):
        onnx_model = rounded(onnx_model)
        first = onnx_model.graph.initializer[0]
        first.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(first), first.name))
        return onnx_model

    monkeypatch.setattr(onnx_export, "float16_weights", wrong)
    with pytest.raises(RuntimeError, match="float16 weights differs"):
        onnx_export.checked_onnx(model, x, half_weights=True)


def test_loss_asks_for_background_or_ventricles_where_ventricles_are_unknown():
    from msprofile.segmentation.train import NOT_LESION, dice_ce_loss

    loss = dice_ce_loss(dice_weight=0.0)
    ventricle_predicted = np.tile(np.array([0.05, 0.9, 0.05], np.float32), (1, 4, 4, 1))
    background_predicted = np.tile(np.array([0.9, 0.05, 0.05], np.float32), (1, 4, 4, 1))
    unknown = np.full((1, 4, 4), NOT_LESION)
    # Ventricle or background: both right where only "not lesion" is known.
    assert float(loss(unknown, ventricle_predicted)) == pytest.approx(float(loss(unknown, background_predicted)))
    assert float(loss(unknown, ventricle_predicted)) == pytest.approx(-np.log(0.95), rel=1e-4)
    # Where the labels are known the ventricle prediction on background is wrong.
    background = np.zeros((1, 4, 4), dtype=int)
    assert float(loss(background, ventricle_predicted)) > 10 * float(loss(background, background_predicted))
    with_dice = dice_ce_loss(dice_weight=1.0)
    assert np.isfinite(float(with_dice(unknown, ventricle_predicted)))


def test_fine_tuning_on_lesion_labels_alone_starts_from_the_model_and_learns(real_slices):
    from msprofile.segmentation.train import NOT_LESION, TrainingSettings, train

    x, y = real_slices
    settings = TrainingSettings(base_filters=4, epochs=6, steps_per_epoch=4, batch_size=4, crop=64, seed=3)
    start, _ = train(x, y, settings)
    lesion_only = np.where(y == 2, 2, NOT_LESION).astype(np.uint8)
    tuned, losses = train(
        x, lesion_only, replace(settings, epochs=1, learning_rate=1e-12, base_filters=16), init_model=start
    )
    assert tuned.get_layer("enc1_conv1").filters == 4, "the initial model's width wins"
    for w_start, w_tuned in zip(start.get_weights(), tuned.get_weights()):
        np.testing.assert_allclose(w_tuned, w_start, atol=1e-6)
    _, losses = train(x, lesion_only, replace(settings, epochs=4, learning_rate=3e-3), init_model=start)
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="input channels"):
        train(np.repeat(x, 3, axis=-1), y, settings, init_model=start)


def test_unlabelled_ventricles_of_a_fine_tuning_come_from_the_initial_model(real_slices):
    from msprofile.io.models import load_keras_model
    from msprofile.segmentation.train import NOT_LESION, ventricles_from_model

    x, y = real_slices
    model, _ = load_keras_model(REPO / "resources" / "models" / "msprofile-default")
    lesion_only = np.where(y == 2, 2, NOT_LESION).astype(np.uint8)
    labelled = ventricles_from_model(model, x, lesion_only, zscore=True)
    assert not (labelled == NOT_LESION).any()
    np.testing.assert_array_equal(labelled == 2, y == 2)
    # The shipped model's ventricles on these (its training) slices match the expert's.
    ventricles, expert = labelled == 1, y == 1
    assert 2 * (ventricles & expert).sum() / (ventricles.sum() + expert.sum()) > 0.8
    # Known labels stay as they are.
    np.testing.assert_array_equal(ventricles_from_model(model, x[:2], y[:2], zscore=True), y[:2])


def test_slice_zscore_training_patches_are_zscored_with_their_whole_slice():
    from msprofile.segmentation.train import augment_batch

    rng = np.random.default_rng(0)
    x = np.full((3, 64, 64, 1), -0.08, np.float32)
    x[:, 12:52, 10:54] = rng.uniform(0.3, 2.0, (3, 40, 44, 1))
    y = np.zeros((3, 64, 64), np.uint8)
    raw, _ = augment_batch(x, y, np.random.default_rng(5), crop=32, augment=True)
    scored, _ = augment_batch(x, y, np.random.default_rng(5), crop=32, augment=True, zscore=True)
    mean, sd = x.mean(axis=(1, 2), keepdims=True), x.std(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(scored, (raw - mean) / sd, rtol=1e-4, atol=1e-4)
    # Without augmentation z-scores do not depend on the scale: anchored or preprocessed units
    # give the network the same input.
    plain, _ = augment_batch(x, y, np.random.default_rng(6), crop=32, augment=False, zscore=True)
    scaled, _ = augment_batch(3.0 * x, y, np.random.default_rng(6), crop=32, augment=False, zscore=True)
    np.testing.assert_allclose(scaled, plain, rtol=1e-4, atol=1e-4)


def test_fine_tuning_keeps_the_initial_models_input(tmp_path):
    from msprofile.io import save_npz
    from msprofile.jobs.training import _training_material, save_trained_model
    from msprofile.segmentation.data import LEGACY_NORMALISATION_TEXT, SLICE_ZSCORE, WHITE_MATTER_PEAK
    from msprofile.segmentation.train import TrainingSettings

    rng = np.random.default_rng(0)
    x = np.full((4, 32, 32), -0.08, np.float32)
    x[:, 8:24, 8:24] = rng.uniform(0.3, 7.0, (4, 16, 16))
    slices = tmp_path / "slices.npz"
    save_npz(slices, x=x, y=np.zeros((4, 32, 32), np.uint8), subject=np.array(["a", "a", "b", "b"]))
    check = rng.normal(size=(1, 32, 32, 1)).astype(np.float32)
    legacy = {"name": "legacy", "normalisation": LEGACY_NORMALISATION_TEXT, "architecture": {"base_filters": 2}}
    new = {"name": "new", "input": {"normalisation": WHITE_MATTER_PEAK, "context_slices": 0}, **legacy}
    for name, card in (("legacy", legacy), ("new", new)):
        save_trained_model(_random_network(0), tmp_path / name, card, check_input=check)
    settings = TrainingSettings(base_filters=16, normalisation=WHITE_MATTER_PEAK)
    xs, _, _, _, _, tuned = _training_material(slices, None, tmp_path / "legacy", settings)
    assert (tuned.normalisation, tuned.base_filters) == (SLICE_ZSCORE, 2)
    # Slice z-scores are taken of the unclipped slices (the background stays below 0).
    np.testing.assert_array_equal(xs[..., 0], x)
    xs, _, _, _, _, tuned = _training_material(
        slices, None, tmp_path / "new", replace(settings, normalisation=SLICE_ZSCORE)
    )
    assert tuned.normalisation == WHITE_MATTER_PEAK
    assert xs.min() == 0 and xs.max() == 6, "anchored input: clipped to [0, 6]"


def test_brain_slice_zscore_training_slices_are_zero_outside_the_brain():
    from msprofile.jobs.training import training_inputs
    from msprofile.segmentation.data import BRAIN_SLICE_ZSCORE, SLICE_ZSCORE

    rng = np.random.default_rng(0)
    x = np.full((4, 32, 32), -0.08, np.float32)
    x[:, 4:28, 4:28] = rng.uniform(0.3, 7.0, (4, 24, 24))  # head: scalp and brain
    brain = np.zeros(x.shape, bool)
    brain[:3, 8:24, 8:24] = True  # the last slice has head but no brain
    slices = {"x": x, "brain": brain, "y": np.zeros(x.shape, np.uint8), "subject": np.array(["a"] * 4)}
    masked, _, owners = training_inputs(slices, 0, BRAIN_SLICE_ZSCORE)
    assert len(masked) == 3 and list(owners) == ["a"] * 3
    np.testing.assert_array_equal(masked[..., 0], np.where(brain, x, 0.0)[:3])
    whole, _, _ = training_inputs(slices, 0, SLICE_ZSCORE)
    np.testing.assert_array_equal(whole[..., 0], x)
    with pytest.raises(ValueError, match="rerun the training_slices job"):
        training_inputs({key: value for key, value in slices.items() if key != "brain"}, 0, BRAIN_SLICE_ZSCORE)


def test_mild_randomisation_changes_the_contrast_alone_and_is_the_fine_tuning_default():
    """Fine-tuning msprofile-default augments the intensities as that model was trained (a gamma,
    a global scale and light noise): no bias field, warp or blur, unlike the strong randomisation.
    New models are trained with it too (the strong one made networks call faint hyperintensities
    of 3 T scans lesions)."""
    from msprofile.segmentation.augment import randomise_appearance
    from msprofile.segmentation.train import MILD_RANDOMISATION, RANDOMISATION, TrainingSettings, train

    image = np.zeros((96, 96), np.float32)
    image[10:86, 8:88] = 1.0  # white matter
    image[40:56, 40:56] = 0.1  # a ventricle
    image[20:30, 60:70] = 1.7  # a lesion
    left, right = np.s_[12:84, 10:30], np.s_[12:84, 66:86]

    def sides(settings, seed):
        out = randomise_appearance(image, np.random.default_rng(seed), settings)
        return np.median(out[left]), np.median(out[right]), out

    draws = []
    for seed in range(10):
        matter_left, matter_right, out = sides(MILD_RANDOMISATION, seed)
        assert matter_left == pytest.approx(matter_right, rel=0.02), "no bias field"
        assert np.median(out[22:28, 62:68]) > matter_left > np.median(out[44:52, 44:52])
        draws.append(matter_left)
    assert np.std(draws) > 0.02, "the intensities still vary between draws"
    strong = [sides(RANDOMISATION, seed) for seed in range(10)]
    assert max(abs(np.log(a / b)) for a, b, _ in strong) > 0.1, "the strong randomisation has bias fields"

    import yaml

    section = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["training"]
    assert (section["randomisation"], section["finetune_randomisation"]) == ("mild", "mild")
    with pytest.raises(ValueError, match="randomisation"):
        train(
            np.zeros((2, 32, 32, 1), np.float32), np.zeros((2, 32, 32), np.uint8), TrainingSettings(randomisation="x")
        )


def test_training_section_of_the_config_maps_onto_the_training_settings():
    """Every hyper-parameter of config/config.yaml reaches TrainingSettings; a fine-tuning run
    takes its epochs, learning rate and randomisation from the finetune_* keys."""
    import yaml

    from msprofile.segmentation.config import training_settings
    from msprofile.segmentation.train import TrainingSettings

    section = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["training"]
    section = {**section, "epochs": 41, "finetune_epochs": 3, "learning_rate": 1e-3, "finetune_learning_rate": 7e-5}
    scratch = TrainingSettings(**training_settings(section, finetune=False))
    tuned = TrainingSettings(**training_settings(section, finetune=True))
    assert (scratch.epochs, scratch.learning_rate, scratch.randomisation) == (41, 1e-3, section["randomisation"])
    assert (tuned.epochs, tuned.learning_rate, tuned.randomisation) == (3, 7e-5, section["finetune_randomisation"])
    assert scratch.seed == tuned.seed == section["seed"]
    assert scratch.normalisation == section["normalisation"]


def test_shipped_model_transfers_to_another_scanner(tmp_path):
    """The shipped model on a scan of a scanner it never saw (ISBI 2015, 3 T, skull on,
    4.4 mm slices), as the workflow runs it with the default configuration (every network the
    model folder holds, up to ``ensemble_members``; flips as configured): lesion Dice against
    rater 1 and how well its uncertainty map finds its errors."""
    import yaml

    from msprofile.io import load_image, load_manual_labels
    from msprofile.jobs.preprocess import preprocess_subject
    from msprofile.jobs.segmentation import segment_subject
    from msprofile.preprocess import PreprocessSettings
    from msprofile.segmentation.evaluate import auroc_from_histograms, error_histograms, evaluate_subject, wrong_voxels

    from conftest import REPO, require_isbi_sample

    isbi = require_isbi_sample() / ISBI_SUBJECT
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    paths = {k: tmp_path / f"{k}.nii.gz" for k in ("brain", "flair", "seg", "unc")}
    preprocess_subject(
        ISBI_SUBJECT,
        isbi / "flair.nii.gz",
        skull_stripped=False,
        settings=PreprocessSettings.from_config(config["preprocess"]),
        brain_mask_path=paths["brain"],
        flair_preproc_path=paths["flair"],
        qc_json_path=tmp_path / "qc.json",
        qc_png_path=tmp_path / "qc.png",
    )
    segment_subject(
        ISBI_SUBJECT,
        paths["flair"],
        paths["brain"],
        REPO / config["segmentation"]["model"],
        paths["seg"],
        paths["unc"],
        members=config["segmentation"]["ensemble_members"],
        flips=config["segmentation"]["test_time_flips"],
        device="cpu",
    )
    predicted, affine = load_image(paths["seg"], ISBI_SUBJECT, dtype=np.uint8)
    native = Grid(predicted.shape, affine)
    reference, _, classes = load_manual_labels(ISBI_SUBJECT, isbi / "wmh_rater1.nii.gz", "", native)
    (row,) = evaluate_subject(ISBI_SUBJECT, reference, predicted, native.voxel_size_mm, classes=classes)
    assert row["dice"] >= ISBI_LESION_DICE_FLOOR
    uncertainty = load_image(paths["unc"], ISBI_SUBJECT)[0]
    brain = load_image(paths["brain"], ISBI_SUBJECT, dtype=np.uint8)[0] > 0
    histograms = error_histograms(uncertainty, wrong_voxels(reference, predicted, classes), brain)
    assert auroc_from_histograms(histograms["wrong"], histograms["right"]) >= ISBI_UNCERTAINTY_AUROC_FLOOR


def test_brain_only_networks_run_on_the_brain_box_of_whole_slice_zscores():
    """A brain_slice_zscore network sees the slices z-scored over the whole model grid, cut to
    the brain's box and slices; everything else is background, certain. Whole-slice z-score
    networks still see every whole slice."""
    from msprofile.segmentation.data import BRAIN_SLICE_ZSCORE, SLICE_ZSCORE, model_input
    from msprofile.segmentation.infer import brain_box, ensemble_probabilities

    rng = np.random.default_rng(1)
    flair = rng.uniform(0, 2, (96, 80, 7)).astype(np.float32)
    brain = np.zeros(flair.shape, dtype=bool)
    brain[30:60, 20:50, 2:6] = True
    seen = []

    def network(batch):
        seen.append(batch.copy())
        out = np.zeros((*batch.shape[:3], 3), np.float32)
        out[..., 2] = 1.0
        return out

    probabilities = ensemble_probabilities([network], flair, brain, normalisation=BRAIN_SLICE_ZSCORE)
    rows, columns, slices = brain_box(brain)
    expected = model_input(flair, brain, BRAIN_SLICE_ZSCORE)[slices][:, rows, columns]
    np.testing.assert_array_equal(np.concatenate(seen), expected)
    assert expected.shape[1:3] == (64, 64) and expected.shape[0] == 4
    lesion = probabilities[..., 2] == 1.0
    assert lesion[rows, columns][:, :, slices].all()
    assert lesion.sum() == 64 * 64 * 4
    seen.clear()
    ensemble_probabilities([network], flair, brain, normalisation=SLICE_ZSCORE)
    assert np.concatenate(seen).shape == (7, 96, 80, 1)
