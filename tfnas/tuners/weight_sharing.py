"""The weight-sharing oracle base class: what a one-shot or differentiable strategy decides.

A weight-sharing strategy is a `WeightSharingOracle`. It supplies the mixing rule the
user's unchanged hypermodel is built with (the supernet), sets the rule before every
training step (one sampled path, several fair paths, dropped-out paths, a controller's
sample) and after each epoch (e.g. ENAS trains its controller), and, once the supernet is
trained, proposes candidate architectures like any multi-trial oracle. `tfnas.Tuner`
trains the supernet once, then turns every candidate into an ordinary KerasTuner trial,
evaluated with the inherited weights after re-estimating the batch-norm statistics.

Plain hyperparameters (`hp.Int`, `hp.Float`, ... outside choice points) cannot vary
inside one supernet: they keep the value the supernet was built with (their default, or
the value given in the oracle's `hyperparameters`), a warning names them, and every
candidate uses that value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tfnas import validation
from tfnas.cost import COST_METRICS, LATENCY_METRIC
from tfnas.search import base, encoding
from tfnas.tuners import multi_trial

if TYPE_CHECKING:
    import keras

    from tfnas.blocks.rules import MixingRule

logger = logging.getLogger(__name__)

CONSTRAINT_METRICS = (*COST_METRICS, LATENCY_METRIC)


class WeightSharingOracle(multi_trial.MultiTrialOracle):
    """Base class of the weight-sharing strategies (one-shot, ENAS, differentiable, ...).

    Subclasses choose the mixing rule (`make_mixing_rule`), how each training step uses it
    (`prepare_training_step`), optionally `paths_per_step` (several architectures per batch,
    gradients accumulated into one update) and `on_supernet_epoch_end`, and, through
    `make_search_algorithm`, how candidates are searched once the supernet is trained.

    Args:
        objective: the candidates' objective, measured with inherited weights
            (default "val_accuracy").
        max_trials: candidates to evaluate on the trained supernet.
        constraints: `{metric: maximum}` over `num_params`, `flops`, `model_bytes`,
            `latency_ms`; candidates above a maximum are never proposed.
        bn_recalibration_batches: training batches used to re-estimate the batch-norm
            statistics of each candidate before it is evaluated (SPOS); 0 to skip.
        **kwargs: the arguments of `MultiTrialOracle` (seed, hyperparameters, ...).
    """

    # How `tfnas.Tuner` runs this oracle: train one supernet, then evaluate every trial's
    # architecture on it (an oracle without this attribute runs ordinary trials).
    execution = "supernet"
    paths_per_step = 1

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 20,
        *,
        constraints: Mapping[str, float] | None = None,
        bn_recalibration_batches: int = 10,
        max_consecutive_failed_trials: int = 10,
        **kwargs,
    ):
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            **kwargs,
        )
        self.constraints = _check_constraints(constraints)
        self.bn_recalibration_batches = validation.check_int(
            "bn_recalibration_batches", bn_recalibration_batches, low=0
        )
        self.training_rng = np.random.default_rng(None if self.seed is None else self.seed + 1)
        self.supernet_epochs_done = 0
        # Set when a strategy ends supernet training early (DARTS+).
        self.supernet_stop_reason: str | None = None
        self.frozen_values: dict[str, Any] = {}
        # Set by the tuner: values -> {metric: cost} of the fixed architecture.
        self.cost_function: Callable[[Mapping[str, Any]], Mapping[str, float]] | None = None

    # --- What a strategy customizes -------------------------------------------------------

    def make_mixing_rule(self) -> MixingRule:
        """The rule the supernet is built with (default: one sampled path per step)."""
        from tfnas.blocks.rules import SinglePath

        return SinglePath()

    def sample_architecture(self) -> encoding.Values:
        """A uniformly random architecture of the space (active choices only)."""
        values = self.encoding().sample(self.training_rng)
        return {**values, **self.frozen_values}

    def prepare_training_step(
        self, rule: MixingRule, step: int, path: int, progress: float
    ) -> None:
        """Sets the rule before a training step (default: a uniform random path).

        Args:
            rule: the supernet's mixing rule.
            step: the global step, counted over all epochs.
            path: which of the `paths_per_step` architectures of this batch.
            progress: fraction of the supernet training done, in [0, 1).
        """
        rule.set_architecture(self.sample_architecture())

    def make_architecture_step(self):
        """The strategy's architecture update, run by the trainer before each weight step.

        Returns None (the default: one-shot strategies learn no architecture parameters by
        gradient) or an object of the `tfnas.engine.architecture_steps` protocol: the
        trainer calls `connect(supernet, rule, validation_data, training_data)` once the
        supernet is built, `begin_epoch(epoch)` before each epoch and `step(step,
        progress)` before the weight step of each batch. The step owns its optimizer and
        data iterators; the oracle only configures it.
        """
        return None

    def check_epochs(self, epochs: int) -> None:
        """Checks the supernet's training epochs before any work (called by `tfnas.Tuner`).

        Subclasses whose arguments depend on the epochs (P-DARTS's stages) extend it.

        Raises:
            ValueError: when `epochs` is not an int >= 1.
        """
        validation.check_int("epochs", epochs, low=1)

    def check_objective(self, supernet: keras.Model) -> None:
        """Checks that the candidates will report the objective (called by `tfnas.Tuner`
        as supernet training begins, so that a typo in its name fails before it trains).

        Args:
            supernet: the compiled supernet, its metrics built.

        Raises:
            ValueError: when the objective is none of the metrics a candidate reports.
        """
        try:
            logged = supernet.get_metrics_result()
        except ValueError:
            return  # Metrics are built in `fit` (e.g. under a distribution strategy).
        # What `tfnas.Tuner.run_trial` records per candidate: the supernet's validation
        # metrics and the architecture's costs.
        reported = {f"val_{name}": 0.0 for name in logged}
        reported.update(dict.fromkeys(CONSTRAINT_METRICS, 0.0))
        if not self.objective.has_value(reported):
            raise ValueError(
                f"{type(self).__name__} cannot rank candidates by its objective: each "
                f"candidate reports only {sorted(reported)} (the compiled supernet's metrics "
                f"on the validation data, and the costs). Received: objective={self.objective}"
                ". Name one of them, e.g. 'val_accuracy' when build(hp) compiles with "
                "metrics=['accuracy']."
            )

    def on_supernet_built(self, supernet: keras.Model, validation_data, training_data=None) -> None:
        """Called once the supernet is built and the data is known, before training.

        Args:
            supernet: the compiled supernet, built with this oracle's mixing rule.
            validation_data: the batched validation `tf.data.Dataset` of `(x, y)`.
            training_data: the batched training `tf.data.Dataset` of `(x, y)` (one pass,
                in a fixed order), for strategies that take steps of their own on it.
        """

    def on_supernet_epoch_end(
        self,
        epoch: int,
        evaluate: Callable[[dict], float],
        logs: Mapping[str, float] | None = None,
        callbacks=None,
    ) -> None:
        """Called after each supernet epoch.

        Args:
            epoch: the epoch just finished (0-based).
            evaluate: `evaluate(values) -> float`, the reward (higher is better) of an
                architecture on the next validation batch with the shared weights.
            logs: the epoch's training logs (`loss`, metrics).
            callbacks: the callbacks the user passed to `search` (e.g. a TensorBoard
                callback to log architecture parameters to).
        """

    def start_supernet_stage(self, epoch: int, epochs: int) -> bool:
        """Called before each supernet epoch; True when the supernet must be rebuilt.

        Progressive strategies (P-DARTS) change the supernet between stages: they return
        True at a stage's first epoch, after which the trainer builds a new supernet (fresh
        weights and optimizer) with `make_mixing_rule()` and `stage_hypermodel(...)` and
        trains the stage in a new `fit`. It is called after the previous epoch's
        checkpoint, so a resumed search asks it again for the epoch it resumes at.
        """
        return False

    def stage_hypermodel(self, hypermodel):
        """The hypermodel the supernet of the current stage is built from (default: as is)."""
        return hypermodel

    def stop_supernet_training(self, reason: str) -> None:
        """Ends supernet training after the current epoch (kept in the state, so a resumed
        search does not train further); `supernet_stop_reason` says why."""
        if self.supernet_stop_reason is None:
            self.supernet_stop_reason = str(reason)
            logger.warning("%s stops supernet training: %s", type(self).__name__, reason)

    # --- Plumbing ---------------------------------------------------------------------------

    def _is_seen(self, values: encoding.Values) -> bool:
        return super()._is_seen(values) or not self.is_feasible(values)

    def is_feasible(self, values: Mapping[str, Any]) -> bool:
        """Whether an architecture meets `constraints` (always, without constraints)."""
        if not self.constraints:
            return True
        if self.cost_function is None:
            raise RuntimeError(
                f"{type(self).__name__} has constraints {self.constraints} but no cost "
                "function: search with tfnas.Tuner, which provides it."
            )
        costs = self.cost_function(values)
        return all(costs[name] <= limit for name, limit in self.constraints.items())

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        result = super().populate_space(trial_id)
        if result["values"] is not None:
            result["values"] = {**result["values"], **self.frozen_values}
        return result

    def get_state(self) -> dict[str, Any]:
        # The one state of the oracle: in `oracle.json` and, after every supernet epoch, in
        # the supernet checkpoint (the newer of the two is restored on resume).
        state = super().get_state()
        state["weight_sharing"] = {
            "training_rng": base.rng_state(self.training_rng),
            "supernet_epochs_done": self.supernet_epochs_done,
            "stop_reason": self.supernet_stop_reason,
            "frozen_values": self.frozen_values,
        }
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        shared = state["weight_sharing"]
        self.training_rng = base.rng_from_state(shared["training_rng"])
        self.supernet_epochs_done = shared["supernet_epochs_done"]
        self.supernet_stop_reason = shared["stop_reason"]
        self.frozen_values = dict(shared["frozen_values"])


def _check_constraints(constraints) -> dict[str, float]:
    if constraints is None:
        return {}
    if not isinstance(constraints, Mapping):
        raise ValueError(
            "constraints must be a dict of metric -> maximum. "
            f"Received: constraints={constraints!r}"
        )
    for name, limit in constraints.items():
        if name not in CONSTRAINT_METRICS:
            raise ValueError(
                f"Unknown constraint metric {name!r}. Received: constraints={dict(constraints)!r}; "
                f"expected metrics among {list(CONSTRAINT_METRICS)}."
            )
        if not isinstance(limit, (int, float)) or not limit > 0:
            raise ValueError(f"Constraint {name!r} must be a number > 0. Received: {limit!r}")
    return {name: float(limit) for name, limit in constraints.items()}
