"""BinaryGateMixture: one path per weight step, gated paths, sampling, config, TFLite."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas import blocks
from tfnas.blocks.rules.binary_gate import BinaryGateMixture
from tfnas.blocks.supernet import SupernetHyperParameters
from tfnas.blocks.testing import run_layer_test
from tfnas.engine.supernet import collapse, update_only_the_trained_path
from tfnas.latency import tflite


class _Counting(keras.layers.Layer):
    """Multiplies by `factor` and counts its forward passes."""

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor
        self.calls = 0

    def call(self, x):
        self.calls += 1
        return x * self.factor


def _three_candidates(rule):
    hp = SupernetHyperParameters(rule)
    inputs = keras.Input((3,))
    choice = blocks.layer_choice(hp, "op", {
        f"x{f}": lambda f=f: _Counting(float(f)) for f in (1, 2, 3)
    })  # fmt: skip
    return keras.Model(inputs, choice(inputs)), choice


def _reset(choice):
    for candidate in choice.candidates:
        candidate.calls = 0


def test_path_pass_runs_the_active_candidate_only():
    rule = BinaryGateMixture(seed=0)
    model, choice = _three_candidates(rule)
    x = np.array([[1.0, -2.0, 3.0]], "float32")
    _reset(choice)
    rule.set_path({"op": 1})
    np.testing.assert_allclose(model(x), 2 * x)
    assert [c.calls for c in choice.candidates] == [0, 1, 0]
    # One-architecture mode wins over the sampled path, and use_mixture() restores it.
    rule.set_architecture({"op": "x3"})
    np.testing.assert_allclose(model(x), 3 * x)
    rule.use_mixture()
    np.testing.assert_allclose(model(x), 2 * x)


@pytest.mark.parametrize("binary_mode, runs", [("two", [1, 0, 1]), ("full", [1, 1, 1])])
def test_gate_pass_value_is_the_active_path_and_gates_get_their_gradient(binary_mode, runs):
    rule = BinaryGateMixture(binary_mode=binary_mode, seed=0)
    model, choice = _three_candidates(rule)
    rule.set_path({"op": 2})
    rule._inactive["op"].assign(0)
    x = tf.constant([[1.0, -2.0, 3.0]])
    upstream = np.array([[0.7, -1.3, 2.1]], "float32")
    gates = rule.gate_variables[0]
    _reset(choice)
    with tf.GradientTape() as tape:
        tape.watch(gates.value)
        with rule.gate_pass():
            out = model(x)
        loss = tf.reduce_sum(out * upstream)
    np.testing.assert_allclose(out, 3 * x.numpy(), rtol=1e-6)
    assert [c.calls for c in choice.candidates] == runs
    # dL/dg_j = <o_j(x), dL/dy> for the involved candidates, 0 for an uninvolved one.
    inner = (upstream * x.numpy()).sum()
    expected = [inner, 2 * inner if binary_mode == "full" else 0.0, 3 * inner]
    np.testing.assert_allclose(tape.gradient(loss, gates.value), expected, rtol=1e-5)


def test_gate_probabilities_are_the_softmax_of_the_two_involved_alphas():
    rule = BinaryGateMixture(seed=0)
    _three_candidates(rule)
    alpha = np.array([0.5, -1.0, 0.2], "float32")
    rule.set_alphas({"op": alpha})
    rule.set_path({"op": 2})
    rule._inactive["op"].assign(0)
    two = np.exp(alpha[[0, 2]]) / np.exp(alpha[[0, 2]]).sum()
    np.testing.assert_allclose(rule.gate_probabilities("op"), [two[0], 0.0, two[1]], rtol=1e-6)
    full = BinaryGateMixture(binary_mode="full", seed=0)
    _three_candidates(full)
    full.set_alphas({"op": alpha})
    np.testing.assert_allclose(
        full.gate_probabilities("op"), np.exp(alpha) / np.exp(alpha).sum(), rtol=1e-6
    )


def test_sampling_follows_softmax_alpha():
    rule = BinaryGateMixture(seed=0)
    _three_candidates(rule)
    alpha = np.log(np.array([0.6, 0.3, 0.1]))
    rule.set_alphas({"op": alpha})
    rng = np.random.default_rng(0)
    paths = np.bincount([rule.sample_path(rng)["op"] for _ in range(1000)], minlength=3)
    np.testing.assert_allclose(paths / 1000, [0.6, 0.3, 0.1], atol=0.05)
    # "two": two distinct candidates; pair {0, 1} has probability
    # 0.6 * 0.3 / 0.4 + 0.3 * 0.6 / 0.7 (multinomial without replacement), and within the
    # pair the active one follows softmax of the two alphas (0.6 / 0.9 for candidate 0).
    draws = [rule.sample_gates(rng)["op"] for _ in range(1000)]
    assert all(a != b for a, b in draws)
    pair = [(a, b) for a, b in draws if {a, b} == {0, 1}]
    assert len(pair) / 1000 == pytest.approx(0.6 * 0.3 / 0.4 + 0.3 * 0.6 / 0.7, abs=0.05)
    assert np.mean([a == 0 for a, _ in pair]) == pytest.approx(2 / 3, abs=0.06)
    active, inactive = draws[-1]
    np.testing.assert_array_equal(rule.gate_variables[0].numpy(), np.eye(3)[active])
    assert rule.active_indices() == {"op": active}


def test_a_weight_step_leaves_the_unsampled_candidates_weights_unchanged():
    rule = BinaryGateMixture(seed=0)
    hp = SupernetHyperParameters(rule)
    inputs = keras.Input((4,))
    choice = blocks.layer_choice(hp, "op", {
        f"d{i}": lambda: keras.layers.Dense(4) for i in range(3)
    })  # fmt: skip
    model = keras.Model(inputs, keras.layers.Dense(2)(choice(inputs)))
    model.compile(keras.optimizers.Adam(0.1), "mse")
    assert rule.trains_one_path
    update_only_the_trained_path(model.optimizer)  # what SupernetTrainer does for such rules
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    before = [[w.numpy().copy() for w in c.weights] for c in choice.candidates]
    rule.set_path({"op": 1})
    model.train_on_batch(x, x[:, :2])
    rule.set_path({"op": 0})
    model.train_on_batch(x, x[:, :2])
    after = [[w.numpy() for w in c.weights] for c in choice.candidates]
    for i in (0, 1):
        assert not np.allclose(before[i][0], after[i][0])
    for b, a in zip(before[2], after[2]):
        np.testing.assert_array_equal(b, a)


def _layer_choice(rule):
    return lambda: blocks.LayerChoice(
        "op",
        [keras.layers.Conv2D(4, 3, padding="same"), keras.layers.Identity()],
        [{"op": "conv"}, {"op": "skip"}],
        rule,
    )


def test_config_round_trip_and_tflite():
    rule = BinaryGateMixture(binary_mode="full", seed=3, init_scale=0.1)
    copy = BinaryGateMixture.from_config(rule.get_config())
    assert copy.get_config() == rule.get_config() and copy.binary_mode == "full"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(rule))
    assert isinstance(restored, BinaryGateMixture) and restored.binary_mode == "full"
    # The supernet layer itself (config, save/load, training step, TFLite).
    run_layer_test(_layer_choice(BinaryGateMixture(seed=0)), (6, 6, 4))
    # The collapsed architecture: plain Keras layers, converts to TFLite.
    rule = BinaryGateMixture(seed=0)
    hp = SupernetHyperParameters(rule)
    inputs = keras.Input((6, 6, 1))
    x = blocks.layer_choice(hp, "op", {
        "conv": lambda: keras.layers.Conv2D(1, 3, padding="same"),
        "skip": lambda: keras.layers.Identity(),
    })(inputs)  # fmt: skip
    supernet = keras.Model(inputs, x)
    fixed = collapse(supernet, {"op": "conv"})
    assert all(type(layer).__module__.startswith("keras") for layer in fixed._flatten_layers())
    assert tflite.convert(fixed)[4:8] == b"TFL3"


def test_invalid_binary_mode():
    with pytest.raises(ValueError, match="binary_mode.*Received: binary_mode='full_v2'"):
        BinaryGateMixture(binary_mode="full_v2")
