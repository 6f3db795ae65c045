"""The one-shot strategies: their training schedules, and save / reload / continue each."""

import collections
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tfnas
from tfnas import blocks
from tfnas.engine.testing import RuleRecorder, build, data, with_space

ONE_SHOT = ["spos", "fairnas", "scarlet_nas", "random_weight_sharing", "one_shot"]


def test_fairnas_trains_every_candidate_once_per_step():
    oracle = with_space(tfnas.oracles.FairNAS(seed=0))
    assert oracle.paths_per_step == 3
    rule = RuleRecorder()
    for path in range(3):
        oracle.prepare_training_step(rule, step=0, path=path, progress=0.0)
    for name in ("op0", "op1"):
        assert sorted(a[name] for a in rule.architectures) == ["conv1x1", "conv3x3", "skip"]
    # The depth choice has 2 candidates: both appear, one of them twice.
    assert set(a["depth"] for a in rule.architectures) == {0, 1}


def test_one_shot_drops_each_of_k_paths_with_rate_to_the_1_over_k():
    oracle = tfnas.oracles.OneShot(max_drop_rate=0.5, ghost_batches=4, seed=0)
    rule = oracle.make_mixing_rule()
    build(blocks.SupernetHyperParameters(rule))
    assert {n: rule.num_candidates(n) for n in rule.choice_names} == {
        "op0": 3, "op1": 3, "depth": 2
    }  # fmt: skip
    oracle.prepare_training_step(rule, 0, 0, progress=0.0)
    assert all(rule.masks(n).min() == 1.0 for n in rule.choice_names)
    # At 80% of training r = 0.4: each of k paths is dropped with probability 0.4 ** (1/k).
    draws = 800
    dropped = collections.Counter()
    all_dropped = collections.Counter()
    for step in range(draws):
        oracle.prepare_training_step(rule, step, 0, progress=0.8)
        for name in rule.choice_names:
            masks = rule.masks(name)
            assert masks.shape == (4, rule.num_candidates(name))
            dropped[name] += (masks == 0).sum()
            all_dropped[name] += (masks.sum(axis=1) == 0).sum()
    for name, k in (("op0", 3), ("op1", 3), ("depth", 2)):
        frequency = dropped[name] / (draws * 4 * k)
        expected = 0.4 ** (1 / k)
        # The frequency's standard deviation is at most 0.006: 4.5 of them.
        assert abs(frequency - expected) < 0.027, (name, frequency, expected)
        # All k paths together: r itself.
        assert abs(all_dropped[name] / (draws * 4) - 0.4) < 0.04
    assert oracle.drop_probability(3, 0.8) == pytest.approx(0.4 ** (1 / 3))
    with pytest.raises(ValueError, match="max_drop_rate"):
        tfnas.oracles.OneShot(max_drop_rate=1.0)
    with pytest.raises(ValueError, match="ghost_batches must be >= 1. Received: ghost_batches=0"):
        tfnas.oracles.OneShot(ghost_batches=0)


def test_path_dropout_masks_are_per_ghost_batch():
    rule = blocks.PathDropout(ghost_batches=4)
    choice = blocks.LayerChoice(
        "op",
        [keras.layers.Identity(), keras.layers.Rescaling(2.0)],
        [{"op": "skip"}, {"op": "double"}],
        rule,
    )
    x = np.ones((8, 3), dtype="float32")
    choice(x)  # Builds the mask variable.
    rule.set_masks({"op": [[1, 0], [0, 1], [1, 1], [0, 0]]})
    # Examples 2i and 2i + 1 share ghost batch i: skip, double, their mean, nothing.
    np.testing.assert_allclose(choice(x)[:, 0], [1, 1, 2, 2, 1.5, 1.5, 0, 0])
    # A batch of 2: examples 0 and 1 take rows 0 * 4 // 2 and 1 * 4 // 2.
    np.testing.assert_allclose(choice(x[:2])[:, 0], [1, 1.5])
    # One row for the whole batch is broadcast to every ghost batch.
    rule.set_masks({"op": [0, 1]})
    np.testing.assert_allclose(choice(x)[:, 0], [2] * 8)
    with pytest.raises(ValueError, match=r"The mask of choice 'op' must have 2 values"):
        rule.set_masks({"op": [1, 0, 1]})


def test_path_dropout_layer_round_trip_and_tflite():
    from tfnas.blocks.testing import run_layer_test

    run_layer_test(
        lambda: blocks.LayerChoice(
            "op",
            [keras.layers.Conv2D(4, 3, padding="same"), keras.layers.Identity()],
            [{"op": "conv"}, {"op": "skip"}],
            blocks.PathDropout(ghost_batches=2),
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


def _sanity_build(hp):
    from tfnas.tuners import multi_trial_testing as testing

    return testing.sanity_build(hp)


def test_spos_search_is_the_papers_evolution_under_constraints(tmp_path):
    from tfnas.tuners import multi_trial_testing as testing

    oracle = tfnas.oracles.SPOS(
        objective=testing.OBJECTIVE, max_trials=100, population_size=6, top_k=3,
        generations=4, constraints={"flops": 8}, seed=0,
    )  # fmt: skip
    assert oracle.algorithm.population_size == 6 and oracle.algorithm.top_k == 3
    # A cost function as the tuner would set: "flops" = sum of the decisions' values.
    oracle.cost_function = lambda values: {"flops": sum(values[f"d{i}"] for i in range(6))}
    tuner = testing.FakeTuner(oracle=oracle, hypermodel=_sanity_build, directory=str(tmp_path))
    tuner.search(verbose=0)
    values = testing.trial_values(oracle)
    assert len(values) == 6 * 4  # Four generations of six, then STOPPED before max_trials.
    assert all(sum(v.values()) <= 8 for v in values)  # Over-budget candidates never run.
    assert oracle.algorithm.finished
    assert [h["mutation"] + h["crossover"] + h["random"] for h in oracle.algorithm.history] == [
        6
    ] * 4
    aging = tfnas.oracles.SPOS(search="aging", population_size=4, sample_size=2)
    assert type(aging.algorithm).__name__ == "AgingEvolution"
    with pytest.raises(ValueError, match="search must be one of"):
        tfnas.oracles.SPOS(search="nsga2")
