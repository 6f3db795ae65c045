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
