"""Tests of `tfnas.results.objectives`."""

import json
import math
import os

import keras
import keras_tuner
import numpy as np
import pytest
from keras_tuner import errors
from keras_tuner.engine import trial as trial_module

from tfnas.engine import tuner
from tfnas.results.objectives import MnasNetReward, mnasnet_reward
from tfnas.tuners import evolution

T = 24.0


def test_soft_constraint_math():
    reward = MnasNetReward(target=T)
    assert reward.name == "mnasnet_reward"
    assert reward.direction == "max"
    assert (reward.alpha, reward.beta) == (-0.07, -0.07)
    above = {"val_accuracy": 0.8, "latency_ms": 2 * T}
    below = {"val_accuracy": 0.8, "latency_ms": T / 2}
    assert reward.has_value(above)
    assert reward.get_value(above) == pytest.approx(0.8 * 2**-0.07, rel=1e-12)
    assert reward.get_value(below) == pytest.approx(0.8 * 0.5**-0.07, rel=1e-12)
    assert reward.get_value({"val_accuracy": 0.8, "latency_ms": T}) == pytest.approx(0.8)


def test_hard_constraint_both_sides():
    reward = MnasNetReward(target=T, cost="flops", accuracy="accuracy", mode="hard")
    assert (reward.alpha, reward.beta) == (0.0, -1.0)
    for cost in (T / 4, T / 2, T):
        assert reward.get_value({"accuracy": 0.8, "flops": cost}) == 0.8
    assert reward.get_value({"accuracy": 0.8, "flops": 2 * T}) == pytest.approx(0.4)
    assert reward.get_value({"accuracy": 0.8, "flops": 4 * T}) == pytest.approx(0.2)


def test_custom_exponents_and_function():
    reward = MnasNetReward(target=10.0, cost="num_params", alpha=0.0, beta=-0.5)
    assert reward.get_value({"val_accuracy": 0.9, "num_params": 40.0}) == pytest.approx(0.45)
    assert mnasnet_reward(0.9, 40.0, 10.0, 0.0, -0.5) == pytest.approx(0.45)
    assert MnasNetReward(target=1.0, beta=-1.0).alpha == -0.07
    assert math.isnan(mnasnet_reward(math.nan, 5.0, 10.0))
    with pytest.raises(ValueError, match="must be positive. Received: cost=0.0"):
        mnasnet_reward(0.9, 0.0, 10.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"target": 0}, r"target must be > 0. Received: target=0"),
        ({"target": -3.0}, r"target must be > 0. Received: target=-3.0"),
        ({"target": 1.0, "beta": 0.5}, r"beta must be <= 0. Received: beta=0.5"),
        ({"target": 1.0, "mode": "medium"}, r"mode must be one of .*Received: mode='medium'"),
        ({"target": 1.0, "mode": "hard", "beta": -2.0}, r"either mode or alpha/beta"),
        ({"target": 1.0, "cost": "val_accuracy"}, r"different metrics"),
        ({"target": 1.0, "name": "flops", "cost": "flops"}, r"Received: name='flops'"),
        ({"target": float("inf")}, r"target must be finite"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MnasNetReward(**kwargs)


def test_missing_metric_is_fatal_and_lists_reported_metrics():
    reward = MnasNetReward(target=T, cost="flops")
    epoch_logs = {"loss": 0.5, "val_accuracy": 0.7, "val_loss": 0.6}
    assert not reward.has_value(epoch_logs)
    assert not reward.has_value(None)
    with pytest.raises(errors.FatalValueError, match="needs the metric 'flops'") as info:
        reward.get_value(epoch_logs)
    assert "['loss', 'val_accuracy', 'val_loss']" in str(info.value)
    with pytest.raises(ValueError, match="needs the metric 'val_accuracy'"):
        reward.get_value({"accuracy": 0.7, "flops": 3.0})


def test_config_equality_and_str():
    reward = MnasNetReward(target=T, cost="flops", mode="hard")
    clone = MnasNetReward.from_config(json.loads(json.dumps(reward.get_config())))
    assert clone == reward and hash(clone) == hash(reward)
    assert reward != MnasNetReward(target=T, cost="flops")
    assert reward != keras_tuner.Objective("mnasnet_reward", "max")
    assert 'cost="flops"' in str(reward) and "target=24" in str(reward)


def _oracles():
    return {
        "random": lambda obj, hp: keras_tuner.oracles.RandomSearchOracle(
            objective=obj, max_trials=4, hyperparameters=hp, seed=1
        ),
        "bayesian": lambda obj, hp: keras_tuner.oracles.BayesianOptimizationOracle(
            objective=obj, max_trials=4, num_initial_points=2, hyperparameters=hp, seed=1
        ),
        "hyperband": lambda obj, hp: keras_tuner.oracles.HyperbandOracle(
            objective=obj, max_epochs=2, hyperband_iterations=1, hyperparameters=hp, seed=1
        ),
        "evolution": lambda obj, hp: evolution.RegularizedEvolution(
            objective=obj, max_trials=4, population_size=2, sample_size=1, hyperparameters=hp
        ),
    }


@pytest.mark.parametrize("kind", sorted(_oracles()))
def test_scores_trials_of_any_oracle(kind, tmp_path):
    # The tuner's part, without Keras: every metric of the trial, the reward among them.
    reward = MnasNetReward(target=40.0, cost="flops", mode="hard")
    hp = keras_tuner.HyperParameters()
    hp.Choice("units", [2, 4, 8, 16])
    oracle = _oracles()[kind](reward, hp)
    oracle._set_project_dir(str(tmp_path), kind)
    for i in range(4):
        trial = oracle.create_trial(f"tuner{i}")
        if trial.status == trial_module.TrialStatus.STOPPED:
            break
        units = trial.hyperparameters.get("units")
        metrics = {"val_accuracy": units / 16, "flops": units * 10.0}
        metrics[reward.name] = reward.get_value(metrics)
        oracle.update_trial(trial.trial_id, metrics)
        trial.status = trial_module.TrialStatus.COMPLETED
        oracle.end_trial(trial)
    finished = [t for t in oracle.trials.values() if t.score is not None]
    assert len(finished) >= 2
    for trial in finished:
        units = trial.hyperparameters.get("units")
        expected = units / 16 * (1.0 if units * 10 <= 40 else 40 / (units * 10))
        assert trial.score == pytest.approx(expected)
        assert trial.metrics.get_direction(reward.name) == "max"
    best = oracle.get_best_trials(1)[0]
    assert best.score == max(t.score for t in finished)


def _build(hp):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(
                hp.Choice("units", [2, 8]), activation=hp.Choice("activation", ["relu", "tanh"])
            ),
            keras.layers.Dense(2),
        ]
    )
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.random((32, 4), dtype="float32"), rng.integers(0, 2, 32)


def _search(directory, reward, max_trials, overwrite):
    x, y = _data()
    search = tuner.Tuner(
        _build,
        oracle=keras_tuner.oracles.RandomSearchOracle(
            objective=reward, max_trials=max_trials, seed=3
        ),
        directory=str(directory),
        project_name="mnas",
        overwrite=overwrite,
    )
    trials_before = {tid: t.score for tid, t in search.oracle.trials.items()}
    search.search(x, y, epochs=1, validation_data=(x, y), batch_size=16, verbose=0)
    return search, trials_before


def _check_scores(search, reward):
    trials = list(search.oracle.trials.values())
    for trial in trials:
        assert trial.status == trial_module.TrialStatus.COMPLETED, trial.message
        accuracy = trial.metrics.get_best_value("val_accuracy")
        flops = trial.metrics.get_best_value("flops")
        # Multiply-adds of Dense(4 -> units) and Dense(units -> 2).
        assert flops == 6 * trial.hyperparameters.get("units")
        assert trial.score == pytest.approx(reward.reward(accuracy, flops), rel=1e-9)
        assert trial.metrics.get_best_value(reward.name) == pytest.approx(trial.score)
    return {t.trial_id: t.score for t in trials}


def test_tfnas_tuner_search_scores_reward_and_resumes(tmp_path):
    reward = MnasNetReward(cost="flops", target=T)
    first, _ = _search(tmp_path, reward, max_trials=3, overwrite=True)
    scores = _check_scores(first, reward)
    assert len(scores) == 3
    best = first.oracle.get_best_trials(1)[0]
    assert best.score == max(scores.values())

    # The objective is not part of the oracle's state: a resumed search gets it from the
    # new oracle's constructor, and the finished trials keep their stored scores.
    with open(os.path.join(tmp_path, "mnas", "oracle.json")) as f:
        assert "mnasnet" not in f.read()
    resumed, before = _search(
        tmp_path, MnasNetReward(cost="flops", target=T), max_trials=4, overwrite=False
    )
    assert before == scores
    after = _check_scores(resumed, reward)
    assert len(after) == 4
    assert {tid: after[tid] for tid in scores} == scores
    assert resumed.oracle.get_best_trials(1)[0].score == max(after.values())


def test_tfnas_tuner_missing_cost_stops_the_search(tmp_path):
    x, y = _data()
    search = tuner.Tuner(
        _build,
        oracle=keras_tuner.oracles.RandomSearchOracle(
            objective=MnasNetReward(target=1.0), max_trials=2, seed=0
        ),
        directory=str(tmp_path),
        project_name="no_latency",
    )
    with pytest.raises(errors.FatalValueError, match="needs the metric 'latency_ms'"):
        search.search(x, y, epochs=1, validation_data=(x, y), verbose=0)
