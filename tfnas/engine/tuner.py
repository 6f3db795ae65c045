"""`tfnas.Tuner`: a `keras_tuner.Tuner` that records what architecture search needs.

Beside the objective, every trial records its architecture's costs as metrics, so that
objectives, oracles and Pareto fronts can combine them:

- `num_params`: all weights of the model,
- `flops`: multiply-adds of one forward pass (`tfnas.cost.count_flops`),
- `model_bytes`: bytes of the weights,
- `latency_ms`: median TFLite (LiteRT) latency, when `measure_latency=True`; else, with a
  `latency_table`, the latency the table predicts (`tfnas.latency.LookupTable.predict`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from typing import Any

import keras
import keras_tuner
import numpy as np
from keras_tuner.src import backend as kt_backend
from keras_tuner.src import utils as kt_utils
from keras_tuner.src.engine import objective as kt_objective
from keras_tuner.src.engine import tuner_utils

from tfnas import validation
from tfnas.cost import LATENCY_METRIC, model_costs
from tfnas.engine.fit import build_for_fit
from tfnas.results import tensorboard as tensorboard_logging
from tfnas.tuners import multi_trial

# How an oracle's trials run, as it declares in its `execution` attribute: "trials" trains
# a model per trial (the default, e.g. for KerasTuner's own oracles), "supernet" trains one
# supernet and evaluates each trial's architecture on it (weight-sharing oracles).
EXECUTIONS = ("trials", "supernet")


def trial_seed(seed: int | None, trial_id: str) -> int:
    """The seed of one trial, from the search's seed and the trial's id.

    The same on every run, so a trial re-run after an interrupted search starts from the
    state it would have started from uninterrupted, whichever trials ran before it here.

    Args:
        seed: the oracle's seed (None counts as 0).
        trial_id: the trial's id.

    Returns:
        A 32-bit seed (`numpy.random.seed` takes no more).
    """
    digest = hashlib.sha256(f"{seed or 0}/{trial_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _gradient_registry() -> dict:
    """TensorFlow's registry of gradient functions by op name (private; {} if it moved)."""
    try:
        from tensorflow.python.framework import ops

        return ops._gradient_registry._registry
    except (ImportError, AttributeError):
        return {}


def _fit_data(args, kwargs) -> tuple:
    """`(x, y)` of `fit(*args, **kwargs)`."""
    x = args[0] if args else kwargs.get("x")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    return x, y


def _check_fit_data(x, y, validation_data) -> None:
    """Fails before the first trial on numpy-style data that no trial could learn from.

    Datasets, generators and `PyDataset`s are left to `fit`.

    Args:
        x, y, validation_data: as passed to `fit`.

    Raises:
        ValueError: when `x` and `y` (or those of `validation_data`) hold different numbers
            of samples, or a floating-point input or target holds NaN or infinite values
            (a weight-sharing search would diverge at its first step, after building and
            tracing the supernet).
    """
    pairs = [("x", x, "y", y)]
    if isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
        vx, vy = validation_data[:2]
        pairs.append(("validation_data[0]", vx, "validation_data[1]", vy))
    for x_name, x_value, y_name, y_value in pairs:
        arrays = {x_name: _arrays(x_value), y_name: _arrays(y_value)}
        shapes = {name: [a.shape for a in leaves] for name, leaves in arrays.items()}
        if len({shape[0] for leaves in shapes.values() for shape in leaves if shape}) > 1:
            received = " and ".join(
                f"{name} with shape{'s' if len(s) > 1 else ''} "
                f"{', '.join(str(shape) for shape in s)}"
                for name, s in shapes.items()
                if s
            )
            raise ValueError(
                f"{x_name} and {y_name} must hold the same number of samples (their first "
                f"dimension). Received: {received}."
            )
        for name, leaves in arrays.items():
            for array in leaves:
                if not np.issubdtype(array.dtype, np.inexact):
                    continue
                bad = array.size - int(np.count_nonzero(np.isfinite(array)))
                if bad:
                    raise ValueError(
                        f"{name} holds {bad} NaN or infinite values (of {array.size}): every "
                        f"trial would train on a NaN loss. Received: {name} of shape "
                        f"{array.shape}. Remove or impute them before the search."
                    )


def _arrays(value) -> list[np.ndarray]:
    """The dense arrays (numpy, tensors) in a structure of fit inputs, as numpy arrays."""
    return [
        np.asarray(leaf)
        for leaf in keras.tree.flatten(value)
        if hasattr(leaf, "__array__") and len(getattr(leaf, "shape", ()))
    ]


class _CheckObjective(keras.callbacks.Callback):
    """Stops the search at a trial's first epoch whose logs lack the objective.

    Without it KerasTuner fails the trial with a bare `KeyError` in its checkpoint callback
    and, every trial failing alike, stops after `max_consecutive_failed_trials` without
    saying what was logged. Placed after `_LogCosts`, so cost objectives are seen.
    """

    def __init__(self, objective, trial_id: str):
        super().__init__()
        self._objective, self._trial_id = objective, trial_id

    def on_epoch_end(self, epoch, logs=None):
        objective = self._objective
        if (
            logs is None
            or isinstance(objective, kt_objective.DefaultObjective)  # KerasTuner says it.
            or objective.has_value(logs)
        ):
            return
        if type(objective) not in (keras_tuner.Objective, kt_objective.MultiObjective):
            # Objectives of their own (e.g. MnasNetReward) say what they miss.
            objective.get_value(logs)
            return
        names = getattr(objective, "name_to_direction", {objective.name: None})
        missing = [name for name in names if name not in logs]
        raise keras_tuner.errors.FatalValueError(
            multi_trial.objective_missing_message(
                self._trial_id,
                missing[0],
                f"the logs of its epoch {epoch} hold {sorted(logs)}.",
            )
        )


class _CheckSupernetObjective(keras.callbacks.Callback):
    """Asks a weight-sharing oracle to check its objective as supernet training begins.

    At `on_train_begin` the supernet is built and compiled, its metrics too, and no step
    has run: a typo in the objective fails here rather than after training.
    """

    def __init__(self, oracle):
        super().__init__()
        self._oracle = oracle

    def on_train_begin(self, logs=None):
        self._oracle.check_objective(self.model)


class _LogCosts(keras.callbacks.Callback):
    """Adds the model's costs to every epoch's logs.

    KerasTuner scores a trial from the best epoch of its history and checkpoints by the
    objective per epoch, so objectives over costs (e.g. `MnasNetReward`) must see the costs
    there. Keras passes one logs dict to all callbacks, History last.
    """

    def __init__(self, costs: Mapping[str, float]):
        super().__init__()
        self._costs = dict(costs)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self._costs)


def _bind_latency_table(table, hypermodel):
    """`table` (a `LookupTable` or a path) bound to the hypermodel's space, or None."""
    if table is None:
        return None
    from tfnas.latency.lookup_table import as_lookup_table

    table, _ = as_lookup_table(table, "tfnas.Tuner")
    return table if table.choices else table.bind(hypermodel)


class Tuner(keras_tuner.Tuner):
    """A KerasTuner `Tuner` for architecture search.

    Takes every argument of `keras_tuner.Tuner` by keyword (hypermodel, oracle, directory,
    project_name, overwrite, executions_per_trial, distribution_strategy, ...), works with
    any KerasTuner oracle and any tfnas oracle, and records per trial `num_params`,
    `flops`, `model_bytes` and optionally `latency_ms` beside the fit metrics. Every trial
    that trains a model first seeds Python, numpy and Keras with `trial_seed(oracle.seed,
    trial_id)`, so a trial re-run after an interrupted search (`overwrite=False`) ends
    with the score it would have had uninterrupted.

    Args:
        hypermodel: a `keras_tuner.HyperModel` or a `build(hp)` function. It comes first,
            as in `keras_tuner.RandomSearch` (`keras_tuner.Tuner` puts the oracle first).
        oracle: a `keras_tuner.Oracle` (e.g. `tfnas.oracles.RegularizedEvolution`).
        measure_latency: also time every trial's model with TFLite (slower).
        latency_options: keyword arguments of `tfnas.latency.measure` (e.g.
            `{"quantize": "int8", "runs": 20}`).
        latency_table: a `tfnas.latency.LookupTable` (or the path of one) of the
            hypermodel's space: without `measure_latency`, each trial's `latency_ms` is the
            latency it predicts (no conversion, no timing), so an objective or an oracle's
            `constraints` can use latency at no cost per trial.
        latency_runner: a `tfnas.latency.Runner` (`LocalRunner`, `AdbRunner`, ...) that
            times every trial's `.tflite` (converted with `latency_options["quantize"]`)
            instead of `tfnas.latency.measure`: the latency on the target device.
        **kwargs: the other arguments of `keras_tuner.Tuner`.

    Example:

    ```python
    tuner = tfnas.Tuner(space, oracle=keras_tuner.oracles.RandomSearchOracle(
        objective="val_accuracy", max_trials=5), directory="runs", project_name="digits")
    tuner.search(data.x_train, data.y_train, epochs=3,
                 validation_data=(data.x_val, data.y_val))
    best = tuner.get_best_models(1)[0]
    ```
    """

    def __init__(
        self,
        hypermodel=None,
        oracle=None,
        *,
        measure_latency: bool = False,
        latency_options: Mapping[str, Any] | None = None,
        latency_table=None,
        latency_runner=None,
        **kwargs,
    ):
        if latency_runner is not None and not callable(getattr(latency_runner, "measure", None)):
            raise TypeError(
                "latency_runner must be a tfnas.latency.Runner (with measure(path)). "
                f"Received: latency_runner of type {type(latency_runner).__name__}"
            )
        if latency_options is not None and not isinstance(latency_options, Mapping):
            raise TypeError(
                f"latency_options must be a dict of tfnas.latency.measure arguments. "
                f"Received: latency_options={latency_options!r}"
            )
        self.measure_latency = bool(measure_latency)
        self.latency_options = dict(latency_options or {})
        self.latency_runner = latency_runner
        self.latency_table = _bind_latency_table(latency_table, hypermodel)
        if getattr(oracle, "requires_latency", False) and not (
            self.measure_latency or latency_runner is not None or self.latency_table is not None
        ):
            raise ValueError(
                f"{type(oracle).__name__} rewards each trial's latency_ms, which this Tuner "
                "would not record. Pass measure_latency=True (LiteRT on this machine), "
                "latency_runner=... (e.g. tfnas.latency.AdbRunner()) or latency_table=... "
                "to tfnas.Tuner."
            )
        self._costs_cache: dict[str, dict[str, float]] = {}
        self._trainer = None
        try:
            super().__init__(hypermodel=hypermodel, oracle=oracle, **kwargs)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            # tfnas oracles name the file themselves; KerasTuner's let this escape bare.
            raise multi_trial.corrupt_state_error(self.oracle, e) from e
        # Asked once. A worker's `OracleClient` exposes no `execution`: it runs trials.
        execution = getattr(self.oracle, "execution", "trials")
        validation.check_one_of("oracle.execution", execution, EXECUTIONS)
        self._trains_supernet = execution == "supernet"
        if self._trains_supernet:
            self.oracle.cost_function = self.architecture_costs

    # --- Weight sharing ---------------------------------------------------------------------

    def supernet_trainer(self):
        """The `SupernetTrainer` of a weight-sharing search (None for other oracles)."""
        if self._trainer is None and self._trains_supernet:
            from tfnas.engine.supernet import SupernetTrainer

            self._trainer = SupernetTrainer(
                self.hypermodel,
                self.oracle,
                os.path.join(self.project_dir, "supernet"),
                distribution_strategy=self.distribution_strategy,
                seed=self.oracle.seed or 0,
            )
        return self._trainer

    def search(self, *fit_args, **fit_kwargs):
        """Runs the search; a weight-sharing oracle's supernet is trained first.

        For weight-sharing oracles `fit_args` / `fit_kwargs` train the supernet (`epochs`,
        `batch_size`, `validation_data` or `validation_split` (default 0.2 of numpy
        inputs), `callbacks`, `verbose`), and every trial then evaluates one candidate with
        the inherited weights on the validation data. A search interrupted during supernet
        training resumes from its last finished epoch with `overwrite=False`.

        Raises:
            ValueError: before any work, when numpy inputs and targets disagree on their
                number of samples, or hold NaN or infinite values, or the oracle rejects
                `epochs` (e.g. P-DARTS with fewer epochs than stages); before training,
                when the objective is not logged.
            RuntimeError: when no trial completed (quoting the last trial's error), or
                after `max_consecutive_failed_trials` failures in a row (KerasTuner's).
        """
        x, y = _fit_data(fit_args, fit_kwargs)
        validation_data = fit_kwargs.get("validation_data")
        _check_fit_data(x, y, validation_data)
        if self._trains_supernet:
            self.oracle.check_epochs(fit_kwargs.get("epochs", 1))
            callbacks = [*(fit_kwargs.get("callbacks") or []), _CheckSupernetObjective(self.oracle)]
            self.supernet_trainer().train(*fit_args, **{**fit_kwargs, "callbacks": callbacks})
            self.oracle.save()
        super().search(*fit_args, **fit_kwargs)
        self._check_completed()

    def _check_completed(self) -> None:
        """Raises unless a trial completed: a search that found nothing must say so."""
        trials = getattr(self.oracle, "trials", None)
        if trials is None:
            return  # A worker's `OracleClient`: the chief holds the trials.
        statuses = [trial.status for trial in trials.values()]
        if multi_trial.TrialStatus.COMPLETED in statuses:
            return
        last = trials[self.oracle.end_order[-1]] if self.oracle.end_order else None
        error = (last.message or "").strip() if last is not None else ""
        raise RuntimeError(
            f"No trial of the search in {self.project_dir!r} completed "
            f"({len(trials)} trial{'s' if len(trials) != 1 else ''}: "
            f"{', '.join(sorted(set(statuses))) or 'none ran'})."
            + (f" The last one, trial {last.trial_id}, failed with:\n{error}" if error else "")
        )

    def on_trial_begin(self, trial):
        self._gradients_before_trial = set(_gradient_registry())
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        before = getattr(self, "_gradients_before_trial", None)
        if self._trains_supernet or before is None:
            return  # The supernet's traced step serves every trial.
        # TensorFlow registers each graph-mode trace of a `tf.custom_gradient` function
        # (Keras's train step has one) in its global gradient registry and never removes
        # it; the entry's closure keeps the trial's traced train step and its captured
        # constants alive (memory grew by several MiB per trial). A finished trial's
        # graphs never run or trace again, so the entries it added go.
        registry = _gradient_registry()
        for name in set(registry) - before:
            if name.startswith("CustomGradient-"):
                del registry[name]

    def run_trial(self, trial, *args, **kwargs):
        if not self._trains_supernet:
            # Weight initialization, dropout and the shuffle order of `fit` (tf.data
            # draws from the global seed) all follow from here. A worker's `OracleClient`
            # exposes no seed; the trial id still sets the trial apart.
            keras.utils.set_random_seed(
                trial_seed(getattr(self.oracle, "seed", None), trial.trial_id)
            )
            return super().run_trial(trial, *args, **kwargs)
        values = dict(trial.hyperparameters.values)
        metrics = self.supernet_trainer().evaluate(values)
        metrics.update(self.architecture_costs(values))
        # Not trained in a fit: the whole TensorBoard HParams session, costs as columns.
        tensorboard_logging.log_evaluated_trial(
            kwargs.get("callbacks"), trial, metrics, self.oracle.objective
        )
        return metrics

    def architecture_costs(self, values) -> dict[str, float]:
        """The recorded costs of an architecture's fixed-mode model (cached)."""
        from tfnas.architecture import Architecture

        key = json.dumps(dict(values), sort_keys=True, default=str)
        if key not in self._costs_cache:
            model = Architecture(self.hypermodel, values, validate=False).build()
            self._costs_cache[key] = self.model_costs(model, values)
        return self._costs_cache[key]

    def model_costs(self, model: keras.Model, values) -> dict[str, float]:
        """The recorded costs of `model`, the fixed-mode model of the architecture `values`
        (`tfnas.cost.model_costs`, and the table's predicted `latency_ms`)."""
        if self.latency_runner is not None:
            costs = model_costs(model)
            costs[LATENCY_METRIC] = self._runner_latency(model)
            return costs
        costs = model_costs(
            model, measure_latency=self.measure_latency, latency_options=self.latency_options
        )
        if self.latency_table is not None and not self.measure_latency:
            costs[LATENCY_METRIC] = self.latency_table.predict(values)
        return costs

    def _runner_latency(self, model: keras.Model) -> float:
        """`model`'s latency (ms) as `latency_runner` times its `.tflite`."""
        import tempfile

        from tfnas.latency.lookup_table import measure_model

        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "trial.tflite")
            quantize = self.latency_options.get("quantize")
            return measure_model(model, self.latency_runner, path, quantize=quantize)

    def retrain(self, hyperparameters=None, *fit_args, teacher=None,
                distillation_alpha: float = 0.9, distillation_temperature: float = 4.0,
                **fit_kwargs):  # fmt: skip
        """Trains an architecture from scratch in fixed mode (default: the best one).

        Args:
            hyperparameters: a `keras_tuner.HyperParameters`, a values dict or a
                `tfnas.Architecture`; default the best trial's.
            *fit_args, **fit_kwargs: passed to `model.fit`.
            teacher: optional Keras classifier (logits out, e.g. the unpruned network):
                the architecture is then trained with knowledge distillation from it, as
                TAS trains its pruned networks (`tfnas.engine.distillation.distill`).
            distillation_alpha, distillation_temperature: the distillation term's weight
                and temperature (TAS: 0.9 and 4).

        Returns:
            `(model, history)`: a freshly initialized standard Keras model, trained.
        """
        from tfnas.architecture import Architecture

        if hyperparameters is None:
            hyperparameters = self.get_best_hyperparameters(1)[0]
        if isinstance(hyperparameters, Architecture):
            values = hyperparameters.values
        elif isinstance(hyperparameters, keras_tuner.HyperParameters):
            values = {
                name: value
                for name, value in hyperparameters.values.items()
                if hyperparameters.is_active(name)
            }
        else:
            values = dict(hyperparameters)
        model = Architecture(self.hypermodel, values).build()
        build_for_fit(model, *_fit_data(fit_args, fit_kwargs))
        if teacher is not None:
            from tfnas.engine.distillation import distill

            history = distill(model, teacher, *fit_args, alpha=distillation_alpha,
                              temperature=distillation_temperature, **fit_kwargs)  # fmt: skip
        else:
            history = model.fit(*fit_args, **fit_kwargs)
        return model, history

    def _activate_all_conditions(self):
        """Finds every conditional choice, as KerasTuner does, in far fewer builds.

        KerasTuner rebuilds the model once per never-activated conditional scope. Cell spaces
        have dozens (the operation of every unchosen edge), so each rebuild here activates
        every pending scope whose parent values do not conflict with another's.
        """
        never_active, once_active = [], []
        hp = self.oracle.get_space()
        while True:
            self.hypermodel.build(hp)
            self.oracle.update_space(hp)
            for conditions in hp.active_scopes:
                if conditions not in once_active:
                    once_active.append(copy.deepcopy(conditions))
                if conditions in never_active:
                    never_active.remove(conditions)
            for conditions in hp.inactive_scopes:
                if conditions not in once_active and conditions not in never_active:
                    never_active.append(copy.deepcopy(conditions))
            if not never_active:
                return
            hp = self.oracle.get_space()
            assigned = {}
            for conditions in never_active:
                wanted = {condition.name: condition.values[0] for condition in conditions}
                if all(assigned.get(name, value) == value for name, value in wanted.items()):
                    assigned.update(wanted)
            hp.values.update(assigned)
            hp.ensure_active_values()

    def _build_and_fit_model(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        model = self._try_build(hp)
        costs = self.model_costs(model, {n: v for n, v in hp.values.items() if hp.is_active(n)})
        kwargs["callbacks"] = [
            _LogCosts(costs),
            _CheckObjective(self.oracle.objective, trial.trial_id),
            *kwargs.get("callbacks", []),
        ]
        build_for_fit(model, *_fit_data(args, kwargs))
        self._inherit_weights(hp, model)
        results = self.hypermodel.fit(hp, model, *args, **kwargs)
        # As keras_tuner.Tuner does, so that load_model can rebuild the trial's model.
        if kt_backend.config.multi_backend():
            kt_utils.save_json(
                self._get_build_config_fname(trial.trial_id), model.get_build_config()
            )
        tuner_utils.validate_trial_results(results, self.oracle.objective, "HyperModel.fit()")
        metrics = dict(tuner_utils.convert_to_metrics_dict(results, self.oracle.objective))
        metrics.update(costs)
        # The costs as TensorBoard HParams columns (KerasTuner logs only the fit's scalars).
        tensorboard_logging.log_trial_costs(
            kwargs.get("callbacks"), trial, metrics, self.oracle.objective
        )
        return metrics

    def _inherit_weights(self, hp, model) -> None:
        # A hypermodel whose trials grow from earlier trials' trained networks (e.g.
        # `tfnas.spaces.path_level.PathLevelSpace`, transformed by Path-level EAS) sets the
        # new model's weights from them before it trains.
        inherit = getattr(self.hypermodel, "inherit_weights", None)
        if callable(inherit):
            inherit(hp, model, lambda trial_id: self.load_model(self.oracle.get_trial(trial_id)))

    def load_model(self, trial):
        if self._trains_supernet:
            trainer = self.supernet_trainer()
            if trainer.supernet is None:
                trainer.restore()
            return trainer.export(dict(trial.hyperparameters.values))
        with warnings.catch_warnings():
            # The checkpoint holds optimizer slots that a freshly built model has not
            # created; only the weights are wanted.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return super().load_model(trial)

    def pareto_front(self, metrics=("val_accuracy", "flops"), directions=None):
        """Non-dominated completed trials over 2 or 3 recorded metrics.

        See `tfnas.results.pareto.pareto_front`; e.g. `metrics=("val_accuracy",
        "latency_ms")` with `measure_latency=True`.
        """
        from tfnas.results import pareto  # pareto imports this module's metric names.

        return pareto.pareto_front(self, metrics=metrics, directions=directions)

    def plot_pareto(self, path: str, metrics=("val_accuracy", "flops"), directions=None) -> str:
        """Writes a PNG of all trials with the Pareto front highlighted; returns the path."""
        from tfnas.results import pareto

        return pareto.plot_pareto(self, path, metrics=metrics, directions=directions)
