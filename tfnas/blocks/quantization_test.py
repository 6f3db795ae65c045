"""Bit-width choice points: fixed mode, shared weights in supernet mode, bad input."""

import keras
import keras_tuner
import numpy as np
import pytest

from tfnas import blocks
from tfnas.blocks.rules import BitWidthMixture
from tfnas.blocks.supernet import LayerChoice, SupernetHyperParameters
from tfnas.quantization import BitWidthCandidate, QuantizedActivation, QuantizedConv2D


def _conv():
    return keras.layers.Conv2D(4, 3, padding="same")


def test_fixed_mode_builds_the_chosen_precision():
    hp = keras_tuner.HyperParameters()
    hp.values.update({"c/weight_bits": 3, "c/activation_bits": 8})
    layer = blocks.bit_width_choice(hp, "c", _conv, weight_bits=[2, 3, 8])
    assert isinstance(layer, QuantizedConv2D)
    assert (layer.weight_bits, layer.activation_bits) == (3, 8)
    assert {p.name: list(p.values) for p in hp.space} == {
        "c/weight_bits": [2, 3, 8], "c/activation_bits": [4, 8]}  # fmt: skip
    act = blocks.activation_bits_choice(keras_tuner.HyperParameters(), "a", "relu")
    assert isinstance(act, QuantizedActivation) and act.activation_bits == 4


def test_supernet_candidates_share_one_float_weight_tensor():
    hp = SupernetHyperParameters(BitWidthMixture(seed=0))
    inputs = keras.Input((6, 6, 2))
    choice = blocks.bit_width_choice(hp, "c", _conv, weight_bits=[2, 4], activation_bits=[4, 8])
    model = keras.Model(inputs, choice(inputs))
    assert isinstance(choice, LayerChoice) and len(choice.candidates) == 4
    assert all(isinstance(c, BitWidthCandidate) for c in choice.candidates)
    assert len({id(c.shared) for c in choice.candidates}) == 1
    # One kernel and one bias trained; each candidate owns only its ranges.
    assert len(model.trainable_weights) == 2
    assert choice.candidate_values[1] == {"c/weight_bits": 2, "c/activation_bits": 8}
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype("float32")
    hp.mixing_rule.set_architecture({"c/weight_bits": 4, "c/activation_bits": 8})
    exported = choice.candidates[3].export_layer()
    assert (exported.weight_bits, exported.activation_bits) == (4, 8)
    np.testing.assert_allclose(model(x), exported(x), atol=1e-5)


def test_bad_input():
    hp = keras_tuner.HyperParameters()
    with pytest.raises(ValueError, match="Received: weight_bits=1"):
        blocks.bit_width_choice(hp, "c", _conv, weight_bits=[1, 4])
    with pytest.raises(ValueError, match="Received: activation_bits=\\[4, 4\\]"):
        blocks.bit_width_choice(hp, "c", _conv, activation_bits=[4, 4])
    with pytest.raises(
        ValueError, match="per-channel quantization.*Received: layer of type Flatten"
    ):
        blocks.bit_width_choice(hp, "f", keras.layers.Flatten, per_channel=True)
    with pytest.raises(TypeError, match="factory"):
        blocks.bit_width_choice(hp, "c", _conv())
