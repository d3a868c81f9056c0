"""Training of the Attention U-Net on labelled slices.

What differs from the reference (docs/method.md section 3), and why:

* **Split by subject.** The reference validated on a random split of slices, so slices of
  the same subject sat on both sides. Here whole subjects are held out.
* **No early stopping on the held-out subject.** With a handful of labelled subjects, using
  the held-out subject to pick the epoch would leak it into training; the schedule (epochs,
  learning-rate decay) is fixed in advance instead and the held-out subject is only scored.
* **Loss**: cross-entropy plus soft Dice of the foreground classes. Lesions are about 0.1 %
  of the voxels; cross-entropy alone (what the reference really trained with) lets the
  network ignore them.
* **Augmentation**: random crops centred in the head, left-right flips, small rotations and
  scalings, and appearance randomisation (:data:`RANDOMISATIONS`: strong for a training from
  scratch, mild, gamma and noise alone, for fine-tuning a model trained with it). The
  reference used none.
* **Patches**: training runs on ``crop`` x ``crop`` patches, two thirds of them centred on a
  ventricle or lesion pixel; the network is fully convolutional, so inference still takes the
  whole slice. Patches cut the cost of a step by three quarters, and centring them on the
  rare classes lets the network see lesions in most steps rather than in a few.
* **Steps, not passes**: an epoch is ``steps_per_epoch`` batches drawn at random, so the
  schedule does not shrink with the number of labelled slices (about 80 here, 1,800 in
  the reference).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from ..labels import SEGMENTATION_CLASS_NAMES
from .augment import Randomisation, randomise_appearance
from .data import NORMALISATION, NORMALISATIONS, ZSCORED_NORMALISATIONS
from .model import build_attention_unet

DEVICES = ("auto", "gpu", "cpu")


def configure_tensorflow(device: str) -> str:
    """Choose where TensorFlow trains; call before anything imports TensorFlow.

    ``device``: ``"cpu"`` hides every GPU; ``"gpu"`` requires one; ``"auto"`` uses a GPU when
    TensorFlow sees one. GPU memory grows on demand rather than being taken whole, so several
    jobs can share a card. Returns the device used, ``"gpu"`` or ``"cpu"``.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise RuntimeError("segmentation.device is 'gpu' but TensorFlow sees no GPU on this machine")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    return "gpu" if gpus else "cpu"


@dataclass(frozen=True)
class TrainingSettings:
    """Hyper-parameters of :func:`train` (the ``training`` section of the config).

    ``randomisation``: the appearance randomisation of augmented patches, a key of
    :data:`RANDOMISATIONS` (``"strong"``: :data:`RANDOMISATION`; ``"mild"``:
    :data:`MILD_RANDOMISATION`, for fine-tuning a model trained with it).
    ``synthetic_fraction``: share of the training patches painted from phantom label maps
    (:mod:`msprofile.segmentation.synthetic`) instead of taken from the real slices.
    ``context_slices``: neighbouring slices on each side given as extra input channels
    (0: 2-D input; 1: 2.5-D, three channels). ``normalisation``: the network input
    (:data:`msprofile.segmentation.data.NORMALISATIONS`); patches are augmented in anchored
    units in every case, and for the z-scored inputs
    (:data:`~msprofile.segmentation.data.ZSCORED_NORMALISATIONS`) then z-scored with their whole
    slice's mean and SD (:func:`augment_batch`).
    """

    base_filters: int = 16
    epochs: int = 80
    batch_size: int = 8
    learning_rate: float = 1e-3
    final_learning_rate: float = 5e-5
    crop: int = 128
    steps_per_epoch: int = 32
    foreground_fraction: float = 0.67
    dice_weight: float = 1.0
    augment: bool = True
    randomisation: str = "mild"
    synthetic_fraction: float = 0.0
    context_slices: int = 0
    normalisation: str = NORMALISATION
    seed: int = 20261124

    def to_dict(self) -> dict:
        return asdict(self)


#: Training label of a voxel known not to be a lesion whose ventricle label is unknown: a scan
#: labelled for lesions only (the ISBI raters drew no ventricles). The loss asks the network for
#: "background or ventricles" there (the two probabilities summed), which teaches lesions without
#: teaching that the ventricles are background.
NOT_LESION = 3

#: Global norm the gradients are clipped to before each Adam step.
GRADIENT_CLIP_NORM = 1.0

#: Appearance randomisation of every augmented patch when training from scratch
#: (:mod:`msprofile.segmentation.augment`): contrasts, coils, resolutions and noise of other scanners.
RANDOMISATION = Randomisation()
#: Intensity augmentation alone, about what msprofile 0.1 drew and the shipped
#: ``msprofile-default`` was trained with (gamma 0.8 to 1.25, intensity scale 0.9 to 1.1, light
#: noise; docs/method.md section 3): no histogram warp (its slopes' SD is 0, so only the gamma
#: changes the contrast), bias field, resolution or blur. Fine-tuning that model on one site's
#: scans with :data:`RANDOMISATION` taught it inputs it never sees at inference and tripled its
#: false positives on a held-out scan of the site (README, "Adapting the model to your scanner").
MILD_RANDOMISATION = Randomisation(
    probability_resolution=0.0,
    probability_blur=0.0,
    probability_bias=0.0,
    probability_warp=1.0,
    warp_log_sd=0.0,
    gamma_log_sd=0.13,
    probability_noise=1.0,
    noise_sd=(0.02, 0.03),
    scale=(0.9, 1.1),
)
#: The randomisations ``training.randomisation`` and ``training.finetune_randomisation`` name.
RANDOMISATIONS = {"strong": RANDOMISATION, "mild": MILD_RANDOMISATION}


def dice_ce_loss(num_classes: int = len(SEGMENTATION_CLASS_NAMES), dice_weight: float = 1.0):
    """Cross-entropy plus ``dice_weight`` x (1 - mean soft Dice of classes 1..C-1).

    Labels are class codes, or :data:`NOT_LESION` where only "not a lesion" is known: there the
    cross-entropy is that of background and ventricles together, and the voxel counts for the
    lesion Dice (as not lesion) but not for the ventricle Dice. Soft Dice is computed over the
    whole batch (pooled), which is stable even when a batch holds no lesion at all.
    """
    import keras
    from keras import ops

    def loss(y_true, y_pred):
        y_true = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32")
        known = ops.cast(y_true < num_classes, y_pred.dtype)
        labels = ops.where(y_true < num_classes, y_true, 0)
        one_hot = ops.one_hot(labels, num_classes) * known[..., None]
        # Keras computes this cross-entropy from the softmax's logits. Computed from the
        # probabilities, its gradient turned the weights NaN after 74 steps of strongly
        # randomised patches (width 16, the default seed); from the logits it does not.
        known_ce = keras.losses.sparse_categorical_crossentropy(labels, y_pred)
        not_lesion = ops.clip(1.0 - y_pred[..., num_classes - 1], 1e-7, 1.0)
        ce = known * known_ce - (1.0 - known) * ops.log(not_lesion)
        # Where the ventricle label is unknown only the lesion class is scored.
        valid = ops.concatenate(
            [ops.repeat(known[..., None], num_classes - 1, axis=-1), ops.ones_like(known)[..., None]], axis=-1
        )
        axes = (0, 1, 2)
        intersection = ops.sum(one_hot * y_pred * valid, axis=axes)
        sizes = ops.sum(one_hot * valid, axis=axes) + ops.sum(y_pred * valid, axis=axes)
        soft_dice = (2.0 * intersection + 1.0) / (sizes + 1.0)
        return ops.mean(ce) + dice_weight * (1.0 - ops.mean(soft_dice[1:]))

    return loss


def _patch_centre(head: np.ndarray, y: np.ndarray, rng: np.random.Generator, foreground_fraction: float) -> np.ndarray:
    """A patch centre: on a ventricle or lesion pixel (each class equally often) with
    probability ``foreground_fraction`` when the slice has them, else anywhere in ``head``."""
    if rng.random() < foreground_fraction:
        present = [label for label in (1, 2) if (y == label).any()]
        if present:
            candidates = np.argwhere(y == present[rng.integers(len(present))])
            return candidates[rng.integers(len(candidates))]
    inside = np.argwhere(head)
    return inside[rng.integers(len(inside))] if len(inside) else np.array(y.shape) // 2


def transform_patch(
    image: np.ndarray, labels: np.ndarray, centre, *, crop: int, angle_deg: float = 0.0, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """A ``crop`` x ``crop`` patch of ``image`` (H, W, C) and ``labels`` (H, W) centred on
    ``centre`` (row, column), rotated by ``angle_deg`` and magnified by ``scale``: linear
    interpolation for the image (0 outside it), nearest neighbour for the labels (background
    outside). Returns (crop, crop, C) float32 and (crop, crop) uint8."""
    c = math.cos(math.radians(angle_deg)) / scale
    s = math.sin(math.radians(angle_deg)) / scale
    matrix = np.array([[c, -s], [s, c]])
    offset = np.asarray(centre, dtype=float) - matrix @ np.array([crop / 2.0 - 0.5, crop / 2.0 - 0.5])
    channels = [
        ndimage.affine_transform(
            image[:, :, k], matrix, offset, (crop, crop), order=1, mode="constant", cval=0.0, prefilter=False
        )
        for k in range(image.shape[2])
    ]
    patch_labels = ndimage.affine_transform(labels, matrix, offset, (crop, crop), order=0, mode="constant", cval=0)
    return np.stack(channels, axis=-1).astype(np.float32), patch_labels.astype(np.uint8)


def augment_batch(
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    crop: int,
    augment: bool,
    foreground_fraction: float = 0.0,
    painted: np.ndarray | None = None,
    zscore: bool = False,
    randomisation: Randomisation = RANDOMISATION,
) -> tuple[np.ndarray, np.ndarray]:
    """Random patches of a batch of slices, with geometric augmentation and appearance randomisation.

    ``x``: (N, H, W, C) float32 slices in anchored units (C: the slice and its neighbours);
    ``y``: (N, H, W) uint8 labels. ``painted``: (N,) bool, True for slices whose image is a
    phantom label map (:class:`msprofile.synthetic.phantom.Tissue` codes) to be painted first
    (:func:`msprofile.segmentation.synthetic.paint`). Returns (N, crop, crop, C) and
    (N, crop, crop). Patch centres fall on a ventricle or lesion with probability
    ``foreground_fraction`` (lesions are rare: without this most patches teach only
    background), otherwise within the head. With ``augment``: left-right flips, rotations
    within +-15 degrees, scalings 0.85 to 1.15 and :func:`~msprofile.segmentation.augment.randomise_appearance`
    as ``randomisation`` says.
    With ``zscore`` each patch channel is finally z-scored with the mean and SD of its whole
    (painted, unaugmented) slice, as :func:`msprofile.segmentation.data.zscored_slices` does at
    inference (the appearance randomisation then acts as intensity augmentation of the z-scores).
    """
    from .synthetic import paint

    n = len(y)
    out_x = np.empty((n, crop, crop, x.shape[-1]), dtype=np.float32)
    out_y = np.empty((n, crop, crop), dtype=np.uint8)
    for i in range(n):
        image = paint(x[i].astype(np.uint8), rng) if painted is not None and painted[i] else x[i]
        head = image[:, :, image.shape[2] // 2] > 0.1
        centre = _patch_centre(head, y[i], rng, foreground_fraction)
        angle = rng.uniform(-15, 15) if augment else 0.0
        scale = rng.uniform(0.85, 1.15) if augment else 1.0
        patch, labels = transform_patch(image, y[i], centre, crop=crop, angle_deg=angle, scale=scale)
        if augment:
            if rng.random() < 0.5:
                patch, labels = patch[::-1], labels[::-1]
            patch = randomise_appearance(patch, rng, randomisation)
        if zscore:
            mean, sd = image.mean(axis=(0, 1)), image.std(axis=(0, 1))
            patch = np.where(sd > 0, (patch - mean) / np.where(sd > 0, sd, 1.0), 0.0)
        out_x[i] = patch
        out_y[i] = labels
    return out_x, out_y


def ventricles_from_model(model, x: np.ndarray, y: np.ndarray, *, zscore: bool, batch_size: int = 8) -> np.ndarray:
    """``y`` with every :data:`NOT_LESION` pixel labelled background or ventricles as ``model``
    (the initial network of a fine-tuning) labels it on the whole, unaugmented slice.

    ``x``: (N, H, W, C) slices in anchored units (z-scored per slice and channel first when
    ``zscore``, as :func:`augment_batch` does); ``y``: (N, H, W) labels. Returns a uint8 copy of
    ``y``. A site's lesion-only masks say nothing about the ventricles, so the network could
    otherwise move them freely while it learns the site's lesions; these pseudo-labels keep them
    where the initial network put them (self-training with the teacher's hard labels, as in
    knowledge-distillation approaches to continual learning, e.g. Li and Hoiem 2017, "Learning
    without Forgetting").
    """
    unknown = y == NOT_LESION
    out = np.array(y, dtype=np.uint8)
    if not unknown.any():
        return out
    for start in range(0, len(x), batch_size):
        batch = np.asarray(x[start : start + batch_size], dtype=np.float32)
        if zscore:
            mean, sd = batch.mean(axis=(1, 2), keepdims=True), batch.std(axis=(1, 2), keepdims=True)
            batch = np.where(sd > 0, (batch - mean) / np.where(sd > 0, sd, 1.0), 0.0).astype(np.float32)
        probabilities = np.asarray(model(batch, training=False))
        ventricles = probabilities[..., 1] > probabilities[..., 0]
        rows = slice(start, start + len(batch))
        out[rows] = np.where(unknown[rows], ventricles.astype(np.uint8), out[rows])
    return out


def learning_rate_at(epoch: int, settings: TrainingSettings) -> float:
    """Cosine decay from ``learning_rate`` to ``final_learning_rate`` over the epochs."""
    progress = epoch / max(settings.epochs - 1, 1)
    return settings.final_learning_rate + 0.5 * (settings.learning_rate - settings.final_learning_rate) * (
        1 + math.cos(math.pi * progress)
    )


def train(
    x: np.ndarray,
    y: np.ndarray,
    settings: TrainingSettings = TrainingSettings(),
    *,
    phantoms: tuple[np.ndarray, np.ndarray] | None = None,
    init_model=None,
    on_epoch=None,
):
    """Train a network on slices ``x`` (N, H, W, C) in anchored units with labels ``y`` (N, H, W).

    ``phantoms``: ``(tissue, labels)``, phantom tissue label maps (M, H, W, C) and their
    segmentation labels (M, H, W), from which a share ``settings.synthetic_fraction`` of the
    patches is painted. ``init_model``: a trained network (same input channels) whose weights
    training starts from (fine-tuning); its width replaces ``settings.base_filters``, and the
    pixels labelled only :data:`NOT_LESION` take its ventricles (:func:`ventricles_from_model`).
    Deterministic for a given ``settings.seed`` on one machine (seeded NumPy, Keras and
    TensorFlow; TensorFlow's deterministic ops). ``on_epoch(epoch, loss, model)``, when given,
    is called after every epoch (for logging or held-out scoring). Returns the model and the
    list of per-epoch mean training losses.
    """
    import keras
    import tensorflow as tf

    if settings.normalisation not in NORMALISATIONS:
        raise ValueError(
            f"unknown training.normalisation {settings.normalisation!r}; known: {', '.join(NORMALISATIONS)}"
        )
    if settings.randomisation not in RANDOMISATIONS:
        raise ValueError(
            f"unknown training randomisation {settings.randomisation!r}; known: {', '.join(RANDOMISATIONS)}"
        )
    if settings.synthetic_fraction > 0 and phantoms is None:
        raise ValueError("training.synthetic_fraction > 0 needs phantom label maps")
    keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(settings.seed)
    channels = x.shape[-1]
    if init_model is not None:
        if init_model.input_shape[-1] != channels:
            raise ValueError(
                f"the initial model takes {init_model.input_shape[-1]} input channels, "
                f"the training slices have {channels}"
            )
        model = build_attention_unet(
            input_shape=(None, None, channels),
            num_classes=init_model.output_shape[-1],
            base_filters=init_model.get_layer("enc1_conv1").filters,
        )
        model.set_weights(init_model.get_weights())
        # Lesion-only masks leave the ventricles unlabelled: without these pseudo-labels the
        # ventricles of msprofile-default vanished in fine-tuning on two ISBI scans (-100 %).
        y = ventricles_from_model(init_model, x, y, zscore=settings.normalisation in ZSCORED_NORMALISATIONS)
    else:
        model = build_attention_unet(input_shape=(None, None, channels), base_filters=settings.base_filters)
    # Gradients clipped to norm 1: with strongly randomised inputs (bias fields, warps) and no
    # normalisation layers, an unclipped step now and then blew the weights up to NaN.
    optimizer = keras.optimizers.Adam(learning_rate=settings.learning_rate, global_clipnorm=GRADIENT_CLIP_NORM)
    model.compile(optimizer=optimizer, loss=dice_ce_loss(dice_weight=settings.dice_weight))
    losses = []
    for epoch in range(settings.epochs):
        optimizer.learning_rate.assign(learning_rate_at(epoch, settings))
        batch_losses = []
        for _ in range(settings.steps_per_epoch):
            painted = rng.random(settings.batch_size) < settings.synthetic_fraction
            index = rng.integers(0, len(x), settings.batch_size)
            bx, by = x[index], y[index]
            if painted.any():
                chosen = rng.integers(0, len(phantoms[0]), int(painted.sum()))
                bx, by = bx.copy(), by.copy()
                bx[painted], by[painted] = phantoms[0][chosen], phantoms[1][chosen]
            bx, by = augment_batch(
                bx,
                by,
                rng,
                crop=settings.crop,
                augment=settings.augment,
                foreground_fraction=settings.foreground_fraction,
                painted=painted,
                zscore=settings.normalisation in ZSCORED_NORMALISATIONS,
                randomisation=RANDOMISATIONS[settings.randomisation],
            )
            batch_losses.append(float(model.train_on_batch(bx, by)))
        losses.append(float(np.mean(batch_losses)))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1], model)
    return model, losses
