"""A small CNN whose every layer has a searched precision (the `--quantization` space).

Three 3x3 convolutions (16, 32 stride 2, 32 channels, ReLU), global average pooling and a
dense head; each layer a `tfnas.blocks.bit_width_choice` (per-channel weight ranges).
The first layer's input is the image, quantized to 8 bits like an int8 model's input.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tfnas.quantization.bits import ACTIVATION_BITS, WEIGHT_BITS

LAYERS = ("conv1", "conv2", "conv3", "head")


def bit_width_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    weight_bits: int | Sequence[int] = WEIGHT_BITS,
    activation_bits: int | Sequence[int] = ACTIVATION_BITS,
    learning_rate: float = 0.005,
):
    """`build(hp)` of the CNN: per-layer `name/weight_bits` and `name/activation_bits`.

    Args:
        input_shape: one image's shape, e.g. (8, 8, 1).
        num_classes: the head's logits.
        weight_bits, activation_bits: the candidates of every layer (an int: fixed,
            e.g. 8 and 8 for uniform int8 QAT).
        learning_rate: Adam's learning rate.
    """
    from tfnas import blocks

    specs = {
        "conv1": lambda: keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        "conv2": lambda: keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        "conv3": lambda: keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        "head": lambda: keras.layers.Dense(num_classes),
    }

    def build(hp):
        inputs = keras.Input(tuple(input_shape))
        x = inputs
        for name in LAYERS:
            if name == "head":
                x = keras.layers.GlobalAveragePooling2D()(x)
            x = blocks.bit_width_choice(
                hp, name, specs[name], weight_bits=weight_bits,
                activation_bits=8 if name == "conv1" else activation_bits, per_channel=True,
            )(x)  # fmt: skip
        model = keras.Model(inputs, x)
        model.compile(
            keras.optimizers.Adam(learning_rate),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    return build
