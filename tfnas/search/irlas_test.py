import json
import math

import keras_tuner
import numpy as np
import pytest

from tfnas.search import encoding, irlas
from tfnas.search.reinforce import Controller
from tfnas.tuners import multi_trial_testing as testing

OPS = ["a", "b", "c"]


def three_edges() -> encoding.SpaceEncoding:
    hp = keras_tuner.HyperParameters()
    for i in range(3):
        hp.Choice(f"e{i}", OPS)
    return encoding.SpaceEncoding(hp)


def test_feature_map_layout_and_exact_similarity():
    space = three_edges()
    phi = irlas.FeatureMap(space)
    # 3 decisions of 3 + 1 slots, 3 operation counts of 0..3.
    assert [slots for _, slots in phi.attributes] == [4, 4, 4, 4, 4, 4]
    assert phi.dim == 24 and not phi.conditional
    a = {"e0": "a", "e1": "a", "e2": "b"}
    b = {"e0": "a", "e1": "a", "e2": "c"}
    assert phi.slots(a) == [0, 0, 1, 2, 1, 0]
    assert np.linalg.norm(phi(a)) == pytest.approx(1.0)
    # Two of three edges agree; of the counts only that of "a" (2) does: 3 of 6.
    assert irlas.feature_similarity(space, a, b) == pytest.approx(0.5)
    assert irlas.feature_similarity(space, a, a) == pytest.approx(1.0)
    assert irlas.topological_distance(space, a, b) == 1
    # Swapping e0 and e2 keeps the counts: e1 and the 3 counts agree, 4 of 6.
    c = {"e0": "b", "e1": "a", "e2": "a"}
    assert irlas.feature_similarity(space, a, c) == pytest.approx(4 / 6)
    assert irlas.topological_distance(space, a, c) == 2


def test_conditional_space_has_depth_and_inactive_slots():
    hp = keras_tuner.HyperParameters()
    hp.Choice("kind", ["x", "y"])
    with hp.conditional_scope("kind", ["y"]):
        hp.Choice("size", [1, 2])
    space = encoding.SpaceEncoding(hp)
    phi = irlas.FeatureMap(space)
    assert phi.conditional and phi.attributes[-1] == ("depth", 3)
    assert phi.slots({"kind": "x"}) == [0, 2, 1]
    assert phi.slots({"kind": "y", "size": 2}) == [1, 1, 2]
    assert irlas.topological_distance(space, {"kind": "x"}, {"kind": "y", "size": 1}) == 2


def test_projection_fit_by_hand():
    mu_expert = np.array([1.0, 1.0])
    mus = [np.zeros(2), np.array([2.0, 0.0])]
    w, mu_bar, margins = irlas.projection_fit(mu_expert, mus)
    # alpha = <(2, 0), (1, 1)> / 4 = 0.5.
    np.testing.assert_allclose(mu_bar, [1.0, 0.0])
    np.testing.assert_allclose(w, [0.0, 1.0])
    np.testing.assert_allclose(margins, [math.sqrt(2), 1.0])
    # Next: step (-1, 2), alpha = <(-1, 2), (0, 1)> / 5 = 0.4, mu_bar = (0.6, 0.8).
    w, mu_bar, margins = irlas.projection_fit(mu_expert, mus + [np.array([0.0, 2.0])])
    np.testing.assert_allclose(mu_bar, [0.6, 0.8])
    np.testing.assert_allclose(w, [0.4, 0.2])
    assert margins[-1] == pytest.approx(math.sqrt(0.2))
    # A policy further from the expert than mu_bar: alpha clipped to 0, nothing moves.
    _, clipped, margins = irlas.projection_fit(mu_expert, mus + [np.array([3.0, -1.0])])
    np.testing.assert_allclose(clipped, [1.0, 0.0])
    assert margins[-1] == margins[-2]


def test_projection_fit_errors():
    with pytest.raises(ValueError, match=r"Received: mus=\[\]"):
        irlas.projection_fit(np.zeros(2), [])
    with pytest.raises(ValueError, match=r"Received: a mu of shape \(3,\)"):
        irlas.projection_fit(np.zeros(2), [np.zeros(3)])


def test_margins_decrease_and_w_separates_expert_from_the_policies():
    space = three_edges()
    phi = irlas.FeatureMap(space)
    rng = np.random.default_rng(0)
    expert = {"e0": "a", "e1": "b", "e2": "c"}
    mu_expert = phi(expert)
    all_archs = list(space.architectures())
    for _ in range(20):
        mus = [phi.mean([all_archs[i] for i in rng.integers(len(all_archs), size=4)])]
        for _ in range(10):
            mus.append(phi.mean([all_archs[i] for i in rng.integers(len(all_archs), size=4)]))
            w, mu_bar, margins = irlas.projection_fit(mu_expert, mus)
            assert all(b <= a + 1e-12 for a, b in zip(margins, margins[1:]))
            assert margins[-1] == pytest.approx(np.linalg.norm(w))
            # w scores the expert above the projection, and above the last policy, by t^2.
            assert w @ mu_expert - w @ mu_bar == pytest.approx(margins[-1] ** 2)
            assert w @ mu_expert - w @ mus[-1] >= margins[-1] ** 2 - 1e-12


def test_mirror_is_maximal_at_the_expert():
    space = three_edges()
    expert = {"e0": "a", "e1": "b", "e2": "c"}
    controller = irlas.IRLASController(expert=expert, refit_interval=2, seed=0)
    controller.windows = [[{"e0": "a", "e1": "a", "e2": "a"}, {"e0": "b", "e1": "b", "e2": "a"}]]
    scores = {encoding.values_key(v): controller.mirror(space, v) for v in space.architectures()}
    best = max(scores, key=scores.get)
    assert json.loads(best) == expert
    assert sorted(scores.values())[-2] < scores[best] <= 1.0
    assert controller.margins(space)[-1] <= controller.margins(space)[0]


def test_mirror_weight_zero_is_the_plain_controller():
    args = {"hidden_size": 4, "batch_size": 4, "reuse_seen": True, "seed": 5}
    plain = testing.run_algorithm(
        Controller(**args), testing.sanity_space(), testing.sanity_reward, 40
    )
    expert = {f"d{i}": 0 for i in range(6)}
    zero = irlas.IRLASController(expert=expert, mirror_weight=0.0, **args)
    assert testing.run_algorithm(zero, testing.sanity_space(), testing.sanity_reward, 40) == plain
    assert zero.windows  # The IRL still ran.


def test_mirror_alone_pulls_the_controller_to_the_expert():
    hp = testing.sanity_space()
    space = encoding.SpaceEncoding(hp)
    expert = {f"d{i}": t for i, t in enumerate(testing.SANITY_TARGET)}
    controller = irlas.IRLASController(
        expert=expert, mirror_weight=1.0, hidden_size=8, batch_size=4, reuse_seen=True,
        learning_rate=0.05, normalize_advantage=True, seed=0,
    )  # fmt: skip
    seen: set[str] = set()
    distances = []
    for _ in range(150):
        values = controller.propose(space, lambda v: encoding.values_key(v) in seen)
        if values is None:
            break
        seen.add(encoding.values_key(values))
        distances.append(irlas.topological_distance(space, values, expert))
        controller.observe(space, values, 0.0)  # No accuracy signal: only the mirror.
    # Uniform sampling: 6 * 3/4 = 4.5 decisions differ on average.
    assert np.mean(distances[:20]) > 3.5
    assert np.mean(distances[-30:]) < np.mean(distances[:20]) - 1.0


def test_state_round_trip_continues_identically():
    hp = testing.sanity_space()
    space = encoding.SpaceEncoding(hp)
    expert = {f"d{i}": 1 for i in range(6)}
    args = {"expert": expert, "hidden_size": 4, "batch_size": 2, "reuse_seen": True}

    def steps(controller, count):
        out = []
        for _ in range(count):
            values = controller.propose(space, lambda v: False)
            controller.observe(space, values, testing.sanity_reward(values))
            out.append(values)
        return out

    first = irlas.IRLASController(refit_interval=3, seed=1, **args)
    steps(first, 10)
    state = json.loads(json.dumps(first.get_state()))
    assert state["irl_windows"] and len(state["irl_window"]) < 3
    second = irlas.IRLASController(refit_interval=3, seed=99, **args)
    second.set_state(state)
    assert second.mirror(space, expert) == pytest.approx(first.mirror(space, expert))
    assert steps(second, 10) == steps(first, 10)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mirror_weight": -1.0}, r"mirror_weight must be >= 0\. Received: mirror_weight=-1\.0"),
        ({"refit_interval": 0}, r"refit_interval must be >= 1\. Received: refit_interval=0"),
        ({"expert": ["a"]}, r"expert must be a dict of values\. Received: expert=\['a'\]"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        irlas.IRLASController(**{"expert": {}, **kwargs})
