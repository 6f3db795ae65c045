"""examples/custom_oracle.py: its rule mixes as documented and its oracle searches end to end."""

import custom_oracle
import keras
import numpy as np

import tfnas


def test_rule_computes_one_path_or_the_mean_of_all():
    rule = custom_oracle.PathOrMean()
    inputs = keras.Input((3,))
    choice = tfnas.blocks.layer_choice(tfnas.blocks.SupernetHyperParameters(rule), "op", {
        "double": lambda: keras.layers.Lambda(lambda t: 2.0 * t),
        "square": lambda: keras.layers.Lambda(lambda t: t * t),
    })  # fmt: skip
    model = keras.Model(inputs, choice(inputs))
    x = np.array([[1.0, -2.0, 3.0]], dtype="float32")
    rule.set_architecture({"op": "square"})
    np.testing.assert_allclose(model(x), x * x)
    rule.use_mean()
    np.testing.assert_allclose(model(x), (2 * x + x * x) / 2)


def test_new_strategy_searches_and_exports_the_supernet_path(tmp_path):
    tuner = custom_oracle.main(
        ["--mean_probability=0.5", "--epochs=1", "--max_trials=3", "--population_size=2",
         f"--directory={tmp_path}"]
    )  # fmt: skip
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
    best = tuner.get_best_models(1)[0]
    assert all(type(layer).__module__.startswith("keras") for layer in best._flatten_layers())
    # The exported network computes what the supernet computes on the best path.
    trainer = tuner.supernet_trainer()
    trainer.rule.set_architecture(tuner.get_best_hyperparameters(1)[0].values)
    x = tfnas.data.load("digits").x_val[:16]
    np.testing.assert_allclose(best(x), trainer.supernet(x), atol=1e-5)
