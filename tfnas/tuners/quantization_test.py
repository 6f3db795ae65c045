"""MixedPrecisionDNAS: registry, arguments, plug-ins, a tiny search with derived bits."""

import keras
import numpy as np
import pytest

import tfnas
from tfnas import blocks
from tfnas.blocks.rules import BitWidthMixture
from tfnas.engine import quantization_steps
from tfnas.quantization import QuantizedConv2D
from tfnas.tuners.quantization import MixedPrecisionDNAS


def build(hp):
    inputs = keras.Input((8, 8, 1))
    x = blocks.bit_width_choice(
        hp, "conv", lambda: keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        weight_bits=[2, 8], activation_bits=8)(inputs)  # fmt: skip
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])  # fmt: skip
    return model


def test_registered_and_its_plug_ins():
    assert tfnas.oracles.get("mixed_precision_dnas") is MixedPrecisionDNAS
    oracle = MixedPrecisionDNAS(seed=0, cost="model_size", beta=0.5, gamma=2.0, warmup_epochs=1)
    rule = oracle.make_mixing_rule()
    assert isinstance(rule, BitWidthMixture) and not rule.hard and rule.temperature == 5.0
    step = oracle.make_architecture_step()
    assert isinstance(step, quantization_steps.CostScaledStep)
    assert (step.beta, step.gamma, step.cost.metric, step.split) == (0.5, 2.0, "model_size",
                                                                     "validation")  # fmt: skip
    assert oracle.alphas_frozen(0) and not oracle.alphas_frozen(1)
    assert oracle.temperature_at(1.0) == pytest.approx(0.087)
    assert oracle.derived_bits({"a/weight_bits": 4, "a/activation_bits": 8, "op": "x"}) == {
        "a": {"weight_bits": 4, "activation_bits": 8}}  # fmt: skip


@pytest.mark.parametrize("kwargs, message", [
    ({"cost": "flops"}, "cost"), ({"beta": 0.0}, "beta"), ({"gamma": -1.0}, "gamma"),
    ({"warmup_epochs": -1}, "warmup_epochs"), ({"temperature": (1.0, 0.0)}, "temperature"),
])  # fmt: skip
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MixedPrecisionDNAS(**kwargs)


def test_warmup_must_leave_epochs():
    with pytest.raises(ValueError, match="warmup_epochs=2, epochs=2"):
        MixedPrecisionDNAS(warmup_epochs=2).check_epochs(2)


def test_a_search_derives_per_layer_bits_and_exports_quantized_layers(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, 64)
    oracle = MixedPrecisionDNAS(seed=0, gamma=3.0, arch_learning_rate=0.05)
    tuner = tfnas.Tuner(build, oracle=oracle, directory=str(tmp_path), project_name="q")
    tuner.search(x[:32], y[:32], validation_data=(x[32:], y[32:]), epochs=1, batch_size=16,
                 verbose=0)  # fmt: skip
    bits = oracle.derived_bits()
    trial = oracle.get_best_trials(1)[0]
    assert trial.hyperparameters.values["conv/weight_bits"] == bits["conv"]["weight_bits"]
    probabilities = oracle.softmax()["conv"]
    assert bits["conv"]["weight_bits"] == [2, 8][int(np.argmax(probabilities))]
    (conv,) = [layer for layer in tuner.get_best_models(1)[0].layers
               if isinstance(layer, QuantizedConv2D)]  # fmt: skip
    assert conv.weight_bits == bits["conv"]["weight_bits"] and conv.activation_bits == 8
