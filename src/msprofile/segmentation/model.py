"""The reference 2-D Attention U-Net, with its width as a parameter.

``base_filters=64`` reproduces the reference network (31,380,327 parameters, about 98 GFLOPs
per 256 x 256 slice): encoder of 4 levels (two 3x3 conv + ReLU each, filters f, 2f, 4f, 8f,
2x2 max-pool, dropout 0.1/0.1/0.2/0.2), bridge of two 3x3 conv with 16f filters and dropout
0.3, decoder of 2x2 transposed convs (stride 2) with an additive attention gate on each skip
connection, ``psi = sigmoid(conv1x1(relu(conv1x1(g) + conv1x1(x))))`` with F = 4f, 2f, f, f/2
intermediate channels, concatenation, dropout 0.2/0.2/0.1/0.1, two 3x3 conv + ReLU, and a
1x1 conv to the classes with softmax. No normalisation layers, as in the reference.
"""

from __future__ import annotations

import keras
from keras import layers

from ..labels import SEGMENTATION_CLASS_NAMES

ENCODER_DROPOUT = (0.1, 0.1, 0.2, 0.2)
BRIDGE_DROPOUT = 0.3
DECODER_DROPOUT = (0.2, 0.2, 0.1, 0.1)


def _conv_block(x, filters: int, name: str):
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_conv{i}")(x)
    return x


def _attention_gate(skip, gating, intermediate: int, name: str):
    """Additive attention: weight the skip tensor by a sigmoid map computed from both inputs."""
    theta = layers.Conv2D(intermediate, 1, name=f"{name}_theta")(skip)
    phi = layers.Conv2D(intermediate, 1, name=f"{name}_phi")(gating)
    psi = layers.Activation("relu", name=f"{name}_relu")(layers.Add(name=f"{name}_add")([theta, phi]))
    psi = layers.Conv2D(1, 1, activation="sigmoid", name=f"{name}_psi")(psi)
    return layers.Multiply(name=f"{name}_weighted")([skip, psi])


def build_attention_unet(
    input_shape=(256, 256, 1),
    num_classes: int = len(SEGMENTATION_CLASS_NAMES),
    base_filters: int = 64,
    name: str = "attention_unet",
) -> keras.Model:
    """Build the network. ``input_shape`` is (height, width, channels) with height and width
    divisible by 16; returns an uncompiled :class:`keras.Model` whose output is the softmax
    over ``num_classes`` per pixel, shape (batch, height, width, num_classes)."""
    f = base_filters
    inputs = keras.Input(shape=input_shape, name="flair")
    x = inputs
    skips = []
    for level, (filters, rate) in enumerate(zip((f, 2 * f, 4 * f, 8 * f), ENCODER_DROPOUT), start=1):
        x = _conv_block(x, filters, f"enc{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
        x = layers.Dropout(rate, name=f"enc{level}_drop")(x)
    x = _conv_block(x, 16 * f, "bridge")
    x = layers.Dropout(BRIDGE_DROPOUT, name="bridge_drop")(x)
    decoder = zip((8 * f, 4 * f, 2 * f, f), (4 * f, 2 * f, f, max(f // 2, 1)), DECODER_DROPOUT, reversed(skips))
    for level, (filters, intermediate, rate, skip) in enumerate(decoder, start=1):
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"dec{level}_up")(x)
        gated = _attention_gate(skip, x, intermediate, f"dec{level}_att")
        x = layers.Concatenate(name=f"dec{level}_concat")([x, gated])
        x = layers.Dropout(rate, name=f"dec{level}_drop")(x)
        x = _conv_block(x, filters, f"dec{level}")
    outputs = layers.Conv2D(num_classes, 1, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name=name)


def inference_copy(model: keras.Model) -> keras.Model:
    """A fresh, uncompiled copy of a trained :func:`build_attention_unet` network with its weights.

    What a model folder stores: inference needs neither the optimizer state (Adam's two moments
    would triple the file) nor the training loss (a custom loss cannot be loaded in safe mode).
    """
    copy = build_attention_unet(
        input_shape=model.input_shape[1:],
        num_classes=model.output_shape[-1],
        base_filters=model.get_layer("enc1_conv1").filters,
        name=model.name,
    )
    copy.set_weights(model.get_weights())
    return copy
