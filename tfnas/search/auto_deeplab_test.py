import itertools
import json

import numpy as np
import pytest

from tfnas.search import auto_deeplab as adl


def test_adl_trellis_mask_follows_reachability():
    mask = adl.transition_mask(4)
    # Layer 0 leaves only the /4 stem: same (/4) or down (/8).
    assert mask[0].tolist() == [[False, True, True]] + [[False] * 3] * 3
    # Layer 1: from /4 (same, down) and /8 (up, same, down).
    assert mask[1, 0].tolist() == [False, True, True]
    assert mask[1, 1].tolist() == [True, True, True]
    assert not mask[1, 2:].any()
    # From layer 3 on the /32 border has no way down and /4 no way up.
    assert mask[3, 3].tolist() == [True, True, False]
    assert mask[3, 0].tolist() == [False, True, True]
    assert int(mask.sum()) == 2 + 5 + 8 + 10


def test_adl_betas_are_normalised_over_outgoing_transitions():
    mask = adl.transition_mask(5)
    betas = np.random.default_rng(0).normal(size=mask.shape)
    probs = adl.normalize_betas(betas, mask)
    sums = probs.sum(axis=-1)
    assert np.allclose(sums[mask.any(axis=-1)], 1.0)
    assert np.all(probs[~mask] == 0.0)
    # A two-way border node: the plain softmax of its two logits (no 2/3 scaling).
    e = np.exp(betas[3, 3, :2])
    assert np.allclose(probs[3, 3, :2], e / e.sum())


def test_adl_viterbi_matches_brute_force_over_all_paths():
    for seed in range(10):
        num_layers = 5
        mask = adl.transition_mask(num_layers)
        betas = np.random.default_rng(seed).normal(scale=2.0, size=mask.shape)
        probs = adl.normalize_betas(betas, mask)
        paths = itertools.product(range(len(adl.RATES)), repeat=num_layers)
        best = max(paths, key=lambda p: adl.path_probability(probs, p))
        decoded = adl.viterbi_path(probs)
        assert adl.path_probability(probs, decoded) == pytest.approx(
            adl.path_probability(probs, best)
        )
        assert adl.path_probability(probs, decoded) > 0
        adl.validate_path(decoded)


def test_adl_project_path_keeps_valid_paths_and_makes_every_choice_valid():
    valid = 0
    for levels in itertools.product(range(3), repeat=4):
        path = adl.project_path(levels, num_levels=3)
        assert adl.validate_path(path, 3) == path
        if path == list(levels):
            valid += 1
        # Layer by layer the nearest level within one step of the previous one.
        src = 0
        for level, projected in zip(levels, path):
            assert abs(projected - src) <= 1
            assert abs(projected - level) == min(
                abs(c - level) for c in (src - 1, src, src + 1) if 0 <= c < 3
            )
            src = projected
    # Every valid path is its own projection: as many fixed points as valid paths.
    assert valid == sum(1 for p in itertools.product(range(3), repeat=4) if _is_valid(p, 3))
    assert adl.project_path([3, 3, 0], num_levels=4) == [1, 2, 1]


def _is_valid(path, num_levels):
    try:
        adl.validate_path(path, num_levels)
    except ValueError:
        return False
    return True


def test_adl_viterbi_follows_a_dominant_path():
    mask = adl.transition_mask(4)
    betas = np.zeros(mask.shape)
    # /4 -> /8 -> /16 -> /16 -> /8
    for layer, (src, k) in enumerate([(0, adl.DOWN), (1, adl.DOWN), (2, adl.SAME), (2, adl.UP)]):
        betas[layer, src, k] = 10.0
    path = adl.viterbi_path(adl.normalize_betas(betas, mask))
    assert path == [1, 2, 2, 1]
    assert adl.path_rates(path) == [8, 16, 16, 8]


def test_adl_architecture_json_round_trip():
    cell = {"normal": [["sep_conv_3x3", 0]], "normal_concat": [2]}
    state = adl.architecture_to_json(cell, [0, 1, 2, 2])
    state = json.loads(json.dumps(state))
    assert state["rates"] == [4, 8, 16, 16]
    assert adl.architecture_from_json(state) == (cell, [0, 1, 2, 2])


def test_adl_errors_name_the_argument():
    with pytest.raises(ValueError, match="Received: num_layers=0"):
        adl.transition_mask(0)
    with pytest.raises(ValueError, match=r"Received: path=\[0, 2\] \(layer 1\)"):
        adl.validate_path([0, 2])
    with pytest.raises(ValueError, match=r"Received: path=\[2\] \(layer 0\)"):
        adl.validate_path([2])
    with pytest.raises(ValueError, match=r"betas.shape=\(2, 4\)"):
        adl.normalize_betas(np.zeros((2, 4)), adl.transition_mask(2))
    with pytest.raises(ValueError, match=r"probs.shape=\(2, 4\)"):
        adl.viterbi_path(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="needs key 'path'"):
        adl.architecture_from_json({"cell": {}})
