import itertools

import keras_tuner
import pytest

from tfnas.tuners import multi_trial_testing as testing
from tfnas.tuners import pnas
from tfnas.tuners.pnas import NUM_BLOCKS

SMALL = {"beam_width": 3, "ensemble_size": 1, "hidden_size": 8, "train_steps": 20}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"beam_width": 0}, r"^beam_width must be >= 1\. Received: beam_width=0$"),
        ({"beam_width": 8, "num_candidates": 4}, r"num_candidates must be >= 8\. Received: "),
        ({"surrogate": "xgboost"}, r"surrogate must be one of \['mlp', 'ridge'\]"),
        ({"block_of": "prefix"}, r"block_of must be a callable .* Received: block_of='prefix'"),
        ({"initial_width": 0}, r"initial_width must be >= 1\. Received: initial_width=0"),
        ({"ensemble_size": 0}, r"ensemble_size must be >= 1\. Received: ensemble_size=0"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pnas.PNAS(**kwargs)


def test_unknown_keyword_is_rejected():
    with pytest.raises(TypeError, match="unexpected keyword argument 'beam'"):
        pnas.PNAS(beam=3)


def test_resume_continues_the_same_sequence(tmp_path):
    testing.check_resume(pnas.PNAS, tmp_path, 7, 7, **SMALL)


def test_failed_trials_do_not_fit_the_surrogate(tmp_path):
    oracle, completed, _ = testing.run_with_failures(pnas.PNAS, tmp_path, **SMALL)
    history = oracle.algorithm.history
    assert [e["values"] for e in history] == completed


def test_dedup_and_exhaustion(tmp_path):
    testing.check_exhaustion(pnas.PNAS, tmp_path, **SMALL)


def test_keras_tuner_search(tmp_path):
    oracle = pnas.PNAS(objective="val_accuracy", max_trials=2, seed=0, **SMALL)
    testing.tiny_keras_search(oracle, tmp_path)
    assert len(oracle.trials) == 2
    assert {t.hyperparameters["units"] for t in oracle.trials.values()} == {2, 4}


def fake_cell_build(hp, num_nodes=3, ops=("a", "b")):
    """Registers what `tfnas.blocks.darts_cell` registers for a normal and a reduction cell,
    as a build would (only the chosen edges, the others' scopes announced), and scores it."""
    blocks = hp.Fixed(NUM_BLOCKS, hp.values.get(NUM_BLOCKS, num_nodes))
    score = 0.0
    for cell in ("normal", "reduce"):
        for j in range(blocks):
            with hp.conditional_scope(NUM_BLOCKS, list(range(j + 1, num_nodes + 1))):
                subsets = [f"{a},{b}" for a, b in itertools.combinations(range(j + 2), 2)]
                chosen = hp.Choice(f"{cell}/node{j}/inputs", subsets).split(",")
                for i in range(j + 2):
                    with hp.conditional_scope(
                        f"{cell}/node{j}/inputs", [s for s in subsets if str(i) in s.split(",")]
                    ):
                        if str(i) in chosen:
                            score += hp.Choice(f"{cell}/node{j}/edge{i}", list(ops)) == "b"
                            score += 0.3 * (i == 0)
    return {"score": score}


CELL = {"beam_width": 2, "ensemble_size": 1, "hidden_size": 8, "train_steps": 20}


def test_cell_space_search_grows_blocks_and_resumes_exactly(tmp_path):
    # 8 trials: stage 1 gets 8 - 2 * 2 = 4 of the 16 one-block cells, then 2 and 2.
    full = testing.run_search(
        pnas.PNAS, tmp_path / "full", 8, build=fake_cell_build, seed=3, **CELL
    )
    expected = testing.trial_values(full.oracle)
    assert [v[NUM_BLOCKS] for v in expected] == [1, 1, 1, 1, 2, 2, 3, 3]
    for values in expected:
        nodes = {k.split("/")[1] for k in values if "/node" in k}
        assert nodes == {f"node{j}" for j in range(values[NUM_BLOCKS])}
    # Killed in the middle of trial 5 (stage 2), then resumed.
    oracle = pnas.PNAS(objective=testing.OBJECTIVE, max_trials=8, seed=3, **CELL)
    tuner = testing.CrashingTuner(
        oracle=oracle, hypermodel=fake_cell_build, directory=str(tmp_path / "kill")
    )
    tuner.crash_at = 5
    with pytest.raises(keras_tuner.errors.FatalError):
        tuner.search(verbose=0)
    assert len(oracle.end_order) == 4
    resumed = testing.run_search(
        pnas.PNAS, tmp_path / "kill", 8, build=fake_cell_build, seed=3, overwrite=False, **CELL
    )
    assert testing.trial_values(resumed.oracle) == expected
    # Stopped after 5 trials, then continued to 8 (an explicit stage-1 width, so the
    # larger max_trials does not resize stage 1).
    sized = {**CELL, "initial_width": 4}
    testing.run_search(pnas.PNAS, tmp_path / "stop", 5, build=fake_cell_build, seed=3, **sized)
    resumed = testing.run_search(
        pnas.PNAS, tmp_path / "stop", 8, build=fake_cell_build, seed=3, overwrite=False, **sized
    )
    assert testing.trial_values(resumed.oracle) == expected


def test_darts_space_trials_build_cells_of_the_stage_s_blocks(tmp_path):
    import keras

    from tfnas.spaces import darts

    space = darts.DartsSpace(
        (8, 8, 1), 10, init_channels=2, num_cells=3, num_nodes=2, operations=["skip_connect"]
    )
    built = []

    def build(hp):
        model = space.build(hp)
        adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
        built.append((hp.values[NUM_BLOCKS], len(adds)))
        return {"score": float(len(adds))}

    tuner = testing.run_search(
        pnas.PNAS, tmp_path, 3, build=build, seed=0, beam_width=2, train_steps=5
    )
    values = testing.trial_values(tuner.oracle)
    # One configuration of block 1 (a single operation, inputs 0 and 1), then 2 of block 2.
    assert [v[NUM_BLOCKS] for v in values] == [1, 2, 2]
    assert "normal/node1/inputs" not in values[0]
    # Each trial's model has one node (an `Add` of two edges) per block in each of 3 cells.
    assert built[-3:] == [(1, 3), (2, 6), (2, 6)]
