import math

import keras_tuner
import numpy as np
import pytest

from tfnas.search import encoding, reinforce
from tfnas.tuners import multi_trial_testing as testing


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
