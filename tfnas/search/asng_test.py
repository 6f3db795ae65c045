import json
import math

import numpy as np
import pytest

from tfnas.search import asng


def _fisher(theta_row):
    """The Fisher matrix of a categorical in the coordinates theta[:K-1] (K implied)."""
    head, last = np.asarray(theta_row[:-1]), theta_row[-1]
    return np.diag(1.0 / head) + np.ones((len(head), len(head))) / last


def _whitening(theta_row):
    """The code's F^(1/2): M with M^T M = F, M g the whitened gradient."""
    head, last = np.asarray(theta_row[:-1]), theta_row[-1]
    return np.diag(head**-0.5) + np.outer(np.sqrt(head), np.ones(len(head))) / (
        last + math.sqrt(last)
    )


def _project(row, margin):
    row = np.maximum(np.asarray(row, dtype=float), margin)
    total = row.sum()
    row = row - (total - 1.0) * (row - margin) / (total - margin * len(row))
    return row / row.sum()


def test_ranking_utility():
    utility, order = asng.ranking_utility([2.0, 1.0])
    assert order.tolist() == [1, 0] and utility.tolist() == [1.0, -1.0]
    utility, order = asng.ranking_utility([3.0, 1.0, 2.0, 5.0])  # mu = ceil(4 / 4) = 1.
    assert order.tolist() == [1, 2, 0, 3] and utility.tolist() == [1.0, 0.0, 0.0, -1.0]
    utility, _ = asng.ranking_utility([1.0, 1.0, 2.0])  # The tied best share (1 + 0) / 2.
    assert utility.tolist() == [0.5, 0.5, -1.0]
    for tie in ([0.7, 0.7], [0.0, 0.0], [-1.0, -1.0]):
        assert asng.ranking_utility(tie)[0].tolist() == [0.0, 0.0]


def test_first_step_equals_hand_computation():
    opt = asng.CategoricalASNG([3, 3, 2], seed=0)
    # d = 3 searchable decisions: theta_min = 1/(3*2) for K=3, 1/(3*1) for K=2; N = 5.
    assert opt.theta_mins == pytest.approx([1 / 6, 1 / 6, 1 / 3])
    assert opt.num_params == 5 and opt.delta == 1.0
    better, worse = [0, 1, 0], [2, 1, 1]
    assert opt.update([worse, better], [2.0, 1.0])
    # G = 1/2 (one_hot(better) - one_hot(worse)), row by row.
    grads = [np.array([0.5, 0.0, -0.5]), np.zeros(3), np.array([0.5, -0.5])]
    theta0 = [np.full(3, 1 / 3), np.full(3, 1 / 3), np.full(2, 1 / 2)]
    norm_sq = sum(g[:-1] @ _fisher(t) @ g[:-1] for g, t in zip(grads, theta0))
    assert norm_sq == pytest.approx(0.75 + 0.75 + 1.0)
    norm = math.sqrt(norm_sq)
    expected = [_project(t + g / norm, m) for t, g, m in zip(theta0, grads, opt.theta_mins)]
    for row, want in zip(opt.theta, expected):
        assert row == pytest.approx(want.tolist(), abs=1e-12)
    # Row 0 went to [0.650, 0.333, 0.017] and was projected onto theta >= 1/6.
    assert opt.theta[0][2] == pytest.approx(1 / 6)
    assert opt.theta[1] == pytest.approx([1 / 3] * 3)
    beta = 1 / math.sqrt(5)
    gamma = beta * (2 - beta)
    whitened = np.concatenate([_whitening(t) @ g[:-1] for g, t in zip(grads, theta0)])
    assert opt.s == pytest.approx(math.sqrt(gamma) * whitened / norm)
    assert opt.gamma == pytest.approx(gamma)
    # ||s||^2 = gamma after one step: Delta = exp(beta * gamma * (1 - 1/alpha)).
    assert opt.Delta == pytest.approx(math.exp(beta * gamma * (1 - 1 / 1.5)))
    assert opt.delta == pytest.approx(1 / opt.Delta)


def test_whitening_is_a_square_root_of_the_fisher_matrix():
    row = np.array([0.5, 0.2, 0.1, 0.2])
    m = _whitening(row)
    assert m.T @ m == pytest.approx(_fisher(row))


def test_ties_and_vanishing_gradients_skip_the_update():
    opt = asng.CategoricalASNG([3, 3, 2], seed=0)
    opt.update([[0, 0, 0], [1, 1, 1]], [1.0, 2.0])
    before = opt.get_state()
    assert not opt.update([[0, 1, 0], [2, 1, 1]], [0.5, 0.5])  # Tied losses: u = 0.
    assert not opt.update([[2, 2, 1], [2, 2, 1]], [0.1, 0.9])  # Same architecture: G = 0.
    after = opt.get_state()
    assert after["num_skipped"] == 2 and after["num_updates"] == 1
    for key in ("theta", "s", "gamma", "Delta"):
        assert after[key] == before[key]


def _reference_run(categories, steps, seed, alpha=1.5):
    """s, gamma, Delta and theta after `steps` random updates, recomputed in the test."""
    rng = np.random.default_rng(seed)
    valid_d = sum(k > 1 for k in categories)
    margins = [1 / (valid_d * (k - 1)) for k in categories]
    n = sum(k - 1 for k in categories)
    theta = [np.full(k, 1 / k) for k in categories]
    s, gamma, big_delta = np.zeros(n), 0.0, 1.0
    history = []
    for _ in range(steps):
        pair = [[int(rng.integers(k)) for k in categories] for _ in range(2)]
        losses = rng.normal(size=2).tolist()
        history.append((pair, losses))
        best, worst = (0, 1) if losses[0] < losses[1] else (1, 0)
        if pair[0] == pair[1]:
            continue
        delta = 1.0 / big_delta
        beta = delta / math.sqrt(n)
        grads = [
            0.5 * (np.eye(k)[pair[best][i]] - np.eye(k)[pair[worst][i]])
            for i, k in enumerate(categories)
        ]
        norm = math.sqrt(sum(g[:-1] @ _fisher(t) @ g[:-1] for g, t in zip(grads, theta)))
        whitened = np.concatenate([_whitening(t) @ g[:-1] for g, t in zip(grads, theta)])
        theta = [_project(t + delta * g / norm, m) for t, g, m in zip(theta, grads, margins)]
        s = (1 - beta) * s + math.sqrt(beta * (2 - beta)) * whitened / norm
        gamma = (1 - beta) ** 2 * gamma + beta * (2 - beta)
        big_delta *= math.exp(beta * (gamma - s @ s / alpha))
    return history, theta, s, gamma, big_delta


def test_step_size_adapts_as_the_paper_formula():
    categories = [4, 3, 3, 2]
    history, theta, s, gamma, big_delta = _reference_run(categories, steps=30, seed=3)
    opt = asng.CategoricalASNG(categories, seed=0)
    deltas = []
    for pair, losses in history:
        opt.update(pair, losses)
        deltas.append(opt.delta)
    assert opt.s == pytest.approx(s, abs=1e-10)
    assert opt.gamma == pytest.approx(gamma)
    assert opt.Delta == pytest.approx(big_delta)
    for row, want in zip(opt.theta, theta):
        assert row == pytest.approx(want.tolist(), abs=1e-10)
    # Random losses carry no signal: ||s||^2 / gamma stays small, the step size shrinks.
    assert deltas[-1] < deltas[0] < 1.0


def test_delta_max_bounds_the_shrinking():
    opt = asng.CategoricalASNG([4, 3, 3, 2], delta_max=1.05, seed=0)
    history, *_ = _reference_run([4, 3, 3, 2], steps=30, seed=3)
    for pair, losses in history:
        opt.update(pair, losses)
    assert opt.Delta == pytest.approx(1.05)


def test_theta_stays_a_distribution_within_its_bounds():
    categories = [5, 3, 2, 1, 4]
    opt = asng.CategoricalASNG(categories, seed=1)
    rng = np.random.default_rng(0)
    for _ in range(300):
        pair = opt.sample_lam()
        opt.update(pair, [sum(pair[0]) + rng.normal(), sum(pair[1]) + rng.normal()])
        for row, k, margin in zip(opt.theta, categories, opt.theta_mins):
            assert len(row) == k
            assert sum(row) == pytest.approx(1.0, abs=1e-12)
            assert min(row) >= margin - 1e-12
            assert max(row) <= 1.0 - (k - 1) * margin + 1e-12
    assert opt.theta[3] == [1.0]  # One candidate: nothing to learn.


@pytest.mark.parametrize("seed", range(4))
def test_concentrates_on_the_target_of_a_noisy_toy_objective(seed):
    categories = [4] * 6
    target = [3, 0, 2, 1, 3, 0]
    opt = asng.CategoricalASNG(categories, seed=seed)
    noise = np.random.default_rng(seed + 1)

    def loss(sample):
        return sum(a != b for a, b in zip(sample, target)) + 0.3 * noise.normal()

    updates = 0
    while not opt.converged() and updates < 2000:
        pair = opt.sample_lam()
        opt.update(pair, [loss(c) for c in pair])
        updates += 1
    assert opt.converged(), updates
    assert opt.most_likely() == target
    # theta_min = 1/18: the mode's probability is at its bound 1 - 3/18.
    assert opt.convergence() == pytest.approx(1 - 3 / 18, abs=1e-6)


def test_sampling_follows_theta():
    opt = asng.CategoricalASNG([3, 2, 2], seed=0)
    opt._theta[0, :3] = [0.6, 0.3, 0.1]
    samples = np.array([opt.sample() for _ in range(20000)])
    counts = np.bincount(samples[:, 0], minlength=3) / len(samples)
    assert counts == pytest.approx([0.6, 0.3, 0.1], abs=0.015)
    assert opt.sample(np.random.default_rng(5)) == opt.sample(np.random.default_rng(5))


def test_state_round_trip_continues_identically():
    def run(opt, steps):
        for _ in range(steps):
            pair = opt.sample_lam()
            opt.update(pair, [float(sum(c)) + opt.rng.normal() for c in pair])

    straight = asng.CategoricalASNG([4, 3, 2], seed=7)
    run(straight, 40)
    first = asng.CategoricalASNG([4, 3, 2], seed=7)
    run(first, 15)
    state = json.loads(json.dumps(first.get_state()))
    resumed = asng.CategoricalASNG([4, 3, 2], seed=123)
    resumed.set_state(state)
    run(resumed, 25)
    assert resumed.get_state() == straight.get_state()
    with pytest.raises(ValueError, match=r"saved for categories=\[4, 3, 2\]"):
        asng.CategoricalASNG([4, 3, 3]).set_state(state)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"leaves decision 0 \(K=2\) no room with d=2"):
        asng.CategoricalASNG([2, 2])
    with pytest.raises(ValueError, match=r"no room with d=1"):
        asng.CategoricalASNG([3, 1])
    opt = asng.CategoricalASNG([2, 2], theta_min=0.1)  # An explicit margin works.
    assert opt.theta_mins == [0.1, 0.1]
    with pytest.raises(ValueError, match=r"theta_min must be below 1/K = 0.333333 .*theta_min=0.4"):
        asng.CategoricalASNG([3, 2], theta_min=0.4)
    with pytest.raises(
        ValueError, match=r"categories\[1\] must be >= 1. Received: categories\[1\]=0"
    ):
        asng.CategoricalASNG([3, 0])
    with pytest.raises(ValueError, match=r"lam must be >= 2. Received: lam=1"):
        asng.CategoricalASNG([3, 3], lam=1)
    opt = asng.CategoricalASNG([3, 3, 2])
    with pytest.raises(ValueError, match=r"at least 2 samples and one loss per sample"):
        opt.update([[0, 0, 0]], [1.0])
    with pytest.raises(ValueError, match=r"losses must be finite. Received: losses=\[1.0, nan\]"):
        opt.update([[0, 0, 0], [1, 1, 1]], [1.0, float("nan")])
    with pytest.raises(
        ValueError, match=r"decision 2 must be an int in \[0, 1\].*samples\[1\]=\[1, 1, 2\]"
    ):
        opt.update([[0, 0, 0], [1, 1, 2]], [1.0, 2.0])
    with pytest.raises(
        ValueError, match=r"one index per decision \(3\). Received: samples\[0\]=\[0, 0\]"
    ):
        opt.update([[0, 0], [1, 1, 1]], [1.0, 2.0])
