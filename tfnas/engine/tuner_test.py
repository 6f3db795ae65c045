"""tfnas.Tuner: records architecture costs, works with KerasTuner's oracles and inputs."""

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas import blocks
from tfnas.engine.fit import build_for_fit


def build(hp):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = blocks.layer_choice(hp, "op", {
        "conv": lambda: keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        "sep": lambda: keras.layers.SeparableConv2D(4, 5, padding="same", activation="relu"),
        "skip": lambda: keras.layers.Identity(),
    })(x)  # fmt: skip
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


def _data(n=32):
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8, 1), dtype="float32"), rng.integers(0, 10, n)


def _tuner(tmp_path, oracle, **kwargs):
    return tfnas.Tuner(build, oracle=oracle, directory=str(tmp_path), project_name="p", **kwargs)


def _metric(trial, name):
    return trial.metrics.get_best_value(name)


@pytest.mark.parametrize(
    "oracle_class",
    [keras_tuner.oracles.RandomSearchOracle, keras_tuner.oracles.BayesianOptimizationOracle],
)
def test_records_costs_beside_the_objective(tmp_path, oracle_class):
    x, y = _data()
    tuner = _tuner(tmp_path, oracle_class(objective="val_accuracy", max_trials=2, seed=3))
    tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert len(tuner.oracle.trials) == 2
    for trial in tuner.oracle.trials.values():
        arch = tfnas.Architecture(build, trial.hyperparameters.values)
        assert _metric(trial, "num_params") == arch.count_params()
        assert _metric(trial, "flops") == arch.count_flops()
        assert _metric(trial, "model_bytes") == 4 * arch.count_params()
        assert 0 <= _metric(trial, "val_accuracy") <= 1
        assert trial.score == _metric(trial, "val_accuracy")


def test_tf_data_input_and_best_model(tmp_path):
    x, y = _data()
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    tuner = _tuner(tmp_path, keras_tuner.oracles.RandomSearchOracle("val_loss", max_trials=1))
    tuner.search(train, validation_data=train, epochs=1, verbose=0)
    best = tuner.get_best_models(1)[0]
    assert best.predict(x[:2], verbose=0).shape == (2, 10)


def test_resume_keeps_finished_trials_and_continues(tmp_path):
    x, y = _data()
    oracle = lambda trials: keras_tuner.oracles.RandomSearchOracle(
        "val_accuracy", max_trials=trials, seed=5
    )
    first = _tuner(tmp_path, oracle(2))
    first.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    done = {t.trial_id: t.hyperparameters.values for t in first.oracle.trials.values()}

    resumed = _tuner(tmp_path, oracle(3), overwrite=False)
    resumed.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    trials = resumed.oracle.trials
    assert len(trials) == 3
    assert {tid: trials[tid].hyperparameters.values for tid in done} == done
    assert all(_metric(t, "flops") is not None for t in trials.values())


def test_measure_latency_records_tflite_latency(tmp_path):
    x, y = _data()
    tuner = _tuner(
        tmp_path,
        keras_tuner.oracles.RandomSearchOracle("val_accuracy", max_trials=1),
        measure_latency=True,
        latency_options={"runs": 3, "warmup": 1},
    )
    tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    (trial,) = tuner.oracle.trials.values()
    assert _metric(trial, "latency_ms") > 0


def test_explores_conditional_choices_of_cell_spaces(tmp_path):
    space = tfnas.spaces.DartsSpace((8, 8, 1), 10, init_channels=4, num_cells=3)
    tuner = tfnas.Tuner(
        space,
        oracle=keras_tuner.oracles.RandomSearchOracle("val_accuracy", max_trials=1),
        directory=str(tmp_path),
    )
    names = {p.name for p in tuner.oracle.hyperparameters.space}
    # 2 cells x (4 input choices + 14 edges).
    assert len(names) == 36
    assert "reduce/node3/edge4" in names


def test_latency_options_must_be_a_dict(tmp_path):
    with pytest.raises(
        TypeError, match="latency_options must be a dict.*Received: latency_options=3"
    ):
        _tuner(tmp_path, keras_tuner.oracles.RandomSearchOracle("val_loss", 1), latency_options=3)


class CountingModel(keras.Model):
    """A functional model that counts how often Keras traces its train step."""

    traces = 0

    def train_step(self, data):
        type(self).traces += 1
        return super().train_step(data)


def _counting_build(hp):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    x = keras.layers.Dense(hp.Choice("units", [4, 8]), activation="relu")(x)
    model = CountingModel(inputs, keras.layers.Dense(10)(x))
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


@pytest.mark.parametrize("as_dataset", [False, True])
def test_build_for_fit_makes_fit_trace_its_train_step_once(as_dataset):
    x, y = _data()
    inputs = tf.data.Dataset.from_tensor_slices((x, y)).batch(16) if as_dataset else (x, y)
    for prebuild, expected in [(False, 2), (True, 1)]:
        CountingModel.traces = 0
        model = _counting_build(keras_tuner.HyperParameters())
        if prebuild:
            build_for_fit(model, *(
                (inputs,) if as_dataset else inputs
            ))  # fmt: skip
        assert model.optimizer.built == prebuild
        model.fit(*((inputs,) if as_dataset else inputs), epochs=2, batch_size=16, verbose=0)
        assert CountingModel.traces == expected  # Keras alone traces twice.


def test_build_for_fit_leaves_other_inputs_to_fit():
    x, y = _data()
    model = _counting_build(keras_tuner.HyperParameters())
    build_for_fit(model, iter([(x, y)]))  # A generator: not read.
    build_for_fit(keras.Sequential([keras.layers.Dense(2)]), x, y)
    assert not model.optimizer.built
    model.fit(x, y, epochs=1, verbose=0)


def test_tuner_trials_and_retrain_trace_each_model_once(tmp_path):
    x, y = _data()
    tuner = tfnas.Tuner(_counting_build, oracle=tfnas.oracles.RandomSearchOracle("val_accuracy", max_trials=2, seed=0),
                        directory=str(tmp_path), project_name="p")  # fmt: skip
    CountingModel.traces = 0
    tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert CountingModel.traces == 2
    tuner.retrain(None, x, y, epochs=1, verbose=0)
    assert CountingModel.traces == 3


def test_the_oracle_declares_how_its_trials_run(tmp_path):
    assert tfnas.oracles.SPOS.execution == "supernet"
    # KerasTuner's own oracles (and tfnas's multi-trial ones) declare nothing: trials.
    plain = _tuner(tmp_path, keras_tuner.oracles.RandomSearchOracle("val_loss", max_trials=1))
    assert plain.supernet_trainer() is None
    shared = _tuner(tmp_path / "s", tfnas.oracles.SPOS(max_trials=1))
    assert shared.supernet_trainer() is not None

    class Unknown(keras_tuner.oracles.RandomSearchOracle):
        execution = "cluster"

    with pytest.raises(
        ValueError,
        match=r"oracle.execution must be one of \['trials', 'supernet'\]\. "
        r"Received: oracle.execution='cluster'",
    ):
        _tuner(tmp_path / "u", Unknown("val_loss", max_trials=1))
