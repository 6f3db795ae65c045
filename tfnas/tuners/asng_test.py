"""ASNGNAS: its training schedule, derivation, bad input, and save / reload / continue."""

import json

import keras_tuner
import pytest

from tfnas.engine import testing as engine_testing
from tfnas.engine.testing import RuleRecorder, with_space
from tfnas.tuners.asng import ASNGNAS


def test_each_batch_trains_two_samples_of_theta():
    oracle = with_space(ASNGNAS(seed=0))
    assert oracle.paths_per_step == 2
    # d = 3 searched decisions (op0, op1: 3 candidates; depth: 2): theta_min = 1/(3 (K-1)).
    assert oracle.asng.theta_mins == pytest.approx([1 / 6, 1 / 6, 1 / 3])
    oracle.asng._theta[0, :3] = [1 / 6, 1 / 6, 2 / 3]  # op0 mostly "skip".
    rule = RuleRecorder()
    asng_rng = json.dumps(oracle.asng.rng.bit_generator.state)
    oracle.prepare_training_step(rule, step=0, path=0, progress=0.0)
    oracle.prepare_training_step(rule, step=0, path=1, progress=0.0)
    assert rule.architectures == oracle._pair  # Path k trains the k-th sample of the pair.
    for step in range(1, 300):
        for path in range(2):
            oracle.prepare_training_step(rule, step=step, path=path, progress=0.0)
    skips = sum(a["op0"] == "skip" for a in rule.architectures) / len(rule.architectures)
    assert abs(skips - 2 / 3) < 0.06
    # The weight paths draw on the training random state, not the theta step's.
    assert json.dumps(oracle.asng.rng.bit_generator.state) == asng_rng
    assert oracle.derive() == {"op0": "skip", "op1": "conv3x3", "depth": 0}
    assert oracle.theta()["op0"] == pytest.approx([1 / 6, 1 / 6, 2 / 3])


def test_theta_learns_from_the_ranking_of_its_own_samples():
    oracle = with_space(ASNGNAS(seed=0))
    step = oracle.make_architecture_step()
    proposed = step.propose()
    assert len(proposed) == 2
    samples = [list(s) for s in oracle._theta_samples]
    assert proposed == [oracle.to_values(s) for s in samples]
    before = oracle.asng.theta
    step.learn(proposed, [1.0, 2.0])  # The first one is better.
    differ = [i for i in range(3) if samples[0][i] != samples[1][i]]
    assert differ  # (seed 0)
    after = oracle.asng.theta
    for i in differ:
        assert after[i][samples[0][i]] > before[i][samples[0][i]]
        assert after[i][samples[1][i]] < before[i][samples[1][i]]
    assert oracle.asng.num_updates == 1
    with pytest.raises(ValueError, match=r"learns from the 2 architectures it proposed"):
        step.learn(proposed[:1], [1.0])


def test_bad_arguments_and_a_space_too_small_for_the_default_margin():
    with pytest.raises(
        ValueError, match=r"theta_split must be one of \['validation', 'training'\]"
    ):
        ASNGNAS(theta_split="test")
    with pytest.raises(ValueError, match=r"alpha must be > 0. Received: alpha=0"):
        ASNGNAS(alpha=0)
    with pytest.raises(ValueError, match=r"lam must be >= 2. Received: lam=1"):
        ASNGNAS(lam=1)
    hp = keras_tuner.HyperParameters()
    hp.Choice("a", ["x", "y"])
    hp.Choice("b", ["x", "y"])
    oracle = ASNGNAS(hyperparameters=hp)
    with pytest.raises(ValueError, match=r"no room with d=2 .*Pass theta_min explicitly"):
        _ = oracle.asng
    oracle = ASNGNAS(hyperparameters=hp, theta_min=0.1)
    assert oracle.asng.theta_mins == [0.1, 0.1]


def _search(tmp_path, name, trials, callbacks=None, overwrite=True):
    oracle = ASNGNAS(max_trials=trials, seed=2, bn_recalibration_batches=1)
    return engine_testing.search(oracle, tmp_path, name, callbacks, overwrite)


def test_interrupted_search_resumes_exactly_and_derives_the_most_likely(tmp_path):
    straight = _search(tmp_path, "straight", trials=2)
    oracle = straight.oracle
    # 3 batches x 2 epochs: one theta step per batch, before its weight step.
    assert oracle.asng.num_updates + oracle.asng.num_skipped == 6
    assert oracle.asng.num_updates >= 3
    assert oracle.asng.theta != [[1 / 3] * 3, [1 / 3] * 3, [1 / 2] * 2]
    assert [h["epoch"] for h in oracle.history] == [0, 1]
    # Two paths per batch, their gradients accumulated into one update per batch.
    assert int(straight.supernet_trainer().supernet.optimizer.iterations) == 6
    trials = list(oracle.trials.values())
    assert trials[0].hyperparameters.values == oracle.derive()
    assert trials[1].hyperparameters.values != trials[0].hyperparameters.values
    assert all(t.status == "COMPLETED" for t in trials)

    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path, "resumed", trials=2, callbacks=[engine_testing.InterruptSupernet()])
    info = json.loads((tmp_path / "resumed" / "supernet" / "supernet.json").read_text())
    assert info["epochs_done"] == 1
    assert info["oracle"]["asng"]["distribution"]["distribution"]["num_updates"] >= 1
    resumed = _search(tmp_path, "resumed", trials=3, overwrite=False)
    # theta depends on the losses only through their ranking: the same, to the last bit.
    assert resumed.oracle.get_state()["asng"] == oracle.get_state()["asng"]
    values = [t.hyperparameters.values for t in resumed.oracle.trials.values()]
    assert values[:2] == [t.hyperparameters.values for t in trials]
    assert len({json.dumps(v, sort_keys=True) for v in values}) == 3


def test_needs_a_space_with_choice_points():
    with pytest.raises(ValueError, match="ASNGNAS found no decision to search"):
        oracle = ASNGNAS()
        oracle.hyperparameters = keras_tuner.HyperParameters()
        _ = oracle.asng
