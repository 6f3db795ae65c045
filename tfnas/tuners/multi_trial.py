"""The Oracle adapter every multi-trial strategy shares.

A strategy is split in two (design principle 4):

* a `tfnas.search.base.SearchAlgorithm`: a small object with explicit state that proposes
  architectures (`propose`) and learns from their rewards (`observe`); it knows nothing of
  Keras, trials or files and is tested on its own;
* a `MultiTrialOracle` subclass: a `keras_tuner.Oracle` that only adapts the algorithm: it
  encodes the (possibly growing) search space, deduplicates proposals, turns finished trials
  into rewards (failed trials and NaN objectives are not learned from), and keeps the
  algorithm's state in `oracle.json` so that `overwrite=False` resumes the search exactly.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import keras_tuner
from keras_tuner.engine import trial as trial_module

from tfnas import validation
from tfnas.search import base, encoding

TrialStatus = trial_module.TrialStatus


class MultiTrialOracle(keras_tuner.Oracle):
    """Base `keras_tuner.Oracle` that runs a `tfnas.search.base.SearchAlgorithm` over trials.

    Subclasses implement `make_search_algorithm(seed)`. Rewards are the objective value, negated
    when the objective is minimized. The algorithm's state is saved in `oracle.json` under
    "multi_trial".

    Args:
        objective: As for `keras_tuner.Oracle`.
        max_trials: Maximum number of trials.
        hyperparameters: Optional `HyperParameters` to override or pre-register the space.
        allow_new_entries: Whether the hypermodel may register hyperparameters not in
            `hyperparameters`.
        tune_new_entries: Whether such hyperparameters are searched (else kept at default).
        seed: Random seed, an int in [0, 2**32 - 1] (0 is a valid seed here, unlike in
            KerasTuner's `Oracle`).
        max_retries_per_trial: Retries of a crashed trial before it counts as failed.
        max_consecutive_failed_trials: The search stops after this many failures in a row.
        allow_duplicates: If True, an architecture may be proposed more than once.
        num_bins: Number of candidates an `Int` or `Float` range is discretized into.

    Example:

    ```python
    class RandomOracle(MultiTrialOracle):
        def make_search_algorithm(self, seed):
            return MyRandomAlgorithm(seed)  # A `tfnas.search.base.SearchAlgorithm`.

    oracle = RandomOracle(objective="val_accuracy", max_trials=20, seed=0)
    tuner = keras_tuner.Tuner(hypermodel=build, oracle=oracle, directory="runs")
    ```
    """

    def __init__(
        self,
        objective=None,
        max_trials: int | None = 10,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        seed: int | None = None,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        allow_duplicates: bool = False,
        num_bins: int = 10,
    ):
        if max_trials is not None:
            validation.check_int("max_trials", max_trials, low=1)
        if seed is not None:
            # The seed also seeds numpy and Keras (`keras.utils.set_random_seed`): 32 bits.
            validation.check_int("seed", seed, low=0, high=2**32 - 1)
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        if seed is not None:
            # `Oracle.__init__` does `seed or random.randint(...)`, which discards seed=0.
            self.seed = self._seed_state = int(seed)
        self.allow_duplicates = bool(allow_duplicates)
        self.num_bins = validation.check_int("num_bins", num_bins, low=2)
        self.algorithm = self.make_search_algorithm(self.seed)
        # Trial ids whose outcome the algorithm has observed, in observation order.
        self._observed: list[str] = []
        self._encoding_cache: tuple[int, int, encoding.SpaceEncoding] | None = None

    def make_search_algorithm(self, seed: int) -> base.SearchAlgorithm:
        """Returns the search algorithm, seeded with `seed`."""
        raise NotImplementedError

    def encoding(self) -> encoding.SpaceEncoding:
        """Returns the encoding of the current search space (rebuilt when it grows)."""
        key = (id(self.hyperparameters), len(self.hyperparameters.space))
        if self._encoding_cache is None or self._encoding_cache[:2] != key:
            space = encoding.SpaceEncoding(self.hyperparameters, self.num_bins)
            self._encoding_cache = (*key, space)
        return self._encoding_cache[2]

    def _is_seen(self, values: encoding.Values) -> bool:
        if self.allow_duplicates:
            return False
        return self._compute_values_hash(values) in self._tried_so_far

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        """Returns the values of the next trial, or STOPPED when the space is exhausted."""
        if not self.hyperparameters.space:
            raise ValueError(
                f"{type(self).__name__} has an empty search space: the hypermodel registered "
                "no hyperparameters (and none were passed as `hyperparameters`). Register at "
                "least one with `hp.Choice`, `hp.Int`, `hp.Float` or `hp.Boolean` in `build`."
            )
        self._observe_finished_trials()
        values = base.propose_unseen(
            self.algorithm, self.encoding(), self._is_seen, self._max_collisions
        )
        if values is None:
            return {"status": TrialStatus.STOPPED, "values": None}
        return {"status": TrialStatus.RUNNING, "values": values}

    @keras_tuner.synchronized
    def end_trial(self, trial: keras_tuner.engine.trial.Trial) -> None:
        super().end_trial(trial)
        self._raise_if_objective_missing(self.trials[trial.trial_id])
        # Not saved here: the tuner saves right after, and should the process stop before,
        # `populate_space` observes the trial on resume, in the same order.
        self._observe_finished_trials()

    def _reward(self, trial: keras_tuner.engine.trial.Trial) -> float | None:
        if trial.status != TrialStatus.COMPLETED or trial.score is None:
            return None
        score = float(trial.score)
        if not math.isfinite(score):
            return None
        return score if self.objective.direction == "max" else -score

    def _observe_finished_trials(self) -> None:
        # Walks `end_order` rather than reacting to each `end_trial` call, so that trials
        # that ended right before an interruption are still observed after a resume.
        observed = set(self._observed)
        for trial_id in self.end_order:
            if trial_id in observed:
                continue
            trial = self.trials[trial_id]
            self.algorithm.observe(
                self.encoding(), dict(trial.hyperparameters.values), self._reward(trial)
            )
            self._observed.append(trial_id)
            observed.add(trial_id)

    def _raise_if_objective_missing(self, trial: keras_tuner.engine.trial.Trial) -> None:
        # `keras_tuner.Tuner` reads the objective out of the `fit` history and fails with a
        # bare `KeyError: 'name'` when the model never logs it, without passing on what was
        # logged; every trial would fail the same way, so stop at the first one.
        if trial.status not in (TrialStatus.FAILED, TrialStatus.INVALID) or not trial.message:
            return
        names = getattr(self.objective, "name_to_direction", {self.objective.name: None})
        last_line = trial.message.strip().splitlines()[-1]
        for name in names:
            if last_line != f"KeyError: {name!r}":
                continue
            reported = sorted({m for t in self.trials.values() for m in t.metrics.metrics})
            known = f" Metrics reported by earlier trials: {reported}." if reported else ""
            raise ValueError(
                objective_missing_message(
                    trial.trial_id,
                    name,
                    f"it failed with {last_line} when KerasTuner looked the objective up in "
                    f"the trial's results.{known}",
                )
            )

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["multi_trial"] = {
            "algorithm": self.algorithm.get_state(),
            "observed": list(self._observed),
        }
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.algorithm.set_state(state["multi_trial"]["algorithm"])
        self._observed = list(state["multi_trial"]["observed"])
        self._encoding_cache = None

    def reload(self) -> None:
        try:
            super().reload()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            # KerasTuner lets this escape bare, naming neither the file nor what to do.
            raise corrupt_state_error(self, e) from e


def objective_missing_message(trial_id: str, name: str, details: str) -> str:
    """Says that trial `trial_id` did not report the objective `name`, and how to fix it.

    Args:
        trial_id: the trial's id.
        name: the objective's metric name.
        details: what the trial reported instead, as one or more sentences.

    Returns:
        The message of the error that stops the search.
    """
    return (
        f"Trial {trial_id} did not report the objective metric {name!r}: {details} For a "
        "Keras model the objective must be a key of the `fit` history, e.g. 'val_accuracy' "
        "when compiling with metrics=['accuracy'] and passing validation data."
    )


def corrupt_state_error(oracle: keras_tuner.Oracle, error: Exception) -> ValueError:
    """The error for a project whose saved state failed to parse while `oracle` reloaded it.

    Any KerasTuner oracle reloads from the same files, so `tfnas.Tuner` raises this for
    KerasTuner's own oracles too.

    Args:
        oracle: the oracle that was reloading its project.
        error: the `json.JSONDecodeError` or `UnicodeDecodeError` raised.

    Returns:
        A `ValueError` that names the corrupt file and says how to start over.
    """
    return ValueError(
        f"Could not resume the search: {_find_corrupt_file(oracle)} is not valid JSON "
        f"({error}). Delete the project directory {oracle._project_dir}, pass "
        "`overwrite=True` to the tuner (`--overwrite` to tfnas-search) to start a new "
        "search, or use another directory."
    )


def _find_corrupt_file(oracle: keras_tuner.Oracle) -> str:
    # KerasTuner's own file layer (tf.io.gfile on the TensorFlow backend), which wrote the
    # files: the same paths (including gs://) read back the same way.
    from keras_tuner.src.backend import io as kt_io

    fnames = [oracle._get_oracle_fname()] + sorted(
        kt_io.glob(os.path.join(oracle._project_dir, "trial_*", "trial.json"))
    )
    for fname in fnames:
        try:
            with kt_io.File(fname, "r") as f:
                json.loads(f.read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return fname
    return "a state file of the project"
