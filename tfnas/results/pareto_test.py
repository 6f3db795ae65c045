"""Tests of `tfnas.results.pareto`."""

import json
import types

import keras_tuner
import numpy as np
import pytest
from keras_tuner.engine import trial as trial_module

from tfnas.results.pareto import ParetoPoint, pareto_front, pareto_to_json, plot_pareto

COMPLETED = trial_module.TrialStatus.COMPLETED
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _trial(trial_id, status=COMPLETED, directions=None, **metrics):
    hp = keras_tuner.HyperParameters()
    hp.Choice("op", ["conv", "skip", "pool"])
    hp.values["op"] = {"a": "conv", "b": "skip"}.get(trial_id, "pool")
    trial = trial_module.Trial(hyperparameters=hp, trial_id=trial_id, status=status)
    for name, direction in (directions or {}).items():
        trial.metrics.register(name, direction=direction)
    for name, value in metrics.items():
        if np.isnan(value):
            # `MetricsTracker.update` would warn while taking the best of only NaN.
            trial.metrics.register(name)
            trial.metrics.metrics[name].update(value, step=0)
        else:
            trial.metrics.update(name, value)
    return trial


def _trials():
    return [
        _trial("a", val_accuracy=0.90, latency_ms=10.0, flops=900.0),
        _trial("b", val_accuracy=0.80, latency_ms=5.0, flops=500.0),
        _trial("c", val_accuracy=0.70, latency_ms=2.0, flops=200.0),
        # Dominated by b in (accuracy, latency), the fewest FLOPs of all.
        _trial("d", val_accuracy=0.75, latency_ms=6.0, flops=100.0),
        # Ties b on every metric: both stay on the front.
        _trial("e", val_accuracy=0.80, latency_ms=5.0, flops=500.0),
        # Same accuracy as a, slower: dominated.
        _trial("f", val_accuracy=0.90, latency_ms=12.0, flops=900.0),
        _trial("g", status=trial_module.TrialStatus.FAILED, val_accuracy=0.99, latency_ms=1.0),
        _trial("h", val_accuracy=0.95),
        _trial("i", val_accuracy=float("nan"), latency_ms=0.5, flops=50.0),
    ]


def _ids(points):
    return [p.trial_id for p in points]


def test_two_metric_front_with_ties_and_dominated_points():
    front = pareto_front(_trials())
    assert _ids(front) == ["c", "b", "e", "a"]
    assert front[0].values == {"val_accuracy": 0.70, "latency_ms": 2.0}
    assert front[-1].hyperparameters == {"op": "conv"}


def test_three_metric_front():
    front = pareto_front(_trials(), metrics=("val_accuracy", "latency_ms", "flops"))
    assert _ids(front) == ["c", "d", "b", "e", "a"]
    assert list(front[1].values) == ["val_accuracy", "latency_ms", "flops"]


def test_sources_and_directions():
    trials = _trials()
    oracle = types.SimpleNamespace(trials={t.trial_id: t for t in trials})
    tuner = types.SimpleNamespace(oracle=oracle)
    expected = ["c", "b", "e", "a"]
    for source in (trials, oracle.trials, oracle, tuner):
        assert _ids(pareto_front(source)) == expected
    # Maximizing latency as well: only the most accurate, slowest trials are left.
    assert _ids(pareto_front(trials, directions=("max", "max"))) == ["f"]
    assert _ids(pareto_front(trials, directions={"val_accuracy": "min"})) == ["c"]
    assert _ids(pareto_front(trials, directions=[None, "min"])) == expected
    assert pareto_front([]) == []


def test_direction_recorded_by_trials_is_used():
    # An objective's direction ("max" here) is what the oracle registered for it.
    trials = [
        _trial("a", directions={"reward": "max"}, reward=0.5, flops=10.0),
        _trial("b", directions={"reward": "max"}, reward=0.6, flops=20.0),
        _trial("c", directions={"reward": "max"}, reward=0.4, flops=30.0),
    ]
    assert _ids(pareto_front(trials, metrics=("reward", "flops"))) == ["a", "b"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"metrics": ("val_accuracy",)}, r"2 or 3 metrics, got 1"),
        ({"metrics": ("val_accuracy", "latency_ms", "flops", "loss")}, r"2 or 3 metrics, got 4"),
        ({"metrics": "val_accuracy"}, r"list or tuple of 2 or 3 metric names"),
        ({"metrics": ("flops", "flops")}, r"distinct"),
        ({"directions": ("maximize", "min")}, r"'min' or 'max'. Received: directions="),
        ({"directions": ("max",)}, r"one entry per metric"),
        ({"directions": {"loss": "min"}}, r"not in metrics=.*\['loss'\]"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pareto_front(_trials(), **kwargs)


def test_metric_no_trial_reports():
    with pytest.raises(ValueError, match="No trial reports the metric 'latency'") as info:
        pareto_front(_trials(), metrics=("val_accuracy", "latency"))
    assert "['flops', 'latency_ms', 'val_accuracy']" in str(info.value)
    with pytest.raises(TypeError, match="Trial objects"):
        pareto_front([object()])


def test_to_json():
    points = pareto_front(_trials())
    points.append(ParetoPoint("z", {"val_accuracy": np.float32(0.5)}, {"units": np.int64(8)}))
    records = json.loads(json.dumps(pareto_to_json(points)))
    assert records[0] == {
        "trial_id": "c",
        "values": {"val_accuracy": 0.7, "latency_ms": 2.0},
        "hyperparameters": {"op": "pool"},
    }
    assert records[-1]["hyperparameters"] == {"units": 8}


def _assert_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1000


def test_plot_two_and_three_metrics_and_points(tmp_path):
    trials = _trials()
    two = plot_pareto(trials, tmp_path / "nested" / "front.png", title="digits")
    assert two == str(tmp_path / "nested" / "front.png")
    _assert_png(two)
    three = plot_pareto(
        trials, tmp_path / "front3.png", metrics=("val_accuracy", "latency_ms", "flops")
    )
    _assert_png(three)
    points = pareto_front(trials, metrics=("latency_ms", "flops"))
    _assert_png(plot_pareto(points, tmp_path / "points.png", all_trials=False))
    with pytest.raises(ValueError, match="has no value for \\['val_accuracy'\\]"):
        plot_pareto(points, tmp_path / "bad.png", metrics=("val_accuracy", "flops"))
