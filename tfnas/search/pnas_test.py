import itertools
import json

import keras_tuner
import numpy as np
import pytest

from tfnas.search import encoding, pnas
from tfnas.tuners import multi_trial_testing as testing


def test_default_blocks_group_by_name_prefix():
    assert pnas.default_block_of("normal/node2/inputs") == "normal/node2"
    assert pnas.default_block_of("normal/node2/edge0") == "normal/node2"
    assert pnas.default_block_of("lr") == "lr"
    hp = keras_tuner.HyperParameters()
    for name in ["normal/node0/op", "normal/node0/input", "lr", "normal/node1/op"]:
        hp.Choice(name, [0, 1])
    space = encoding.SpaceEncoding(hp)
    blocks = pnas.ProgressiveSearch().blocks(space)
    assert [(b, [d.name for d in ds]) for b, ds in blocks] == [
        ("normal/node0", ["normal/node0/op", "normal/node0/input"]),
        ("lr", ["lr"]),
        ("normal/node1", ["normal/node1/op"]),
    ]
    custom = pnas.ProgressiveSearch(block_of=lambda name: name.split("/")[0])
    assert [b for b, _ in custom.blocks(space)] == ["normal", "lr"]


def test_stages_grow_blocks_in_order_from_the_beam():
    hp = keras_tuner.HyperParameters()
    for i in range(3):
        hp.Choice(f"cell/node{i}/op", [0, 1, 2], default=0)
        hp.Choice(f"cell/node{i}/input", [0, 1], default=0)
    space = encoding.SpaceEncoding(hp)
    algorithm = pnas.ProgressiveSearch(beam_width=2, initial_width=6, seed=0, train_steps=20)
    seen, by_stage = set(), {}
    rng = np.random.default_rng(0)
    for stage, width in [(1, 6), (2, 2), (3, 2)]:
        for _ in range(width):
            values = algorithm.propose(space, lambda v: encoding.values_key(v) in seen)
            seen.add(encoding.values_key(values))
            assert algorithm.stage == stage
            for i in range(stage, 3):  # Blocks not grown yet stay at their defaults.
                assert values[f"cell/node{i}/op"] == values[f"cell/node{i}/input"] == 0
            reward = float(rng.random())
            by_stage.setdefault(stage, []).append((reward, values))
            algorithm.observe(space, values, reward)
    # Stage 1 tried every configuration of the first block.
    assert len({encoding.values_key(v) for _, v in by_stage[1]}) == 6
    # Stage 2 expanded only the measured best `beam_width` of stage 1.
    best = [v for _, v in sorted(by_stage[1], key=lambda e: -e[0])[:2]]
    for _, values in by_stage[2]:
        node0 = {k: v for k, v in values.items() if "node0" in k}
        assert node0 in [{k: v for k, v in b.items() if "node0" in k} for b in best]


@pytest.mark.parametrize("kind", ["mlp", "ridge"])
def test_surrogate_ranks_a_linear_function(kind):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(40, 6)).astype(float)
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0, -1.0])
    surrogate = pnas.Surrogate(kind)
    surrogate.fit(x[:30], y[:30], rng)
    assert np.corrcoef(surrogate.predict(x[30:]), y[30:])[0, 1] > 0.95


def test_sanity_beats_random_search():
    testing.check_sanity(pnas.ProgressiveSearch(seed=0))


def cell_space(num_nodes: int = 3, ops=("a", "b")) -> keras_tuner.HyperParameters:
    """The hyperparameters `tfnas.blocks.darts_cell` registers for a normal and a reduction
    cell (without building Keras layers): `NUM_BLOCKS`, then per node its inputs and edges."""
    hp = keras_tuner.HyperParameters()
    hp.Fixed(pnas.NUM_BLOCKS, num_nodes)
    for cell in ("normal", "reduce"):
        for j in range(num_nodes):
            with hp.conditional_scope(pnas.NUM_BLOCKS, list(range(j + 1, num_nodes + 1))):
                subsets = [f"{a},{b}" for a, b in itertools.combinations(range(j + 2), 2)]
                hp.Choice(f"{cell}/node{j}/inputs", subsets)
                for i in range(j + 2):
                    chosen = [s for s in subsets if str(i) in s.split(",")]
                    with hp.conditional_scope(f"{cell}/node{j}/inputs", chosen):
                        hp.Choice(f"{cell}/node{j}/edge{i}", list(ops))
    return hp


def cell_reward(values) -> float:
    """Rewards operation "b" on edges, and the edge from state 0 of every node."""
    edges = [k for k in values if "/edge" in k]
    return sum(values[k] == "b" for k in edges) / 12 + 0.05 * sum(
        k.endswith("edge0") for k in edges
    )


def run_cell_search(algorithm, space, count):
    seen, proposed = set(), []
    for _ in range(count):
        values = algorithm.propose(space, lambda v: encoding.values_key(v) in seen)
        seen.add(encoding.values_key(values))
        proposed.append((algorithm.stage, values))
        algorithm.observe(space, values, cell_reward(values))
    return proposed


def test_cell_structure_groups_nodes_of_both_cells_into_blocks():
    space = encoding.SpaceEncoding(cell_space(num_nodes=3))
    cell = pnas.cell_structure(space)
    assert cell.max_blocks == 3 and cell.others == ()
    assert [d.name for d in cell.blocks[1]] == [
        *(f"normal/node1/{n}" for n in ("inputs", "edge0", "edge1", "edge2")),
        *(f"reduce/node1/{n}" for n in ("inputs", "edge0", "edge1", "edge2")),
    ]
    assert pnas.block_role("normal/node2/edge3") == "normal/edge3"
    # Shared columns: per cell, 6 distinct input subsets and 2 ops on each of edges 0..3.
    assert cell.token_size == 2 * (6 + 4 * 2)
    flat = keras_tuner.HyperParameters()
    flat.Choice("cell/node1/edge0", ["a", "b"])
    assert pnas.cell_structure(encoding.SpaceEncoding(flat)) is None


def test_cell_stages_train_cells_of_b_blocks_and_stage_one_enumerates_b1():
    space = encoding.SpaceEncoding(cell_space(num_nodes=3))
    algorithm = pnas.ProgressiveSearch(beam_width=3, seed=0, train_steps=20)
    proposed = run_cell_search(algorithm, space, 16 + 3 + 3 + 3)
    # |B1| = (1 input pair x 2 x 2 ops) per cell, squared for the two cells: all 16 first.
    stage1 = [v for _, v in proposed[:16]]
    assert len({encoding.values_key(v) for v in stage1}) == 16
    for index, (stage, values) in enumerate(proposed):
        blocks = 1 if index < 16 else min(3, 2 + (index - 16) // 3)
        assert values[pnas.NUM_BLOCKS] == stage == blocks
        for cell in ("normal", "reduce"):
            # Absent nodes hold no values at all (not defaults); present ones do.
            assert {k.split("/")[1] for k in values if k.startswith(f"{cell}/")} == {
                f"node{j}" for j in range(blocks)
            }
    # Stage 2 expands networks measured at stage 1: their node 0 is one of them.
    node0 = lambda v: {k: x for k, x in v.items() if "/node0/" in k}  # noqa: E731
    for _, values in proposed[16:19]:
        assert node0(values) in [node0(v) for v in stage1]
    # Stage 3 expands exactly the 3 networks of stage 2.
    node01 = lambda v: {k: x for k, x in v.items() if "/node2/" not in k and "num" not in k}  # noqa: E731
    for _, values in proposed[19:22]:
        assert node01(values) in [node01(v) for _, v in proposed[16:19]]
    # After the last block the search refines full-size cells.
    assert [s for s, _ in proposed[22:]] == [3, 3, 3]


def test_stage_one_is_cut_to_what_the_budget_leaves_for_later_stages():
    space = encoding.SpaceEncoding(cell_space(num_nodes=3))
    # 20 trials, 2 later stages of 4: stage 1 gets 20 - 8 = 12 of the 16.
    algorithm = pnas.ProgressiveSearch(beam_width=4, budget=20, seed=0, train_steps=20)
    proposed = run_cell_search(algorithm, space, 20)
    assert [v[pnas.NUM_BLOCKS] for _, v in proposed] == [1] * 12 + [2] * 4 + [3] * 4
    explicit = pnas.ProgressiveSearch(beam_width=4, initial_width=5, budget=20, seed=0)
    assert [v[pnas.NUM_BLOCKS] for _, v in run_cell_search(explicit, space, 6)] == [1] * 5 + [2]


def test_stage_two_proposes_the_top_k_expansions_of_the_fitted_surrogate():
    space = encoding.SpaceEncoding(cell_space(num_nodes=2))
    algorithm = pnas.ProgressiveSearch(
        beam_width=4, surrogate="ridge", num_candidates=20_000, seed=0
    )
    proposed = run_cell_search(algorithm, space, 17)
    stage1 = [v for _, v in proposed[:16]]
    assert proposed[16][1][pnas.NUM_BLOCKS] == 2
    # Every expansion of every stage-1 network by block 2 (no sampling: they all fit).
    cell = pnas.cell_structure(space)
    fixed = {pnas.NUM_BLOCKS: 2}
    expansions = {}
    for parent in stage1:
        base = space.complete(parent, fixed=fixed)
        for values in space.architectures(base, cell.blocks[1], fixed=fixed):
            expansions[encoding.values_key(values)] = values
    assert len(expansions) == 16 * (3 * 4) ** 2
    candidates = list(expansions.values())
    scores = algorithm.block_surrogate.predict_sequences(
        [algorithm.block_sequence(space, cell, v) for v in candidates]
    )
    top = [candidates[i] for i in np.argsort(-scores, kind="stable")[:4]]
    chosen = [proposed[16][1]] + algorithm.queue
    assert sorted(map(encoding.values_key, chosen)) == sorted(map(encoding.values_key, top))


def test_block_sequence_has_one_token_per_present_block():
    space = encoding.SpaceEncoding(cell_space(num_nodes=3))
    cell = pnas.cell_structure(space)
    algorithm = pnas.ProgressiveSearch()
    values = space.complete(
        {"normal/node1/inputs": "0,2", "normal/node1/edge2": "b"}, fixed={pnas.NUM_BLOCKS: 2}
    )
    tokens = algorithm.block_sequence(space, cell, values)
    assert tokens.shape == (2, cell.token_size)
    # Per block and cell: inputs, and the operations of its two edges.
    assert tokens.sum(axis=1).tolist() == [6.0, 6.0]
    edge2 = cell.columns[("normal/edge2", '"b"')]
    assert tokens[:, edge2].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("kind", ["mlp", "ridge"])
def test_block_surrogate_reads_sequences_of_any_length(kind):
    rng = np.random.default_rng(0)
    weights = rng.normal(size=8)
    tokens = lambda n: [rng.integers(0, 2, size=(n, 8)).astype(float) for _ in range(60)]  # noqa: E731
    short = tokens(1) + tokens(2)  # Trained on 1- and 2-block cells...
    reward = lambda seqs: np.array([(s @ weights).mean() for s in seqs])  # noqa: E731
    surrogate = pnas.BlockSurrogate(embedding_size=8, kind=kind, ensemble_size=3)
    surrogate.fit_sequences(short, reward(short), rng)
    longer = tokens(3)  # ...ranks 3-block ones.
    assert np.corrcoef(surrogate.predict_sequences(longer), reward(longer))[0, 1] > 0.9
    mixed = longer[:2] + short[:2]
    assert surrogate.predict_sequences(mixed).shape == (4,)


def test_block_surrogate_members_leave_out_their_own_fold():
    rows = pnas.BlockSurrogate(ensemble_size=5)._member_rows(20, np.random.default_rng(0))
    assert [len(r) for r in rows] == [16] * 5
    left_out = [set(range(20)) - set(r.tolist()) for r in rows]
    assert set().union(*left_out) == set(range(20))
    assert sum(len(s) for s in left_out) == 20


def test_cell_search_resumes_exactly_from_its_state():
    space = encoding.SpaceEncoding(cell_space(num_nodes=3))
    make = lambda: pnas.ProgressiveSearch(beam_width=3, seed=5, train_steps=20)  # noqa: E731
    full = [v for _, v in run_cell_search(make(), space, 26)]
    first = make()
    head = [v for _, v in run_cell_search(first, space, 17)]  # Stops inside stage 2.
    resumed = make()
    resumed.set_state(json.loads(json.dumps(first.get_state())))
    seen = {encoding.values_key(v) for v in head}
    tail = []
    for _ in range(9):
        values = resumed.propose(space, lambda v: encoding.values_key(v) in seen)
        seen.add(encoding.values_key(values))
        tail.append(values)
        resumed.observe(space, values, cell_reward(values))
    assert head + tail == full


def test_cell_search_beats_random_search():
    space_hp = cell_space(num_nodes=3)
    rewards = testing.run_algorithm(
        pnas.ProgressiveSearch(beam_width=4, budget=40, seed=0), space_hp, cell_reward, 40
    )
    random_rewards = testing.run_algorithm(_Random(seed=0), space_hp, cell_reward, 40)
    assert max(rewards) > max(random_rewards)


class _Random(pnas.base.SearchAlgorithm):
    def propose(self, space, is_seen):
        return space.sample(self.rng)

    def observe(self, space, values, reward):
        pass
