"""MANAS: its rounds, derivation, bad input, and save / reload / continue."""

import json

import keras_tuner
import pytest

from tfnas.engine import testing as engine_testing
from tfnas.engine.testing import RuleRecorder, with_space
from tfnas.tuners.manas import MANAS


def test_each_batch_trains_the_agents_sample_and_rewards_it_once():
    oracle = with_space(MANAS(seed=0))
    assert oracle.paths_per_step == 1
    assert oracle.agents.categories == [3, 3, 2]  # op0, op1, depth: one agent each.
    rule = RuleRecorder()
    step = oracle.make_architecture_step()
    assert step.pending() is None
    oracle.prepare_training_step(rule, step=0, path=0, progress=0.0)
    played = list(oracle._played)
    assert rule.architectures == [oracle.to_values(played)]
    assert step.pending() == rule.architectures[0]  # Waits for its reward.
    losses = list(oracle.agents.cumulative_losses)
    step.learn(rule.architectures[0], 0.25)
    assert oracle._played is None and oracle.agents.rounds == 1
    # EXP3: each agent's played action gained (1 - 0.25) / p, p = 1 / K.
    offsets = [0, 3, 6]
    for i, (k, a) in enumerate(zip([3, 3, 2], played)):
        assert oracle.agents.cumulative_losses[offsets[i] + a] == pytest.approx(
            losses[offsets[i] + a] + 0.75 * k
        )
    with pytest.raises(ValueError, match=r"learns from the path it trained last"):
        step.learn(rule.architectures[0], 0.5)


def test_derives_the_argmax_of_the_agents_distributions():
    oracle = with_space(MANAS(seed=0))
    rule = RuleRecorder()
    step = oracle.make_architecture_step()
    for t in range(300):
        oracle.prepare_training_step(rule, step=t, path=0, progress=0.0)
        values = rule.architectures[-1]
        # "skip" in op0 and depth 1 always earn more.
        step.learn(values, 0.2 + 0.4 * (values["op0"] == "skip") + 0.4 * (values["depth"] == 1))
    distributions = oracle.distributions()
    assert distributions["op0"][2] > 0.8 and distributions["depth"][1] > 0.8
    derived = oracle.derive()
    assert derived["op0"] == "skip" and derived["depth"] == 1
    best_op1 = ["conv3x3", "conv1x1", "skip"][max(range(3), key=distributions["op1"].__getitem__)]
    assert derived["op1"] == best_op1


def test_least_squares_variant_derives_from_the_fitted_values():
    oracle = with_space(MANAS(variant="least_squares", seed=0))
    rule = RuleRecorder()
    step = oracle.make_architecture_step()
    for t in range(60):
        oracle.prepare_training_step(rule, step=t, path=0, progress=0.0)
        values = rule.architectures[-1]
        step.learn(values, 0.1 + 0.5 * (values["op1"] == "conv1x1") + 0.2 * values["depth"])
    assert oracle.agents.probabilities()[0] == pytest.approx([1 / 3] * 3)  # Uniform.
    assert oracle.derive()["op1"] == "conv1x1"
    assert oracle.derive()["depth"] == 1
    assert oracle.distributions()["op1"] == [0.0, 1.0, 0.0]


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"variant must be one of \['exp3', 'least_squares'\]"):
        MANAS(variant="ls")
    with pytest.raises(
        ValueError, match=r"reward_split must be one of \['validation', 'training'\]"
    ):
        MANAS(reward_split="test")
    with pytest.raises(ValueError, match=r"learning_rate must be > 0. Received: learning_rate=-1"):
        MANAS(learning_rate=-1)
    with pytest.raises(ValueError, match=r"exploration must be .*Received: exploration=1.5"):
        MANAS(exploration=1.5)
    with pytest.raises(ValueError, match="MANAS found no decision to search"):
        oracle = MANAS()
        oracle.hyperparameters = keras_tuner.HyperParameters()
        _ = oracle.agents


def _search(tmp_path, name, trials, callbacks=None, overwrite=True):
    oracle = MANAS(max_trials=trials, seed=2, bn_recalibration_batches=1)
    return engine_testing.search(oracle, tmp_path, name, callbacks, overwrite)


def test_interrupted_search_resumes_exactly_and_derives_the_argmax(tmp_path):
    straight = _search(tmp_path, "straight", trials=2)
    oracle = straight.oracle
    # 3 batches x 2 epochs: one round per batch, each path rewarded once after its step.
    assert oracle.agents.rounds == 6 and oracle._played is None
    assert [h["epoch"] for h in oracle.history] == [0, 1]
    assert [h["rounds"] for h in oracle.history] == [3, 6]
    assert int(straight.supernet_trainer().supernet.optimizer.iterations) == 6
    assert any(loss > 0 for loss in oracle.agents.cumulative_losses)
    trials = list(oracle.trials.values())
    assert trials[0].hyperparameters.values == oracle.derive()
    assert trials[1].hyperparameters.values != trials[0].hyperparameters.values
    assert all(t.status == "COMPLETED" for t in trials)

    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path, "resumed", trials=2, callbacks=[engine_testing.InterruptSupernet()])
    info = json.loads((tmp_path / "resumed" / "supernet" / "supernet.json").read_text())
    assert info["epochs_done"] == 1
    assert info["oracle"]["manas"]["agents"]["agents"]["rounds"] == 3
    assert info["oracle"]["manas"]["played"] is None  # No round spans the checkpoint.
    resumed = _search(tmp_path, "resumed", trials=3, overwrite=False)
    # The rewards are accuracies of whole batches: the agents' state is the same to the bit.
    assert resumed.oracle.get_state()["manas"] == oracle.get_state()["manas"]
    values = [t.hyperparameters.values for t in resumed.oracle.trials.values()]
    assert values[:2] == [t.hyperparameters.values for t in trials]
    assert len({json.dumps(v, sort_keys=True) for v in values}) == 3
