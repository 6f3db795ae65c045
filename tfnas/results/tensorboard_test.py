"""The HParams dashboard's metric columns hold the costs: read back from the event files."""

import glob
import os

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import metadata

import tfnas
from tfnas.results import objectives, tensorboard


def read_run(run_dir):
    """`({scalar tag: [values]}, [hparams plugin entries])` of one run directory's events."""
    scalars, hparams = {}, []
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME:
                    hparams.append((value.tag, value.metadata.plugin_data.content))
                elif value.HasField("tensor"):
                    scalars.setdefault(value.tag, []).append(float(tf.make_ndarray(value.tensor)))
    return scalars, hparams


def experiment_columns(root):
    """The metric columns `(group, tag, display name)` of the experiment config in `root`."""
    _, entries = read_run(root)
    experiments = [c for tag, c in entries if tag == metadata.EXPERIMENT_TAG]
    assert len(experiments) == 1, entries
    experiment = metadata.parse_experiment_plugin_data(experiments[0])
    columns = [(m.name.group, m.name.tag, m.display_name) for m in experiment.metric_infos]
    return columns, [h.name for h in experiment.hparam_infos]


def dashboard_rows(log_dir):
    """What TensorBoard's HParams dashboard shows for `log_dir`, through its own backend:
    the metric columns `(group, tag)` and `{session group: {(group, tag): value}}`."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import (
        api_pb2,
        get_experiment,
        hparams_plugin,
        list_session_groups,
    )

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(log_dir)
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, log_dir)
    plugin = hparams_plugin.HParamsPlugin(
        base_plugin.TBContext(logdir=log_dir, multiplexer=multiplexer, data_provider=provider)
    )
    request = context.RequestContext()
    experiment = get_experiment.Handler(
        request, plugin._context, "", api_pb2.GetExperimentRequest()
    ).run()
    columns = [(m.name.group, m.name.tag) for m in experiment.metric_infos]
    groups = list_session_groups.Handler(
        request,
        plugin._context,
        "",
        api_pb2.ListSessionGroupsRequest(
            start_index=0, slice_size=100, allowed_statuses=[api_pb2.STATUS_SUCCESS]
        ),
    ).run()
    rows = {
        group.name: {(m.name.group, m.name.tag): m.value for m in group.metric_values}
        for group in groups.session_groups
    }
    return columns, rows


def _build(hp):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(hp.Choice("units", [2, 3]), activation="relu"),
            keras.layers.Dense(2),
        ]
    )
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


@pytest.fixture(autouse=True)
def _fresh_configs(monkeypatch):
    monkeypatch.setattr(tensorboard, "_CONFIGURED", set())


def test_search_with_a_tensorboard_callback_logs_cost_columns(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 2, 32)
    oracle = keras_tuner.oracles.GridSearchOracle(objective="val_accuracy", max_trials=2, seed=1)
    tuner = tfnas.Tuner(_build, oracle=oracle, directory=str(tmp_path), project_name="p")
    logs = str(tmp_path / "logs")
    tuner.search(
        x, y, validation_data=(x, y), epochs=1, verbose=0,
        callbacks=[keras.callbacks.TensorBoard(logs, write_graph=False, profile_batch=0)],
    )  # fmt: skip

    columns, hparam_names = experiment_columns(logs)
    assert columns == [
        ("validation", "epoch_accuracy", "val_accuracy"),
        ("", "num_params", "num_params"),
        ("", "flops", "flops"),
        ("", "model_bytes", "model_bytes"),
    ]
    assert hparam_names == ["units"]
    assert len(oracle.trials) == 2
    for trial in oracle.trials.values():
        session = os.path.join(logs, trial.trial_id, "execution0")
        scalars, entries = read_run(session)
        # The costs the trial recorded, at step 0, where the columns point.
        for name in ("num_params", "flops", "model_bytes"):
            assert scalars[name] == [trial.metrics.get_last_value(name)], name
        units = trial.hyperparameters.get("units")
        assert scalars["flops"] == [4.0 * units + units * 2]
        # KerasTuner's session (its hyperparameters) is in the same directory.
        tags = [tag for tag, _ in entries]
        assert metadata.SESSION_START_INFO_TAG in tags
        start = metadata.parse_session_start_info_plugin_data(
            dict(entries)[metadata.SESSION_START_INFO_TAG]
        )
        assert start.hparams["units"].number_value == units
        # The objective's column: Keras's validation curve of the session.
        validation, _ = read_run(os.path.join(session, "validation"))
        assert validation["epoch_accuracy"] == [
            pytest.approx(trial.metrics.get_last_value("val_accuracy"))
        ]

    # As the dashboard's backend reads them: one row per trial, a value in every column.
    columns, rows = dashboard_rows(logs)
    assert columns == [(group, tag) for group, tag, _ in experiment_columns(logs)[0]]
    assert sorted(rows) == sorted(oracle.trials)
    for trial_id, values in rows.items():
        trial = oracle.trials[trial_id]
        assert values == {
            ("validation", "epoch_accuracy"): pytest.approx(
                trial.metrics.get_last_value("val_accuracy")
            ),
            **{
                ("", n): trial.metrics.get_last_value(n)
                for n in ("num_params", "flops", "model_bytes")
            },
        }


def test_evaluated_trial_is_a_whole_session(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Choice("cell/node1/edge0", ["conv", "skip"])
    trial = keras_tuner.engine.trial.Trial(hp, trial_id="7")
    board = keras.callbacks.TensorBoard(str(tmp_path))
    metrics = {"val_accuracy": 0.75, "flops": 1234.0, "latency_ms": 0.5, "num_params": 10.0}
    sessions = tensorboard.log_evaluated_trial(
        [board, keras.callbacks.History()],
        trial,
        metrics,
        keras_tuner.Objective("val_accuracy", "max"),
    )
    session = str(tmp_path / "7" / "execution0")
    assert sessions == [session]
    columns, names = experiment_columns(str(tmp_path))
    assert columns == [
        ("validation", "epoch_accuracy", "val_accuracy"),
        ("", "num_params", "num_params"),
        ("", "flops", "flops"),
        ("", "latency_ms", "latency_ms"),
    ]
    assert names == ["cell/node1/edge0"]
    scalars, entries = read_run(session)
    assert scalars == {"flops": [1234.0], "latency_ms": [0.5], "num_params": [10.0]}
    tags = [tag for tag, _ in entries]
    assert tags == [metadata.SESSION_START_INFO_TAG, metadata.SESSION_END_INFO_TAG]
    start = metadata.parse_session_start_info_plugin_data(entries[0][1])
    assert start.hparams["cell/node1/edge0"].string_value == "conv"
    assert read_run(os.path.join(session, "validation"))[0] == {"epoch_accuracy": [0.75]}


def test_no_tensorboard_callback_writes_nothing(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Choice("units", [2, 3])
    trial = keras_tuner.engine.trial.Trial(hp, trial_id="0")
    assert (
        tensorboard.log_trial_costs([keras.callbacks.History()], trial, {"flops": 1.0}, None) == []
    )
    assert tensorboard.log_evaluated_trial(None, trial, {"flops": 1.0}, None) == []
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "name, location",
    [
        ("val_accuracy", ("validation", "epoch_accuracy")),
        ("loss", ("train", "epoch_loss")),
        ("flops", ("", "flops")),
        ("latency_ms", ("", "latency_ms")),
    ],
)
def test_metric_location(name, location):
    assert tensorboard.metric_location(name) == location


def test_an_objective_over_costs_names_its_accuracy_column():
    reward = objectives.MnasNetReward(target=1e5, cost="flops")
    assert tensorboard._objective_names(reward) == ["val_accuracy", "mnasnet_reward"]
    assert tensorboard.computed_objectives(reward) == ["mnasnet_reward"]
    plain = keras_tuner.Objective("loss", "min")
    assert tensorboard._objective_names(plain) == ["loss"]
    assert tensorboard.computed_objectives([plain, reward]) == ["mnasnet_reward"]
