"""SMASH: random paths on a hypernetwork supernet, candidates ranked by the SMASH score."""

import json

import keras
import numpy as np
import pytest

from tfnas import blocks
from tfnas.blocks.rules.hypernetwork import HyperNetworkPath
from tfnas.engine import testing as engine_testing
from tfnas.engine.testing import RuleRecorder, with_space
from tfnas.tuners.smash import SMASH


def test_trains_a_seeded_uniform_random_path_per_step_with_the_hypernetwork_rule():
    oracle = with_space(SMASH(generate="all", hidden_units=16, seed=3))
    rule = oracle.make_mixing_rule()
    assert isinstance(rule, HyperNetworkPath) and rule.trains_one_path
    assert rule.get_config() == {"generate": "all", "hidden_units": 16, "negative_slope": 0.02}
    recorders = []
    for _ in range(2):
        same = with_space(SMASH(seed=3))
        recorder = RuleRecorder()
        for step in range(200):
            same.prepare_training_step(recorder, step, 0, step / 200)
        recorders.append(recorder.architectures)
    assert recorders[0] == recorders[1]  # Seeded.
    ops = [a["op0"] for a in recorders[0]]
    for op in ("conv3x3", "conv1x1", "skip"):
        assert 40 < ops.count(op) < 95  # Uniform: 66.7 expected, sd 6.7.


def _search(tmp_path, name, trials, callbacks=None, overwrite=True):
    oracle = SMASH(max_trials=trials, generate="all", seed=2, bn_recalibration_batches=1)
    return engine_testing.search(oracle, tmp_path, name, callbacks, overwrite)


def _scores(tuner):
    return [
        (t.hyperparameters.values, t.metrics.get_last_value("val_accuracy"))
        for t in tuner.oracle.trials.values()
    ]


def test_interrupted_search_resumes_exactly_and_exports_the_best(tmp_path):
    straight = _search(tmp_path, "straight", trials=3)
    scores = _scores(straight)
    assert len(scores) == 3 and len({json.dumps(v, sort_keys=True) for v, _ in scores}) == 3
    assert all(t.status == "COMPLETED" for t in straight.oracle.trials.values())
    supernet = straight.supernet_trainer().supernet
    heads = [w for w in supernet.trainable_weights if "hyper_head" in w.path]
    assert heads  # The hypernetwork is part of the trained supernet.

    # The best model is plain and computes its SMASH score.
    best_trial = straight.oracle.get_best_trials(1)[0]
    best = straight.get_best_models(1)[0]
    assert {type(layer).__module__.split(".")[0] for layer in best._flatten_layers()} == {"keras"}
    (_, _), (vx, vy) = engine_testing.data(96)
    accuracy = best.evaluate(vx, vy, return_dict=True, verbose=0)["accuracy"]
    assert accuracy == pytest.approx(best_trial.metrics.get_last_value("val_accuracy"), abs=1e-6)
    # SMASH's last step, as documented: the best architecture trained from scratch.
    (x, y), _ = engine_testing.data(96)
    retrained, history = straight.retrain(None, x, y, epochs=1, batch_size=32, verbose=0)
    assert len(history.history["loss"]) == 1
    assert not any(w.path.count("hyper") for w in retrained.weights)

    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path, "resumed", trials=3, callbacks=[engine_testing.InterruptSupernet()])
    info = json.loads((tmp_path / "resumed" / "supernet" / "supernet.json").read_text())
    assert info["epochs_done"] == 1
    resumed = _search(tmp_path, "resumed", trials=3, overwrite=False)
    assert _scores(resumed) == scores  # Same candidates, same SMASH scores.
    assert (
        resumed.oracle.get_state()["weight_sharing"]
        == straight.oracle.get_state()["weight_sharing"]
    )
    resumed_supernet = resumed.supernet_trainer().supernet
    # The hypernetwork and the free weights (generated kernels only hold the last export).
    for a, b in zip(supernet.trainable_weights, resumed_supernet.trainable_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_rule_generates_the_paths_kernels_inside_the_search_space():
    rule = SMASH(seed=0).make_mixing_rule()
    supernet = engine_testing.build(blocks.SupernetHyperParameters(rule))
    rule.set_architecture({"op0": "conv1x1", "op1": "skip", "depth": 0})
    x = np.zeros((2, 8, 8, 1), dtype="float32")
    assert keras.ops.convert_to_numpy(supernet(x)).shape == (2, 10)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match=r"generate must be one of \['1x1', 'all'\]"):
        SMASH(generate="3x3")
    with pytest.raises(ValueError, match="Received: hidden_units=0"):
        SMASH(hidden_units=0)
    with pytest.raises(ValueError, match="Received: negative_slope=1.5"):
        SMASH(negative_slope=1.5)
