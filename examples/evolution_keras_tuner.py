"""Regularized evolution on a plain KerasTuner hypermodel, run by a plain `keras_tuner.Tuner`.

The hypermodel uses only `hp.Int` / `hp.Choice` and standard Keras layers: no tfnas
layer, no tfnas tuner. `tfnas.oracles.RegularizedEvolution` (Real et al. 2018) is an
ordinary `keras_tuner.Oracle`, so it drops into any KerasTuner script, and a run
resumes with `overwrite=False`.

Run (under a minute on 2 CPU cores):

    python examples/evolution_keras_tuner.py --max_trials=8 --epochs=3
"""

import argparse

import keras
import keras_tuner

import tfnas


def build(hp):
    """A small convolutional classifier of the 8x8 digits, every size searched."""
    model = keras.Sequential([keras.Input((8, 8, 1))])
    for i in range(hp.Int("conv_layers", 1, 3)):
        model.add(
            keras.layers.Conv2D(
                hp.Choice(f"filters_{i}", [8, 16, 32]),
                hp.Choice(f"kernel_size_{i}", [3, 5]),
                padding="same",
                activation="relu",
            )
        )
    model.add(keras.layers.GlobalAveragePooling2D())
    model.add(keras.layers.Dense(hp.Choice("units", [16, 32, 64]), activation="relu"))
    model.add(keras.layers.Dense(10))
    model.compile(
        keras.optimizers.Adam(hp.Choice("learning_rate", [3e-3, 1e-2])),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def main(argv=None):
    """Runs the search; returns the tuner."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max_trials", type=int, default=8)
    parser.add_argument("--population_size", type=int, default=4)
    parser.add_argument("--sample_size", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--directory", default="runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = tfnas.data.load("digits", seed=args.seed)
    oracle = tfnas.oracles.RegularizedEvolution(
        objective="val_accuracy",
        max_trials=args.max_trials,
        population_size=args.population_size,
        sample_size=args.sample_size,
        seed=args.seed,
    )
    tuner = keras_tuner.Tuner(
        oracle=oracle,
        hypermodel=build,
        directory=args.directory,
        project_name="evolution_keras_tuner",
        overwrite=True,
    )
    tuner.search(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=args.epochs,
        verbose=0,
    )
    tuner.results_summary(3)
    best = tuner.get_best_models(1)[0]
    _, test_accuracy = best.evaluate(data.x_test, data.y_test, verbose=0)
    print("best architecture:", tuner.get_best_hyperparameters(1)[0].values)
    print(f"test accuracy of the best model: {test_accuracy:.3f}")
    return tuner


if __name__ == "__main__":
    main()
