"""Tiny spaces, data and searches shared by the differentiable family's tests."""

import keras
import numpy as np
import tensorflow as tf

import tfnas
from tfnas import blocks
from tfnas.blocks.supernet import SupernetHyperParameters


def supernet(oracle, build):
    """Builds `build` with the oracle's mixing rule, as the Tuner does: (rule, model)."""
    rule = oracle.make_mixing_rule()
    hp = SupernetHyperParameters(rule)
    model = build(hp)
    oracle.hyperparameters = hp
    return rule, model


class Connected:
    """An oracle and its architecture step connected to a supernet, as `SupernetTrainer`
    connects them (`_connect`), with its `prepare_step` for the batches' first path."""

    def __init__(self, oracle, rule, model, validation_data, training_data=None):
        oracle.on_supernet_built(model, validation_data, training_data)
        self.oracle, self.rule = oracle, rule
        self.architecture_step = oracle.make_architecture_step()
        self.architecture_step.connect(model, rule, validation_data, training_data)

    def prepare_step(self, step, progress=0.0):
        """The architecture step, then the oracle's setting of the rule for the weights."""
        self.architecture_step.step(step, progress)
        self.oracle.prepare_training_step(self.rule, step, 0, progress)


def two_choices(hp):
    """Dense(8) then two choices between a dense layer and a skip; (8,) inputs, 3 classes."""
    inputs = keras.Input((8,))
    x = keras.layers.Dense(8)(inputs)
    for i in range(2):
        x = blocks.layer_choice(hp, f"op{i}", {
            "dense": lambda: keras.layers.Dense(8, activation="relu"),
            "skip": lambda: keras.layers.Identity(),
        })(x)  # fmt: skip
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def depth_only(hp):
    """A space whose only choice is a repeat depth (an input choice): nothing for alphas."""
    inputs = keras.Input((4,))
    x = blocks.repeat(hp, "depth", [1, 2], lambda i, t: keras.layers.Dense(4)(t), inputs)
    model = keras.Model(inputs, x)
    model.compile("sgd", "mse")
    return model


def classification_data(n=16, batch=16, seed=0):
    """Random (8,) inputs and 3-class labels: (x, y, batched dataset)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = rng.integers(0, 3, n)
    return x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def search(oracle, directory, project_name="s", build=two_choices, epochs=1, n=64,
           overwrite=True, **kwargs):  # fmt: skip
    """A Tuner search of `build` on random data (half training, half validation)."""
    x, y, _ = classification_data(n)
    tuner = tfnas.Tuner(build, oracle=oracle, directory=str(directory),
                        project_name=project_name, overwrite=overwrite)  # fmt: skip
    half = n // 2
    tuner.search(x[:half], y[:half], validation_data=(x[half:], y[half:]), epochs=epochs,
                 batch_size=16, verbose=0, **kwargs)  # fmt: skip
    return tuner
