"""Objectives that trade accuracy against the costs `tfnas.Tuner` records.

`BudgetedAccuracy` is an accuracy under hard cost limits (`tfnas-search --max_flops`).

`MnasNetReward` is the multi-objective reward of MnasNet (Tan et al. 2018,
arXiv 1807.11626), `ACC(m) * (LAT(m) / T) ** w`, as a `keras_tuner.Objective`: pass it as the
`objective=` of any KerasTuner or tfnas oracle.

How it meets KerasTuner's machinery. KerasTuner never hands an objective the final metrics
of a trial: `Oracle.score_trial` reads `trial.metrics[objective.name]`, a value that
`keras_tuner.Tuner` computes with `objective.get_value` on the best epoch of the `fit` history
(`tuner_utils.convert_to_metrics_dict`), and `SaveBestEpoch` checkpoints the epoch whose
`get_value` is best among the epochs where `has_value` holds. The reward is therefore computed
from epoch logs, and a cost metric must be a metric of every epoch, as `val_accuracy` is:
the tuner adds the model's costs to each epoch's logs (`tfnas.Tuner`, with a callback placed
ahead of KerasTuner's). This also serves any other objective over costs, such as
`keras_tuner.Objective("flops", "min")`. Within one trial the cost is a constant, so the best
epoch by reward is the best epoch by accuracy.

- `has_value(logs)` is True only when both the accuracy and the cost are in `logs`; in logs
  without the cost, `SaveBestEpoch` then saves every epoch, as KerasTuner does for any
  objective it cannot read per epoch.
- `get_value(logs)` raises `keras_tuner.errors.FatalValueError` (a `ValueError` that stops the
  search at the first trial instead of failing every trial) naming the missing metric and the
  metrics that were reported. It never returns a stand-in such as the bare accuracy: that would
  be recorded as the trial's score without warning.

Reload: an oracle's `get_state` does not include its objective (constructor arguments are not
state); with `overwrite=False` the objective is the one passed to the new oracle, and the
finished trials keep the scores stored in their `trial.json`. Keep the same arguments when
resuming, or give a changed reward another `name`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras_tuner
from keras_tuner import errors

from tfnas import validation
from tfnas.cost import COST_METRICS, LATENCY_METRIC

# MnasNet's exponents (alpha, beta): alpha applies when the cost is within the target.
MODES: dict[str, tuple[float, float]] = {"soft": (-0.07, -0.07), "hard": (0.0, -1.0)}

_TFNAS_COSTS = (*COST_METRICS, LATENCY_METRIC)


def mnasnet_reward(
    accuracy: float,
    cost: float,
    target: float,
    alpha: float = MODES["soft"][0],
    beta: float = MODES["soft"][1],
) -> float:
    """`accuracy * (cost / target) ** w`, with `w = alpha` if `cost <= target` else `beta`.

    Args:
        accuracy: The accuracy-like metric (higher is better).
        cost: The cost (latency, FLOPs, ...), positive.
        target: The target cost T, positive.
        alpha: Exponent when the cost is within the target.
        beta: Exponent when the cost exceeds the target.

    Returns:
        The reward, NaN when `accuracy` or `cost` is NaN (KerasTuner marks such a trial
        invalid).

    Raises:
        ValueError: if `cost` is not positive.
    """
    accuracy, cost = float(accuracy), float(cost)
    if math.isnan(accuracy) or math.isnan(cost):
        return math.nan
    if not cost > 0:
        raise ValueError(f"The cost of the MnasNet reward must be positive. Received: cost={cost}")
    exponent = alpha if cost <= target else beta
    return accuracy * (cost / target) ** exponent


class MnasNetReward(keras_tuner.Objective):
    """The MnasNet reward `ACC * (LAT / T) ** w` as a KerasTuner objective (maximized).

    `w = alpha` when `LAT <= T`, `w = beta` otherwise. The soft constraint of the paper is
    `alpha = beta = -0.07` (the default): halving the cost is worth about 5% relative
    accuracy. The hard constraint `alpha = 0, beta = -1` keeps the accuracy of models within
    the target and divides it by `LAT / T` above.

    The cost may be any metric recorded per trial: `tfnas.Tuner` records `num_params`,
    `flops`, `model_bytes`, and `latency_ms` with `measure_latency=True`. See the module
    docstring for how per-epoch logs and reloads are handled.

    Args:
        target: The target cost T (e.g. milliseconds, FLOPs), positive.
        accuracy: Name of the accuracy-like metric.
        cost: Name of the cost metric.
        mode: `"soft"` or `"hard"`: MnasNet's exponents. Give either `mode` or
            `alpha`/`beta`; neither means `"soft"`.
        alpha: Exponent when the cost is within the target. Defaults to -0.07.
        beta: Exponent when the cost exceeds the target, at most 0. Defaults to -0.07.
        name: The metric name under which trials record the reward.

    Example:

    ```python
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=tfnas.results.objectives.MnasNetReward(cost="flops", target=2e6),
        max_trials=20,
    )
    tuner = tfnas.Tuner(build, oracle=oracle, directory="runs", project_name="mnas")
    ```
    """

    def __init__(
        self,
        *,
        target: float,
        accuracy: str = "val_accuracy",
        cost: str = "latency_ms",
        mode: str | None = None,
        alpha: float | None = None,
        beta: float | None = None,
        name: str = "mnasnet_reward",
    ):
        for arg, value in (("accuracy", accuracy), ("cost", cost), ("name", name)):
            if not isinstance(value, str) or not value:
                raise ValueError(
                    f"{arg} must be a non-empty metric name. Received: {arg}={value!r}"
                )
        if accuracy == cost:
            raise ValueError(
                f"accuracy and cost must name different metrics. Received: "
                f"accuracy={accuracy!r}, cost={cost!r}"
            )
        if name in (accuracy, cost):
            raise ValueError(
                f"name must differ from the metrics the reward reads, or the reward would "
                f"overwrite one of them. Received: name={name!r}"
            )
        if mode is not None:
            validation.check_one_of("mode", mode, tuple(MODES))
            if alpha is not None or beta is not None:
                raise ValueError(
                    f"Pass either mode or alpha/beta, not both. Received: mode={mode!r}, "
                    f"alpha={alpha!r}, beta={beta!r}"
                )
        default_alpha, default_beta = MODES[mode or "soft"]
        super().__init__(name=name, direction="max")
        self.accuracy = accuracy
        self.cost = cost
        self.target = validation.check_float("target", target, low=0, low_inclusive=False)
        self.alpha = validation.check_float("alpha", default_alpha if alpha is None else alpha)
        self.beta = validation.check_float("beta", default_beta if beta is None else beta, high=0)

    def reward(self, accuracy: float, cost: float) -> float:
        """The reward of one model from its accuracy and cost."""
        return mnasnet_reward(accuracy, cost, self.target, self.alpha, self.beta)

    def has_value(self, logs: Mapping[str, Any] | None) -> bool:
        """Whether `logs` hold both the accuracy and the cost."""
        return logs is not None and self.accuracy in logs and self.cost in logs

    def get_value(self, logs: Mapping[str, Any]) -> float:
        """The reward computed from `logs`.

        Args:
            logs: Metric names to values: one epoch's logs or a trial's metrics.

        Returns:
            The reward.

        Raises:
            keras_tuner.errors.FatalValueError: if `logs` lack the accuracy or the cost.
        """
        for metric in (self.accuracy, self.cost):
            if metric not in logs:
                raise errors.FatalValueError(self._missing_message(metric, logs))
        return self.reward(logs[self.accuracy], logs[self.cost])

    def _missing_message(self, metric: str, logs: Mapping[str, Any]) -> str:
        reported = sorted(logs)
        if metric == self.cost:
            hint = (
                f"Search with tfnas.Tuner, which records {list(_TFNAS_COSTS[:3])} in every "
                f"epoch (and {_TFNAS_COSTS[3]!r} with measure_latency=True), or pass a "
                "reported metric as cost."
            )
        else:
            hint = (
                "Compile the model with the matching metric (e.g. metrics=['accuracy']) and "
                "pass validation data for a 'val_' metric, or pass a reported metric as "
                "accuracy."
            )
        return (
            f"{self} needs the metric {metric!r}, which the trial did not report. "
            f"Reported metrics: {reported}. {hint}"
        )

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, as JSON."""
        return {
            "target": self.target,
            "accuracy": self.accuracy,
            "cost": self.cost,
            "alpha": self.alpha,
            "beta": self.beta,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MnasNetReward:
        """Rebuilds the objective from `get_config()`."""
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MnasNetReward):
            return False
        return self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.get_config().items())))

    def __str__(self) -> str:
        return (
            f'MnasNetReward(name="{self.name}", direction="max", accuracy="{self.accuracy}", '
            f'cost="{self.cost}", target={self.target:g}, alpha={self.alpha:g}, '
            f"beta={self.beta:g})"
        )

    __repr__ = __str__


class BudgetedAccuracy(keras_tuner.Objective):
    """An accuracy under cost limits, maximized: the accuracy of an architecture within
    every limit, and `1 - max(cost / limit)` (negative) for one above a limit.

    So every architecture within the limits beats every one above them, and of two above,
    the one nearer to the limits scores higher. Computed from a trial's metrics (the
    costs are in every epoch's logs, see `tfnas.results.objectives`); an architecture above
    a limit needs no accuracy.

    Args:
        limits: `{cost metric: maximum}`, e.g. `{"flops": 7e5}`.
        accuracy: the accuracy metric.
    """

    def __init__(self, limits: dict[str, float], accuracy: str = "val_accuracy"):
        super().__init__(name=f"budgeted_{accuracy}", direction="max")
        self.limits = {name: float(limit) for name, limit in limits.items()}
        self.accuracy = accuracy

    def excess(self, metrics) -> float:
        """The largest `cost / limit` of `metrics` (above 1: over a limit)."""
        return max(float(metrics[name]) / limit for name, limit in self.limits.items())

    def has_value(self, logs) -> bool:
        if logs is None or any(name not in logs for name in self.limits):
            return False
        return self.accuracy in logs or self.excess(logs) > 1

    def get_value(self, logs) -> float:
        missing = [name for name in self.limits if name not in logs]
        if missing:
            raise keras_tuner.errors.FatalValueError(
                f"{self.name} needs the cost metric {missing[0]!r}, which the trial did not "
                f"report: search with tfnas.Tuner, which records it. Reported: {sorted(logs)}"
            )
        excess = self.excess(logs)
        if excess > 1:
            return 1.0 - excess
        if self.accuracy not in logs:
            raise keras_tuner.errors.FatalValueError(
                f"{self.name} needs the metric {self.accuracy!r} of an architecture within "
                f"the limits {self.limits}. Reported: {sorted(logs)}"
            )
        return float(logs[self.accuracy])

    def get_config(self):
        return {"limits": self.limits, "accuracy": self.accuracy}
