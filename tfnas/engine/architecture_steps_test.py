"""Architecture steps on their own: the alpha update, its state, batches, hooks, errors."""

import json

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
