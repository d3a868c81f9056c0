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
  scalings, intensity gamma and noise. The reference used none.
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
    """Hyper-parameters of :func:`train` (the ``training`` section of the config)."""

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
    seed: int = 20261124

    def to_dict(self) -> dict:
        return asdict(self)


def dice_ce_loss(num_classes: int = len(SEGMENTATION_CLASS_NAMES), dice_weight: float = 1.0):
    """Sparse categorical cross-entropy plus ``dice_weight`` x (1 - mean soft Dice of classes 1..C-1).

    Soft Dice is computed over the whole batch (pooled), which is stable even when a batch
    holds no lesion at all.
    """
    import keras
    from keras import ops

    def loss(y_true, y_pred):
        y_true = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32")
        one_hot = ops.one_hot(y_true, num_classes)
        ce = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        axes = (0, 1, 2)
        intersection = ops.sum(one_hot * y_pred, axis=axes)
        sizes = ops.sum(one_hot, axis=axes) + ops.sum(y_pred, axis=axes)
        soft_dice = (2.0 * intersection + 1.0) / (sizes + 1.0)
        return ops.mean(ce) + dice_weight * (1.0 - ops.mean(soft_dice[1:]))

    return loss


def _patch_centre(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, foreground_fraction: float) -> np.ndarray:
    """A patch centre: on a ventricle or lesion pixel (each class equally often) with
    probability ``foreground_fraction`` when the slice has them, else anywhere in the head."""
    if rng.random() < foreground_fraction:
        present = [label for label in (1, 2) if (y == label).any()]
        if present:
            candidates = np.argwhere(y == present[rng.integers(len(present))])
            return candidates[rng.integers(len(candidates))]
    head = np.argwhere(x > 0)
    return head[rng.integers(len(head))] if len(head) else np.array(y.shape) // 2


def augment_batch(
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    crop: int,
    augment: bool,
    foreground_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Random patches of a batch of slices, with geometric and intensity augmentation.

    ``x``: (N, H, W, 1) float32 standardised slices; ``y``: (N, H, W) uint8 labels. Returns
    (N, crop, crop, 1) and (N, crop, crop). Patch centres fall on a ventricle or lesion with
    probability ``foreground_fraction`` (lesions are rare: without this most patches teach
    only background), otherwise within the head (pixels above the slice's mean).
    """
    n = len(y)
    out_x = np.empty((n, crop, crop, 1), dtype=np.float32)
    out_y = np.empty((n, crop, crop), dtype=np.uint8)
    for i in range(n):
        centre = _patch_centre(x[i, :, :, 0], y[i], rng, foreground_fraction)
        angle = rng.uniform(-10, 10) if augment else 0.0
        scale = rng.uniform(0.9, 1.1) if augment else 1.0
        c, s = math.cos(math.radians(angle)) / scale, math.sin(math.radians(angle)) / scale
        matrix = np.array([[c, -s], [s, c]])
        offset = centre - matrix @ np.array([crop / 2.0 - 0.5, crop / 2.0 - 0.5])
        image = ndimage.affine_transform(
            x[i, :, :, 0],
            matrix,
            offset,
            (crop, crop),
            order=1,
            mode="constant",
            cval=float(x[i, :, :, 0].min()),
            prefilter=False,
        )
        labels = ndimage.affine_transform(y[i], matrix, offset, (crop, crop), order=0, mode="constant", cval=0)
        if augment:
            if rng.random() < 0.5:
                image, labels = image[::-1], labels[::-1]
            low = image.min()
            span = max(float(image.max() - low), 1e-6)
            image = low + span * ((image - low) / span) ** rng.uniform(0.8, 1.25)
            image = image * rng.uniform(0.9, 1.1) + rng.normal(0, 0.05, image.shape)
        out_x[i, :, :, 0] = image
        out_y[i] = labels
    return out_x, out_y


def learning_rate_at(epoch: int, settings: TrainingSettings) -> float:
    """Cosine decay from ``learning_rate`` to ``final_learning_rate`` over the epochs."""
    progress = epoch / max(settings.epochs - 1, 1)
    return settings.final_learning_rate + 0.5 * (settings.learning_rate - settings.final_learning_rate) * (
        1 + math.cos(math.pi * progress)
    )


def train(x: np.ndarray, y: np.ndarray, settings: TrainingSettings = TrainingSettings(), *, on_epoch=None):
    """Train a new network on slices ``x`` (N, H, W, 1) with labels ``y`` (N, H, W).

    Deterministic for a given ``settings.seed`` on one machine (seeded NumPy, Keras and
    TensorFlow; TensorFlow's deterministic ops). ``on_epoch(epoch, loss, model)``, when given,
    is called after every epoch (for logging or held-out scoring). Returns the model and the
    list of per-epoch mean training losses.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(settings.seed)
    model = build_attention_unet(input_shape=(None, None, 1), base_filters=settings.base_filters)
    optimizer = keras.optimizers.Adam(learning_rate=settings.learning_rate)
    model.compile(optimizer=optimizer, loss=dice_ce_loss(dice_weight=settings.dice_weight))
    losses = []
    for epoch in range(settings.epochs):
        optimizer.learning_rate.assign(learning_rate_at(epoch, settings))
        batch_losses = []
        for _ in range(settings.steps_per_epoch):
            index = rng.integers(0, len(x), settings.batch_size)
            bx, by = augment_batch(
                x[index],
                y[index],
                rng,
                crop=settings.crop,
                augment=settings.augment,
                foreground_fraction=settings.foreground_fraction,
            )
            batch_losses.append(float(model.train_on_batch(bx, by)))
        losses.append(float(np.mean(batch_losses)))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1], model)
    return model, losses
