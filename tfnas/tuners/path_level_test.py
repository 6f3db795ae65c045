import json

import keras
import keras_tuner
import pytest

import tfnas
from tfnas.search import path_level as pl
from tfnas.spaces.path_level import PathLevelSpace
from tfnas.tuners import multi_trial_testing as testing
from tfnas.tuners.path_level import PathLevelEAS

SMALL = {"hidden_size": 4, "batch_size": 2}
SPACE = PathLevelSpace(channels=8)


def fake_build(hp):
    """The space's hyperparameters; the score prefers cells with separable convolutions."""
    ops = pl.operations(SPACE.architecture(hp)["cell"])
    return {"score": 0.3 + 0.6 * sum(op.startswith("sep") for op in ops) / len(ops)}


def _search(directory, max_trials, overwrite=True, tuner_class=testing.FakeTuner, **kwargs):
    oracle = PathLevelEAS(objective=testing.OBJECTIVE, max_trials=max_trials, seed=3,
                          **SMALL, **kwargs)  # fmt: skip
    tuner = tuner_class(oracle=oracle, hypermodel=fake_build, directory=str(directory),
                        overwrite=overwrite)  # fmt: skip
    return tuner


def test_resume_continues_the_same_sequence(tmp_path):
    full = _search(tmp_path / "full", 9)
    full.search(verbose=0)
    expected = testing.trial_values(full.oracle)
    assert len(expected) == 9

    _search(tmp_path / "stop", 4).search(verbose=0)
    resumed = _search(tmp_path / "stop", 9, overwrite=False)
    resumed.search(verbose=0)
    assert testing.trial_values(resumed.oracle) == expected

    killed = _search(tmp_path / "kill", 9, tuner_class=testing.CrashingTuner)
    killed.crash_at = 5
    with pytest.raises(keras_tuner.errors.FatalError):
        killed.search(verbose=0)
    resumed = _search(tmp_path / "kill", 9, overwrite=False)
    resumed.search(verbose=0)
    assert testing.trial_values(resumed.oracle) == expected


def test_trials_name_a_completed_parent_and_how_they_were_made(tmp_path):
    tuner = _search(tmp_path, 8)
    tuner.search(verbose=0)
    oracle = tuner.oracle
    trials = [oracle.trials[t] for t in oracle.start_order]
    first = trials[0].hyperparameters.values
    assert first[pl.CELL] == pl.cell_key(pl.start_cell()) and first[pl.PARENT] == ""
    cells = set()
    for trial in trials[1:]:
        values = trial.hyperparameters.values
        parent = oracle.trials[values[pl.PARENT]]
        assert parent.status == "COMPLETED"
        assert parent.hyperparameters.values[pl.CELL] == values[pl.PARENT_CELL]
        made = pl.apply_transformations(
            pl.parse_cell(values[pl.PARENT_CELL]), json.loads(values[pl.TRANSFORMS]), 8
        )
        assert pl.cell_key(made) == values[pl.CELL]
        cells.add(values[pl.CELL])
    assert len(cells) == len(trials) - 1
    state = json.loads(json.dumps(oracle.get_state()))["multi_trial"]["algorithm"]
    assert len(state["pool"]) == 8 and state["controller"]["num_updates"] >= 3


def test_a_space_without_the_tree_cell_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"PathLevelEAS searches a tree-cell space.*Missing: "):
        testing.run_search(PathLevelEAS, tmp_path, 2, build=testing.sanity_build)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pool_size": 0}, r"pool_size must be >= 1"),
        ({"max_depth": 0}, r"max_depth must be >= 1"),
        ({"merge_choices": ["add:2"]}, r'merge_choices must hold "none"'),
        ({"replace_choices": ["identity", "fc"]}, r"replace_choices must be empty"),
        ({"reward_transform": "log"}, r"reward_transform must be one of"),
        ({"learning_rate": 0.0}, r"learning_rate must be > 0"),
        ({"batch_size": 0}, r"batch_size must be >= 1"),
        ({"allow_duplicates": True}, r"PathLevelEAS trains every cell once"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PathLevelEAS(objective="val_accuracy", **kwargs)


def test_paper_defaults():
    oracle = PathLevelEAS()
    algorithm = oracle.algorithm
    assert algorithm.merge_choices == ("none", "add:2", "add:3", "concat:2")
    assert len(algorithm.replace_choices) == 7 and algorithm.max_depth == 3
    controller = algorithm.controller
    assert (controller.learning_rate, controller.entropy_weight) == (6e-3, 0.01)
    assert (controller.baseline_decay, controller.batch_size) == (0.95, 10)
    assert algorithm.reward_transform == "tan" and oracle.objective.name == "val_accuracy"


def test_end_to_end_search_on_digits_inherits_weights(tmp_path):
    data = tfnas.data.load("digits", limit=120)
    oracle = PathLevelEAS(max_trials=3, seed=0, **SMALL)
    tuner = tfnas.Tuner(PathLevelSpace(channels=4, num_cells=1), oracle=oracle,
                        directory=str(tmp_path), project_name="p")  # fmt: skip
    tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                 epochs=1, batch_size=32, verbose=0)  # fmt: skip
    trials = [oracle.trials[t] for t in oracle.start_order]
    assert [t.status for t in trials] == ["COMPLETED"] * 3
    assert trials[1].hyperparameters.values[pl.PARENT] == trials[0].trial_id
    assert all(t.metrics.get_best_value("val_accuracy") is not None for t in trials)
    best = tuner.get_best_models(1)[0]
    assert isinstance(best, keras.Model) and best.output_shape == (None, 10)
