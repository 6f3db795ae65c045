"""The train-from-scratch job behind `tfnas-train`, callable without flags.

An architecture found by a search (`architecture.json`) is built in fixed mode and trained
from freshly initialized weights, the DARTS evaluation recipe: SGD with momentum and weight
decay, a cosine (or step) learning-rate schedule, gradient clipping, and the auxiliary head
where the space has one. `output_dir` then holds `model.keras` (without the auxiliary head),
`history.json`, `metrics.json` (test accuracy), TensorBoard logs in `logs/`, and the last
epoch's checkpoint in `checkpoints/`.

A run killed at any point resumes from its last finished epoch when started again with the
same arguments, and ends with the same weights as an uninterrupted run: every epoch's data
order and random seed depend only on `seed` and the epoch index, and the checkpoint holds the
optimizer state (step count, momentum) with the weights.
"""

from __future__ import annotations

import json
import math
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from tfnas import data as data_lib
from tfnas import files, spaces, validation
from tfnas.architecture import Architecture

SCHEDULES = ("cosine", "step")
DISTRIBUTION_STRATEGIES = ("none", "mirrored", "multi_worker")
OUTPUT_FILES = ("model.keras", "history.json", "metrics.json")
# Gradient-norm clipping of the DARTS evaluation recipe.
CLIPNORM = 5.0
# The step schedule divides the learning rate by 10 after each third of the epochs.
STEP_DECAY_RATE = 0.1
_STATE = "state.json"
# `verbose` of `run` -> `verbose` of `Model.fit` (2 is Keras' one line per epoch).
_FIT_VERBOSE = {0: 0, 1: 2, 2: 1}


def _strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        # Reads the cluster from TF_CONFIG; without it, a single local worker.
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _schedule(name: str, learning_rate: float, epochs: int, steps_per_epoch: int):
    if name == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps_per_epoch)
    return keras.optimizers.schedules.ExponentialDecay(
        learning_rate,
        decay_steps=max(1, epochs // 3) * steps_per_epoch,
        decay_rate=STEP_DECAY_RATE,
        staircase=True,
    )


def _read_architecture(hypermodel, architecture: str, space: str) -> Architecture:
    with open(architecture, encoding="utf-8") as f:
        text = f.read()
    try:
        # Builds once with strict hyperparameters: values must match the space's choices.
        return Architecture.from_json(hypermodel, text)
    except ValueError as error:
        raise ValueError(
            f"The architecture in {architecture!r} does not fit space {space!r}: {error} "
            f"Pass the space it was searched in (--space of tfnas-train). Received: "
            f"space={space!r}"
        ) from None


def _check_space_option(hypermodel, space: str, attribute: str, name: str, value) -> None:
    """Refuses a training option the space cannot build (instead of ignoring it)."""
    if not hasattr(hypermodel, attribute):
        raise ValueError(
            f"Space {space!r} has no {attribute} option, so {name}={value!r} cannot apply; "
            f"leave {name} (--{name} of tfnas-train) at 0. Received: {name}={value!r}"
        )


def _compile(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
    # Keeps the space's losses, loss weights and metrics; only the optimizer changes.
    config = model.get_compile_config()
    config["optimizer"] = keras.optimizers.serialize(optimizer)
    model.compile_from_config(config)


def _load_state(checkpoint_dir: str, settings: dict) -> dict | None:
    path = os.path.join(checkpoint_dir, _STATE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        state = json.load(f)
    changed = sorted(k for k in settings if state["settings"].get(k) != settings[k])
    if changed:
        raise ValueError(
            f"{checkpoint_dir!r} holds a run with other settings, so it cannot resume: "
            + ", ".join(f"{k}={state['settings'].get(k)!r} there" for k in changed)
            + ". Received: "
            + ", ".join(f"{k}={settings[k]!r}" for k in changed)
            + "; pass overwrite=True (--overwrite) or another output_dir."
        )
    return state


def _save_checkpoint(model: keras.Model, checkpoint_dir: str, state: dict) -> None:
    name = f"epoch_{state['epoch']:04d}.keras"
    model.save(os.path.join(checkpoint_dir, name))
    # The state names its checkpoint and is replaced last: a kill before leaves the previous
    # epoch's pair intact.
    files.write_json_atomically(
        os.path.join(checkpoint_dir, _STATE), {**state, "checkpoint": name}, indent=2
    )
    for old in os.listdir(checkpoint_dir):
        if old.endswith(".keras") and old != name:
            os.remove(os.path.join(checkpoint_dir, old))


def _accuracy_key(metrics: dict) -> str:
    # A model with an auxiliary head reports its main output's accuracy as logits_accuracy.
    return "logits_accuracy" if "logits_accuracy" in metrics else "accuracy"


def run(
    *,
    space: str,
    architecture: str,
    dataset: str = "digits",
    epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 0.025,
    schedule: str = "cosine",
    momentum: float = 0.9,
    weight_decay: float = 3e-4,
    auxiliary_weight: float = 0.0,
    drop_path_prob: float = 0.0,
    distribution_strategy: str = "none",
    output_dir: str = "runs/train",
    seed: int = 0,
    overwrite: bool = False,
    verbose: int = 1,
) -> dict:
    """Trains an architecture of a ready space from scratch and saves the model.

    Example:

    ```python
    summary = tfnas.training.run(space="nasbench201", architecture="runs/demo/architecture.json",
                                 epochs=20, output_dir="runs/train")
    summary["test_accuracy"]
    ```

    Args:
        space: a name of `tfnas.spaces.CLASSIFICATION_SPACES`: the space the architecture
            was searched in.
        architecture: path of an architecture JSON (`tfnas.Architecture.to_json`, as
            `tfnas-search` writes it).
        dataset: a name of `tfnas.data.DATASETS`.
        epochs: training epochs.
        batch_size: global batch size (split across replicas).
        learning_rate: initial learning rate of SGD.
        schedule: "cosine" (decay to 0 over the run) or "step" (divide by 10 after each
            third of the epochs).
        momentum: SGD momentum.
        weight_decay: decoupled weight decay of SGD.
        auxiliary_weight: loss weight of the auxiliary head; 0 trains without one. Only for
            spaces that have one (darts, with inputs large enough for it).
        drop_path_prob: drop-path probability; only for spaces that have drop-path (no ready
            space has it yet, so only 0 is accepted).
        distribution_strategy: "none", "mirrored" (all local devices) or "multi_worker"
            (`tf.distribute.MultiWorkerMirroredStrategy`, cluster from `TF_CONFIG`; give
            each worker its own `output_dir`, the chief's holds the result).
        output_dir: where the outputs, logs and checkpoints go.
        seed: seeds the data split, the initialization and every epoch's data order.
        overwrite: discard a checkpoint in `output_dir` instead of resuming from it.
        verbose: 0 silent, 1 one line per epoch and a summary, 2 progress bars.

    Returns:
        The summary written to `metrics.json`: test accuracy and loss, epochs, the space,
        architecture values and output paths.

    Raises:
        ValueError: if an argument is out of range, the architecture does not fit the space,
            the space lacks a requested option, or `output_dir` holds a run with other
            settings.
    """
    validation.check_one_of("space", space, spaces.CLASSIFICATION_SPACES)
    validation.check_one_of("dataset", dataset, tuple(data_lib.DATASETS))
    spaces.check_task(space, dataset)
    validation.check_int("epochs", epochs, low=1)
    validation.check_int("batch_size", batch_size, low=1)
    validation.check_float("learning_rate", learning_rate, low=0, low_inclusive=False)
    validation.check_one_of("schedule", schedule, SCHEDULES)
    validation.check_float("momentum", momentum, low=0, high=1, high_inclusive=False)
    validation.check_float("weight_decay", weight_decay, low=0)
    validation.check_float("auxiliary_weight", auxiliary_weight, low=0)
    validation.check_float("drop_path_prob", drop_path_prob, low=0, high=1, high_inclusive=False)
    validation.check_one_of("distribution_strategy", distribution_strategy, DISTRIBUTION_STRATEGIES)
    validation.check_int("seed", seed, low=0)
    validation.check_int("verbose", verbose, low=0, high=2)
    validation.check_writable_dir("output_dir", output_dir)
    if not isinstance(architecture, str) or not os.path.isfile(architecture):
        raise ValueError(
            f"architecture must be the path of an architecture JSON file. "
            f"Received: architecture={architecture!r}"
        )

    data = data_lib.load(dataset, seed=seed)
    hypermodel = spaces.make(space, data.input_shape, data.num_classes)
    arch = _read_architecture(hypermodel, architecture, space)
    options = {}
    if auxiliary_weight:
        _check_space_option(hypermodel, space, "auxiliary", "auxiliary_weight", auxiliary_weight)
        hypermodel.auxiliary, hypermodel.auxiliary_weight = True, auxiliary_weight
        options["auxiliary_weight"] = auxiliary_weight
    if drop_path_prob:
        _check_space_option(hypermodel, space, "drop_path_prob", "drop_path_prob", drop_path_prob)
        hypermodel.drop_path_prob = options["drop_path_prob"] = drop_path_prob

    checkpoint_dir = os.path.join(output_dir, "checkpoints")
    if overwrite:  # a run killed before its first checkpoint must not resume the old one
        for folder in (checkpoint_dir, os.path.join(output_dir, "logs")):
            shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(checkpoint_dir, exist_ok=True)
    # What must match for a checkpoint to continue this run.
    settings = {
        "space": space,
        "architecture": arch.values,
        "dataset": dataset,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "schedule": schedule,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "auxiliary_weight": auxiliary_weight,
        "drop_path_prob": drop_path_prob,
        "seed": seed,
    }
    state = _load_state(checkpoint_dir, settings)

    strategy = _strategy(distribution_strategy)
    steps_per_epoch = math.ceil(len(data.y_train) / batch_size)
    with strategy.scope():
        if state is None:
            keras.utils.set_random_seed(seed)
            try:
                model = arch.build()
            except ValueError as error:  # e.g. an auxiliary head on too small an input
                if not options:
                    raise
                raise ValueError(
                    f"Space {space!r} cannot build the architecture with {options}: {error} "
                    f"Received: {', '.join(f'{k}={v!r}' for k, v in options.items())}"
                ) from None
            _compile(
                model,
                keras.optimizers.SGD(
                    _schedule(schedule, learning_rate, epochs, steps_per_epoch),
                    momentum=momentum,
                    weight_decay=weight_decay or None,
                    clipnorm=CLIPNORM,
                ),
            )
            state = {"epoch": 0, "history": {}, "settings": settings}
        else:
            # The .keras checkpoint holds weights, compile config and optimizer variables.
            model = keras.saving.load_model(os.path.join(checkpoint_dir, state["checkpoint"]))

    def targets(y):
        # A model with an auxiliary head has one output per head, both trained on the labels.
        return {name: y for name in model.output} if isinstance(model.output, dict) else y

    tensorboard = keras.callbacks.TensorBoard(os.path.join(output_dir, "logs"), write_graph=False)
    for epoch in range(state["epoch"], epochs):
        keras.utils.set_random_seed(seed + epoch)
        order = np.random.default_rng([seed, epoch]).permutation(len(data.y_train))
        history = model.fit(
            data.x_train[order],
            targets(data.y_train[order]),
            batch_size=batch_size,
            initial_epoch=epoch,
            epochs=epoch + 1,
            shuffle=False,
            validation_data=(data.x_val, targets(data.y_val)),
            callbacks=[tensorboard],
            verbose=_FIT_VERBOSE[verbose],
        )
        for name, values in history.history.items():
            state["history"].setdefault(name, []).extend(float(v) for v in values)
        state["epoch"] = epoch + 1
        _save_checkpoint(model, checkpoint_dir, state)

    test = model.evaluate(data.x_test, targets(data.y_test), verbose=0, return_dict=True)
    accuracy_key = _accuracy_key(test)
    if isinstance(model.output, dict):  # drop the auxiliary head: it only helps training
        model = keras.Model(model.inputs, model.get_layer("logits").output, name=model.name)
    paths = {name: os.path.join(output_dir, name) for name in OUTPUT_FILES}
    model.save(paths["model.keras"])
    files.write_json_atomically(paths["history.json"], state["history"], indent=2)
    summary = {
        "space": space,
        "architecture": arch.values,
        "dataset": dataset,
        "epochs": epochs,
        "test_accuracy": float(test[accuracy_key]),
        "test_loss": float(test.get("logits_loss", test["loss"])),
        "val_accuracy": state["history"].get(f"val_{accuracy_key}", [None])[-1],
        "num_params": int(model.count_params()),
        "distribution_strategy": distribution_strategy,
        "num_replicas": int(strategy.num_replicas_in_sync),
        "files": {**paths, "logs": os.path.join(output_dir, "logs")},
    }
    files.write_json_atomically(paths["metrics.json"], summary, indent=2)
    if verbose:
        print(
            f"test accuracy {summary['test_accuracy']:.4f} after {epochs} epochs; "
            f"model written to {paths['model.keras']}"
        )
    return summary
