"""Architecture steps on their own: the alpha update, its state, batches, hooks, errors."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas import blocks
from tfnas.blocks.rules import SoftmaxMixture
from tfnas.engine import architecture_steps

ADAM = {"learning_rate": 0.05, "beta_1": 0.5, "beta_2": 0.999, "weight_decay": 0.0}


def _supernet(rule, second=None):
    """Output = choice(identity, `second`)(input), trained to reproduce the input."""
    hp = blocks.SupernetHyperParameters(rule)
    inputs = keras.Input((4,))
    x = blocks.layer_choice(hp, "op", {
        "identity": lambda: keras.layers.Identity(),
        "other": second or (lambda: keras.layers.Rescaling(0.0)),
    })(inputs)  # fmt: skip
    model = keras.Model(inputs, x)
    model.compile(keras.optimizers.SGD(0.0), "mse")
    return model


def _data(n=16, batch=4):
    x = np.random.default_rng(0).normal(size=(n, 4)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, x)).batch(batch)


def _connected(rule=None, **kwargs):
    rule = rule or SoftmaxMixture(seed=0)
    model = _supernet(rule, kwargs.pop("second", None))
    step = architecture_steps.FirstOrderStep(**{**ADAM, **kwargs})
    step.connect(model, rule, _data(), _data())
    return step, rule


def test_first_order_step_moves_alpha_towards_the_lower_loss():
    step, rule = _connected()
    before = rule.get_alphas()["op"]
    for i in range(5):
        step.step(i, 0.0)
    after = rule.get_alphas()["op"]
    assert after[0] > before[0] and after[1] < before[1]
    assert int(step.optimizer.iterations.numpy()) == 5


def test_weight_decay_is_added_to_the_gradient_of_an_adam_step():
    # Two identical candidates: the loss does not depend on alpha, only the decay acts.
    step, rule = _connected(weight_decay=0.1, second=lambda: keras.layers.Identity())
    rule.set_alphas({"op": [1.0, -1.0]})
    step.step(0, 0.0)
    # Adam's first step moves each alpha by the learning rate against its gradient's sign.
    np.testing.assert_allclose(rule.get_alphas()["op"], [0.95, -0.95], rtol=1e-5)


def test_state_round_trip_gives_the_same_next_steps():
    step, rule = _connected()
    for i in range(3):
        step.step(i, 0.0)
    state = json.loads(json.dumps(step.get_state()))
    copy, copy_rule = _connected()
    copy_rule.set_alphas(rule.get_alphas())
    copy.set_state(state)
    for i in range(2):  # The copy's batches start over: so do the original's.
        step.begin_epoch(1)
        copy.begin_epoch(1)
        step.step(3 + i, 0.0)
        copy.step(3 + i, 0.0)
    np.testing.assert_allclose(copy_rule.get_alphas()["op"], rule.get_alphas()["op"], rtol=1e-6)
    assert architecture_steps.FirstOrderStep(**ADAM).get_state() == {"optimizer": None}


def test_begin_epoch_restarts_the_batches():
    step, _ = _connected()
    first = step._next_batch("validation")[0].numpy()
    assert not np.array_equal(step._next_batch("validation")[0].numpy(), first)
    step.begin_epoch(1)
    np.testing.assert_array_equal(step._next_batch("validation")[0].numpy(), first)


def test_resample_runs_before_the_alpha_step_and_before_the_weight_step():
    calls = []
    step, rule = _connected(resample=lambda r, progress: calls.append((r, progress)))
    step.step(0, 0.25)
    assert calls == [(rule, 0.25), (rule, 0.25)]


def test_gumbel_sampling_draws_from_the_current_generator():
    class Rule:
        def get_alphas(self):
            return {"a": [0.0, 0.0], "b": [0.0, 0.0, 0.0]}

        def set_noise(self, noise):
            self.noise = noise

        def set_temperature(self, tau):
            self.tau = tau

    generators = [np.random.default_rng(0)]
    sampling = architecture_steps.GumbelSampling(lambda: generators[0], lambda p: 10.0 - p)
    rule = Rule()
    sampling(rule, 0.5)
    expected = np.random.default_rng(0)
    assert rule.noise == {
        "a": expected.gumbel(size=2).tolist(),
        "b": expected.gumbel(size=3).tolist(),
    }
    assert rule.tau == 9.5
    generators[0] = np.random.default_rng(0)  # A restored random state is used.
    sampling(rule, 0.0)
    assert rule.noise["a"] == np.random.default_rng(0).gumbel(size=2).tolist()


def test_non_finite_losses_name_the_global_step_and_the_epoch():
    rule = SoftmaxMixture(seed=0)
    model = _supernet(rule)
    x = np.full((8, 4), np.nan, "float32")
    step = architecture_steps.FirstOrderStep(owner="DARTS", **ADAM)
    step.connect(model, rule, tf.data.Dataset.from_tensor_slices((x, x)).batch(4))
    step.begin_epoch(2)
    with pytest.raises(
        FloatingPointError, match=r"DARTS's architecture step at global step 9 \(epoch 3\)"
    ):
        step.step(9, 0.5)


def test_connect_refuses_another_rule_missing_data_and_unknown_splits():
    model = _supernet(SoftmaxMixture(seed=0))
    step = architecture_steps.FirstOrderStep(**ADAM)
    with pytest.raises(RuntimeError, match="after connect"):
        step.step(0, 0.0)
    with pytest.raises(ValueError, match="built with the rule"):
        step.connect(model, SoftmaxMixture(seed=0), _data())
    second = architecture_steps.SecondOrderStep(**ADAM)
    rule = SoftmaxMixture(seed=0)
    with pytest.raises(ValueError, match="needs training data.*training_data=None"):
        second.connect(_supernet(rule), rule, _data())
    with pytest.raises(ValueError, match="split must be one of.*split='test'"):
        architecture_steps.FirstOrderStep(split="test", **ADAM)
    assert not architecture_steps.FirstOrderStep(**ADAM).connected


def test_frozen_epochs_leave_the_alphas_and_the_batches_alone():
    calls = []
    step, rule = _connected(
        alphas_frozen=lambda epoch: epoch < 2,
        resample=lambda r, progress: calls.append(progress),
    )
    before = rule.get_alphas()
    for epoch in range(2):
        step.begin_epoch(epoch)
        step.step(epoch, 0.1)
        assert step.frozen()
    assert rule.get_alphas() == before
    assert step.optimizer is None and not step._iterators  # no Adam step, no batch taken
    assert calls == [0.1, 0.1]  # the weight step still gets its sample
    step.begin_epoch(2)
    step.step(2, 0.5)
    assert not step.frozen() and rule.get_alphas() != before
    assert int(step.optimizer.iterations.numpy()) == 1


class _Counting(keras.layers.Layer):
    """Multiplies by a trainable scalar and counts its (eager) forward passes."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0
        self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, x):
        self.calls += 1
        return x * self.scale


def test_single_loss_step_updates_weights_and_alphas_from_one_pass_and_one_sample():
    from tfnas.blocks.rules import GumbelMixture

    rule = GumbelMixture(temperature=0.7, seed=0)
    model = _supernet(rule, second=lambda: _Counting())
    model.compile(keras.optimizers.SGD(0.1), "mse", run_eagerly=True)
    noise = {"op": [0.3, -0.2]}
    step = architecture_steps.SingleLossStep(
        **{**ADAM, "weight_decay": 0.01},
        resample=lambda r, progress: r.set_noise(noise),
        owner="SNAS",
    )
    data = _data(n=4, batch=4)
    step.connect(model, rule, None, data)
    x, y = next(iter(data))
    other = [layer for layer in model._flatten_layers() if isinstance(layer, _Counting)][0]
    rule.set_noise(noise)
    # The expected update, by hand: one gradient of the same loss, same sample.
    alpha, scale = rule.alpha_variables[0], other.scale
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
    g_alpha, g_scale = tape.gradient(loss, [alpha.value, scale.value])
    adam = keras.optimizers.Adam(0.05, beta_1=0.5, beta_2=0.999, epsilon=1e-8)
    expected_alpha = tf.Variable(alpha.value)
    adam.apply_gradients([(g_alpha + 0.01 * alpha.value, expected_alpha)])
    expected_scale = scale.numpy() - 0.1 * g_scale.numpy()
    other.calls = 0
    step.step(0, 0.0)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert other.calls == 1  # one forward pass for weights and alphas together
    np.testing.assert_allclose(scale.numpy(), expected_scale, rtol=1e-5)
    np.testing.assert_allclose(alpha.numpy(), expected_alpha.numpy(), rtol=1e-5)
    assert logs["loss"] == pytest.approx(float(loss), rel=1e-5)
    assert int(step.optimizer.iterations.numpy()) == 1


def test_single_loss_step_reports_non_finite_alphas_at_the_next_step():
    from tfnas.blocks.rules import GumbelMixture

    rule = GumbelMixture(seed=0)
    model = _supernet(rule)
    step = architecture_steps.SingleLossStep(**ADAM, owner="SNAS")
    step.connect(model, rule, None, _data())
    step._alphas_finite.assign(0.0)
    with pytest.raises(FloatingPointError, match="SNAS's single-loss step before global step 3"):
        step.step(3, 0.0)


def _concrete_log_density_numpy(alpha, z, tau):
    n = len(alpha)
    a = alpha - tau * np.log(z)
    return (
        math.lgamma(n) + (n - 1) * np.log(tau) + np.sum(alpha - (tau + 1) * np.log(z))
        - n * (a.max() + np.log(np.exp(a - a.max()).sum()))
    )  # fmt: skip


def test_concrete_log_density_integrates_to_one():
    from tfnas.blocks.rules.gumbel import concrete_log_density

    # Two candidates: the density over z = Z_0 in (0, 1) must integrate to 1.
    z = np.linspace(1e-6, 1 - 1e-6, 200001)
    log_z = np.log(np.stack([z, 1 - z], axis=-1))
    alpha = np.array([[0.3, -0.4]])
    density = np.exp(keras.ops.convert_to_numpy(concrete_log_density(alpha, log_z, 1.5)))
    assert np.trapezoid(density, z) == pytest.approx(1.0, abs=1e-3)


def test_resource_score_is_the_papers_score_function_term():
    from tfnas.blocks.rules import GumbelMixture

    rule = GumbelMixture(temperature=0.5, seed=0)
    model = _supernet(rule, second=lambda: keras.layers.Dense(4, use_bias=False))
    term = architecture_steps.ResourceScore(weight=100.0)
    term.connect(model, rule)
    macs = dict(term.candidate_macs)["op"]
    np.testing.assert_allclose(macs, [0.0, 16e-6])  # identity; Dense 4x4
    alpha, noise, tau = np.array([0.2, -0.1]), np.array([0.5, -0.3]), 0.5
    rule.set_alphas({"op": alpha})
    rule.set_noise({"op": noise})
    rule.set_temperature(tau)
    z = np.exp((alpha + noise) / tau) / np.exp((alpha + noise) / tau).sum()
    cost = float(z @ macs)
    assert float(term.sampled_macs()["op"]) == pytest.approx(cost, rel=1e-5)
    variable = rule.alpha_variables[0]
    with tf.GradientTape() as tape:
        value = term()
    gradient = tape.gradient(value, variable.value).numpy()
    assert float(value) == pytest.approx(
        100.0 * cost * _concrete_log_density_numpy(alpha, z, tau), rel=1e-4
    )
    # The gradient is lambda * C(Z) * d log p_alpha(Z) / d alpha with Z fixed (central
    # differences of the density), not the gradient of C through the sample.
    h = 1e-4
    numeric = np.array([
        (_concrete_log_density_numpy(alpha + h * e, z, tau)
         - _concrete_log_density_numpy(alpha - h * e, z, tau)) / (2 * h)
        for e in np.eye(2)
    ])  # fmt: skip
    np.testing.assert_allclose(gradient, 100.0 * cost * numeric, rtol=1e-3)
