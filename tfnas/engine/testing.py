"""A tiny space and data for weight-sharing tests (seconds per search on 2 cores)."""

import keras

from tfnas import blocks


def build(hp):
    """Two operation choices and a depth choice, with batch norm; 8x8x1 inputs, 10 classes."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    for i in range(2):
        x = blocks.layer_choice(hp, f"op{i}", {
            "conv3x3": lambda: keras.Sequential([
                keras.layers.Conv2D(8, 3, padding="same", use_bias=False),
                keras.layers.BatchNormalization(), keras.layers.ReLU()]),
            "conv1x1": lambda: keras.Sequential([
                keras.layers.Conv2D(8, 1, use_bias=False),
                keras.layers.BatchNormalization(), keras.layers.ReLU()]),
            "skip": lambda: keras.layers.Identity(),
        })(x)  # fmt: skip
    x = blocks.repeat(
        hp, "depth", [0, 1], lambda i, t: keras.layers.Conv2D(8, 3, padding="same")(t), x
    )
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def data(n: int = 256, seed: int = 0):
    """Digits images (train, validation) as numpy arrays."""
    from tfnas.data import load

    digits = load("digits", seed=seed)
    return (digits.x_train[:n], digits.y_train[:n]), (
        digits.x_val[: n // 2],
        digits.y_val[: n // 2],
    )


class InterruptSupernet(keras.callbacks.Callback):
    """Kills a supernet training (KeyboardInterrupt) as its second epoch begins."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def search(oracle, directory, name, callbacks=None, overwrite=True):
    """`oracle`'s `tfnas.Tuner` search of `build` on 96 digits, 2 epochs of batches of 32
    (3 batches each); returns the tuner."""
    import tfnas

    (x, y), validation = data(96)
    tuner = tfnas.Tuner(
        build, oracle=oracle, directory=str(directory), project_name=name, overwrite=overwrite
    )
    tuner.search(
        x, y, validation_data=validation, epochs=2, batch_size=32, verbose=0,
        callbacks=callbacks,
    )  # fmt: skip
    return tuner


def with_space(oracle):
    """`oracle` with the hyperparameters of `build` registered (no search needed)."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    build(hp)
    oracle.hyperparameters = hp
    return oracle


class RuleRecorder:
    """A stand-in mixing rule that records the architectures it is set to."""

    def __init__(self):
        self.architectures = []

    def set_architecture(self, values):
        self.architectures.append(dict(values))
