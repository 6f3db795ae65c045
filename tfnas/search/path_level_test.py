import json
import math

import numpy as np
import pytest

from tfnas.search import path_level as pl

C = 8


def _t(kind, node="r", **kwargs):
    return {"type": kind, "node": node, **kwargs}


def test_start_cell_and_channels():
    cell = pl.start_cell("conv3x3")
    assert pl.describe(cell) == "conv3x3"
    assert pl.depth(cell) == 1
    plan = pl.node_channels(cell, C)
    assert plan == {"r": [pl.BranchChannels(C, C)]}
    assert pl.parse_cell(pl.cell_key(cell)) == cell


def test_set_merge_add_replicates_the_operation():
    child = pl.apply_transformation(pl.start_cell("sep3x3"), _t("set_merge", merge="add",
                                                                 branches=3), C)  # fmt: skip
    assert pl.describe(child) == "add(sep3x3, sep3x3, sep3x3)"
    assert child["split"] == "copy"
    assert pl.node_channels(child, C)["r"] == [pl.BranchChannels(C, C)] * 3


@pytest.mark.parametrize(
    "op, split, branch_in", [("conv1x1", "copy", C), ("identity", "split", C // 2),
                             ("maxpool3x3", "split", C // 2)]
)  # fmt: skip
def test_set_merge_concat_splits_filters_or_inputs(op, split, branch_in):
    child = pl.apply_transformation(pl.start_cell(op), _t("set_merge", merge="concat",
                                                          branches=2), C)  # fmt: skip
    assert child["merge"] == "concat" and child["split"] == split
    assert pl.node_channels(child, C)["r"] == [pl.BranchChannels(branch_in, C // 2)] * 2


def test_insert_moves_the_old_child_under_an_identity_node():
    cell = pl.apply_transformation(pl.start_cell(), _t("insert", branch=0), C)
    assert pl.describe(cell) == "conv3x3 > identity"
    cell = pl.apply_transformation(cell, _t("replace_identity", "r.0", branch=0, op="sep5x5"), C)
    cell = pl.apply_transformation(cell, _t("insert", branch=0), C)
    assert pl.describe(cell) == "conv3x3 > identity > sep5x5"
    assert pl.depth(cell) == 3
    assert pl.operations(cell) == ["conv3x3", "identity", "sep5x5"]


def test_transformations_are_pure():
    cell = pl.start_cell()
    before = json.dumps(cell)
    pl.apply_transformation(cell, _t("set_merge", merge="add", branches=2), C)
    assert json.dumps(cell) == before


def test_preserves_function_only_fails_for_pooling_replacements():
    assert pl.preserves_function(_t("set_merge", merge="add", branches=2))
    assert pl.preserves_function(_t("insert", branch=0))
    for op in pl.IDENTITY_INITIALIZABLE:
        assert pl.preserves_function(_t("replace_identity", branch=0, op=op))
    for op in ("avgpool3x3", "maxpool3x3"):
        assert not pl.preserves_function(_t("replace_identity", branch=0, op=op))


@pytest.mark.parametrize(
    "cell, transformation, message",
    [
        (pl.start_cell(), _t("insert", "r.0", branch=0),
         r"The cell has no node 'r\.0': node 'r' has no child on branch 0"),
        (pl.start_cell(), _t("insert", "x.1", branch=0), r"A node id is \"r\".*Received: node='x.1'"),
        (pl.start_cell(), _t("insert", branch=2), r"Node 'r' has 1 branches, no branch 2"),
        (pl.start_cell(), _t("set_merge", merge="concat", branches=3),
         r"Node 'r' cannot split 8 channels evenly among 3 branches\. Received: branches=3"),
        (pl.start_cell(), _t("set_merge", merge="mul", branches=2), r"merge must be one of"),
        (pl.start_cell(), _t("set_merge", merge="add", branches=1), r"branches must be >= 2"),
        (pl.apply_transformation(pl.start_cell(), _t("set_merge", merge="add", branches=2), C),
         _t("set_merge", merge="add", branches=2),
         r"set_merge needs a node with one operation and no child; node 'r' is "
         r"'add\(conv3x3, conv3x3\)'"),
        (pl.start_cell(), _t("replace_identity", branch=0, op="sep3x3"),
         r"replace_identity needs an identity; branch 0 of node 'r' is 'conv3x3'"),
        (pl.start_cell("identity"), _t("replace_identity", branch=0, op="fc"),
         r"op must be one of"),
        (pl.start_cell(), _t("grow"), r"type must be one of"),
    ],
)  # fmt: skip
def test_bad_transformations_are_refused_naming_the_node(cell, transformation, message):
    with pytest.raises(ValueError, match=message):
        pl.apply_transformation(cell, transformation, C)


def test_concat_split_needs_divisible_channels_at_depth():
    cell = pl.start_cell("identity")
    cell = pl.apply_transformation(cell, _t("set_merge", merge="concat", branches=2), 6)
    cell = pl.apply_transformation(cell, _t("insert", branch=0), 6)
    with pytest.raises(ValueError, match=r"Node 'r\.0' cannot split 3 channels evenly among 2"):
        pl.apply_transformation(cell, _t("set_merge", "r.0", merge="concat", branches=2), 6)


@pytest.mark.parametrize(
    "cell, message",
    [
        ({"merge": "max", "split": "copy", "branches": [{"op": "conv3x3", "child": None}]},
         r"Node 'r' has an unknown merge"),
        ({"merge": None, "split": "copy", "branches": [{"op": "fc", "child": None}]},
         r"Branch 0 of node 'r' has an unknown operation"),
        ({"merge": None, "split": "copy", "branches": [{"op": "conv3x3", "child": None}] * 2},
         r"Node 'r' needs one branch without a merge"),
        ({"merge": "concat", "split": "copy", "branches": [{"op": "identity", "child": None}] * 2},
         r"Branch 0 of node 'r' is 'identity', which keeps its 8 channels, but the node "
         r"needs 4 from it"),
    ],
)  # fmt: skip
def test_bad_cells_are_refused_naming_the_node(cell, message):
    with pytest.raises(ValueError, match=message):
        pl.check_cell(cell, C)
    with pytest.raises(ValueError, match=r"A cell must be a JSON object"):
        pl.parse_cell("[1]")


def test_rollout_decisions_follow_the_traversal_and_replay():
    space = pl.TransformationSpace(pl.start_cell(), C)
    answers = {"merge@r": "add:2", "insert@r#0": True, "merge@r.0": "concat:2",
               "edge@r.0#0": "sep3x3", "edge@r.0#1": "identity", "insert@r.0#0": False,
               "insert@r.0#1": True, "merge@r.0.1": "none", "edge@r.0.1#0": "conv1x1",
               "insert@r#1": False}  # fmt: skip
    asked = []

    def choose(decision, values):
        asked.append(decision.name)
        assert decision.accepts(answers[decision.name])
        return answers[decision.name]

    rollout = space.walk(choose)
    # Depth first: merge, edges of identities, then each branch's insert or child.
    assert asked == ["merge@r", "insert@r#0", "merge@r.0", "edge@r.0#0", "edge@r.0#1",
                     "insert@r.0#0", "insert@r.0#1", "merge@r.0.1", "edge@r.0.1#0",
                     "insert@r#1"]  # fmt: skip
    assert (
        pl.describe(rollout.child) == "add(conv3x3 > concat(sep3x3, identity > conv1x1), conv3x3)"
    )
    assert [t["type"] for t in rollout.transformations] == [
        "set_merge", "insert", "set_merge", "replace_identity", "insert", "replace_identity"
    ]  # fmt: skip
    assert pl.apply_transformations(pl.start_cell(), rollout.transformations, C) == rollout.child
    assert space.replay(rollout.values).child == rollout.child
    assert rollout.values["parent"] == pl.cell_key(pl.start_cell())
    # The depth limit: no insert decision at level max_depth - 1.
    assert not any(n.startswith("insert@r.0.1") for n in asked)


def test_an_inserted_bare_identity_is_undone():
    space = pl.TransformationSpace(pl.start_cell(), C)
    answers = {"merge@r": "none", "insert@r#0": True, "merge@r.0": "none",
               "edge@r.0#0": "identity", "insert@r.0#0": False}  # fmt: skip
    rollout = space.walk(lambda d, _: answers[d.name])
    assert rollout.child == pl.start_cell() and rollout.transformations == []
    assert rollout.values == {"parent": pl.cell_key(pl.start_cell()), **answers}


def test_concat_choices_are_left_out_where_channels_do_not_divide():
    names = []
    space = pl.TransformationSpace(pl.start_cell(), 3)
    space.walk(lambda d, _: names.append((d.name, d.candidates)) or d.candidates[0])
    assert names[0] == ("merge@r", ("none", "add:2", "add:3"))


def test_choice_arguments_are_validated():
    with pytest.raises(ValueError, match=r'merge_choices must hold "none"'):
        pl.TransformationSpace(pl.start_cell(), C, merge_choices=["add:2"])
    with pytest.raises(ValueError, match=r'merge_choices holds "none", "add:k"'):
        pl.TransformationSpace(pl.start_cell(), C, merge_choices=["none", "add:1"])
    with pytest.raises(ValueError, match=r"replace_choices must be empty, or \"identity\""):
        pl.TransformationSpace(pl.start_cell(), C, replace_choices=["sep3x3"])
    with pytest.raises(ValueError, match=r"max_depth must be >= 1"):
        pl.TransformationSpace(pl.start_cell(), C, max_depth=0)
    with pytest.raises(ValueError, match=r"pool_size must be >= 1"):
        pl.PathLevelSearch(pool_size=0)
    with pytest.raises(ValueError, match=r"reward_transform must be one of"):
        pl.PathLevelSearch(reward_transform="exp")


def test_tan_reward_shaping():
    assert pl.shape_reward(0.5, "tan") == pytest.approx(1.0)
    assert pl.shape_reward(1.0, "tan") == pytest.approx(math.tan(0.99 * math.pi / 2))
    assert pl.shape_reward(-3.0, "identity") == -3.0
    # Above a cost limit (BudgetedAccuracy: 1 - cost / limit): below every accuracy, ordered.
    assert pl.shape_reward(-3.0, "tan") < pl.shape_reward(-0.2, "tan") < pl.shape_reward(0.0, "tan")
    with pytest.raises(ValueError, match=r"needs accuracies \(at most 1.*Received: reward=1.5"):
        pl.shape_reward(1.5, "tan")


def _reward(cell_key):
    """A deterministic score in [0, 1] that prefers cells with separable convolutions."""
    ops = pl.operations(pl.parse_cell(cell_key))
    return 0.3 + 0.6 * sum(op.startswith("sep") for op in ops) / max(len(ops), 1)


def _run(search, n):
    proposals = []
    for _ in range(n):
        values = search.propose(None, lambda v: False)
        if values is None:
            break
        proposals.append(values)
        search.observe(None, values, _reward(values[pl.CELL]))
    return proposals


def test_search_starts_from_the_start_cell_then_transforms_pool_parents():
    search = pl.PathLevelSearch(channels=C, start=pl.start_cell(), pool_size=2, batch_size=2,
                                seed=0)  # fmt: skip
    proposals = _run(search, 12)
    assert proposals[0] == {pl.CELL: pl.cell_key(pl.start_cell()), pl.PARENT_CELL: "",
                            pl.TRANSFORMS: "[]"}  # fmt: skip
    keys = [p[pl.CELL] for p in proposals]
    assert len(set(keys)) == len(keys)  # Every cell once.
    for p in proposals[1:]:
        parent = pl.parse_cell(p[pl.PARENT_CELL])
        made = pl.apply_transformations(parent, json.loads(p[pl.TRANSFORMS]), C)
        assert pl.cell_key(made) == p[pl.CELL] and made != parent
        assert p[pl.PARENT_CELL] in keys[: keys.index(p[pl.CELL])]  # An evaluated parent.
    assert search.controller.num_updates >= 4
    assert json.loads(json.dumps(search.get_state()))["pool"]


def test_parents_are_the_best_of_the_pool():
    search = pl.PathLevelSearch(channels=C, start=pl.start_cell(), pool_size=2)
    search.pool = [["a", 0.1], ["b", 0.9], ["c", 0.5], ["d", 0.9]]
    assert search.parents() == ["b", "d"]


def test_no_parent_no_proposal_and_missing_configuration():
    search = pl.PathLevelSearch(channels=C, start=pl.start_cell(), seed=0)
    first = search.propose(None, lambda v: False)
    assert search.propose(None, lambda v: False) is None  # The start cell is not evaluated.
    search.observe(None, first, None)  # It failed: nothing to transform.
    assert search.propose(None, lambda v: False) is None
    with pytest.raises(ValueError, match=r"PathLevelSearch needs the cell's channels"):
        pl.PathLevelSearch().propose(None, lambda v: False)


def test_state_round_trip_continues_identically():
    def make():
        return pl.PathLevelSearch(channels=C, start=pl.start_cell(), batch_size=2, seed=4)

    full = make()
    expected = _run(full, 10)
    first = make()
    head = _run(first, 4)
    resumed = make()
    resumed.set_state(json.loads(json.dumps(first.get_state())))
    assert head + _run(resumed, 6) == expected


def test_controller_learns_to_prefer_rewarded_decisions():
    search = pl.PathLevelSearch(channels=C, start=pl.start_cell("identity"), batch_size=4,
                                learning_rate=0.05, normalize_advantage=True,
                                parent_selection="start", max_depth=1, seed=0)  # fmt: skip
    _run(search, 1)
    space = search.space_of(pl.cell_key(pl.start_cell("identity")))

    def mean_reward():  # Of the policy's rollouts (the reward prefers separable convs).
        rollouts = [space.replay(search.controller.sample(space)) for _ in range(200)]
        return np.mean([_reward(pl.cell_key(r.child)) for r in rollouts])

    before = mean_reward()
    _run(search, 40)
    assert search.controller.num_updates > 5
    assert mean_reward() > before + 0.1
