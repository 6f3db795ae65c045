"""The supernet engine: builds, trains, checkpoints, evaluates and exports a supernet.

`SupernetTrainer` is what `tfnas.Tuner` uses for an oracle whose `execution` is
"supernet": it builds the user's hypermodel in supernet mode with the oracle's mixing
rule, owns the data, the optimizer and every gradient step (one `fit` per stage of the
oracle), checkpoints after each epoch, re-estimates batch-norm statistics per candidate
and collapses a path into a plain Keras model.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from tfnas import files
from tfnas.blocks.rules import MixingRule, candidate_index
from tfnas.blocks.supernet import InputChoice, LayerChoice
from tfnas.engine.fit import build_for_fit

if TYPE_CHECKING:
    from tfnas.tuners.weight_sharing import WeightSharingOracle

logger = logging.getLogger(__name__)


def choice_layers(model: keras.Model) -> list[LayerChoice | InputChoice]:
    """The supernet's choice layers, nested ones included, in build order."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, (LayerChoice, InputChoice))
    ]


def collapse(supernet: keras.Model, values: Mapping[str, Any]) -> keras.Model:
    """The fixed network of `values` inside `supernet`, with the supernet's trained weights.

    Every `LayerChoice` is replaced by its chosen candidate and every `InputChoice` by the
    reduction of its chosen inputs; branches that no longer reach the output drop out of
    the graph. The result holds only standard Keras layers, its own copies of the weights,
    and the supernet's compile settings.
    """

    def call_function(layer, *args, **kwargs):
        if isinstance(layer, (LayerChoice, InputChoice)):
            active = all(name in values for name in layer.decision_names)
            index = candidate_index(layer, values) if active else 0
            if isinstance(layer, LayerChoice):
                kwargs.pop("training", None)
                # The rule knows how its candidates are wired (e.g. PC-DARTS's partial
                # channels); by default this is the candidate's exportable layer.
                return layer.mixing_rule.export_layer_choice(layer, index, *args, **kwargs)
            return layer.mixing_rule.export_input_choice(layer, index, args[0])
        if callable(getattr(layer, "export_on", None)):
            # A supernet layer with its own exported form (TAS's padded residual sum;
            # Auto-DeepLab's trellis sums, which keep the input of the chosen path).
            if getattr(layer, "export_reads_values", False):
                return layer.export_on(*args, values=values, **kwargs)
            return layer.export_on(*args, **kwargs)
        return layer(*args, **kwargs)

    shared = keras.models.clone_model(
        supernet, clone_function=lambda layer: layer, call_function=call_function
    )
    # `shared` reuses the supernet's layer objects; clone again for independent weights.
    fixed = keras.models.clone_model(shared)
    fixed.set_weights(shared.get_weights())
    compile_config = supernet.get_compile_config()
    if compile_config:
        fixed.compile_from_config(compile_config)
    return fixed


def _extend_optimizer(optimizer, marker: str, make_methods) -> None:
    """Swaps `optimizer`'s class for a subclass with `make_methods(base)`'s methods.

    Done before the optimizer is built. The subclass keeps the base's name and module, so
    the optimizer serializes (e.g. in an exported model's compile config) as the base.
    Each extension calls the class it extends explicitly (`base.method(self, ...)`), so
    extensions stack.
    """
    base = type(optimizer)
    if getattr(base, marker, False):
        return
    attributes = {marker: True, "__module__": base.__module__, "__qualname__": base.__qualname__}
    optimizer.__class__ = type(base.__name__, (base,), {**attributes, **make_methods(base)})


def sum_accumulated_gradients(optimizer: keras.optimizers.Optimizer, mean: bool = False) -> None:
    """Makes an optimizer with `gradient_accumulation_steps=m` apply the sum (or, with
    `mean`, the mean) of its m micro-steps' gradients once, with its learning-rate
    schedule at the update count.

    Keras averages the accumulated gradients and evaluates a `LearningRateSchedule` at
    the micro-step count. FairNAS (Chu et al. 2019, Algorithm 1) sums the gradients of
    the m paths of a batch into one update, and a schedule steps once per update. Each
    micro-step's gradients are scaled by m (so Keras's mean is the sum; ASNG-NAS's code
    averages, `mean=True`) and the schedule reads `optimizer.iterations`, the count of
    real updates. Clipping and weight decay apply once, to the accumulated gradient, as
    for any single update.
    """
    steps = optimizer.gradient_accumulation_steps
    if not steps or steps < 2:
        raise ValueError(
            "sum_accumulated_gradients needs an optimizer with gradient_accumulation_steps "
            f">= 2. Received: gradient_accumulation_steps={steps!r}"
        )

    def make_methods(base):
        from keras.optimizers.schedules import LearningRateSchedule

        scale = 1 if mean else steps

        def apply(self, grads, trainable_variables=None):
            grads = [g if g is None else g * scale for g in grads]
            return base.apply(self, grads, trainable_variables)

        def _get_current_learning_rate(self):
            if isinstance(self._learning_rate, LearningRateSchedule):
                return self._learning_rate(self.iterations)
            return base._get_current_learning_rate(self)

        return {"apply": apply, "_get_current_learning_rate": _get_current_learning_rate}

    _extend_optimizer(optimizer, "_tfnas_summed", make_methods)


def update_only_the_trained_path(optimizer: keras.optimizers.Optimizer) -> None:
    """Makes the optimizer leave every variable whose gradient is zero everywhere in a
    step (optimizer slots and weight decay included) as it is.

    A single-path step differentiates through `switch`: every candidate that did not
    run gets a zero gradient, and Adam's moments, SGD's momentum and weight decay would
    still move it, so the weights of an operation drift while other paths train. The
    reference implementations (PyTorch: SPOS, ENAS, GDAS) leave a parameter without a
    gradient untouched; so does this. The test is on the gradient's value (a variable on
    the path with an exactly zero gradient everywhere is skipped too), so it also covers
    blocks past a chosen depth, whose output is unused. Sparse (`IndexedSlices`)
    gradients are applied as they are.
    """

    def make_methods(base):
        import tensorflow as tf

        def _apply_weight_decay(self, variables):
            pass  # In `update_step`, for the variables the step updates.

        def update_step(self, gradient, variable, learning_rate):
            def update():
                if self.weight_decay is not None and self._use_weight_decay(variable):
                    lr = tf.cast(learning_rate, variable.dtype)
                    variable.assign_sub(variable * tf.cast(self.weight_decay, variable.dtype) * lr)
                base.update_step(self, gradient, variable, learning_rate)
                return tf.constant(True)

            if isinstance(gradient, tf.IndexedSlices):
                update()
                return
            tf.cond(tf.reduce_any(tf.not_equal(gradient, 0)), update, lambda: tf.constant(False))

        return {"_apply_weight_decay": _apply_weight_decay, "update_step": update_step}

    _extend_optimizer(optimizer, "_tfnas_path_updates", make_methods)


def batch_norm_layers(model: keras.Model) -> list:
    """The built `BatchNormalization` layers of `model`, nested ones included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.built
    ]


@contextlib.contextmanager
def moving_statistics_kept(norms):
    """Batch norms `norms` with momentum 1 inside the block: a training-mode step traced
    there (momentum is read when tracing) uses batch statistics and leaves the moving ones
    as they are (`1 * moving + 0 * batch`)."""
    momenta = [layer.momentum for layer in norms]
    try:
        for layer in norms:
            layer.momentum = 1.0
        yield
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum


def recalibrate_batch_norm(model: keras.Model, batches, forward=None) -> None:
    """Re-estimates every batch-norm layer's moving statistics on `batches` (SPOS).

    Each layer's moving mean and variance become the equal-weight average of the batches'
    statistics; weights are not updated.

    Args:
        model: the model whose `BatchNormalization` layers are recalibrated.
        batches: an iterable of model inputs.
        forward: `forward(batch)` runs `model(batch, training=True)`, e.g. a cached
            `tf.function` of it (it runs with momentum 0, so it may be traced with it);
            default: an eager call.
    """
    norms = batch_norm_layers(model)
    if not norms:
        return
    forward = forward or (lambda batch: model(batch, training=True))
    statistics = [v for layer in norms for v in (layer.moving_mean, layer.moving_variance)]
    momenta = [layer.momentum for layer in norms]
    totals = None
    count = 0
    try:
        for layer in norms:
            layer.momentum = 0.0  # A training-mode pass sets the batch's statistics.
        for batch in batches:
            forward(batch)
            values = [keras.ops.convert_to_numpy(v) for v in statistics]
            totals = values if totals is None else [t + v for t, v in zip(totals, values)]
            count += 1
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
    if totals is None:
        return
    for variable, total in zip(statistics, totals):
        variable.assign(total / count)


def synchronous(dataset):
    """`dataset` without tf.data's autotuning and injected background prefetch.

    For the side iterators of supernet training (alpha batches, ranking batches, batch
    norm recalibration), which read one small batch at a time: deleting such an iterator
    with a prefetch running blocked for up to 9 s on 2 CPU cores (at an epoch start, when
    the epoch's iterators are replaced); without it, under 1 ms.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.inject_prefetch = False
    return dataset.with_options(options)


def supernet_fingerprint(supernet: keras.Model) -> str:
    """Identifies a supernet's structure: its choices and the shapes of its variables."""
    description = {
        "choices": [
            [layer.choice_name, layer.candidate_values] for layer in choice_layers(supernet)
        ],
        "variables": [list(v.shape) for v in supernet.weights],
    }
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class SupernetCheckpoint:
    """Supernet weights, optimizer state and the oracle's state after each epoch, in `directory`.

    Each epoch's weights go to a file of their own (`supernet-<epoch>.npz`); the info file
    `supernet.json`, written to a temporary name and renamed last, names it and commits the
    epoch. A search killed anywhere while saving keeps the previous epoch's weights and
    record together; older weight files are deleted only after the commit.
    """

    def __init__(self, directory: str):
        self.directory = directory
        self.info_path = os.path.join(directory, "supernet.json")

    @property
    def weights_path(self) -> str:
        """The weights file of the committed epoch."""
        return os.path.join(self.directory, self.info().get("weights", "supernet.npz"))

    def exists(self) -> bool:
        return os.path.exists(self.info_path) and os.path.exists(self.weights_path)

    def info(self) -> dict:
        with open(self.info_path, encoding="utf-8") as f:
            return json.load(f)

    def save(self, supernet: keras.Model, epoch: int, fingerprint: str, oracle_state: dict) -> None:
        """Saves the supernet after `epoch` epochs, with `oracle.get_state()` at that point."""
        os.makedirs(self.directory, exist_ok=True)
        variables = [*supernet.weights, *supernet.optimizer.variables]
        # `Variable.numpy()` reads a variable in 2/3 of the time `convert_to_numpy` takes
        # (17 against 27 ms for the 473 variables of the NAS-Bench-201 supernet).
        arrays = {f"v{i}": v.numpy() for i, v in enumerate(variables)}
        weights = f"supernet-{epoch:05d}.npz"
        temporary = os.path.join(self.directory, weights + ".tmp.npz")
        np.savez(temporary, **arrays)
        os.replace(temporary, os.path.join(self.directory, weights))
        # The info file is written last: it commits the epoch, with the oracle's state
        # (sampling random state, controller, architecture parameters) at the same point.
        info = {
            "epochs_done": epoch,
            "fingerprint": fingerprint,
            "num_variables": len(variables),
            "weights": weights,
            "oracle": oracle_state,
        }
        files.write_json_atomically(self.info_path, info)
        for name in os.listdir(self.directory):
            if name.startswith("supernet") and name.endswith(".npz") and name != weights:
                os.remove(os.path.join(self.directory, name))

    def restore(self, supernet: keras.Model, fingerprint: str) -> int:
        """Loads the checkpoint into `supernet`; returns the number of epochs it holds."""
        info = self.info()
        if info["fingerprint"] != fingerprint:
            raise ValueError(
                f"The supernet checkpoint in {self.directory!r} belongs to a different search "
                "space (its choices or weight shapes differ from this hypermodel's). Use "
                "another directory/project_name, or overwrite=True to start a new search."
            )
        if not supernet.optimizer.built:
            supernet.optimizer.build(supernet.trainable_variables)
        variables = [*supernet.weights, *supernet.optimizer.variables]
        with np.load(self.weights_path) as arrays:
            if len(arrays.files) != len(variables):
                raise ValueError(
                    f"The supernet checkpoint in {self.directory!r} holds {len(arrays.files)} "
                    f"variables; this supernet has {len(variables)}."
                )
            for i, variable in enumerate(variables):
                variable.assign(arrays[f"v{i}"])
        return int(info["epochs_done"])


class _SupernetSteps(keras.callbacks.Callback):
    """Calls `trainer.begin_epoch` before every epoch and `trainer.prepare_step` before
    every training step, and raises as soon as the training loss is NaN or infinite.

    Raising (rather than Keras's `TerminateOnNaN`, which ends `fit` normally) keeps the
    diverged weights out of the checkpoint: the last finished epoch's stays.

    Args:
        trainer: the `SupernetTrainer`.
        epochs: the epochs of the whole supernet training.
        steps_per_epoch: weight updates per epoch, or None where unknown.
    """

    def __init__(self, trainer: SupernetTrainer, epochs: int, steps_per_epoch: int | None):
        super().__init__()
        self.trainer, self.epochs, self.steps_per_epoch = trainer, epochs, steps_per_epoch
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.trainer.begin_epoch(epoch)

    def _position(self, batch: int) -> tuple[int, int, float]:
        """(global step, path, progress) of `fit`'s batch `batch` in the current epoch."""
        step_in_epoch, path = divmod(batch, self.trainer.oracle.paths_per_step)
        if not self.steps_per_epoch:
            return step_in_epoch, path, self.epoch / self.epochs
        progress = (self.epoch + step_in_epoch / self.steps_per_epoch) / self.epochs
        return self.epoch * self.steps_per_epoch + step_in_epoch, path, min(progress, 1.0)

    def on_train_batch_begin(self, batch, logs=None):
        self.trainer.prepare_step(*self._position(batch))

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or np.isfinite(float(loss)):
            return
        checkpoint = self.trainer.checkpoint
        kept = (
            f"the checkpoint of epoch {checkpoint.info()['epochs_done']} in "
            f"{checkpoint.directory!r} is kept"
            if checkpoint.exists()
            else "no epoch had finished, so there is no checkpoint"
        )
        raise FloatingPointError(
            f"The supernet's training loss is {float(loss)} at epoch {self.epoch + 1}, "
            f"batch {batch + 1} (global step {self._position(batch)[0]}): the search "
            f"diverged; {kept}. Lower the learning rates and resume (overwrite=False) or "
            "start a new search."
        )


class _SupernetEpochEnd(keras.callbacks.Callback):
    """After every supernet epoch: the oracle's epoch hook, the checkpoint, and the end of
    `fit` where the oracle stops training or starts a new stage.

    It is last in the callback list: it sees whether a user's callback stopped training,
    and an epoch is checkpointed once every callback has seen it. `next_stage` is the
    first epoch of the next stage when the fit ended for one, else None.

    Args:
        trainer: the `SupernetTrainer`.
        epochs: the epochs of the whole supernet training.
        callbacks: the user's callbacks, passed on to `oracle.on_supernet_epoch_end`.
    """

    def __init__(self, trainer: SupernetTrainer, epochs: int, callbacks):
        super().__init__()
        self.trainer, self.epochs, self.callbacks = trainer, epochs, callbacks
        self.next_stage: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        trainer, oracle = self.trainer, self.trainer.oracle
        if trainer.architecture_step is not None:
            trainer.architecture_step.end_epoch(epoch)
        oracle.on_supernet_epoch_end(
            epoch, trainer._batch_reward(), logs=dict(logs or {}), callbacks=self.callbacks
        )
        oracle.supernet_epochs_done = epoch + 1
        trainer.checkpoint.save(self.model, epoch + 1, trainer.fingerprint, oracle.get_state())
        if self.model.stop_training or oracle.supernet_stop_reason is not None:
            # A user's callback (e.g. EarlyStopping) or the oracle (DARTS+) ended training.
            self.model.stop_training = True
        elif epoch + 1 < self.epochs and oracle.start_supernet_stage(epoch + 1, self.epochs):
            # The next epoch trains a new supernet, in a new fit.
            self.next_stage = epoch + 1
            self.model.stop_training = True


class SupernetTrainer:
    """Builds, trains, checkpoints and evaluates the supernet for `tfnas.Tuner`.

    Args:
        hypermodel: the user's hypermodel (built in supernet mode here).
        oracle: the `WeightSharingOracle`.
        directory: where the supernet checkpoint lives (inside the tuner's project).
        distribution_strategy: a `tf.distribute` strategy, or None.
        seed: seeds the data order.
    """

    def __init__(self, hypermodel, oracle: WeightSharingOracle, directory: str,
                 distribution_strategy=None, seed: int = 0):  # fmt: skip
        self.hypermodel = hypermodel
        self.oracle = oracle
        self.checkpoint = SupernetCheckpoint(directory)
        self.distribution_strategy = distribution_strategy
        self.seed = int(seed)
        self.supernet: keras.Model | None = None
        self.rule: MixingRule | None = None
        # The training split: a user's batched dataset, or numpy inputs as unbatched
        # slices of `_shuffle_size` examples, shuffled and batched per epoch.
        self._train_data = None
        self._shuffle_size: int | None = None
        self._validation_data = None
        self._batch_size = 32
        self.fingerprint: str | None = None  # Of the supernet built last.
        self._forward = None  # (supernet, its traced training-mode forward pass)
        self._reward = None  # (supernet, its traced training-mode reward step)
        # The strategy's architecture step (DARTS's alpha update, ...), or None.
        self.architecture_step = None

    # --- Building -----------------------------------------------------------------------

    def build(self) -> keras.Model:
        """Builds the supernet and records the plain hyperparameters it freezes."""
        if self.supernet is not None:
            return self.supernet
        from keras_tuner.src.engine.tuner import maybe_distribute

        from tfnas.blocks.supernet import SupernetHyperParameters

        rule = self.oracle.make_mixing_rule()
        hp = SupernetHyperParameters(rule)
        # The supernet's initial weights follow the oracle's seed, so that a resumed search
        # ends where an uninterrupted one with the same seed does.
        keras.utils.set_random_seed(self.seed)
        with maybe_distribute(self.distribution_strategy):
            supernet = self.oracle.stage_hypermodel(self.hypermodel).build(hp)
        if not isinstance(supernet, keras.Model) or supernet.optimizer is None:
            raise ValueError(
                "A weight-sharing search needs build(hp) to return a compiled keras.Model. "
                f"Received: {supernet!r}"
            )
        choices = choice_layers(supernet)
        if not choices:
            raise ValueError(
                f"{type(self.oracle).__name__} found no choice point in the supernet: build "
                "the space with tfnas.blocks choice points (layer_choice, input_choice, "
                "attribute_choice, repeat); plain hp.Choice values cannot share weights."
            )
        decisions = {name for layer in choices for name in layer.decision_names}
        frozen = {
            p.name: hp.values[p.name]
            for p in hp.space
            if p.name not in decisions and p.name in hp.values
        }
        # The oracle may search some itself (Auto-DeepLab's network path, by its betas).
        self.oracle.frozen_values = frozen
        if self.oracle.frozen_values:
            logger.warning(
                "Weight sharing keeps these plain hyperparameters at the value the supernet "
                "was built with (they are not searched): %s",
                self.oracle.frozen_values,
            )
        config = supernet.get_compile_config() or {}
        paths = self.oracle.paths_per_step
        if paths > 1 or config.get("steps_per_execution", 1) != 1:
            # One path setting per step needs one step per execution; several paths per
            # batch accumulate their gradients into one update.
            optimizer = dict(config["optimizer"])
            optimizer["config"] = {
                **optimizer["config"],
                "gradient_accumulation_steps": paths if paths > 1 else None,
            }
            with maybe_distribute(self.distribution_strategy):
                supernet.compile_from_config(
                    {**config, "optimizer": optimizer, "steps_per_execution": 1}
                )
            if paths > 1:
                # The paths' gradients summed (FairNAS), or averaged where the oracle's
                # method does (`path_gradients = "mean"`: ASNG-NAS).
                mean = getattr(self.oracle, "path_gradients", "sum") == "mean"
                sum_accumulated_gradients(supernet.optimizer, mean=mean)
        if rule.trains_one_path:
            update_only_the_trained_path(supernet.optimizer)
        self.supernet, self.rule = supernet, rule
        return supernet

    # --- Data ---------------------------------------------------------------------------

    def _set_data(self, x, y, validation_data, batch_size, validation_split):
        import tensorflow as tf

        self._batch_size = int(batch_size or 32)
        if isinstance(x, tf.data.Dataset):
            if validation_data is None:
                raise ValueError(
                    f"{type(self.oracle).__name__} needs validation data to rank candidates "
                    "with the shared weights; with a tf.data.Dataset pass validation_data=... "
                    "to search()."
                )
            self._train_data, self._shuffle_size = x, None
        else:
            x, y = np.asarray(x), np.asarray(y)
            if validation_data is None:
                if not 0 < validation_split < 1:
                    raise ValueError(
                        "validation_split must be in (0, 1). Received: "
                        f"validation_split={validation_split!r}"
                    )
                order = np.random.default_rng(self.seed).permutation(len(x))
                cut = int(round(len(x) * (1 - validation_split)))
                validation_data = (x[order[cut:]], y[order[cut:]])
                x, y = x[order[:cut]], y[order[:cut]]
            self._train_data = tf.data.Dataset.from_tensor_slices((x, y))
            self._shuffle_size = len(x)
        if isinstance(validation_data, tf.data.Dataset):
            self._validation_data = validation_data
        else:
            vx, vy = validation_data[0], validation_data[1]
            self._validation_data = tf.data.Dataset.from_tensor_slices(
                (np.asarray(vx), np.asarray(vy))
            ).batch(self._batch_size)

    def _epoch_dataset(self, epoch: int):
        """The batches of epoch `epoch`: for numpy inputs in an order that depends only on
        the seed and the epoch (so a resumed search sees what an uninterrupted one does);
        a user's dataset as it is."""
        if self._shuffle_size is None:
            return self._train_data
        return self._train_data.shuffle(
            self._shuffle_size, seed=self.seed * 100_003 + epoch, reshuffle_each_iteration=False
        ).batch(self._batch_size)

    def _fit_dataset(self, first: int, epochs: int):
        """The data of one `fit` over epochs `first`..`epochs - 1`.

        Returns:
            `(dataset, steps_per_epoch)`, each batch repeated `paths_per_step` times. For
            numpy inputs the dataset holds every epoch's batches in turn and `fit` reads
            `steps_per_epoch` of them per epoch; a user's dataset is read afresh each
            epoch (`steps_per_epoch` None).
        """
        if self._shuffle_size is None:
            return self._repeat_paths(self._train_data), None
        epoch_datasets = [self._epoch_dataset(epoch) for epoch in range(first, epochs)]
        dataset = functools.reduce(lambda a, b: a.concatenate(b), epoch_datasets)
        batches = int(epoch_datasets[0].cardinality())
        return self._repeat_paths(dataset), batches * self.oracle.paths_per_step

    def _updates_per_epoch(self) -> int | None:
        """Weight updates per epoch (batches of the training split), None where unknown."""
        batches = int(self._epoch_dataset(0).cardinality())
        return batches if batches > 0 else None

    def _repeat_paths(self, dataset):
        """`dataset` with each batch `paths_per_step` times in a row."""
        import tensorflow as tf

        paths = self.oracle.paths_per_step
        if paths == 1:
            return dataset
        batches = int(dataset.cardinality())

        @tf.autograph.experimental.do_not_convert
        def repeat_batch(*batch):
            return tf.data.Dataset.from_tensors(batch).repeat(paths)

        dataset = dataset.flat_map(repeat_batch)
        if batches > 0:
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches * paths))
        return dataset

    def _training_dataset(self):
        """One pass over the training split in the first epoch's order."""
        return self._epoch_dataset(0)

    def _training_batches(self, count: int):
        for batch in synchronous(self._training_dataset().take(count)):
            yield batch[0] if isinstance(batch, tuple) else batch

    # --- Training -----------------------------------------------------------------------

    def train(self, x=None, y=None, *, epochs: int = 1, batch_size: int | None = None,
              validation_data=None, validation_split: float = 0.2, callbacks=None,
              verbose=1, **unused) -> None:  # fmt: skip
        """Trains the supernet for `epochs`, resuming from its last checkpointed epoch.

        Each stage of the oracle (one, but P-DARTS has several) is one `fit`. After every
        epoch the oracle learns (`on_supernet_epoch_end`) and the supernet is checkpointed
        with `oracle.get_state()`; a fit ends early where the oracle stops training
        (`supernet_stop_reason`) or starts a new stage (`start_supernet_stage`), and a
        callback in `callbacks` that stops training (e.g. `EarlyStopping`) ends it.

        Raises:
            FloatingPointError: when the training loss is not finite; the checkpoint of the
                last finished epoch is kept.
        """
        self._set_data(x, y, validation_data, batch_size, validation_split)
        done = 0
        if self.checkpoint.exists():
            info = self.checkpoint.info()
            done = int(info["epochs_done"])
            # The newer of oracle.json (loaded by KerasTuner) and the checkpoint wins: the
            # checkpoint while supernet training was unfinished, else oracle.json, which
            # also holds what trials taught the oracle. It is restored before building:
            # the oracle's stage decides the supernet's shape.
            if done > self.oracle.supernet_epochs_done:
                self.oracle.set_state(info["oracle"])
        supernet = self._connect()
        if done:
            self.checkpoint.restore(supernet, self.fingerprint)
        epoch, new_stage = done, False
        if epoch < epochs and self.oracle.supernet_stop_reason is None:
            # Later stages are asked at the end of each epoch (`_SupernetEpochEnd`).
            new_stage = self.oracle.start_supernet_stage(epoch, epochs)
        while epoch < epochs and self.oracle.supernet_stop_reason is None:
            if new_stage:
                self.supernet = None
                supernet = self._connect()
            dataset, steps_per_epoch = self._fit_dataset(epoch, epochs)
            steps = _SupernetSteps(self, epochs, self._updates_per_epoch())
            epoch_end = _SupernetEpochEnd(self, epochs, callbacks)
            supernet.fit(
                dataset,
                epochs=epochs,
                initial_epoch=epoch,
                steps_per_epoch=steps_per_epoch,
                callbacks=[steps, *(callbacks or []), epoch_end],
                verbose=verbose,
                shuffle=False,  # The dataset is shuffled per epoch, with a seed.
            )
            if epoch_end.next_stage is None:
                break  # Trained, or stopped by the oracle or a callback.
            epoch, new_stage = epoch_end.next_stage, True

    def _connect(self) -> keras.Model:
        """Builds the supernet and hands it and the data to the oracle."""
        supernet = self.build()
        training = self._training_dataset()
        build_for_fit(supernet, training)
        self.fingerprint = supernet_fingerprint(supernet)
        self.oracle.on_supernet_built(supernet, self._validation_data, training)
        self.architecture_step = self.oracle.make_architecture_step()
        if self.architecture_step is not None:
            self.architecture_step.connect(supernet, self.rule, self._validation_data, training)
        return supernet

    def begin_epoch(self, epoch: int) -> None:
        """Before each supernet epoch: the architecture step restarts its batches there."""
        if self.architecture_step is not None:
            self.architecture_step.begin_epoch(epoch)

    def prepare_step(self, step: int, path: int, progress: float) -> None:
        """Before each weight step: the oracle sets the rule for the step's path.

        Args:
            step: the global step, counted over all epochs.
            path: which of the oracle's `paths_per_step` architectures of this batch.
            progress: fraction of the supernet training done, in [0, 1).
        """
        if self.architecture_step is not None and path == 0:
            self.architecture_step.step(step, progress)
        self.oracle.prepare_training_step(self.rule, step, path, progress)

    def restore(self) -> None:
        """Rebuilds the supernet from its checkpoint (e.g. in a new process after search)."""
        supernet = self.build()
        if not self.checkpoint.exists():
            raise ValueError(
                f"No trained supernet in {self.checkpoint.directory!r}: run search() first."
            )
        self.fingerprint = supernet_fingerprint(supernet)
        self.checkpoint.restore(supernet, self.fingerprint)

    def _batch_reward(self) -> Callable[[dict], float]:
        """`evaluate(values)`: a reward, higher is better, on the next validation batch.

        The supernet runs in training mode, as ENAS's reference computes the controller's
        reward (`is_training=True` on the validation batch): batch norm normalizes with
        the batch's own statistics, which fit the sampled path, instead of moving
        statistics shared by every path. The moving statistics are left unchanged. The
        reward is the objective's metric (negated when minimized) when the model logs
        it, else the negated loss.
        """
        iterator = None  # Made on first use: most strategies never call `evaluate`.
        metric = self.oracle.objective.name.removeprefix("val_")
        sign = -1.0 if self.oracle.objective.direction == "min" else 1.0

        def evaluate(values: dict) -> float:
            nonlocal iterator
            if iterator is None:
                iterator = iter(synchronous(self._validation_data.repeat()))
            self.rule.set_architecture(values)
            vx, vy = next(iterator)
            results = self._reward_step()(vx, vy)
            if metric in results:
                return sign * float(results[metric])
            return -float(results["loss"])

        return evaluate

    def _reward_step(self):
        """`step(x, y)`: the supernet's loss and compiled metrics on one batch in training
        mode, traced once per supernet with batch-norm momentum 1 (moving statistics
        unchanged); the architecture is set through variables, so one trace serves all."""
        import tensorflow as tf

        supernet = self.supernet
        if self._reward is not None and self._reward[0] is supernet:
            return self._reward[1]

        def step(x, y):
            y_pred = supernet(x, training=True)
            loss = supernet.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
            return {**supernet.compute_metrics(x, y, y_pred), "loss": loss}

        traced = tf.function(step, reduce_retracing=True, autograph=False)
        norms = batch_norm_layers(supernet)

        def reward_step(x, y):
            supernet.reset_metrics()
            with moving_statistics_kept(norms):
                return traced(x, y)

        self._reward = (supernet, reward_step)
        return reward_step

    # --- Candidates ---------------------------------------------------------------------

    def _recalibrate_batch_norm(self) -> None:
        """Recalibrates the supernet's batch norm for the architecture now set."""
        recalibrate_batch_norm(
            self.supernet,
            self._training_batches(self.oracle.bn_recalibration_batches),
            self._training_forward(),
        )

    def _training_forward(self):
        """`supernet(x, training=True)` for batch-norm recalibration: eager for the first
        candidate, then a `tf.function` traced once per supernet.

        The architecture is set through variables, so one trace serves every candidate:
        measured on the tabular NAS-Bench-201 supernet, a candidate's evaluation (10
        recalibration batches) takes 0.15-0.3 s traced against 1.2-1.5 s eager; tracing
        costs about one eager evaluation, which a single candidate would not win back.
        """
        import tensorflow as tf

        supernet = self.supernet
        if self._forward is None or self._forward[0] is not supernet:
            self._forward = (supernet, None)
            return None  # recalibrate_batch_norm's eager default.
        if self._forward[1] is None:
            function = tf.function(
                lambda x: supernet(x, training=True), reduce_retracing=True, autograph=False
            )
            self._forward = (supernet, function)
        return self._forward[1]

    def evaluate(self, values: Mapping[str, Any]) -> dict[str, float]:
        """Validation metrics of one architecture with the shared weights."""
        self.rule.set_architecture(values)
        if self.oracle.bn_recalibration_batches:
            self._recalibrate_batch_norm()
        results = self.supernet.evaluate(self._validation_data, return_dict=True, verbose=0)
        return {f"val_{name}": float(value) for name, value in results.items()}

    def export(self, values: Mapping[str, Any]) -> keras.Model:
        """The fixed network of `values` with the supernet's (recalibrated) weights."""
        self.rule.set_architecture(values)
        if self.oracle.bn_recalibration_batches and self._train_data is not None:
            self._recalibrate_batch_norm()
        return collapse(self.supernet, values)
