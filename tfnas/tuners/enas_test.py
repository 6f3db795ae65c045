"""ENAS: controller learning at epoch ends, training-time sampling, state, a full search."""

import json
import math

import keras
import keras_tuner
import numpy as np
import pytest

import tfnas
from tfnas import blocks
from tfnas.search import encoding
from tfnas.tuners import enas
from tfnas.tuners import multi_trial_testing as testing

SMALL = {"hidden_size": 4, "seed": 0}
# One sample per update and a larger step, so that a few updates move the policy.
FAST = {"controller_batch_size": 1, "learning_rate": 0.02, "entropy_weight": 0.05}


def _space() -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    hp.Choice("op0", ["conv", "pool", "skip"])
    hp.Choice("op1", ["conv", "skip"])
    return hp


def _oracle(**kwargs) -> enas.ENAS:
    oracle = enas.ENAS(**{**SMALL, **kwargs})
    oracle.hyperparameters = _space()
    return oracle


def _marginal(oracle: enas.ENAS, name: str, value) -> float:
    """The controller's probability that decision `name` takes `value`."""
    space = oracle.encoding()
    return sum(
        math.exp(oracle.controller.log_prob_and_entropy(space, values)[0])
        for values in space.architectures()
        if values[name] == value
    )


class _Rule:
    """Records the architectures set on it, as a supernet's mixing rule would be set."""

    def __init__(self):
        self.architectures = []

    def set_architecture(self, values):
        self.architectures.append(dict(values))


def _training_samples(oracle: enas.ENAS, count: int) -> list[dict]:
    rule = _Rule()
    for step in range(count):
        oracle.prepare_training_step(rule, step, 0, step / count)
    return rule.architectures


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"controller_steps": 0},
            r"^controller_steps must be >= 1\. Received: controller_steps=0$",
        ),
        ({"controller_steps": 2.5}, r"controller_steps must be an integer\. Received: "),
        ({"hidden_size": 0}, r"^hidden_size must be >= 1\. Received: hidden_size=0$"),
        ({"learning_rate": -1.0}, r"learning_rate must be > 0\. Received: learning_rate=-1\.0"),
        ({"optimizer": "rmsprop"}, r"optimizer must be one of \['adam', 'sgd'\]"),
        ({"baseline_decay": 1.0}, r"baseline_decay must be in \[0, 1\)\. Received: "),
        ({"entropy_weight": -0.1}, r"entropy_weight must be >= 0\. Received: entropy_weight=-0\.1"),
        ({"bn_recalibration_batches": -1}, r"bn_recalibration_batches must be >= 0"),
        (
            {"controller_batch_size": 0},
            r"^controller_batch_size must be >= 1\. Received: controller_batch_size=0$",
        ),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        enas.ENAS(**kwargs)


def test_controller_defaults_are_the_reference_micro_search():
    oracle = enas.ENAS(seed=0)
    controller = oracle.controller
    assert (oracle.controller_steps, oracle.controller_batch_size) == (30, 10)
    assert controller.hidden_size == 64 and controller.optimizer_name == "adam"
    assert controller.learning_rate == 0.0035
    assert controller.baseline_decay == 0.99
    assert controller.entropy_weight == 1e-4
    assert controller.batch_size == 10
    # Logits bounded by 1.10 tanh(.), 1.10 / 2.5 on operations, no temperature.
    assert controller.temperature is None
    hp = keras_tuner.HyperParameters()
    hp.Choice("node2/inputs", ["0,1", "0", "1"])
    hp.Choice("node2/op", ["conv3x3", "skip"])
    hp.Choice("depth", [1, 2])
    decisions = {d.name: d for d in encoding.SpaceEncoding(hp).decisions}
    assert controller.tanh_constant(decisions["node2/inputs"]) == pytest.approx(1.10)
    assert controller.tanh_constant(decisions["node2/op"]) == pytest.approx(1.10 / 2.5)
    assert controller.tanh_constant(decisions["depth"]) == pytest.approx(1.10)
    assert enas.ENAS(tanh_constant=None).controller.tanh_constant(decisions["depth"]) is None


def test_each_controller_step_learns_from_a_batch_of_samples():
    oracle = _oracle(controller_steps=3, controller_batch_size=4)
    calls = []
    oracle.on_supernet_epoch_end(0, lambda values: calls.append(values) or 1.0)
    assert len(calls) == 12
    assert oracle.controller.num_updates == 3


def test_registered_as_an_oracle():
    assert tfnas.oracles.get("enas") is enas.ENAS
    assert tfnas.oracles.ENAS is enas.ENAS


@pytest.mark.parametrize("objective", ["val_accuracy", "val_loss"])
def test_epoch_end_rewards_train_the_controller(objective):
    # Unbounded logits (the bound would cap "pool" at e^c / (e^c + 2 e^-c) = 0.546).
    oracle = _oracle(objective=objective, controller_steps=30, tanh_constant=None, **FAST)

    # `evaluate` returns rewards, higher is better, whatever the objective's direction.
    def evaluate(values):
        return 1.0 if values["op0"] == "pool" else 0.0

    before = _marginal(oracle, "op0", "pool")
    assert before == pytest.approx(1 / 3)
    oracle.on_supernet_epoch_end(0, evaluate)
    middle = _marginal(oracle, "op0", "pool")
    oracle.on_supernet_epoch_end(1, evaluate)
    after = _marginal(oracle, "op0", "pool")
    assert before < middle < after
    assert after > 0.6
    assert oracle.controller.num_updates == 60
    assert len(oracle.epoch_rewards) == 2
    # The candidate search samples from the trained controller.
    proposals = [oracle.controller.propose(oracle.encoding(), lambda v: False) for _ in range(20)]
    assert sum(v["op0"] == "pool" for v in proposals) > 10


def test_the_tanh_bound_caps_an_operation_choice_probability():
    oracle = _oracle(controller_steps=30, **FAST)
    for epoch in range(2):
        oracle.on_supernet_epoch_end(epoch, lambda v: 1.0 if v["op0"] == "pool" else 0.0)
    c = 1.10 / 2.5
    cap = math.exp(c) / (math.exp(c) + 2 * math.exp(-c))
    assert 1 / 3 < _marginal(oracle, "op0", "pool") <= cap + 1e-9


def test_non_finite_rewards_are_not_learned_from():
    oracle = _oracle(controller_steps=5, controller_batch_size=2)
    oracle.on_supernet_epoch_end(0, lambda values: float("nan"))
    assert oracle.controller.num_updates == 0
    assert oracle.controller.num_failed == 10
    assert oracle.epoch_rewards == [None]


def test_training_samples_do_not_train_the_controller_or_count_as_seen(tmp_path):
    oracle = enas.ENAS(objective=testing.OBJECTIVE, max_trials=10, **SMALL, **FAST)
    tuner = testing.FakeTuner(
        oracle=oracle, hypermodel=testing.tiny_space_build, directory=str(tmp_path)
    )
    _training_samples(oracle, 1)  # Creates the controller's weights.
    params = json.dumps(oracle.controller.get_state()["params"])
    samples = _training_samples(oracle, 40)
    assert len({encoding.values_key(v) for v in samples}) == 4  # The whole tiny space.
    assert json.dumps(oracle.controller.get_state()["params"]) == params
    assert oracle.controller.num_updates == 0 and oracle.controller.baseline is None
    assert not oracle._tried_so_far
    assert not any(oracle._is_seen(v) for v in samples)
    # Trials are still deduplicated among themselves only: 4 distinct trials, then STOPPED.
    tuner.search(verbose=0)
    values = testing.trial_values(oracle)
    assert len({encoding.values_key(v) for v in values}) == len(values) == 4
    assert oracle.controller.num_updates == 4  # Trial scores do train it.


def test_frozen_values_are_fed_to_the_controller():
    oracle = _oracle()
    oracle.hyperparameters.Int("width", 4, 16, step=4)
    oracle.frozen_values = {"width": 8}
    samples = _training_samples(oracle, 10)
    assert all(v["width"] == 8 for v in samples)
    assert {v["op0"] for v in samples} == {"conv", "pool", "skip"}


def test_state_round_trip_gives_the_same_proposals():
    oracle = _oracle(controller_steps=5)
    _training_samples(oracle, 7)
    oracle.on_supernet_epoch_end(0, lambda values: float(values["op1"] == "skip"))
    state = json.loads(json.dumps(oracle.get_state()))
    restored = enas.ENAS(**SMALL)
    restored.set_state(state)
    assert restored.epoch_rewards == oracle.epoch_rewards
    for trial_id in ("a", "b", "c"):
        expected = oracle.populate_space(trial_id)
        assert restored.populate_space(trial_id) == expected
        assert expected["values"] is not None


def test_mid_training_state_round_trip_gives_the_same_training_samples():
    # The state a supernet checkpoint holds: oracle.get_state() between epochs.
    oracle = _oracle(controller_steps=3)
    _training_samples(oracle, 5)
    oracle.on_supernet_epoch_end(0, lambda values: float(values["op0"] == "skip"))
    state = json.loads(json.dumps(oracle.get_state()))
    expected = _training_samples(oracle, 20)
    expected_state = oracle.controller.get_state()

    restored = _oracle(seed=7)  # Another seed: everything must come from the state.
    restored.set_state(state)
    assert restored.epoch_rewards == oracle.epoch_rewards
    assert _training_samples(restored, 20) == expected
    assert json.dumps(restored.controller.get_state()) == json.dumps(expected_state)


def _build(hp):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = blocks.layer_choice(hp, "op0", {
        "conv3x3": lambda: keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        "conv1x1": lambda: keras.layers.Conv2D(4, 1, activation="relu"),
        "skip": lambda: keras.layers.Identity(),
    })(x)  # fmt: skip
    x = blocks.layer_choice(hp, "op1", {
        "bn": lambda: keras.layers.BatchNormalization(),
        "skip": lambda: keras.layers.Identity(),
    })(x)  # fmt: skip
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def test_search_with_a_tuner(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((256, 8, 8, 1), dtype="float32")
    y = rng.integers(0, 10, 256)
    oracle = enas.ENAS(
        max_trials=3, controller_steps=4, controller_batch_size=2, bn_recalibration_batches=2,
        **SMALL,
    )  # fmt: skip
    tuner = tfnas.Tuner(_build, oracle=oracle, directory=str(tmp_path), project_name="enas")
    tuner.search(
        x[:192], y[:192], validation_data=(x[192:], y[192:]), epochs=2, batch_size=64, verbose=0
    )
    assert oracle.supernet_epochs_done == 2
    assert oracle.controller.num_updates >= 2 * 4  # Epoch ends, then trial scores.
    assert len(oracle.epoch_rewards) == 2
    trials = list(oracle.trials.values())
    assert len(trials) == 3
    assert all(t.status == "COMPLETED" and t.score is not None for t in trials)
    assert len({encoding.values_key(t.hyperparameters.values) for t in trials}) == 3
    best = tuner.get_best_models(1)[0]
    assert all(type(layer).__module__.startswith("keras") for layer in best._flatten_layers())
    assert set(tuner.get_best_hyperparameters(1)[0].values) == {"op0", "op1"}
