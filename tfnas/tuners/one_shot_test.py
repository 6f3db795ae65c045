"""The one-shot strategies: their training schedules, and save / reload / continue each."""

import collections
import os
import subprocess
import sys

import keras
import keras_tuner
import numpy as np
import pytest

import tfnas
from tfnas import blocks
from tfnas.engine.testing import build, data

ONE_SHOT = ["spos", "fairnas", "scarlet_nas", "random_weight_sharing", "one_shot"]


def _space_oracle(oracle):
    hp = keras_tuner.HyperParameters()
    build(hp)
    oracle.hyperparameters = hp
    return oracle


class _Recorder:
    def __init__(self):
        self.architectures = []

    def set_architecture(self, values):
        self.architectures.append(dict(values))


def test_fairnas_trains_every_candidate_once_per_step():
    oracle = _space_oracle(tfnas.oracles.FairNAS(seed=0))
    assert oracle.paths_per_step == 3
    rule = _Recorder()
    for path in range(3):
        oracle.prepare_training_step(rule, step=0, path=path, progress=0.0)
    for name in ("op0", "op1"):
        assert sorted(a[name] for a in rule.architectures) == ["conv1x1", "conv3x3", "skip"]
    # The depth choice has 2 candidates: both appear, one of them twice.
    assert set(a["depth"] for a in rule.architectures) == {0, 1}


def test_one_shot_path_dropout_schedule():
    oracle = tfnas.oracles.OneShot(max_drop_rate=0.5, seed=0)
    rule = blocks.PathDropout()
    supernet = build(blocks.SupernetHyperParameters(rule))
    assert supernet is not None
    oracle.prepare_training_step(rule, 0, 0, progress=0.0)
    assert all(
        float(np.sum(rule._masks[n].numpy())) == rule.num_candidates(n) for n in rule.choice_names
    )
    kept = collections.Counter()
    for step in range(200):
        oracle.prepare_training_step(rule, step, 0, progress=0.99)
        for name in rule.choice_names:
            mask = rule._masks[name].numpy()
            assert mask.sum() >= 1
            kept[name] += mask.mean()
    assert 0.45 < kept["op0"] / 200 < 0.7
    with pytest.raises(ValueError, match="max_drop_rate"):
        tfnas.oracles.OneShot(max_drop_rate=1.0)


def test_path_dropout_layer_round_trip_and_tflite():
    from tfnas.blocks.testing import run_layer_test

    run_layer_test(
        lambda: blocks.LayerChoice(
            "op",
            [keras.layers.Conv2D(4, 3, padding="same"), keras.layers.Identity()],
            [{"op": "conv"}, {"op": "skip"}],
            blocks.PathDropout(),
        ),
        (6, 6, 4),
    )


def test_scarlet_skips_are_identity_initialized_projections():
    rule = blocks.rules.ScarletPath()
    supernet = build(blocks.SupernetHyperParameters(rule))
    choices = [c for c in supernet._flatten_layers() if isinstance(c, blocks.LayerChoice)]
    projections = choices[0].scarlet_projections
    assert list(projections) == ["2"]
    kernel = projections["2"].kernel.numpy()
    np.testing.assert_allclose(kernel[0, 0], np.eye(8))
    # Identity-initialized: a skip path computes what the plain skip computes at first.
    rule.set_architecture({"op0": "skip", "op1": "skip", "depth": 0})
    x = np.random.default_rng(0).random((2, 8, 8, 1), dtype="float32")
    choice_input = keras.Model(supernet.inputs, choices[0].input)(x)
    np.testing.assert_allclose(choices[0](choice_input), choice_input, atol=1e-6)
    # ...and the projection is trainable.
    assert any(w is projections["2"].kernel for w in supernet.trainable_weights)


@pytest.mark.parametrize("name", ONE_SHOT)
def test_save_reload_continue(tmp_path, name):
    (x, y), validation = data(128)
    make = lambda trials: tfnas.oracles.get(name)(
        max_trials=trials, seed=2, bn_recalibration_batches=1
    )
    first = tfnas.Tuner(build, oracle=make(2), directory=str(tmp_path), project_name=name)
    first.search(x, y, validation_data=validation, epochs=1, batch_size=64, verbose=0)
    done = {t.trial_id: t.hyperparameters.values for t in first.oracle.trials.values()}
    assert len(done) == 2

    resumed = tfnas.Tuner(
        build, oracle=make(3), directory=str(tmp_path), project_name=name, overwrite=False
    )
    resumed.search(x, y, validation_data=validation, epochs=1, batch_size=64, verbose=0)
    trials = resumed.oracle.trials
    assert len(trials) == 3
    assert {tid: trials[tid].hyperparameters.values for tid in done} == done
    values = [tuple(sorted(t.hyperparameters.values.items())) for t in trials.values()]
    assert len(set(values)) == 3
    assert all(t.status == "COMPLETED" for t in trials.values())


MIRRORED = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import tfnas
from tfnas.engine.testing import build, data
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
(x, y), validation = data(128)
tuner = tfnas.Tuner(build, oracle=tfnas.oracles.SPOS(max_trials=2, seed=0, bn_recalibration_batches=1),
                    directory=sys.argv[1], project_name="mirrored", distribution_strategy=strategy)
tuner.search(x, y, validation_data=validation, epochs=1, batch_size=64, verbose=0)
supernet = tuner.supernet_trainer().supernet
print("replicas", strategy.num_replicas_in_sync, "trials", len(tuner.oracle.trials),
      "mirrored", type(supernet.weights[0].value).__name__)
"""


def test_supernet_trains_under_mirrored_strategy_on_two_cpus(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env={**os.environ},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("replicas 2 trials 2"), last
    assert "Mirrored" in last
