import json
import math

import numpy as np
import pytest

from tfnas.search import manas


def _softmax(logits):
    e = np.exp(np.asarray(logits) - np.max(logits))
    return e / e.sum()


def test_exp3_update_equals_hand_computation():
    agents = manas.MultiAgentBandit([2, 3], seed=0)
    assert agents.probabilities() == [[0.5, 0.5], pytest.approx([1 / 3] * 3)]
    # Round 1: eta = sqrt(ln K / (1 K)); loss 1 - 0.25 over the probabilities played.
    assert agents.eta(0) == pytest.approx(math.sqrt(math.log(2) / 2))
    agents.update([0, 2], 0.25)
    assert agents.cumulative_losses.tolist() == pytest.approx([1.5, 0, 0, 0, 2.25])
    # Round 2: eta = sqrt(ln K / (2 K)), exponential weights of the cumulative estimates.
    eta0, eta1 = math.sqrt(math.log(2) / 4), math.sqrt(math.log(3) / 6)
    p0, p1 = _softmax([-eta0 * 1.5, 0.0]), _softmax([0.0, 0.0, -eta1 * 2.25])
    assert agents.probabilities()[0] == pytest.approx(p0.tolist())
    assert agents.probabilities()[1] == pytest.approx(p1.tolist())
    agents.update([1, 2], 1.0)  # Loss 0: nothing moves but the round.
    assert agents.cumulative_losses.tolist() == pytest.approx([1.5, 0, 0, 0, 2.25])
    assert agents.rounds == 2
    eta1 = math.sqrt(math.log(3) / 9)  # Round 3.
    agents.update([1, 0], 0.5)
    want = [1.5, 0.5 / _softmax([-math.sqrt(math.log(2) / 6) * 1.5, 0.0])[1]]
    want += [0.5 / _softmax([0.0, 0.0, -eta1 * 2.25])[0], 0, 2.25]
    assert agents.cumulative_losses.tolist() == pytest.approx(want)


def test_exp3_constant_rate_and_exploration_mixture():
    agents = manas.MultiAgentBandit([4], learning_rate=0.5, exploration=0.2, seed=0)
    agents.update([3], 0.0)  # Played with p = 0.25: estimate 4.
    weights = _softmax([0.0, 0.0, 0.0, -0.5 * 4.0])
    assert agents.probabilities()[0] == pytest.approx((0.8 * weights + 0.05).tolist())
    assert agents.eta(0) == 0.5
    for _ in range(200):
        agents.update([3], 0.0)
    assert min(agents.probabilities()[0]) == pytest.approx(0.05)  # gamma / K stays.


def test_least_squares_values_equal_numpy_lstsq():
    categories = [3, 2, 4]
    agents = manas.MultiAgentBandit(categories, variant="least_squares", seed=1)
    rng = np.random.default_rng(0)
    rows, rewards = [], []
    for _ in range(25):
        actions = agents.sample()
        reward = float(rng.random())
        agents.update(actions, reward)
        row = np.zeros(sum(categories))
        for i, a in enumerate(actions):
            row[[0, 3, 5][i] + a] = 1.0
        rows.append(row)
        rewards.append(reward)
    expected = np.linalg.lstsq(np.array(rows), np.array(rewards), rcond=None)[0]
    got = np.concatenate([np.asarray(r) for r in agents.values()])
    assert got == pytest.approx(expected, abs=1e-9)
    # MANAS-LS explores uniformly.
    assert agents.probabilities()[2] == [0.25] * 4


def test_least_squares_hand_example():
    # One agent: the values are the mean reward of each action.
    agents = manas.MultiAgentBandit([3], variant="least_squares")
    for action, reward in [(0, 0.2), (0, 0.4), (2, 0.9)]:
        agents.update([action], reward)
    assert agents.values()[0] == pytest.approx([0.3, 0.0, 0.9])
    assert agents.final_distributions() == [[0.0, 0.0, 1.0]]
    assert agents.most_likely() == [2]


@pytest.mark.parametrize("seed", range(3))
def test_exp3_agent_with_a_better_action_concentrates(seed):
    agents = manas.MultiAgentBandit([3, 4, 2], seed=seed)
    noise = np.random.default_rng(seed + 10)
    for _ in range(400):
        actions = agents.sample()
        # Agent 0's action 2 always earns more; the others are noise.
        agents.update(actions, 0.2 + 0.6 * (actions[0] == 2) + 0.2 * noise.random())
    assert agents.probabilities()[0][2] > 0.95
    assert agents.most_likely()[0] == 2


@pytest.mark.parametrize("seed", range(3))
def test_least_squares_identifies_the_best_additive_architecture(seed):
    categories = [4, 3, 3, 2]
    target = [1, 2, 0, 1]
    agents = manas.MultiAgentBandit(categories, variant="least_squares", seed=seed)
    noise = np.random.default_rng(seed + 10)
    for _ in range(300):
        actions = agents.sample()
        reward = sum(0.2 * (a == t) for a, t in zip(actions, target)) + 0.1 * noise.normal()
        agents.update(actions, reward)
    assert agents.most_likely() == target


def test_sampling_follows_the_probabilities():
    agents = manas.MultiAgentBandit([3, 2], learning_rate=1.0, seed=0)
    agents.cumulative_losses[:3] = [0.0, math.log(2), math.log(4)]  # Weights 4 : 2 : 1.
    samples = np.array([agents.sample() for _ in range(20000)])
    counts = np.bincount(samples[:, 0], minlength=3) / len(samples)
    assert counts == pytest.approx([4 / 7, 2 / 7, 1 / 7], abs=0.015)
    assert agents.sample(np.random.default_rng(5)) == agents.sample(np.random.default_rng(5))


@pytest.mark.parametrize("variant", manas.VARIANTS)
def test_state_round_trip_continues_identically(variant):
    def run(agents, rounds):
        for _ in range(rounds):
            actions = agents.sample()
            agents.update(
                actions, float(np.clip(0.1 * sum(actions) + 0.1 * agents.rng.random(), 0, 1))
            )

    straight = manas.MultiAgentBandit([4, 3, 2], variant=variant, seed=7)
    run(straight, 40)
    first = manas.MultiAgentBandit([4, 3, 2], variant=variant, seed=7)
    run(first, 15)
    state = json.loads(json.dumps(first.get_state()))
    resumed = manas.MultiAgentBandit([4, 3, 2], variant=variant, seed=123)
    resumed.set_state(state)
    run(resumed, 25)
    assert resumed.get_state() == straight.get_state()
    with pytest.raises(ValueError, match=r"saved for categories=\[4, 3, 2\]"):
        manas.MultiAgentBandit([4, 3, 3], variant=variant).set_state(state)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"variant must be one of \['exp3', 'least_squares'\]"):
        manas.MultiAgentBandit([3], variant="ucb")
    with pytest.raises(
        ValueError, match=r"categories\[1\] must be >= 1. Received: categories\[1\]=0"
    ):
        manas.MultiAgentBandit([3, 0])
    with pytest.raises(ValueError, match=r"categories must name at least one decision"):
        manas.MultiAgentBandit([])
    with pytest.raises(ValueError, match=r"learning_rate must be > 0. Received: learning_rate=0"):
        manas.MultiAgentBandit([3], learning_rate=0)
    with pytest.raises(ValueError, match=r"exploration must be .*Received: exploration=1"):
        manas.MultiAgentBandit([3], exploration=1)
    agents = manas.MultiAgentBandit([3, 2])
    with pytest.raises(ValueError, match=r"rewards in \[0, 1\].*Received: reward=1.5"):
        agents.update([0, 0], 1.5)
    with pytest.raises(ValueError, match=r"reward must be finite. Received: reward=nan"):
        agents.update([0, 0], float("nan"))
    with pytest.raises(ValueError, match=r"agent 1 must be an int in \[0, 1\].*actions=\[0, 2\]"):
        agents.update([0, 2], 0.5)
    with pytest.raises(ValueError, match=r"one action per agent \(2\). Received: actions=\[0\]"):
        agents.update([0], 0.5)
    assert agents.rounds == 0  # Nothing was learned from bad input.
    least_squares = manas.MultiAgentBandit([3, 2], variant="least_squares")
    least_squares.update([0, 0], -2.0)  # Any finite reward fits.
    assert least_squares.rounds == 1
