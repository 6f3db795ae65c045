"""A new weight-sharing strategy in one module: a mixing rule and the oracle that sets it.

"Path or mean": each supernet training step trains one uniformly sampled path (as SPOS
does) or, with probability `mean_probability`, the mean of all candidates of every choice
(the one-shot model of Bender et al.), so that every candidate also receives gradient
together with the others. Candidates are then searched by aging evolution, ranked with
the inherited weights.

A strategy supplies only decisions; `tfnas.Tuner` builds the supernet from the unchanged
`build(hp)`, owns the data, the optimizer and every gradient step, checkpoints each
epoch, ranks the candidates and exports the best one as a plain Keras model:

- a `MixingRule` (`PathOrMean`): how a choice point combines its candidates, and
  `set_architecture(values)`, which makes the supernet compute one architecture;
- `make_mixing_rule()`: the rule the supernet is built with;
- `prepare_training_step(rule, step, path, progress)`: sets the rule before each step;
- `make_search_algorithm(seed)`: the search over candidates once the supernet is trained.

Nothing is registered anywhere: the oracle is passed to `tfnas.Tuner` like any other.

Run (seconds on 2 CPU cores):

    python examples/custom_oracle.py --epochs=3 --max_trials=6
"""

import argparse

import keras

import tfnas
from tfnas.search.evolution import AgingEvolution
from tfnas.tuners.weight_sharing import WeightSharingOracle
from tfnas.validation import check_float


class PathOrMean(tfnas.blocks.MixingRule):
    """One candidate per choice name or, after `use_mean()`, the mean of all of them.

    An int variable per choice name selects a `keras.ops.switch` branch: branch i runs
    candidate i, the extra last branch averages every candidate. Changing it between steps
    needs no retracing. Choices sharing a name share the variable. Layer choices only.
    """

    def __init__(self):
        self._branch = {}  # choice name -> int variable
        self._choices = {}  # choice name -> one choice layer of that name

    def build(self, choice):
        if choice.choice_name not in self._branch:
            self._branch[choice.choice_name] = keras.Variable(
                0, dtype="int32", trainable=False, name=f"branch_{len(self._branch)}"
            )
            self._choices[choice.choice_name] = choice

    def set_architecture(self, values):
        for name, choice in self._choices.items():
            # A choice the architecture leaves inactive keeps candidate 0 (output unused).
            active = all(decision in values for decision in choice.decision_names)
            index = tfnas.blocks.candidate_index(choice, values) if active else 0
            self._branch[name].assign(index)

    def use_mean(self):
        for name, choice in self._choices.items():
            self._branch[name].assign(len(choice.candidates))

    def mix_layers(self, choice, inputs, training=None):
        paths = [lambda x, layer=layer: layer(x, training=training) for layer in choice.candidates]

        def mean(x):
            return keras.ops.mean(keras.ops.stack([path(x) for path in paths]), axis=0)

        return keras.ops.switch(self._branch[choice.choice_name].value, [*paths, mean], inputs)


class PathOrMeanNAS(WeightSharingOracle):
    """Trains single paths and, with probability `mean_probability`, the mean of all.

    Args:
        mean_probability: chance that a training step trains every candidate's mean.
        population_size, sample_size: of the aging evolution over candidates.
        **kwargs: the arguments of `WeightSharingOracle` (max_trials, constraints, seed, ...).
    """

    def __init__(self, *, mean_probability=0.25, population_size=10, sample_size=3, **kwargs):
        self.mean_probability = check_float("mean_probability", mean_probability, 0.0, 1.0)
        self.population_size = population_size
        self.sample_size = sample_size
        super().__init__(**kwargs)  # Calls make_search_algorithm.

    def make_mixing_rule(self):
        return PathOrMean()

    def prepare_training_step(self, rule, step, path, progress):
        # `training_rng` is seeded and saved with every supernet checkpoint, so a resumed
        # search draws the same steps as an uninterrupted one.
        if self.training_rng.random() < self.mean_probability:
            rule.use_mean()
        else:
            rule.set_architecture(self.sample_architecture())

    def make_search_algorithm(self, seed):
        return AgingEvolution(self.population_size, self.sample_size, seed=seed)


def build(hp):
    """A tiny space: two operation choices between convolutions and a skip."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    for i in range(2):
        x = tfnas.blocks.layer_choice(hp, f"op{i}", {
            "conv3x3": lambda: keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            "conv1x1": lambda: keras.layers.Conv2D(8, 1, activation="relu"),
            "skip": lambda: keras.layers.Identity(),
        })(x)  # fmt: skip
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def main(argv=None):
    """Runs the search with the new strategy; returns the tuner."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mean_probability", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max_trials", type=int, default=6)
    parser.add_argument("--population_size", type=int, default=4)
    parser.add_argument("--directory", default="runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = tfnas.data.load("digits", seed=args.seed)
    oracle = PathOrMeanNAS(
        mean_probability=args.mean_probability,
        max_trials=args.max_trials,
        population_size=args.population_size,
        sample_size=2,
        seed=args.seed,
    )
    tuner = tfnas.Tuner(
        build, oracle=oracle, directory=args.directory, project_name="custom_oracle",
        overwrite=True,
    )  # fmt: skip
    tuner.search(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=args.epochs,
        batch_size=64,
        verbose=0,
    )
    tuner.results_summary(3)
    best = tuner.get_best_models(1)[0]  # standard Keras layers, weights from the supernet
    _, test_accuracy = best.evaluate(data.x_test, data.y_test, verbose=0)
    print("best architecture:", tuner.get_best_hyperparameters(1)[0].values)
    print(f"test accuracy with inherited weights: {test_accuracy:.3f}")
    return tuner


if __name__ == "__main__":
    main()
