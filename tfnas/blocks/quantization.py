"""Bit-width choice points: a layer's weight and activation bits as searched decisions.

`bit_width_choice` registers `f"{name}/weight_bits"` and `f"{name}/activation_bits"` as
KerasTuner choices (a fixed value when given a single int), so any oracle searches
precision: a multi-trial oracle (random, evolution, Bayesian, ...) then runs a QAT
mixed-precision search, each trial training its own quantized network; a weight-sharing
oracle builds a supernet whose candidates of one layer quantize one shared full-precision
weight tensor (`tfnas.quantization.BitWidthCandidate`), as Wu et al. (2018)'s DNAS does.
Architecture and precision can be searched jointly by using both kinds of choice points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import keras_tuner

from tfnas.blocks.choices import attribute_choice
from tfnas.quantization.bits import ACTIVATION_BITS, WEIGHT_BITS, check_bits_list
from tfnas.quantization.layers import (
    BitWidthCandidate,
    QuantizedActivation,
    quantize_layer,
    quantized_class,
)


def _check_per_channel(name: str, layer: keras.layers.Layer, per_channel) -> None:
    if not isinstance(per_channel, bool):
        raise ValueError(
            f"per_channel of choice {name!r} must be a bool. Received: per_channel={per_channel!r}"
        )
    try:
        quantized_class(layer)
    except ValueError:
        what = "per-channel quantization" if per_channel else "a weight bit width"
        raise ValueError(
            f"Choice {name!r}: {what} applies to a layer with kernel channels (Conv2D, "
            "DepthwiseConv2D, SeparableConv2D, Dense); use activation_bits_choice for an "
            f"activation. Received: layer of type {type(layer).__name__}"
        ) from None


def bit_width_choice(
    hp: keras_tuner.HyperParameters,
    name: str,
    layer: Callable[[], keras.layers.Layer],
    *,
    weight_bits: int | Sequence[int] = WEIGHT_BITS,
    activation_bits: int | Sequence[int] = ACTIVATION_BITS,
    per_channel: bool = False,
    ema_decay: float = 0.99,
):
    """A quantized Conv2D / DepthwiseConv2D / SeparableConv2D / Dense with searched bits.

    Args:
        hp: the trial's hyperparameters or `SupernetHyperParameters`.
        name: the prefix of the hyperparameters `name/weight_bits`, `name/activation_bits`.
        layer: zero-argument callable returning a fresh standard Keras layer (its config
            is reused; the layer itself is not).
        weight_bits: candidate weight bits (2..8, or 16 / 32 for float), or one int.
        activation_bits: candidate bits of the layer's input, or one int.
        per_channel: per-output-channel weight ranges.
        ema_decay: decay of the input range's moving average.

    Returns:
        In fixed mode the quantized layer of the chosen bits; in supernet mode a
        `LayerChoice` over every (weight bits, activation bits) pair whose candidates
        share one float weight tensor.

    Raises:
        ValueError: for bits outside 2..8 / 16 / 32, or a layer without kernel channels.

    Example:

    ```python
    x = tfnas.blocks.bit_width_choice(
        hp, "conv1", lambda: keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        weight_bits=[2, 4, 8], activation_bits=[4, 8])(x)
    ```
    """
    if not callable(layer) or isinstance(layer, keras.layers.Layer):
        raise TypeError(
            f"layer of choice {name!r} must be a zero-argument factory returning a new Keras "
            f"layer (e.g. `lambda: keras.layers.Conv2D(16, 3)`). Received: {layer!r}"
        )
    weights = check_bits_list("weight_bits", weight_bits)
    activations = check_bits_list("activation_bits", activation_bits)
    _check_per_channel(name, layer(), per_channel)

    def make(weight_bits, activation_bits):
        return quantize_layer(layer(), weight_bits=weight_bits, activation_bits=activation_bits,
                              per_channel=per_channel, ema_decay=ema_decay)  # fmt: skip

    def shared(combos):
        owner = make(32, 32)
        return [
            BitWidthCandidate(owner, weight_bits=c["weight_bits"],
                              activation_bits=c["activation_bits"], per_channel=per_channel)
            for c in combos
        ]  # fmt: skip

    return attribute_choice(
        hp, name, make, shared_factory=shared,
        weight_bits=weights if len(weights) > 1 else weights[0],
        activation_bits=activations if len(activations) > 1 else activations[0],
    )  # fmt: skip


def activation_bits_choice(
    hp: keras_tuner.HyperParameters,
    name: str,
    activation="relu",
    *,
    activation_bits: Sequence[int] = ACTIVATION_BITS,
    ema_decay: float = 0.99,
):
    """A `QuantizedActivation` whose output bits are searched (`name/activation_bits`).

    Raises:
        ValueError: for bits outside 2..8 / 16 / 32.
    """
    bits = check_bits_list("activation_bits", activation_bits)
    return attribute_choice(
        hp, name,
        lambda activation_bits: QuantizedActivation(
            activation, activation_bits=activation_bits, ema_decay=ema_decay),
        activation_bits=bits if len(bits) > 1 else bits[0],
    )  # fmt: skip
