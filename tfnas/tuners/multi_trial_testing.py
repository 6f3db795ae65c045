"""Test helpers shared by the tests of the multi-trial strategies (no Keras model inside).

`FakeTuner` runs a KerasTuner search whose trials are analytic functions of the
hyperparameters, so a whole search with file I/O, resume and failures takes milliseconds per
trial. `run_algorithm` drives a `tfnas.search.base.SearchAlgorithm` directly, without any oracle.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import keras_tuner
import numpy as np
from keras_tuner.engine import base_tuner

from tfnas.search import base, encoding

OBJECTIVE = keras_tuner.Objective("score", "max")

# The NNI-style sanity space: 6 decisions of 4 options, reward = fraction matching a target.
SANITY_TARGET = (1, 3, 0, 2, 3, 1)
SANITY_OPTIONS = 4
SANITY_BUDGET = 150


class FakeTuner(base_tuner.BaseTuner):
    """A tuner whose trial result is `hypermodel.build(hp)` itself (a float or a dict)."""

    def run_trial(self, trial, *args, **kwargs):
        result = self.hypermodel.build(trial.hyperparameters)
        if isinstance(result, Exception):
            raise result
        return result

    def save_model(self, trial_id, model, step=0):
        pass

    def load_model(self, trial):
        return None


def sanity_space() -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    sanity_build(hp)
    return hp


def sanity_reward(values: encoding.Values) -> float:
    return sum(values[f"d{i}"] == t for i, t in enumerate(SANITY_TARGET)) / len(SANITY_TARGET)


def sanity_build(hp: keras_tuner.HyperParameters) -> float:
    for i in range(len(SANITY_TARGET)):
        hp.Choice(f"d{i}", list(range(SANITY_OPTIONS)))
    return sanity_reward(hp.values)


def random_search_median_best(budget: int = SANITY_BUDGET) -> float:
    """Median of the best sanity reward of random search without repeats, computed exactly."""
    d, k = len(SANITY_TARGET), SANITY_OPTIONS
    total = k**d
    # Number of architectures matching the target in exactly j decisions.
    counts = [math.comb(d, j) * (k - 1) ** (d - j) for j in range(d + 1)]
    at_most = 0
    for j in range(d + 1):
        at_most += counts[j]
        # P(best <= j / d): all `budget` distinct draws come from the `at_most` worst ones.
        if math.comb(at_most, budget) / math.comb(total, budget) >= 0.5:
            return j / d
    return 1.0


def run_algorithm(
    algorithm: base.SearchAlgorithm,
    hyperparameters: keras_tuner.HyperParameters,
    reward: Callable[[encoding.Values], float],
    budget: int,
) -> list[float]:
    """Runs `algorithm` for `budget` unseen proposals; returns the rewards in order."""
    space = encoding.SpaceEncoding(hyperparameters)
    seen: set[str] = set()
    rewards = []
    for _ in range(budget):
        values = base.propose_unseen(algorithm, space, lambda v: encoding.values_key(v) in seen)
        assert values is not None
        seen.add(encoding.values_key(values))
        rewards.append(reward(values))
        algorithm.observe(space, values, rewards[-1])
    return rewards


def rich_build(hp: keras_tuner.HyperParameters) -> dict[str, float]:
    """Every hyperparameter type, a conditional scope and a space that grows with depth."""
    score = 0.0
    op = hp.Choice("op", ["conv", "pool", "skip"])
    with hp.conditional_scope("op", ["conv"]):
        if op == "conv":
            score += hp.Int("kernel", 1, 7, step=2) / 7
    with hp.conditional_scope("op", ["pool"]):
        if op == "pool":
            score += 0.3 * hp.Boolean("max_pool")
    num_layers = hp.Int("num_layers", 1, 3)
    for i in range(num_layers):
        score += hp.Choice(f"layer_{i}/units", [8, 16, 32]) / 32
    lr = hp.Float("lr", 1e-4, 1e-1, sampling="log")
    score -= abs(math.log10(lr) + 2.5) / 10
    score += hp.Float("dropout", 0.0, 0.5) / 5
    hp.Fixed("version", 2)
    return {"score": score}


def run_search(
    make_oracle: Callable[..., keras_tuner.Oracle],
    directory,
    max_trials: int,
    build: Callable = rich_build,
    overwrite: bool = True,
    **oracle_kwargs: Any,
) -> FakeTuner:
    """Runs a `FakeTuner` search with a fresh oracle; returns the tuner."""
    oracle = make_oracle(objective=OBJECTIVE, max_trials=max_trials, **oracle_kwargs)
    tuner = FakeTuner(
        oracle=oracle, hypermodel=build, directory=str(directory), overwrite=overwrite
    )
    tuner.search(verbose=0)
    return tuner


def trial_values(oracle: keras_tuner.Oracle) -> list[dict[str, Any]]:
    """The values of every trial, in the order the trials started."""
    return [dict(oracle.trials[trial_id].hyperparameters.values) for trial_id in oracle.start_order]


class CrashingTuner(FakeTuner):
    """A `FakeTuner` whose process "dies" in the middle of trial number `crash_at`."""

    crash_at = 0

    def run_trial(self, trial, *args, **kwargs):
        if len(self.oracle.trials) == self.crash_at:
            raise keras_tuner.errors.FatalError("Simulated crash in the middle of a trial.")
        return super().run_trial(trial, *args, **kwargs)


def check_resume(make_oracle, tmp_path, first: int, second: int, **oracle_kwargs) -> None:
    """Asserts that a search stopped after `first` trials, or killed during trial `first`, then
    resumed with `overwrite=False` up to `first + second` trials, proposes exactly the trials
    of one uninterrupted search; and that the space grew on the way."""
    full = run_search(make_oracle, tmp_path / "full", first + second, seed=3, **oracle_kwargs)
    expected = trial_values(full.oracle)
    assert len(expected) == first + second
    assert "layer_1/units" in full.oracle.hyperparameters  # Registered by a later build.
    for values in expected:  # Only active hyperparameters hold values.
        assert ("kernel" in values) == (values["op"] == "conv")
        assert ("max_pool" in values) == (values["op"] == "pool")

    run_search(make_oracle, tmp_path / "stop", first, seed=3, **oracle_kwargs)
    resumed = run_search(
        make_oracle, tmp_path / "stop", first + second, seed=3, overwrite=False, **oracle_kwargs
    )
    assert trial_values(resumed.oracle) == expected

    oracle = make_oracle(objective=OBJECTIVE, max_trials=first + second, seed=3, **oracle_kwargs)
    tuner = CrashingTuner(oracle=oracle, hypermodel=rich_build, directory=str(tmp_path / "kill"))
    tuner.crash_at = first
    try:
        tuner.search(verbose=0)
    except keras_tuner.errors.FatalError:
        pass
    assert len(oracle.end_order) == first - 1
    resumed = run_search(
        make_oracle,
        tmp_path / "kill",
        first + second,
        seed=3,
        overwrite=False,
        **oracle_kwargs,
    )
    assert trial_values(resumed.oracle) == expected


def failing_build(hp: keras_tuner.HyperParameters):
    """The sanity space, where d0 == 1 crashes the trial and d0 == 2 reports NaN."""
    score = sanity_build(hp)
    if hp["d0"] == 1:
        return RuntimeError("This architecture does not build.")
    if hp["d0"] == 2:
        return {"score": float("nan")}
    return {"score": score}


def run_with_failures(make_oracle, tmp_path, max_trials: int = 30, **oracle_kwargs):
    """Runs the failing space; returns `(oracle, completed values, failed values)`."""
    with warnings.catch_warnings():
        # KerasTuner's own "All-NaN axis" warning while it scores the NaN trials.
        warnings.simplefilter("ignore", RuntimeWarning)
        tuner = run_search(
            make_oracle,
            tmp_path,
            max_trials,
            build=failing_build,
            max_consecutive_failed_trials=max_trials,
            seed=1,
            **oracle_kwargs,
        )
    oracle = tuner.oracle
    trials = [oracle.trials[t] for t in oracle.start_order]
    completed = [t.hyperparameters.values for t in trials if t.status == "COMPLETED"]
    failed = [t.hyperparameters.values for t in trials if t.status == "FAILED"]
    assert len(completed) + len(failed) == max_trials
    assert failed and all(v["d0"] in (1, 2) for v in failed)
    assert all(v["d0"] not in (1, 2) for v in completed)
    return oracle, completed, failed


def tiny_space_build(hp: keras_tuner.HyperParameters) -> float:
    """Four architectures in all."""
    return float(hp.Choice("a", [0, 1]) + 2 * hp.Boolean("b"))


def check_exhaustion(make_oracle, tmp_path, **oracle_kwargs) -> None:
    """Asserts the 4-architecture space yields 4 distinct trials, then STOPPED."""
    tuner = run_search(
        make_oracle, tmp_path / "dedup", 10, build=tiny_space_build, seed=0, **oracle_kwargs
    )
    values = trial_values(tuner.oracle)
    assert len(values) == 4
    assert len({encoding.values_key(v) for v in values}) == 4
    tuner = run_search(
        make_oracle,
        tmp_path / "dup",
        6,
        build=tiny_space_build,
        seed=0,
        allow_duplicates=True,
        **oracle_kwargs,
    )
    assert len(tuner.oracle.trials) == 6


def check_sanity(algorithm: base.SearchAlgorithm) -> list[float]:
    """Runs the sanity space; asserts the best beats random search's median best."""
    rewards = run_algorithm(algorithm, sanity_space(), sanity_reward, SANITY_BUDGET)
    median_random = random_search_median_best()
    assert median_random == 5 / 6
    assert max(rewards) > median_random, (max(rewards), median_random)
    return rewards


def tiny_keras_search(oracle: keras_tuner.Oracle, directory) -> keras_tuner.Tuner:
    """A real `keras_tuner.Tuner` search: 2-choice Dense model, random data, 1 epoch."""
    import keras

    def build(hp):
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(hp.Choice("units", [2, 4]), activation="relu"),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
        return model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    tuner = keras_tuner.Tuner(
        hypermodel=build, oracle=oracle, directory=str(directory), project_name="keras"
    )
    tuner.search(x, y, validation_data=(x, y), epochs=1, batch_size=16, verbose=0)
    return tuner
