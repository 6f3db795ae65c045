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


class _Interrupt(keras.callbacks.Callback):
    """Stops the process-like search at the first epoch end of its `at`-th trial."""

    trials_begun = 0  # On the class: KerasTuner deep-copies callbacks for every trial.

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_train_begin(self, logs=None):
        type(self).trials_begun += 1

    def on_epoch_end(self, epoch, logs=None):
        if type(self).trials_begun == self.at:
            raise KeyboardInterrupt  # Not an `Exception`: KerasTuner lets it escape as a kill.


@pytest.mark.parametrize(
    "make_oracle",
    [
        lambda: keras_tuner.oracles.RandomSearchOracle("val_loss", max_trials=3, seed=7),
        lambda: tfnas.oracles.RegularizedEvolution(
            "val_loss", max_trials=3, population_size=2, sample_size=1, seed=7
        ),
    ],
    ids=["random", "regularized_evolution"],
)
def test_interrupted_search_resumes_with_the_same_trial_scores(tmp_path, make_oracle):
    x, y = _data(48)
    fit = dict(validation_data=(x[:16], y[:16]), epochs=2, batch_size=8, verbose=0)
    whole = _tuner(tmp_path / "whole", make_oracle())
    whole.search(x, y, **fit)

    _Interrupt.trials_begun = 0
    interrupted = _tuner(tmp_path / "cut", make_oracle())
    with pytest.raises(KeyboardInterrupt):
        interrupted.search(x, y, **fit, callbacks=[_Interrupt(at=2)])
    # The first trial's training drew from the global seeds: without per-trial seeds the
    # re-run second trial would start from another state than in the uninterrupted run.
    resumed = _tuner(tmp_path / "cut", make_oracle(), overwrite=False)
    resumed.search(x, y, **fit)

    def scores(tuner):
        trials = tuner.oracle.trials.values()
        return {t.trial_id: (t.hyperparameters.values, t.score) for t in trials}

    assert len(whole.oracle.trials) == 3
    assert scores(resumed) == scores(whole)


def test_trial_seed_depends_on_the_search_seed_and_the_trial_id():
    from tfnas.engine.tuner import trial_seed

    seeds = {trial_seed(seed, trial_id) for seed in (0, 1) for trial_id in ("0", "1")}
    assert len(seeds) == 4
    assert trial_seed(None, "3") == trial_seed(0, "3")
    assert all(0 <= s < 2**32 for s in seeds)


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
    # 2 cells x (4 input choices + 14 edges), and the cells' Fixed number of blocks.
    assert len(names) == 37
    assert "cells/num_blocks" in names
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


# --- A search in which nothing works says so -------------------------------------------------


def _random_search(objective="val_accuracy", max_trials=2, **kwargs):
    return keras_tuner.oracles.RandomSearchOracle(
        objective, max_trials=max_trials, seed=0, **kwargs
    )


@pytest.mark.parametrize(
    "make_args, message",
    [
        (
            lambda x, y: ((x, y[:30]), {"validation_data": (x, y)}),
            r"x and y must hold the same number of samples \(their first dimension\)\. "
            r"Received: x with shape \(32, 8, 8, 1\) and y with shape \(30,\)\.",
        ),
        (
            lambda x, y: ((x, y), {"validation_data": (x[:5], y)}),
            r"validation_data\[0\] and validation_data\[1\] must hold the same number of "
            r"samples.*Received: validation_data\[0\] with shape \(5, 8, 8, 1\) and "
            r"validation_data\[1\] with shape \(32,\)",
        ),
    ],
    ids=["x_y_lengths", "validation_lengths"],
)
@pytest.mark.parametrize("oracle", [_random_search, tfnas.oracles.SPOS], ids=["random", "spos"])
def test_mismatched_data_fails_before_the_first_trial(tmp_path, make_args, message, oracle):
    args, kwargs = make_args(*_data())
    tuner = _tuner(tmp_path, oracle(max_trials=2))
    with pytest.raises(ValueError, match=message):
        tuner.search(*args, **kwargs, epochs=1, verbose=0)
    assert not tuner.oracle.trials
    assert tuner._trainer is None or tuner._trainer.supernet is None


@pytest.mark.parametrize(
    "make_args, message",
    [
        (
            lambda x, y: ((np.where(x > 0.99, np.nan, x), y), {"validation_data": (x, y)}),
            r"x holds \d+ NaN or infinite values \(of 2048\): every trial would train on a NaN "
            r"loss\. Received: x of shape \(32, 8, 8, 1\)\. Remove or impute them",
        ),
        (
            lambda x, y: ((x, y), {"validation_data": (x, np.full(32, np.inf))}),
            r"validation_data\[1\] holds 32 NaN or infinite values",
        ),
    ],
    ids=["nan_x", "inf_validation_y"],
)
@pytest.mark.parametrize("oracle", [_random_search, tfnas.oracles.SPOS], ids=["random", "spos"])
def test_non_finite_data_fails_before_the_first_trial(tmp_path, make_args, message, oracle):
    args, kwargs = make_args(*_data())
    tuner = _tuner(tmp_path, oracle(max_trials=2))
    with pytest.raises(ValueError, match=message):
        tuner.search(*args, **kwargs, epochs=1, verbose=0)
    assert not tuner.oracle.trials
    # Before the supernet is built, for a weight-sharing search.
    assert tuner._trainer is None or tuner._trainer.supernet is None


def test_objective_no_trial_reports_stops_at_the_first_trial(tmp_path):
    x, y = _data()
    tuner = _tuner(tmp_path, _random_search(keras_tuner.Objective("val_acc", "max"), 3))
    with pytest.raises(
        keras_tuner.errors.FatalValueError,
        match=r"Trial 0 did not report the objective metric 'val_acc': the logs of its epoch 0 "
        r"hold \['accuracy', 'flops', 'loss', 'model_bytes', 'num_params', 'val_accuracy', "
        r"'val_loss'\]\. For a Keras model the objective must be a key of the `fit` history",
    ):
        tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert len(tuner.oracle.trials) == 1


class _FailingFit(keras_tuner.HyperModel):
    def build(self, hp):
        return build(hp)

    def fit(self, hp, model, *args, **kwargs):
        raise ValueError("the data loader broke")


def test_search_with_no_completed_trial_raises_the_last_error(tmp_path):
    x, y = _data()
    tuner = tfnas.Tuner(_FailingFit(), oracle=_random_search(max_trials=2),
                        directory=str(tmp_path), project_name="p")  # fmt: skip
    with pytest.raises(
        RuntimeError,
        match=r"(?s)No trial of the search in .* completed \(2 trials: FAILED\)\. The last one, "
        r"trial 1, failed with:\n.*ValueError: the data loader broke",
    ):
        tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)


def test_search_stops_after_max_consecutive_failed_trials_with_their_error(tmp_path):
    x, y = _data()
    oracle = _random_search(max_trials=10, max_consecutive_failed_trials=2)
    tuner = tfnas.Tuner(_FailingFit(), oracle=oracle, directory=str(tmp_path), project_name="p")
    with pytest.raises(
        RuntimeError,
        match=r"(?s)consecutive failures exceeded the limit of 2.*ValueError: the data loader broke",
    ):
        tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert len(tuner.oracle.trials) == 2


@pytest.mark.parametrize("oracle_class", [tfnas.oracles.SPOS, tfnas.oracles.DARTS])
def test_weight_sharing_objective_typo_fails_before_supernet_training(tmp_path, oracle_class):
    x, y = _data()
    oracle = oracle_class(objective=keras_tuner.Objective("val_acc", "max"), max_trials=1)
    tuner = _tuner(tmp_path, oracle)
    with pytest.raises(
        ValueError,
        match=rf"{oracle_class.__name__} cannot rank candidates by its objective: each "
        r"candidate reports only \['flops', 'latency_ms', 'model_bytes', 'num_params', "
        r"'val_accuracy', 'val_loss'\] .*Received: objective=Objective\(name=\"val_acc\", "
        r"direction=\"max\"\)\. Name one of them",
    ):
        tuner.search(x, y, validation_data=(x, y), epochs=2, verbose=0)
    assert oracle.supernet_epochs_done == 0
    assert not tuner.supernet_trainer().checkpoint.exists()


def test_pdarts_with_fewer_epochs_than_stages_fails_before_building(tmp_path):
    x, y = _data()
    tuner = _tuner(tmp_path, tfnas.oracles.PDARTS(max_trials=1))
    with pytest.raises(
        ValueError,
        match=r"PDARTS needs at least one epoch per stage \(3 stages\)\. Received: epochs=2",
    ):
        tuner.search(x, y, validation_data=(x, y), epochs=2, verbose=0)
    assert tuner.supernet_trainer().supernet is None


def test_corrupt_oracle_file_of_a_keras_tuner_oracle_is_named(tmp_path):
    x, y = _data()
    _tuner(tmp_path, _random_search(max_trials=1)).search(
        x, y, validation_data=(x, y), epochs=1, verbose=0
    )
    fname = tmp_path / "p" / "oracle.json"
    fname.write_text('{"ongoing_trials": ')
    with pytest.raises(
        ValueError,
        match=rf"Could not resume the search: {fname} is not valid JSON .*pass `overwrite=True` "
        r"to the tuner \(`--overwrite` to tfnas-search\)",
    ):
        _tuner(tmp_path, _random_search(max_trials=2), overwrite=False)


def test_a_finished_trial_leaves_no_traced_graph_behind(tmp_path):
    # TensorFlow's gradient registry would keep each trial's traced train step alive
    # (memory growing by several MiB per trial).
    import gc

    from tensorflow.python.framework import func_graph

    def graphs():
        gc.collect()
        return sum(isinstance(o, func_graph.FuncGraph) for o in gc.get_objects())

    x, y = _data()
    tuner = _tuner(tmp_path, _random_search(max_trials=3))
    before = graphs()  # Other tests' graphs in this process.
    tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert len(tuner.oracle.trials) == 3
    assert graphs() - before <= 1  # Without the cleanup: one per trial.


def test_a_child_trial_starts_from_its_parents_transformed_weights(tmp_path):
    import json

    from tfnas.search import path_level as pl
    from tfnas.spaces.path_level import PathLevelSpace
    from tfnas.tuners.path_level import PathLevelEAS

    x, y = _data(48)
    before_fit = {}

    class RecordingSpace(PathLevelSpace):
        def fit(self, hp, model, *args, **kwargs):
            before_fit[hp.values[pl.CELL]] = model.predict(x, verbose=0)
            return super().fit(hp, model, *args, **kwargs)

    # Only function-preserving transformations, so the child must start where its parent ended.
    oracle = PathLevelEAS(max_trials=2, seed=1, hidden_size=4, batch_size=1,
                          replace_choices=("identity", "sep3x3", "conv1x1"))  # fmt: skip
    tuner = tfnas.Tuner(RecordingSpace(channels=4, num_cells=1, noise_ratio=0.0),
                        oracle=oracle, directory=str(tmp_path), project_name="p")  # fmt: skip
    tuner.search(x, y, validation_data=(x, y), epochs=1, batch_size=16, verbose=0)
    parent_trial, child_trial = (oracle.trials[t] for t in oracle.start_order)
    values = child_trial.hyperparameters.values
    assert values[pl.PARENT] == parent_trial.trial_id and json.loads(values[pl.TRANSFORMS])
    trained_parent = tuner.load_model(parent_trial).predict(x, verbose=0)
    assert np.abs(trained_parent - before_fit[values[pl.PARENT_CELL]]).max() > 1e-4  # Trained.
    np.testing.assert_allclose(before_fit[values[pl.CELL]], trained_parent, atol=1e-5)
