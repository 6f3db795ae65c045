import json

import keras_tuner
import numpy as np
import pytest

from tfnas import oracles, validation
from tfnas.search import base
from tfnas.tuners import multi_trial
from tfnas.tuners import multi_trial_testing as testing


class FirstUnseen(base.SearchAlgorithm):
    """Proposes the default architecture, always: exercises the adapter's fallbacks."""

    def __init__(self, seed=None):
        super().__init__(seed)
        self.rewards = []

    def propose(self, space, is_seen):
        return space.defaults()

    def observe(self, space, values, reward):
        self.rewards.append(reward)

    def get_state(self):
        return {**super().get_state(), "rewards": list(self.rewards)}

    def set_state(self, state):
        super().set_state(state)
        self.rewards = list(state["rewards"])


class FirstUnseenOracle(multi_trial.MultiTrialOracle):
    def make_search_algorithm(self, seed):
        return FirstUnseen(seed)


def test_check_helpers_name_argument_and_value():
    with pytest.raises(ValueError, match=r"^size must be >= 2\. Received: size=1$"):
        validation.check_int("size", 1, low=2)
    with pytest.raises(ValueError, match=r"size must be an integer\. Received: size=2\.5"):
        validation.check_int("size", 2.5)
    with pytest.raises(ValueError, match=r"size must be an integer\. Received: size=True"):
        validation.check_int("size", True)
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\)\. Received: decay=1"):
        validation.check_float("decay", 1, low=0, high=1, high_inclusive=False)
    with pytest.raises(ValueError, match=r"rate must be finite\. Received: rate=nan"):
        validation.check_float("rate", float("nan"))
    with pytest.raises(ValueError, match=r"kind must be one of \['a', 'b'\]\. Received: kind='c'"):
        validation.check_one_of("kind", "c", ("a", "b"))
    with pytest.raises(ValueError, match=r"num_bins must be >= 2\. Received: num_bins=1"):
        FirstUnseenOracle(num_bins=1)


def test_oracle_dedups_and_stops_when_exhausted(tmp_path):
    testing.check_exhaustion(FirstUnseenOracle, tmp_path)


def test_seed_zero_is_kept():
    assert FirstUnseenOracle(seed=0).seed == 0
    state = FirstUnseenOracle(seed=0).algorithm.get_state()["rng"]
    assert state == np.random.default_rng(0).bit_generator.state


@pytest.mark.parametrize("seed", [-5, 2**32, 1.5, "0"])
@pytest.mark.parametrize(
    "oracle_class",
    [FirstUnseenOracle, oracles.RegularizedEvolution, oracles.SPOS, oracles.PDARTS],
    ids=lambda c: c.__name__,
)
def test_bad_seed_is_a_clear_error(oracle_class, seed):
    # Checked by MultiTrialOracle for every tfnas oracle, before numpy sees it.
    with pytest.raises(ValueError, match=rf"^seed must be .*Received: seed={seed!r}$"):
        oracle_class(seed=seed)


def test_failed_and_nan_trials_reach_the_algorithm_as_none(tmp_path):
    oracle, completed, failed = testing.run_with_failures(FirstUnseenOracle, tmp_path, 12)
    rewards = oracle.algorithm.rewards
    assert len(rewards) == 12
    assert sum(r is None for r in rewards) == len(failed)
    assert sorted(r for r in rewards if r is not None) == sorted(
        testing.sanity_reward(v) for v in completed
    )


def test_minimized_objective_is_negated(tmp_path):
    oracle = FirstUnseenOracle(objective=keras_tuner.Objective("score", "min"), max_trials=2)
    tuner = testing.FakeTuner(
        oracle=oracle, hypermodel=testing.tiny_space_build, directory=str(tmp_path)
    )
    tuner.search(verbose=0)
    assert sorted(oracle.algorithm.rewards) == sorted(
        -testing.tiny_space_build(t.hyperparameters) for t in oracle.trials.values()
    )


def test_state_is_json_and_round_trips(tmp_path):
    tuner = testing.run_search(FirstUnseenOracle, tmp_path, 3)
    state = json.loads(json.dumps(tuner.oracle.get_state()))
    other = FirstUnseenOracle(objective=testing.OBJECTIVE, max_trials=3)
    other.trials = tuner.oracle.trials
    other.set_state(state)
    # KerasTuner's `set_state` turns the conditions inside `state` into objects, in place.
    assert other.get_state()["multi_trial"] == state["multi_trial"]
    assert state["multi_trial"]["observed"] == tuner.oracle.end_order


def test_empty_space_is_a_clear_error(tmp_path):
    oracle = FirstUnseenOracle(objective=testing.OBJECTIVE, max_trials=2)
    tuner = testing.FakeTuner(
        oracle=oracle, hypermodel=lambda hp: {"score": 1.0}, directory=str(tmp_path)
    )
    with pytest.raises(ValueError, match="the hypermodel registered no hyperparameters"):
        tuner.search(verbose=0)


def test_corrupt_oracle_file_on_resume_names_the_file(tmp_path):
    testing.run_search(FirstUnseenOracle, tmp_path, 2)
    fname = tmp_path / "untitled_project" / "oracle.json"
    fname.write_text('{"ongoing_trials": ')
    with pytest.raises(ValueError, match=f"Could not resume the search: {fname} is not valid"):
        testing.run_search(FirstUnseenOracle, tmp_path, 4, overwrite=False)


def test_objective_missing_from_returned_dict_is_named_by_keras_tuner(tmp_path):
    # KerasTuner already stops with a clear error here; the oracle adds nothing.
    with pytest.raises(ValueError, match=r"objective, score.*Received: \{'accuracy': 0\.5\}"):
        testing.run_search(
            FirstUnseenOracle,
            tmp_path,
            2,
            build=lambda hp: {"accuracy": 0.5 + 0 * hp.Int("i", 0, 1)},
        )


def test_objective_missing_from_keras_history_is_a_clear_error(tmp_path):
    oracle = FirstUnseenOracle(objective=keras_tuner.Objective("val_acc", "max"), max_trials=2)
    with pytest.raises(ValueError, match=r"did not report the objective metric 'val_acc'"):
        testing.tiny_keras_search(oracle, tmp_path)
    assert len(oracle.trials) == 1
