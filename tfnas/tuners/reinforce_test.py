import math

import keras_tuner
import numpy as np
import pytest

from tfnas.search import encoding
from tfnas.tuners import multi_trial_testing as testing
from tfnas.tuners import reinforce

SMALL = {"hidden_size": 4}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_size": 0}, r"^hidden_size must be >= 1\. Received: hidden_size=0$"),
        ({"learning_rate": 0.0}, r"learning_rate must be > 0\. Received: learning_rate=0\.0"),
        ({"optimizer": "rmsprop"}, r"optimizer must be one of \['adam', 'sgd'\]"),
        ({"baseline_decay": 1.0}, r"baseline_decay must be in \[0, 1\)\. Received: "),
        ({"entropy_weight": -1}, r"entropy_weight must be >= 0\. Received: entropy_weight=-1"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        reinforce.Reinforce(**kwargs)


def _conditional_space():
    hp = keras_tuner.HyperParameters()
    hp.Choice("op", ["conv", "pool", "skip"])
    with hp.conditional_scope("op", ["conv"]):
        hp.Int("kernel", 1, 7, step=2)
    hp.Boolean("bn")
    hp.Float("lr", 1e-3, 1e-1, sampling="log")
    return encoding.SpaceEncoding(hp, num_bins=4)


def test_initial_policy_is_uniform():
    space = _conditional_space()
    controller = reinforce.Controller(seed=0)
    log_prob, entropy = controller.log_prob_and_entropy(space, {"op": "skip"})
    # "skip" leaves bn and lr active: 3 * 2 * 5 equally likely architectures.
    assert log_prob == pytest.approx(-math.log(3 * 2 * 5))
    assert entropy == pytest.approx(math.log(3) + math.log(2) + math.log(5))
    _, entropy = controller.log_prob_and_entropy(space, {"op": "conv", "kernel": 3})
    assert entropy == pytest.approx(math.log(3 * 4 * 2 * 5))


def test_gradients_match_finite_differences():
    space = _conditional_space()
    controller = reinforce.Controller(hidden_size=3, entropy_weight=0.1, init_range=0.5, seed=0)
    values = {"op": "conv", "kernel": 5, "bn": True, "lr": space.decisions[3].candidates[2]}
    controller.loss_and_grads(space, values, 0.0)  # Creates every parameter.
    for name in controller.params:
        if name.startswith("head/"):
            controller.params[name] = controller.rng.normal(size=controller.params[name].shape)
    _, grads = controller.loss_and_grads(space, values, advantage=0.7)
    assert set(grads) == set(controller.params) - {"emb/lr"}  # The last embedding feeds nothing.
    for name, grad in grads.items():
        flat = controller.params[name].reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + 1e-6
            up, _ = controller.loss_and_grads(space, values, 0.7)
            flat[j] = old - 1e-6
            down, _ = controller.loss_and_grads(space, values, 0.7)
            flat[j] = old
            assert grad.reshape(-1)[j] == pytest.approx((up - down) / 2e-6, abs=1e-6), name


def test_reward_above_baseline_makes_the_architecture_more_likely():
    space = _conditional_space()
    controller = reinforce.Controller(seed=0)
    rng = np.random.default_rng(0)
    worse, better = space.sample(rng), space.sample(rng)
    controller.observe(space, worse, 0.0)  # Sets the baseline.
    before, _ = controller.log_prob_and_entropy(space, better)
    controller.observe(space, better, 1.0)
    after, _ = controller.log_prob_and_entropy(space, better)
    assert after > before
    assert controller.baseline == pytest.approx(0.1)
    assert controller.num_updates == 2


def test_failed_observation_changes_nothing():
    space = _conditional_space()
    controller = reinforce.Controller(seed=0)
    controller.observe(space, controller.sample(space), 0.5)
    state = controller.get_state()
    controller.observe(space, controller.sample(space), None)
    after = controller.get_state()
    assert after["params"] == state["params"] and after["baseline"] == state["baseline"]
    assert after["num_updates"] == 1 and after["num_failed"] == 1


def test_new_decisions_get_parameters_lazily():
    hp = keras_tuner.HyperParameters()
    hp.Choice("a", [0, 1])
    controller = reinforce.Controller(seed=0)
    assert set(controller.sample(encoding.SpaceEncoding(hp))) == {"a"}
    hp.Choice("b", [0, 1, 2])
    assert set(controller.sample(encoding.SpaceEncoding(hp))) == {"a", "b"}
    assert controller.params["head/b/w"].shape == (32, 3)


def test_sanity_beats_random_search():
    testing.check_sanity(reinforce.Controller(seed=0))


def test_resume_continues_the_same_sequence(tmp_path):
    testing.check_resume(reinforce.Reinforce, tmp_path, 5, 5, **SMALL)


def test_failed_trials_are_not_learned_from(tmp_path):
    oracle, completed, failed = testing.run_with_failures(
        reinforce.Reinforce, tmp_path, max_trials=20, **SMALL
    )
    assert oracle.algorithm.num_updates == len(completed)
    assert oracle.algorithm.num_failed == len(failed)


def test_dedup_and_exhaustion(tmp_path):
    testing.check_exhaustion(reinforce.Reinforce, tmp_path, **SMALL)


def test_keras_tuner_search(tmp_path):
    oracle = reinforce.Reinforce(objective="val_accuracy", max_trials=2, seed=0, **SMALL)
    testing.tiny_keras_search(oracle, tmp_path)
    assert len(oracle.trials) == 2
    assert oracle.algorithm.num_updates == 2
