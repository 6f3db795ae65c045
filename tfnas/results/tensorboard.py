"""The costs of every trial as columns of TensorBoard's HParams dashboard.

How KerasTuner logs a trial (`keras_tuner.Tuner._configure_tensorboard_dir`): for every
`keras.callbacks.TensorBoard` among the search's callbacks, it moves the (deep-copied)
callback's `log_dir` to `{log_dir}/{trial_id}/execution{n}` and appends the HParams
`KerasCallback`, which writes the trial's hyperparameters there as a session (start at
`on_train_begin`, end at `on_train_end`). Keras's callback writes the epoch curves in that
session's `train/` and `validation/` runs (`epoch_loss`, `epoch_accuracy`, ...). KerasTuner
writes no experiment configuration, so the dashboard guesses its metric columns from the
scalars it finds, and the costs a tfnas trial records (parameters, FLOPs, weight bytes,
latency) are not among them as such.

This module adds, per TensorBoard callback:

- the cost metrics of the trial (`tfnas.cost.COST_METRICS`, and `latency_ms` when
  measured), and the value of an objective computed from them (e.g. `MnasNetReward`,
  which no Keras callback writes), as scalars at step 0 in the session directory, tags
  named after the metric;
- once per log directory and process, the experiment configuration (`hparams_config`) in
  the root log directory: the space's hyperparameters with their domains, and as metric
  columns the objective (where Keras writes it: `val_accuracy` is `epoch_accuracy` of the
  `validation` run) and every cost metric.

`log_trial_costs` is for trials that train a model (the callbacks are KerasTuner's patched
copies), `log_evaluated_trial` for trials evaluated without training (weight-sharing
oracles: the callbacks are the search's own, so the whole session is written here, in the
same layout).

    tensorboard --logdir runs/demo/tensorboard    # then the HPARAMS tab
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import keras
import keras_tuner
import tensorflow as tf
from keras_tuner.src.engine import objective as kt_objective
from keras_tuner.src.engine import tuner_utils

from tfnas.cost import COST_METRICS, LATENCY_METRIC

COST_COLUMNS = (*COST_METRICS, LATENCY_METRIC)
# Experiment configurations written by this process, per root log directory.
_CONFIGURED: set[str] = set()
_EXECUTION = re.compile(r"execution\d+")


def metric_location(name: str) -> tuple[str, str]:
    """Where a metric's scalar lies, relative to a trial's session directory.

    Args:
        name: a metric name as KerasTuner records it (`val_accuracy`, `loss`, `flops`).

    Returns:
        `(group, tag)`: the run (subdirectory) and the scalar's tag. Fit metrics lie where
        `keras.callbacks.TensorBoard` writes them (`("validation", "epoch_accuracy")` for
        `val_accuracy`, `("train", "epoch_loss")` for `loss`), cost metrics in the session
        directory itself under their own name (`("", "flops")`).
    """
    if name in COST_COLUMNS:
        return "", name
    if name.startswith("val_"):
        return "validation", f"epoch_{name[len('val_') :]}"
    return "train", f"epoch_{name}"


def log_trial_costs(
    callbacks: Iterable[keras.callbacks.Callback] | None,
    trial: keras_tuner.engine.trial.Trial,
    metrics: Mapping[str, float],
    objective: Any,
) -> list[str]:
    """Logs a trained trial's costs beside KerasTuner's HParams session.

    Call it with the callbacks `keras_tuner.Tuner.run_trial` passed on to the fit (whose
    TensorBoard `log_dir` is already the trial's session directory).

    Args:
        callbacks: the trial's callbacks; only `keras.callbacks.TensorBoard` ones are used.
        trial: the trial.
        metrics: the trial's metrics; those of `COST_COLUMNS` are logged.
        objective: the oracle's objective (a `keras_tuner.Objective`, or several), named as
            metric columns of the experiment.

    Returns:
        The session directories written to (none without a TensorBoard callback).
    """
    costs = _costs(metrics)
    scalars = {
        **{
            n: float(metrics[n])
            for n in computed_objectives(objective)
            if _is_number(metrics.get(n))
        },
        **costs,
    }
    sessions = []
    for board in _boards(callbacks):
        session = str(board.log_dir)
        parent, execution = os.path.split(os.path.normpath(session))
        # KerasTuner's layout, root/trial_id/execution{n}; else the session is the root.
        root = os.path.dirname(parent) if _EXECUTION.fullmatch(execution) else session
        _configure(root, trial, objective, costs)
        _write_scalars(session, scalars)
        sessions.append(session)
    return sessions


def log_evaluated_trial(
    callbacks: Iterable[keras.callbacks.Callback] | None,
    trial: keras_tuner.engine.trial.Trial,
    metrics: Mapping[str, float],
    objective: Any,
) -> list[str]:
    """Logs a trial evaluated without training as a whole HParams session.

    Writes, in `{log_dir}/{trial_id}/execution0` of each TensorBoard callback (KerasTuner's
    layout), the trial's hyperparameters (session start), every metric at
    `metric_location` and the session end; and the experiment configuration in `log_dir`.

    Args:
        callbacks: the search's callbacks; only `keras.callbacks.TensorBoard` ones are used.
        trial: the trial.
        metrics: the trial's metrics (objective and costs), e.g. a weight-sharing
            oracle's evaluation with inherited weights.
        objective: the oracle's objective.

    Returns:
        The session directories written to.
    """
    from tensorboard.plugins.hparams import api as hparams_api
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams import summary as hparams_summary

    values = {name: float(value) for name, value in metrics.items() if _is_number(value)}
    sessions = []
    for board in _boards(callbacks):
        root = str(board.log_dir)
        _configure(root, trial, objective, _costs(values))
        session = os.path.join(root, str(trial.trial_id), "execution0")
        hparams = tuner_utils.convert_hyperparams_to_hparams(trial.hyperparameters, hparams_api)
        writer = tf.summary.create_file_writer(session)
        with writer.as_default():
            hparams_api.hparams(hparams, trial_id=str(trial.trial_id))
            end = hparams_summary.session_end_pb(api_pb2.STATUS_SUCCESS).SerializeToString()
            tf.summary.experimental.write_raw_pb(end, step=0)
        writer.close()
        by_group: dict[str, dict[str, float]] = {}
        computed = set(computed_objectives(objective))
        for name, value in values.items():
            group, tag = ("", name) if name in computed else metric_location(name)
            by_group.setdefault(group, {})[tag] = value
        for group, scalars in by_group.items():
            _write_scalars(os.path.join(session, group) if group else session, scalars)
        sessions.append(session)
    return sessions


def _configure(root: str, trial, objective, costs: Mapping[str, float]) -> None:
    """Writes the experiment configuration into `root`, once per process."""
    key = os.path.abspath(root)
    if key in _CONFIGURED:
        return
    from tensorboard.plugins.hparams import api as hparams_api

    hparams = tuner_utils.convert_hyperparams_to_hparams(trial.hyperparameters, hparams_api)
    computed = set(computed_objectives(objective))
    names = [*_objective_names(objective), *(n for n in COST_COLUMNS if n in costs)]
    columns = []
    for name in dict.fromkeys(names):
        group, tag = ("", name) if name in computed else metric_location(name)
        dataset = {
            "validation": hparams_api.Metric.VALIDATION,
            "train": hparams_api.Metric.TRAINING,
        }
        columns.append(
            hparams_api.Metric(tag, group=group, display_name=name, dataset_type=dataset.get(group))
        )
    writer = tf.summary.create_file_writer(root)
    with writer.as_default():
        hparams_api.hparams_config(hparams=list(hparams), metrics=columns)
    writer.close()
    _CONFIGURED.add(key)


def computed_objectives(objective) -> list[str]:
    """Names of objectives computed from a trial's metrics (e.g. `MnasNetReward`), which no
    Keras callback writes: this module logs their values in the session directory."""
    if isinstance(objective, (list, tuple)):
        return [name for o in objective for name in computed_objectives(o)]
    if objective is None or type(objective) in (
        keras_tuner.Objective,
        kt_objective.MultiObjective,
        kt_objective.DefaultObjective,
    ):
        return []
    return [objective.name]


def _write_scalars(log_dir: str, scalars: Mapping[str, float]) -> None:
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        for tag, value in scalars.items():
            tf.summary.scalar(tag, float(value), step=0)
    writer.close()


def _objective_names(objective) -> list[str]:
    if objective is None:
        return []
    if isinstance(objective, (list, tuple)):
        return [name for o in objective for name in _objective_names(o)]
    # A MultiObjective names its parts; a DefaultObjective ("default_objective") is no
    # metric Keras writes.
    parts = getattr(objective, "name_to_direction", None)
    if parts:
        return list(parts)
    name = getattr(objective, "name", None)
    names = [] if not name or name == "default_objective" else [name]
    # An objective computed from an accuracy metric (e.g. MnasNetReward) is no scalar of
    # Keras's; the accuracy it reads is.
    accuracy = getattr(objective, "accuracy", None)
    return [accuracy, *names] if isinstance(accuracy, str) else names


def _boards(callbacks) -> list[keras.callbacks.TensorBoard]:
    return [c for c in callbacks or () if isinstance(c, keras.callbacks.TensorBoard)]


def _costs(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {n: float(metrics[n]) for n in COST_COLUMNS if _is_number(metrics.get(n))}


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (str, bytes))
