import json
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


def _two_choice_space():
    hp = keras_tuner.HyperParameters()
    hp.Choice("a", [0, 1])
    return encoding.SpaceEncoding(hp)


def test_batch_update_averages_the_batch_gradients():
    space = _conditional_space()
    controller = reinforce.Controller(batch_size=3, optimizer="sgd", learning_rate=0.5, seed=0)
    rng = np.random.default_rng(0)
    samples = [(space.sample(rng), reward) for reward in (0.2, 0.9, 0.4)]
    controller.observe(space, *samples[0])
    controller.observe(space, *samples[1])
    assert controller.num_updates == 0 and controller.baseline is None
    for values, _ in samples:
        controller.log_prob_and_entropy(space, values)  # Creates every parameter.
    before = {name: value.copy() for name, value in controller.params.items()}
    baseline = np.mean([0.2, 0.9, 0.4])  # The first batch's mean starts the baseline.
    expected = {name: np.zeros_like(value) for name, value in before.items()}
    for values, reward in samples:
        _, grads = controller.loss_and_grads(space, values, reward - baseline)
        for name, grad in grads.items():
            expected[name] += grad / 3
    controller.observe(space, *samples[2])
    assert controller.num_updates == 1 and controller.num_learned == 3
    assert controller.batch == []
    for name, value in controller.params.items():
        np.testing.assert_allclose(value, before[name] - 0.5 * expected[name], atol=1e-12)
    moved = baseline
    for reward in (0.2, 0.9, 0.4):
        moved = 0.9 * moved + 0.1 * reward
    assert controller.baseline == pytest.approx(moved)


def test_the_update_rule_is_pluggable_and_gets_the_batch_and_its_advantages():
    class Recording(reinforce.ReinforceUpdate):
        def __init__(self):
            self.calls, self.count = [], 0

        def step(self, controller, space, architectures, advantages):
            self.calls.append((list(architectures), list(advantages)))
            self.count += 1

        def get_state(self):
            return {"count": self.count}

        def set_state(self, state):
            self.count = (state or {}).get("count", 0)

    space = _conditional_space()
    rule = Recording()
    controller = reinforce.Controller(batch_size=2, seed=0, update_rule=rule)
    rng = np.random.default_rng(0)
    samples = [(space.sample(rng), reward) for reward in (0.2, 0.6)]
    for values, _ in samples:
        controller.log_prob_and_entropy(space, values)  # Creates every parameter.
    before = {name: value.copy() for name, value in controller.params.items()}
    for values, reward in samples:
        controller.observe(space, values, reward)
    # The rule alone changes the policy: here it records and leaves the params alone.
    ((architectures, advantages),) = rule.calls
    assert architectures == [v for v, _ in samples]
    assert advantages == pytest.approx([-0.2, 0.2])  # R - b, b the first batch's mean
    assert all(np.array_equal(controller.params[k], v) for k, v in before.items())
    state = json.loads(json.dumps(controller.get_state()))
    assert state["update_rule"] == {"count": 1}
    copy = reinforce.Controller(batch_size=2, seed=0, update_rule=Recording())
    copy.set_state(state)
    assert copy.update_rule.count == 1


def test_seen_architectures_are_answered_from_the_record():
    space = _two_choice_space()
    controller = reinforce.Controller(reuse_seen=True, max_resamples=7, seed=0)
    seen = {}
    first = controller.propose(space, lambda v: encoding.values_key(v) in seen)
    assert controller.pending == [encoding.values_key(first)]
    seen[encoding.values_key(first)] = 1.0
    controller.observe(space, first, 1.0)
    assert controller.num_learned == 1 and controller.pending == []
    second = controller.propose(space, lambda v: encoding.values_key(v) in seen)
    assert second != first
    # Every sample of `first` drawn meanwhile was learned from with its recorded reward.
    assert controller.num_learned == 1 + controller.num_reused
    controller.observe(space, second, 0.0)
    reused = controller.num_reused
    # Both architectures are known: 7 + 1 samples, all answered, then None (exhausted).
    assert controller.propose(space, lambda v: True) is None
    assert controller.num_reused == reused + 8
    assert controller.num_learned == 2 + controller.num_reused


def test_off_policy_observations_are_recorded_not_learned_from():
    space = _two_choice_space()
    controller = reinforce.Controller(reuse_seen=True, seed=0)
    controller.observe(space, {"a": 1}, 0.7)  # Not proposed by the controller.
    assert controller.num_off_policy == 1 and controller.num_learned == 0
    assert controller.params == {} and controller.record == {encoding.values_key({"a": 1}): 0.7}
    plain = reinforce.Controller(seed=0)  # Without `reuse_seen` everything is learned from.
    plain.observe(space, {"a": 1}, 0.7)
    assert plain.num_learned == 1 and plain.num_off_policy == 0


def test_normalized_advantage_does_not_depend_on_the_reward_scale():
    space = _conditional_space()
    rng = np.random.default_rng(0)
    samples = [(space.sample(rng), float(r)) for r in rng.uniform(size=12)]
    controllers = []
    for scale, shift in ((1.0, 0.0), (100.0, -3.0)):
        controller = reinforce.Controller(
            batch_size=2, normalize_advantage=True, entropy_weight=0.0, seed=0
        )
        for values, reward in samples:
            controller.observe(space, values, scale * reward + shift)
        controllers.append(controller)
    assert controllers[0].num_updates == 6
    for name, value in controllers[0].params.items():
        np.testing.assert_allclose(value, controllers[1].params[name], atol=1e-6)


def test_state_round_trip_keeps_batch_record_and_pending():
    space = _conditional_space()
    controller = reinforce.Controller(batch_size=4, reuse_seen=True, seed=0)
    for _ in range(3):
        values = controller.propose(space, lambda v: False)
        controller.observe(space, values, 0.5)
    pending = controller.propose(space, lambda v: False)
    state = json.loads(json.dumps(controller.get_state()))
    restored = reinforce.Controller(batch_size=4, reuse_seen=True, seed=1)
    restored.set_state(state)
    assert restored.batch == controller.batch and restored.pending == controller.pending
    controller.observe(space, pending, 0.9)
    restored.observe(space, pending, 0.9)
    assert restored.get_state() == controller.get_state()


def _ppo_controller(**kwargs):
    space = _conditional_space()
    controller = reinforce.Controller(hidden_size=3, init_range=0.5, seed=0, **kwargs)
    rng = np.random.default_rng(1)
    architectures = [space.complete(space.sample(rng)) for _ in range(3)]
    for values in architectures:
        controller.loss_and_grads(space, values, 0.0)  # Creates every parameter.
    for name in controller.params:
        if name.startswith("head/"):
            controller.params[name] = controller.rng.normal(size=controller.params[name].shape)
    return space, controller, architectures


def test_ppo_gradients_match_finite_differences_inside_and_outside_the_clip():
    space, controller, architectures = _ppo_controller(entropy_weight=0.1)
    rule = reinforce.PPOUpdate(clip=0.2)
    advantages = [0.7, -0.4, 0.2]
    now = [controller.log_prob_and_entropy(space, v)[0] for v in architectures]
    # Ratios 1.65 (past the clip, advantage > 0: no pull), 0.95 and 1.0 (inside).
    old = [now[0] - 0.5, now[1] + 0.05, now[2]]
    loss, grads = rule.loss_and_grads(controller, space, architectures, advantages, old)
    ratios = np.exp(np.subtract(now, old))
    entropies = [controller.log_prob_and_entropy(space, v)[1] for v in architectures]
    expected = -np.mean(
        [min(r * a, np.clip(r, 0.8, 1.2) * a) for r, a in zip(ratios, advantages)]
    ) - 0.1 * np.mean(entropies)
    assert loss == pytest.approx(expected)
    for name, grad in grads.items():
        flat = controller.params[name].reshape(-1)
        for j in range(flat.size):
            value = flat[j]
            flat[j] = value + 1e-6
            up, _ = rule.loss_and_grads(controller, space, architectures, advantages, old)
            flat[j] = value - 1e-6
            down, _ = rule.loss_and_grads(controller, space, architectures, advantages, old)
            flat[j] = value
            assert grad.reshape(-1)[j] == pytest.approx((up - down) / 2e-6, abs=1e-6), name


def test_ppo_with_one_epoch_is_one_reinforce_step():
    results = []
    for rule in (reinforce.PPOUpdate(epochs=1), reinforce.ReinforceUpdate()):
        space, controller, architectures = _ppo_controller(entropy_weight=0.05)
        rule.step(controller, space, architectures, [0.5, -0.3, 0.1])
        results.append(controller.params)
    for name, value in results[0].items():
        np.testing.assert_allclose(value, results[1][name], atol=1e-12)


def test_ppo_clipping_bounds_the_policy_change_of_many_epochs():
    ratios = {}
    for name, rule, repeats in (
        ("ppo", reinforce.PPOUpdate(clip=0.2, epochs=40), 1),
        ("reinforce", reinforce.ReinforceUpdate(), 40),  # 40 unclipped steps.
    ):
        space, controller, architectures = _ppo_controller(
            entropy_weight=0.0, optimizer="sgd", learning_rate=0.05
        )
        before = controller.log_prob_and_entropy(space, architectures[0])[0]
        for _ in range(repeats):
            rule.step(controller, space, architectures[:1], [1.0])
        after = controller.log_prob_and_entropy(space, architectures[0])[0]
        ratios[name] = math.exp(after - before)
    # PPO stops pulling once the ratio passes 1 + clip: at most one step beyond it.
    assert 1.2 <= ratios["ppo"] < 1.3
    assert ratios["reinforce"] > 2.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"clip": 0.0}, r"clip must be > 0. Received: clip=0.0"),
        ({"epochs": 0}, r"epochs must be >= 1. Received: epochs=0"),
    ],
)
def test_ppo_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        reinforce.PPOUpdate(**kwargs)
