"""The derivation rules on plain JSON: DARTS, DARTS+ stopping, P-DARTS dropping and capping."""

import numpy as np
import pytest

from tfnas.search import derivation

OPS = ("none", "skip_connect", "conv")


def _candidates(name):
    return [{name: op} for op in OPS]


def _cell(prefix=""):
    """Two nodes: node0 sums both cell inputs (edges 0, 1), node1 keeps 2 of 3 inputs."""
    edges = {
        "node0": [f"{prefix}node0/edge{i}" for i in range(2)],
        "node1": [f"{prefix}node1/edge{i}" for i in range(3)],
    }
    names = [e for node in edges.values() for e in node]
    return {
        "candidates": {name: _candidates(name) for name in names},
        "decisions": {name: name for name in names},
        "inputs": {
            f"{prefix}{node}/inputs": {"n_chosen": 2, "edges": list(node_edges)}
            for node, node_edges in edges.items()
        },
    }


# softmax(alpha) per edge, over (none, skip_connect, conv).
DISTRIBUTIONS = {
    "node0/edge0": [0.1, 0.2, 0.7],
    "node0/edge1": [0.2, 0.5, 0.3],
    "node1/edge0": [0.7, 0.2, 0.1],  # `none` dominates: strength 0.2 (skip).
    "node1/edge1": [0.1, 0.3, 0.6],  # strength 0.6 (conv)
    "node1/edge2": [0.5, 0.45, 0.05],  # strength 0.45 (skip)
}


def test_softmax_and_candidate_labels():
    np.testing.assert_allclose(derivation.softmax([0.0, np.log(3.0)]), [0.25, 0.75])
    assert derivation.softmax([5.0, 1.0, 1.0], excluded=[0]) == pytest.approx([0.0, 0.5, 0.5])
    assert derivation.candidate_label({"a": 3, "b": "x"}) == "3,x"


def test_check_finite_names_the_bad_choices():
    derivation.check_finite({"a": [0.0, 1.0]})
    with pytest.raises(ValueError, match=r"not finite for \['b'\]"):
        derivation.check_finite({"a": [0.0], "b": [float("nan"), 0.0]})


def test_darts_derivation_of_a_small_cell_by_hand():
    pick = derivation.darts_picker(_cell(), DISTRIBUTIONS)
    # Scores of node1's inputs: 0.2, 0.6, 0.45 -> inputs 1 and 2.
    assert pick("node1/inputs") == "1,2"
    assert pick("node1/edge1") == "conv"
    assert pick("node1/edge2") == "skip_connect"  # Not `none`, though `none` is stronger.
    assert pick("node1/edge0") == "skip_connect"
    assert pick("node0/inputs") == "0,1"
    assert pick("node0/edge0") == "conv" and pick("node0/edge1") == "skip_connect"
    assert pick("not_in_the_supernet") is None


def test_edge_weights_and_forbidden_candidates_change_the_edges():
    # PC-DARTS: scores times the input weights, 0.2 * 1, 0.6 * 0.5, 0.45 * 0.1.
    weights = {"node1/inputs": [1.0, 0.5, 0.1]}
    assert (
        derivation.darts_picker(_cell(), DISTRIBUTIONS, edge_weights=weights)("node1/inputs")
        == "0,1"
    )
    # Without its conv, edge 1 has strength 0.3 (skip): inputs 1 and 2 still, edge 1 skips.
    pick = derivation.darts_picker(_cell(), DISTRIBUTIONS, forbidden={"node1/edge1": [2]})
    assert pick("node1/inputs") == "1,2" and pick("node1/edge1") == "skip_connect"
    # An edge with nothing but `none` left takes `none`.
    pick = derivation.darts_picker(_cell(), DISTRIBUTIONS, forbidden={"node1/edge0": [1, 2]})
    assert pick("node1/edge0") == "none"


def test_ties_go_to_the_lower_inputs_and_non_choice_inputs_count_zero():
    structure = _cell()
    structure["inputs"]["node1/inputs"]["edges"] = [None, "node1/edge1", "node1/edge2"]
    uniform = {name: [1 / 3] * 3 for name in DISTRIBUTIONS}
    assert derivation.darts_picker(structure, uniform)("node1/inputs") == "1,2"
    structure = _cell()
    assert derivation.darts_picker(structure, uniform)("node1/inputs") == "0,1"


def test_sampling_follows_the_distributions_and_the_seed():
    def sample(seed):
        pick = derivation.darts_picker(_cell(), DISTRIBUTIONS, rng=np.random.default_rng(seed))
        return [pick(name) for name in ("node1/inputs", "node1/edge0", "node1/edge1")]

    assert sample(0) == sample(0)
    for seed in range(10):
        inputs, *ops = sample(seed)
        assert len(inputs.split(",")) == 2
        assert all(op != "none" for op in ops)  # Edges never sample `none` while they can.
    assert len({tuple(sample(seed)) for seed in range(10)}) > 1


def test_non_finite_distributions_are_refused():
    with pytest.raises(ValueError, match="not finite"):
        derivation.darts_picker(_cell(), {**DISTRIBUTIONS, "node0/edge0": [np.nan, 0.5, 0.5]})


def test_names_with_op_scopes_to_the_normal_cell_when_it_exists():
    structure = {"decisions": {"normal/a": "normal/a", "reduce/b": "reduce/b"}}
    values = {"normal/a": "skip_connect", "reduce/b": "skip_connect", "other": "skip_connect"}
    assert derivation.names_with_op(structure, values) == ["normal/a"]
    assert derivation.names_with_op(structure, values, scope="cell/") == ["normal/a", "reduce/b"]
    assert derivation.names_with_op(structure, {"reduce/b": "conv"}, "conv") == ["reduce/b"]


def test_darts_plus_stops_on_skip_connections():
    structure = _cell("normal/")
    derived = {"normal/node0/edge0": "skip_connect", "normal/node1/edge2": "skip_connect"}
    kwargs = {"max_skip_connections": 2, "stable_epochs": None}
    reason = derivation.darts_plus_stop_reason(3, derived, structure, [], **kwargs)
    assert reason == (
        "after epoch 4 the derived normal cell has 2 skip_connect edges (max_skip_connections=2)"
    )
    derived["normal/node1/edge2"] = "conv"
    assert derivation.darts_plus_stop_reason(3, derived, structure, [], **kwargs) is None


def test_darts_plus_stops_when_the_ranking_is_stable():
    def entry(p):
        return {"distributions": {"op": p}}

    kwargs = {"max_skip_connections": 2, "stable_epochs": 2}
    history = [entry([0.5, 0.3, 0.2]), entry([0.6, 0.3, 0.1])]
    # Two entries cover one epoch of stability only.
    assert derivation.darts_plus_stop_reason(1, {}, {}, history, **kwargs) is None
    history.append(entry([0.4, 0.35, 0.25]))
    reason = derivation.darts_plus_stop_reason(2, {}, {}, history, **kwargs)
    assert reason == "the ranking of alpha has not changed for 2 epochs (epochs 1 to 3)"
    history.append(entry([0.3, 0.4, 0.3]))  # The top two swap.
    assert derivation.darts_plus_stop_reason(3, {}, {}, history, **kwargs) is None
    assert derivation.ranking({"op": [0.2, 0.5, 0.2]}) == {"op": [1, 0, 2]}


def test_pdarts_drops_the_weakest_candidates_and_none_before_the_last_stage():
    candidates = {"e": _candidates("e") + [{"e": "pool"}]}
    probabilities = {"e": [0.4, 0.1, 0.3, 0.2]}  # none, skip, conv, pool
    assert derivation.drop_candidates(probabilities, candidates, {}, 3, last=False) == {"e": [1]}
    # Already excluded candidates stay out; `none` goes before the last stage.
    assert derivation.drop_candidates(probabilities, candidates, {"e": [1]}, 2, last=True) == {
        "e": [0, 1]
    }
    # Only `none` left: it is kept.
    only_none = derivation.drop_candidates(probabilities, candidates, {"e": [1, 2, 3]}, 1, True)
    assert only_none == {"e": [1, 2, 3]}


def test_pdarts_caps_the_skip_connections_of_the_normal_cell():
    structure = _cell("normal/")
    distributions = {
        "normal/node0/edge0": [0.0, 0.6, 0.4],
        "normal/node0/edge1": [0.0, 0.9, 0.1],
        "normal/node1/edge0": [0.0, 0.1, 0.9],
        "normal/node1/edge1": [0.0, 0.8, 0.2],
        "normal/node1/edge2": [0.3, 0.05, 0.65],
    }

    def derive(forbidden):
        pick = derivation.darts_picker(structure, distributions, forbidden=forbidden)
        values = {}
        for node, info in structure["inputs"].items():
            values[node] = pick(node)
            for index in map(int, values[node].split(",")):
                values[info["edges"][index]] = pick(info["edges"][index])
        return values

    assert derivation.names_with_op(structure, derive({})) == [
        "normal/node0/edge0",
        "normal/node0/edge1",
        "normal/node1/edge1",
    ]
    capped = derivation.cap_skip_connections(
        derive, structure, distributions, max_skip_connections=1
    )
    # The weakest skips (0.6, then 0.8) take their next-best operation.
    assert derivation.names_with_op(structure, capped) == ["normal/node0/edge1"]
    assert capped["normal/node0/edge0"] == "conv"
    assert capped["normal/node1/inputs"] == "0,2"  # Edge 1 lost its strength with its skip.
