"""MnasNet: the reward, a latency source required, per-trial latency on a runner, resume."""

import functools
import os

import keras_tuner
import numpy as np
import pytest

import tfnas
from tfnas.engine import testing as engine_testing
from tfnas.results.objectives import mnasnet_reward
from tfnas.search.reinforce import PPOUpdate, ReinforceUpdate
from tfnas.tuners import multi_trial_testing as testing
from tfnas.tuners.mnasnet import MnasNet

MAKE = functools.partial(MnasNet, latency_target_ms=0.5, hidden_size=4)


def _build(hp):
    """`rich_build`'s score as the accuracy, a latency that grows with the units, and the
    reward (KerasTuner's results of a `BaseTuner` must hold the objective itself)."""
    score = testing.rich_build(hp)["score"]
    latency = 0.01 * sum(v for k, v in hp.values.items() if k.endswith("/units"))
    reward = mnasnet_reward(score, latency, 0.5, -0.07, -0.07)
    return {"score": score, "latency_ms": latency, "mnasnet_reward": reward}


def test_the_reward_is_acc_times_latency_over_target_to_the_w():
    soft = MnasNet(latency_target_ms=0.5, objective="val_accuracy")
    assert soft.objective.name == "mnasnet_reward" and soft.objective.direction == "max"
    for latency in (0.25, 0.5, 1.0):
        value = soft.objective.get_value({"val_accuracy": 0.8, "latency_ms": latency})
        assert value == pytest.approx(0.8 * (latency / 0.5) ** -0.07)
    hard = MnasNet(latency_target_ms=0.5, reward="hard")
    assert hard.objective.get_value({"val_accuracy": 0.8, "latency_ms": 0.25}) == 0.8
    assert hard.objective.get_value({"val_accuracy": 0.8, "latency_ms": 1.0}) == 0.4
    accuracy = MnasNet(latency_target_ms=1.0, objective=keras_tuner.Objective("acc", "max"))
    assert accuracy.objective.accuracy == "acc"


@pytest.mark.parametrize("kwargs, message", [
    ({"latency_target_ms": 0.0}, "latency_target_ms must be > 0"),
    ({"latency_target_ms": 1.0, "reward": "medium"}, "reward must be one of"),
    ({"latency_target_ms": 1.0, "objective": ["a", "b"]}, "one metric its reward multiplies"),
])  # fmt: skip
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MnasNet(**kwargs)


def test_a_tuner_without_a_latency_source_is_refused(tmp_path):
    with pytest.raises(ValueError, match="MnasNet rewards each trial's latency_ms.*"
                       "measure_latency=True.*latency_runner"):  # fmt: skip
        tfnas.Tuner(engine_testing.build, oracle=MnasNet(latency_target_ms=1.0),
                    directory=str(tmp_path))  # fmt: skip
    with pytest.raises(TypeError, match="latency_runner must be a tfnas.latency.Runner"):
        tfnas.Tuner(engine_testing.build, oracle=MnasNet(latency_target_ms=1.0),
                    directory=str(tmp_path), latency_runner="adb")  # fmt: skip


def test_each_trial_is_timed_on_the_runner_and_rewarded(tmp_path):
    class Runner:
        """Times a .tflite by its size, and records what it was given."""

        def __init__(self):
            self.paths = []

        def measure(self, path):
            assert open(path, "rb").read()[4:8] == b"TFL3"
            self.paths.append(path)
            return os.path.getsize(path) / 1e6

    runner = Runner()
    oracle = MnasNet(latency_target_ms=0.05, max_trials=2, hidden_size=4, seed=0)
    tuner = tfnas.Tuner(engine_testing.build, oracle=oracle, latency_runner=runner,
                        directory=str(tmp_path), project_name="mnas")  # fmt: skip
    (x, y), validation = engine_testing.data(64)
    tuner.search(x, y, validation_data=validation, epochs=1, batch_size=32, verbose=0)
    trials = list(oracle.trials.values())
    assert len(trials) == 2 and len(runner.paths) == 2
    for trial in trials:
        latency = trial.metrics.get_last_value("latency_ms")
        accuracy = trial.metrics.get_last_value("val_accuracy")
        assert latency > 0
        assert trial.score == pytest.approx(accuracy * (latency / 0.05) ** -0.07, rel=1e-5)


def test_the_controller_learns_with_ppo_unless_told_otherwise():
    assert isinstance(MnasNet(latency_target_ms=1.0, seed=0).algorithm.update_rule, PPOUpdate)
    rule = ReinforceUpdate()
    oracle = MnasNet(latency_target_ms=1.0, update_rule=rule, seed=0)
    assert oracle.algorithm.update_rule is rule


def test_save_reload_and_continue_exactly(tmp_path):
    full = testing.run_search(MAKE, tmp_path / "full", 10, build=_build, seed=3)
    expected = testing.trial_values(full.oracle)
    assert len(expected) == 10
    testing.run_search(MAKE, tmp_path / "stop", 5, build=_build, seed=3)
    resumed = testing.run_search(MAKE, tmp_path / "stop", 10, build=_build, seed=3,
                                 overwrite=False)  # fmt: skip
    assert testing.trial_values(resumed.oracle) == expected
    rewards = [t.score for t in resumed.oracle.trials.values()]
    assert all(np.isfinite(rewards))
