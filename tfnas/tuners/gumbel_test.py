"""SNAS and GDAS: Gumbel-softmax mixtures, schedules, resource term, state, searches."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas import blocks
from tfnas.blocks.rules import GumbelMixture
from tfnas.blocks.supernet import SupernetHyperParameters
from tfnas.engine import architecture_steps
from tfnas.latency import tflite
from tfnas.tuners import gumbel
from tfnas.tuners.differentiable_testing import (
    Connected,
    classification_data,
    depth_only,
    search,
    supernet,
    two_choices,
)


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


ALPHA = np.array([0.5, -1.0, 0.2], "float32")
NOISE = np.array([0.1, 0.3, 1.5], "float32")  # Sampled: candidate 2 (0.2 + 1.5).


def _gumbel_softmax(tau):
    z = (ALPHA + NOISE) / tau
    return np.exp(z) / np.exp(z).sum()


def test_soft_mixture_is_the_gumbel_softmax_of_alpha_plus_noise():
    rule = GumbelMixture(seed=0)
    model, _ = _three_candidates(rule)
    rule.set_alphas({"op": ALPHA})
    rule.set_noise({"op": NOISE})
    rule.set_temperature(0.5)
    x = np.array([[1.0, -2.0, 3.0]], "float32")
    y = _gumbel_softmax(0.5)
    np.testing.assert_allclose(model(x), (y[0] * 1 + y[1] * 2 + y[2] * 3) * x, rtol=1e-5)
    rule.set_architecture({"op": "x2"})
    np.testing.assert_allclose(model(x), 2 * x, rtol=1e-6)


def test_hard_mixture_computes_one_path_with_the_straight_through_gradient():
    rule = GumbelMixture(hard=True, seed=0)
    model, choice = _three_candidates(rule)
    rule.set_alphas({"op": ALPHA})
    rule.set_noise({"op": NOISE})
    tau = 2.0
    rule.set_temperature(tau)
    for candidate in choice.candidates:
        candidate.calls = 0
    x = tf.constant([[1.0, -2.0, 3.0]])
    upstream = np.array([[0.7, -1.3, 2.1]], "float32")  # d loss / d output
    alpha = rule.alpha_variables[0]
    with tf.GradientTape() as tape:
        out = model(x)
        loss = tf.reduce_sum(out * upstream)
    # The value is the sampled candidate's output, exactly (straight-through weight 1).
    np.testing.assert_allclose(out, 3 * x.numpy(), rtol=1e-6)
    assert [c.calls for c in choice.candidates] == [0, 0, 1]
    # GDAS's forward is `h_2 * op_2(x) + h_0 + h_1` (h the straight-through one-hot), so
    # d loss / d h = [sum(upstream), sum(upstream), sum(upstream * op_2(x))] and the alpha
    # gradient is that of the surrogate f(alpha) = sum_k c_k * y_k(alpha),
    # y = softmax((alpha + g) / tau): checked by central differences, every candidate.
    c = np.array([upstream.sum(), upstream.sum(), (upstream * 3 * x.numpy()).sum()])

    def surrogate(a):
        z = (a + NOISE) / tau
        return float(c @ (np.exp(z) / np.exp(z).sum()))

    h = 1e-3
    numeric = np.array([
        (surrogate(ALPHA + h * e) - surrogate(ALPHA - h * e)) / (2 * h) for e in np.eye(3)
    ])  # fmt: skip
    gradient = tape.gradient(loss, alpha.value).numpy()
    np.testing.assert_allclose(gradient, numeric, rtol=1e-3, atol=1e-5)
    assert np.all(np.abs(gradient) > 1e-3)  # the two unsampled candidates learn too
    # One-architecture mode computes the chosen candidate whatever the noise.
    rule.set_architecture({"op": "x1"})
    np.testing.assert_allclose(model(x), x.numpy(), rtol=1e-6)
    assert [c.calls for c in choice.candidates] == [1, 0, 1]


def test_gumbel_mixture_config_round_trip():
    rule = GumbelMixture(hard=True, temperature=4.0, seed=3)
    copy = GumbelMixture.from_config(rule.get_config())
    assert copy.get_config() == rule.get_config()
    assert copy.hard and copy.temperature == 4.0
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(rule))
    assert isinstance(restored, GumbelMixture) and restored.hard


def test_temperature_schedules():
    gdas = gumbel.GDAS()
    assert gdas.temperature == (10.0, 0.1)
    assert gdas.temperature_at(0.0) == 10.0
    assert gdas.temperature_at(0.5) == pytest.approx(5.05)
    assert gdas.temperature_at(1.0) == pytest.approx(0.1)
    snas = gumbel.SNAS(temperature=(1.0, 0.01))
    assert snas.temperature_at(0.5) == pytest.approx(0.1)
    assert snas.temperature_at(1.0) == pytest.approx(0.01)


@pytest.mark.parametrize(
    "oracle, kwargs, message",
    [
        (gumbel.GDAS, {"temperature": (10.0, 0.0)},
         r"temperature must stay > 0.*Received: temperature=\(10.0, 0.0\)"),
        (gumbel.SNAS, {"temperature": (-1.0, 0.1)}, "temperature must stay > 0"),
        (gumbel.SNAS, {"temperature": (1.0, float("inf"))}, "temperature must stay > 0"),
        (gumbel.GDAS, {"temperature": 5.0}, r"pair \(initial, final\).*temperature=5.0"),
        (gumbel.GDAS, {"temperature": (1.0, 2.0, 3.0)}, "pair"),
        (gumbel.SNAS, {"resource_weight": -1.0}, "resource_weight"),
        (gumbel.GDAS, {"arch_learning_rate": 0.0}, "arch_learning_rate"),
    ],
)  # fmt: skip
def test_invalid_arguments(oracle, kwargs, message):
    with pytest.raises(ValueError, match=message):
        oracle(**kwargs)


def test_noise_comes_from_the_seeded_training_state():
    def noise_after_steps(oracle, steps):
        rule, model = supernet(oracle, two_choices)
        connected = Connected(oracle, rule, model, classification_data()[2])
        for step in range(steps):
            connected.prepare_step(step, step / 4)
        return {name: np.array(v.value) for name, v in rule._noise.items()}, rule

    first, rule = noise_after_steps(gumbel.GDAS(seed=0), 2)
    again, _ = noise_after_steps(gumbel.GDAS(seed=0), 2)
    other, _ = noise_after_steps(gumbel.GDAS(seed=1), 2)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
        assert not np.array_equal(first[name], other[name])
    # Linear schedule: the temperature at progress 1/4 is 10 - 9.9 / 4.
    assert float(rule._tau.value) == pytest.approx(7.525)


def test_gdas_alpha_steps_learn_the_better_candidate():
    def build(hp):
        inputs = keras.Input((4,))
        x = blocks.layer_choice(hp, "op", {
            "identity": lambda: keras.layers.Identity(),
            "zero": lambda: keras.layers.Rescaling(0.0),
        })(inputs)  # fmt: skip
        model = keras.Model(inputs, x)
        model.compile(keras.optimizers.SGD(0.0), "mse")
        return model

    oracle = gumbel.GDAS(seed=0, arch_learning_rate=0.05, temperature=(1.0, 1.0))
    rule, model = supernet(oracle, build)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    # Target 2x: a larger weight on the identity lowers the loss (at the sampled weight 1
    # the identity already matching the target would give no gradient).
    connected = Connected(
        oracle, rule, model, tf.data.Dataset.from_tensor_slices((x, 2 * x)).batch(8)
    )
    for step in range(20):
        connected.prepare_step(step)
    assert oracle.softmax()["op"][0] > 0.6
    assert oracle.derive() == {"op": "identity"}


def test_snas_resource_terms():
    # The reparameterized form: lambda * sum_k Z_k * MMACs_k.
    oracle = gumbel.SNAS(seed=0, resource_weight=1e4, resource_gradient="reparameterization")
    rule, model = supernet(oracle, two_choices)
    training = classification_data(seed=1)[2]
    resource = Connected(oracle, rule, model, None, training).architecture_step.loss_term
    assert isinstance(resource, architecture_steps.ExpectedMacs)
    # Dense(8) on 8 features: 64 multiply-adds; the skip: none.
    macs = dict(resource.candidate_macs)
    np.testing.assert_allclose(macs["op0"], [64e-6, 0.0])
    rule.set_noise({"op0": [0.0, 0.0], "op1": [0.0, 0.0]})
    rule.set_alphas({"op0": [0.0, 0.0], "op1": [np.log(3.0), 0.0]})
    rule.set_temperature(1.0)
    assert float(resource.expected_macs()) == pytest.approx(64e-6 * (0.5 + 0.75))
    assert float(resource()) == pytest.approx(1e4 * 64e-6 * 1.25)
    # The paper's score-function form is the default (its math: architecture_steps_test).
    oracle = gumbel.SNAS(seed=0, resource_weight=1.0)
    rule, model = supernet(oracle, two_choices)
    step = Connected(oracle, rule, model, None, training).architecture_step
    assert isinstance(step, architecture_steps.SingleLossStep)
    assert isinstance(step.loss_term, architecture_steps.ResourceScore)


@pytest.mark.parametrize("resource_gradient", ["score", "reparameterization"])
def test_snas_resource_term_pushes_alphas_to_the_cheaper_candidate(resource_gradient):
    def skip_probability(resource_weight):
        snas = gumbel.SNAS(
            seed=0,
            resource_weight=resource_weight,
            resource_gradient=resource_gradient,
            arch_learning_rate=0.05,
        )
        rule, model = supernet(snas, two_choices)
        x, y, data = classification_data(n=32, batch=8)
        connected = Connected(snas, rule, model, None, data)
        for step in range(8):
            connected.prepare_step(step, step / 8)
            batch = slice(8 * (step % 4), 8 * (step % 4) + 8)
            model.train_on_batch(x[batch], y[batch])  # weights and alphas: one pass
        return np.mean([p[1] for p in snas.softmax().values()])

    assert skip_probability(1e4) > skip_probability(0.0) + 0.05


def test_snas_needs_training_data_and_layer_choices():
    oracle = gumbel.SNAS(seed=0)
    _, model = supernet(oracle, two_choices)
    with pytest.raises(ValueError, match="SNAS needs training data.*training_data=None"):
        oracle.on_supernet_built(model, classification_data()[2])
    oracle = gumbel.GDAS(seed=0)
    _, model = supernet(oracle, depth_only)
    with pytest.raises(ValueError, match="GDAS found no layer choice"):
        oracle.on_supernet_built(model, classification_data()[2])


@pytest.mark.parametrize("oracle_class", [gumbel.GDAS, gumbel.SNAS])
def test_search_save_reload_and_continue_exactly(tmp_path, oracle_class):
    def oracle():
        return oracle_class(seed=0, arch_learning_rate=0.05, bn_recalibration_batches=0)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    straight = oracle()
    search(straight, tmp_path, "straight", epochs=2)
    interrupted = oracle()
    with pytest.raises(KeyboardInterrupt):
        search(interrupted, tmp_path, "resumed", epochs=2, callbacks=[Interrupt()])
    assert interrupted.supernet_epochs_done == 1
    resumed = oracle()
    tuner = search(resumed, tmp_path, "resumed", epochs=2, overwrite=False)
    assert resumed.supernet_epochs_done == 2
    for name, alphas in straight.alphas().items():
        np.testing.assert_allclose(resumed.alphas()[name], alphas, rtol=1e-5, atol=1e-6)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    trial = list(resumed.trials.values())[0]
    assert trial.status == "COMPLETED"
    assert trial.hyperparameters.values == resumed.derive()
    # The oracle state reloads through JSON with the alphas and the history.
    copy = oracle()
    copy.set_state(json.loads(json.dumps(resumed.get_state())))
    assert copy.alphas() == resumed.alphas() and copy.history == resumed.history
    # The derived model is made of plain Keras layers and converts to TFLite.
    best = tuner.get_best_models(1)[0]
    assert all(type(layer).__module__.startswith("keras") for layer in best._flatten_layers())
    assert tflite.convert(best)[4:8] == b"TFL3"


def test_registered_as_oracles():
    assert tfnas.oracles.get("snas") is gumbel.SNAS
    assert tfnas.oracles.get("gdas") is gumbel.GDAS
