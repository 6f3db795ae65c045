"""Pareto fronts of finished trials over two or three recorded metrics.

A trial dominates another when it is at least as good on every metric and better on one.
The front is the set of completed trials no other completed trial dominates; trials with
identical values are all kept. Typical use, after `tfnas.Tuner.search`:

```python
points = pareto_front(tuner, metrics=("val_accuracy", "latency_ms"))
plot_pareto(tuner, "runs/pareto.png", metrics=("val_accuracy", "latency_ms"))
report["pareto_front"] = pareto_to_json(points)
```
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from keras_tuner.engine import trial as trial_module
from keras_tuner.src.engine import metrics_tracking

from tfnas.cost import COST_METRICS, LATENCY_METRIC
from tfnas.results import plotting

DEFAULT_METRICS = ("val_accuracy", "latency_ms")
DIRECTIONS = ("min", "max")
_COST_METRICS = (*COST_METRICS, LATENCY_METRIC)

Directions = Sequence[str | None] | Mapping[str, str] | None


@dataclasses.dataclass
class ParetoPoint:
    """One trial on (or off) a Pareto front.

    Args:
        trial_id: The KerasTuner trial id.
        values: Metric name to value, in the order of the front's metrics.
        hyperparameters: The trial's hyperparameter values (its architecture).

    Example:

    ```python
    point = pareto_front(tuner)[0]
    print(point.trial_id, point.values["latency_ms"], point.hyperparameters)
    ```
    """

    trial_id: str
    values: dict[str, float]
    hyperparameters: dict[str, Any]


def pareto_front(
    trials_or_tuner: Any,
    metrics: Sequence[str] = DEFAULT_METRICS,
    directions: Directions = None,
) -> list[ParetoPoint]:
    """The non-dominated completed trials over two or three metrics.

    Only trials with status COMPLETED that report every metric (not NaN) take part. A
    trial's value of a metric is its observation at the trial's best step (KerasTuner
    records one observation per trial), else its best observation.

    Args:
        trials_or_tuner: A `keras_tuner.Tuner`, an oracle, a dict of trials (as
            `oracle.trials`) or an iterable of `keras_tuner.engine.trial.Trial`.
        metrics: Two or three metric names.
        directions: `"min"` or `"max"` per metric, as a sequence aligned with `metrics` or
            a dict by name; a missing or None entry is inferred: the tfnas costs
            (`num_params`, `flops`, `model_bytes`, `latency_ms`) are minimized, other
            metrics follow the direction the trials recorded (the objective's direction,
            else KerasTuner's inference: accuracy-like "max", loss-like "min").

    Returns:
        The front's points, sorted by the first metric's value (ascending), then by the
        other metrics and the trial id. Empty when there are no trials.

    Raises:
        ValueError: if `metrics` does not name 2 or 3 distinct metrics, a direction is not
            "min" or "max", or no trial reports one of the metrics.
    """
    _, dirs, candidates = _prepare(trials_or_tuner, metrics, directions)
    return _non_dominated(candidates, dirs)


def plot_pareto(
    points_or_tuner: Any,
    path: str | os.PathLike,
    metrics: Sequence[str] | None = None,
    all_trials: bool = True,
    directions: Directions = None,
    title: str | None = None,
) -> str:
    """Writes a PNG scatter plot of a Pareto front.

    Two metrics: the first on x, the second on y. Three metrics: the same plot with the
    third as the colour of the front's points. The front is highlighted and connected in
    the order of the first metric; dominated trials are grey.

    Args:
        points_or_tuner: A list of `ParetoPoint`s (as `pareto_front` returns; only they
            are drawn), or anything `pareto_front` accepts (tuner, oracle, trials).
        path: Where to write the PNG; missing parent directories are created.
        metrics: Two or three metric names. Defaults to the points' metrics, or
            `DEFAULT_METRICS` for trials.
        all_trials: Also draw the dominated trials (when given trials, not points).
        directions: As for `pareto_front`; labels the axes with "higher/lower is better".
        title: Optional title.

    Returns:
        `path`, as a string.
    """
    if _is_points(points_or_tuner):
        front = list(points_or_tuner)
        if metrics is None:
            metrics = tuple(front[0].values) if front else DEFAULT_METRICS
        metrics = _check_metrics(metrics)
        for point in front:
            missing = [m for m in metrics if m not in point.values]
            if missing:
                raise ValueError(
                    f"Point of trial {point.trial_id} has no value for {missing}; it has "
                    f"{sorted(point.values)}. Received: metrics={metrics}"
                )
        dirs = _resolve_directions(metrics, directions, [])
        others: list[ParetoPoint] = []
    else:
        metrics, dirs, candidates = _prepare(
            points_or_tuner, DEFAULT_METRICS if metrics is None else metrics, directions
        )
        front = _non_dominated(candidates, dirs)
        on_front = {p.trial_id for p in front}
        others = [p for p in candidates if p.trial_id not in on_front] if all_trials else []

    figure = plotting.new_figure(6.4, 4.8)
    axes = figure.add_subplot()

    def column(points, metric):
        return [p.values[metric] for p in points]

    x_name, y_name = metrics[0], metrics[1]
    if others:
        axes.scatter(
            column(others, x_name),
            column(others, y_name),
            s=25,
            color="0.75",
            edgecolors="0.55",
            linewidths=0.5,
            label="dominated",
            zorder=1,
        )
    if front:
        # With a third metric the line joins a projection: dashed, as it is no staircase.
        axes.plot(
            column(front, x_name),
            column(front, y_name),
            color="tab:red",
            lw=1.2,
            ls="--" if len(metrics) == 3 else "-",
            zorder=2,
        )
        style = {"s": 55, "edgecolors": "black", "linewidths": 0.8, "zorder": 3}
        if len(metrics) == 3:
            z_name = metrics[2]
            scatter = axes.scatter(
                column(front, x_name),
                column(front, y_name),
                c=column(front, z_name),
                cmap="viridis",
                label="Pareto front",
                **style,
            )
            figure.colorbar(scatter, ax=axes, label=_label(z_name, dirs[z_name]))
        else:
            axes.scatter(
                column(front, x_name),
                column(front, y_name),
                color="tab:red",
                label="Pareto front",
                **style,
            )
        if len(front) <= 30:
            # Trials with equal values share one label.
            labels: dict[tuple[float, float], list[str]] = {}
            for point in front:
                xy = (point.values[x_name], point.values[y_name])
                labels.setdefault(xy, []).append(str(point.trial_id))
            for xy, ids in labels.items():
                axes.annotate(
                    ", ".join(ids), xy, textcoords="offset points", xytext=(4, 4), fontsize=7
                )
        axes.legend(loc="best", fontsize=8)
    axes.set_xlabel(_label(x_name, dirs[x_name]))
    axes.set_ylabel(_label(y_name, dirs[y_name]))
    axes.grid(alpha=0.3)
    if title:
        axes.set_title(title)
    return plotting.save_png(figure, path)


def pareto_to_json(points: Iterable[ParetoPoint]) -> list[dict[str, Any]]:
    """The points as JSON-ready dicts (`trial_id`, `values`, `hyperparameters`)."""
    return [
        {
            "trial_id": str(point.trial_id),
            "values": {name: float(value) for name, value in point.values.items()},
            "hyperparameters": {
                name: _plain(value) for name, value in point.hyperparameters.items()
            },
        }
        for point in points
    ]


def _prepare(source, metrics, directions):
    metrics = _check_metrics(metrics)
    trials = _trials(source)
    if not trials:
        return metrics, _resolve_directions(metrics, directions, trials), []
    reported = sorted({name for trial in trials for name in trial.metrics.metrics})
    for metric in metrics:
        if metric not in reported:
            raise ValueError(
                f"No trial reports the metric {metric!r}. Metrics the trials report: "
                f"{reported}. Received: metrics={metrics}"
            )
    dirs = _resolve_directions(metrics, directions, trials)
    candidates = []
    for trial in trials:
        if trial.status != trial_module.TrialStatus.COMPLETED:
            continue
        values = {m: _value(trial, m, dirs[m]) for m in metrics}
        if any(v is None for v in values.values()):
            continue
        candidates.append(
            ParetoPoint(
                trial_id=trial.trial_id,
                values=values,
                hyperparameters=dict(trial.hyperparameters.values),
            )
        )
    return metrics, dirs, candidates


def _check_metrics(metrics) -> tuple[str, ...]:
    if isinstance(metrics, str) or not isinstance(metrics, Sequence):
        raise ValueError(
            f"metrics must be a list or tuple of 2 or 3 metric names. Received: metrics={metrics!r}"
        )
    metrics = tuple(metrics)
    if not 2 <= len(metrics) <= 3:
        raise ValueError(
            f"metrics must name 2 or 3 metrics, got {len(metrics)}. Received: metrics={metrics!r}"
        )
    if any(not isinstance(m, str) or not m for m in metrics):
        raise ValueError(f"metrics must be non-empty strings. Received: metrics={metrics!r}")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics must be distinct. Received: metrics={metrics!r}")
    return metrics


def _trials(source) -> list[trial_module.Trial]:
    oracle = getattr(source, "oracle", source)
    trials = getattr(oracle, "trials", oracle)
    if isinstance(trials, Mapping):
        trials = trials.values()
    if isinstance(trials, (str, bytes)) or not isinstance(trials, Iterable):
        raise TypeError(
            f"Expected a tuner, an oracle, a dict of trials or a list of trials. "
            f"Received: {type(source).__name__}"
        )
    trials = list(trials)
    for trial in trials:
        if not isinstance(trial, trial_module.Trial):
            raise TypeError(
                f"Expected keras_tuner Trial objects. Received an element of type "
                f"{type(trial).__name__}"
            )
    return trials


def _resolve_directions(metrics, directions, trials) -> dict[str, str]:
    if directions is None:
        given = {}
    elif isinstance(directions, Mapping):
        unknown = sorted(set(directions) - set(metrics))
        if unknown:
            raise ValueError(
                f"directions names metrics that are not in metrics={metrics}: {unknown}. "
                f"Received: directions={dict(directions)!r}"
            )
        given = dict(directions)
    elif isinstance(directions, str) or not isinstance(directions, Sequence):
        raise ValueError(
            f"directions must be a list aligned with metrics or a dict by metric name. "
            f"Received: directions={directions!r}"
        )
    else:
        if len(directions) != len(metrics):
            raise ValueError(
                f"directions must have one entry per metric ({len(metrics)}). Received: "
                f"directions={list(directions)!r} for metrics={metrics}"
            )
        given = dict(zip(metrics, directions))
    resolved = {}
    for metric in metrics:
        direction = given.get(metric)
        if direction is None:
            direction = _infer_direction(metric, trials)
        elif direction not in DIRECTIONS:
            raise ValueError(
                f"The direction of {metric!r} must be 'min' or 'max'. Received: "
                f"directions={directions!r}"
            )
        resolved[metric] = direction
    return resolved


def _infer_direction(metric: str, trials) -> str:
    if metric in _COST_METRICS:
        return "min"
    for trial in trials:
        if trial.metrics.exists(metric):
            return trial.metrics.get_direction(metric)
    # No trial to ask (plotting bare points): KerasTuner's name-based guess, "min" as it
    # registers unknown metrics.
    return metrics_tracking.infer_metric_direction(metric) or "min"


def _value(trial, metric: str, direction: str) -> float | None:
    if not trial.metrics.exists(metric):
        return None
    history = trial.metrics.get_history(metric)
    at_best_step = [obs for obs in history if obs.step == trial.best_step]
    values = [float(obs.mean()) for obs in (at_best_step or history)]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return None
    return max(values) if direction == "max" else min(values)


def _non_dominated(candidates: list[ParetoPoint], dirs: Mapping[str, str]) -> list[ParetoPoint]:
    # Signs turn every metric into one to maximize.
    signs = [1.0 if d == "max" else -1.0 for d in dirs.values()]
    names = list(dirs)
    scores = [[s * p.values[m] for s, m in zip(signs, names)] for p in candidates]

    def dominates(a, b):
        return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))

    front = [
        point
        for i, point in enumerate(candidates)
        if not any(dominates(scores[j], scores[i]) for j in range(len(candidates)) if j != i)
    ]
    return sorted(front, key=lambda p: (*(p.values[m] for m in names), str(p.trial_id)))


def _is_points(value) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, ParetoPoint) for v in value)


def _label(metric: str, direction: str) -> str:
    return f"{metric} ({'higher' if direction == 'max' else 'lower'} is better)"


def _plain(value):
    # numpy scalars (e.g. from a search space built with numpy values) are not JSON.
    return value.item() if hasattr(value, "item") and callable(value.item) else value
