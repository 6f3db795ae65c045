"""FBNet: arguments, plug-ins, schedules, the latency table, searches, resume."""

import json
import math

import keras
import numpy as np
import pytest

import tfnas
from tfnas.blocks.rules import GumbelMixture
from tfnas.engine import latency_steps, quantization_steps
from tfnas.latency.testing import synthetic_table
from tfnas.spaces.mobile import MobileSpace, Stage
from tfnas.tuners.fbnet import FBNet


def _space(**kwargs):
    options = dict(stem_filters=4, stem_strides=1, head_filters=0, stages=[Stage(8, (1, 2))],
                   kernel_sizes=(3, 5), expansions=(1, 3), se_ratios=(0.0,), joint_ops=True)  # fmt: skip
    return MobileSpace((8, 8, 1), 3, **{**options, **kwargs})


SPACE = _space()
TABLE = synthetic_table(SPACE)  # block latencies 0.1-1.2 ms, skip 0
# The searches: fewer operations (k3_e1, k3_e3; block 1 also skip), so less to trace.
SMALL = _space(kernel_sizes=(3,))
SMALL_TABLE = synthetic_table(SMALL)


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 8, 8, 1)).astype("float32"), rng.integers(0, 3, n)


def _search(oracle, directory, name="s", epochs=1, overwrite=True, space=SPACE, **kwargs):
    x, y = _data()
    tuner = tfnas.Tuner(space, oracle=oracle, directory=str(directory), project_name=name,
                        overwrite=overwrite)  # fmt: skip
    tuner.search(x[:32], y[:32], validation_data=(x[32:], y[32:]), epochs=epochs,
                 batch_size=16, verbose=0, **kwargs)  # fmt: skip
    return tuner


def _uniform_latency_ms(table=TABLE):
    return table.fit["fixed_ms"] + sum(
        float(np.mean(table.candidate_latencies(row["name"]))) for row in table.choices
    )


def test_plug_ins_and_the_papers_defaults():
    oracle = FBNet(latency_table=TABLE, latency_unit="us", seed=0)
    assert (oracle.alpha, oracle.beta, oracle.arch_learning_rate, oracle.arch_weight_decay) == (
        0.2, 0.6, 0.01, 5e-4)  # fmt: skip
    rule = oracle.make_mixing_rule()
    assert type(rule) is GumbelMixture and not rule.hard and rule.temperature == 5.0
    step = oracle.make_architecture_step()
    assert isinstance(step, quantization_steps.CostScaledStep)
    assert isinstance(step.cost, latency_steps.ExpectedLatencyCost)
    # CostScaledStep's `beta * (log Cost)^gamma` is FBNet's `alpha * (log LAT)^beta`.
    assert (step.beta, step.gamma, step.split, step.cost.unit) == (0.2, 0.6, "validation", "us")
    assert step.resample is not None and step.learning_rate == 0.01


def test_temperature_decays_by_exp_minus_0_045_per_paper_epoch():
    oracle = FBNet(latency_table=TABLE)
    assert oracle.temperature_at(0.0) == pytest.approx(5.0)
    # The paper's 90 epochs spread over the search: after E of 90, 5 exp(-0.045 E).
    for epoch in (1, 10, 45, 90):
        assert oracle.temperature_at(epoch / 90) == pytest.approx(5 * math.exp(-0.045 * epoch))
    assert oracle.temperature_at(1.0) == pytest.approx(0.0871, abs=1e-4)


def test_warmup_is_the_papers_share_or_the_given_epochs():
    oracle = FBNet(latency_table=TABLE)
    assert [oracle.warmup(e) for e in (1, 2, 5, 9, 90)] == [0, 0, 1, 1, 10]
    oracle.start_supernet_stage(0, 9)
    assert oracle.alphas_frozen(0) and not oracle.alphas_frozen(1)
    fixed = FBNet(latency_table=TABLE, warmup_epochs=2)
    fixed.start_supernet_stage(0, 4)
    assert [fixed.alphas_frozen(e) for e in range(4)] == [True, True, False, False]
    with pytest.raises(ValueError, match="warmup_epochs=2, epochs=2"):
        fixed.check_epochs(2)


@pytest.mark.parametrize("kwargs, error, message", [
    ({}, ValueError, "FBNet needs latency_table.*latency_table=None"),
    ({"latency_table": {"a": 1}}, ValueError, "latency_table must be a .*LookupTable.*dict"),
    ({"latency_table": "/no/such/table.json"}, ValueError, "No such latency table file"),
    ({"latency_table": TABLE, "alpha": 0.0}, ValueError, "alpha"),
    ({"latency_table": TABLE, "beta": -1.0}, ValueError, "beta"),
    ({"latency_table": TABLE, "latency_target_ms": 0}, ValueError, "latency_target_ms"),
    ({"latency_table": TABLE, "latency_unit": "s"}, ValueError, "latency_unit"),
    ({"latency_table": TABLE, "warmup_epochs": -1}, ValueError, "warmup_epochs"),
    ({"latency_table": TABLE, "temperature": (5.0, 0.0)}, ValueError, "temperature"),
])  # fmt: skip
def test_invalid_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        FBNet(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    # Built for another space: LookupTable's error, before any training.
    ({"latency_table": synthetic_table(_space(expansions=(1, 6))), "latency_unit": "us"},
     "lacks .* operation"),
    ({"latency_table": TABLE, "latency_unit": "us", "latency_target_ms": 0.05},
     r"latency_target_ms=0\.05 .*fastest one .* takes 0\.1160 ms"),
    ({"latency_table": TABLE}, r"log\(LAT\) > 1.*latency_unit='us'"),
])  # fmt: skip
def test_searches_that_cannot_work_fail_before_training(tmp_path, kwargs, message):
    oracle = FBNet(seed=0, **kwargs)
    with pytest.raises(ValueError, match=message):
        _search(oracle, tmp_path)
    assert oracle.supernet_epochs_done == 0


def test_a_steep_beta_moves_the_mass_to_cheap_blocks_and_a_target_filters(tmp_path):
    target = 0.5  # ms; the fastest is 0.116, the slowest 1.204
    oracle = FBNet(latency_table=SMALL_TABLE, latency_unit="us", beta=8.0, alpha=1.0, seed=0,
                   arch_learning_rate=0.1, latency_target_ms=target, max_trials=3,
                   bn_recalibration_batches=0)  # fmt: skip
    _search(oracle, tmp_path, epochs=2, space=SMALL)
    history = [h["expected_latency_ms"] for h in oracle.history]
    uniform = _uniform_latency_ms(SMALL_TABLE)
    assert history[1] < history[0] < uniform
    assert history[1] < 0.85 * uniform  # 4 theta steps (2 per epoch) at lr 0.1
    probabilities = oracle.softmax()["stage0/block1/op"]
    assert int(np.argmax(probabilities)) == 2  # skip, the free block
    assert oracle.predicted_latency_ms() < uniform
    trials = list(oracle.trials.values())
    assert len(trials) == 3 and trials[0].hyperparameters.values == oracle.derive()
    for trial in trials:
        assert SMALL_TABLE.predict(trial.hyperparameters.values) <= target
    slow = {"stage0/block0/op": "k3_e3", "stage0/block1/op": "k3_e3"}  # 1.204 ms
    assert not oracle.is_feasible(slow)
    assert oracle.is_feasible({**slow, "stage0/block1/op": "skip"})  # 0.38 ms


def test_search_save_reload_and_continue_exactly(tmp_path):
    path = SMALL_TABLE.save(tmp_path / "table.json")

    def oracle():
        return FBNet(latency_table=path, latency_unit="us", seed=0, arch_learning_rate=0.05,
                     bn_recalibration_batches=0)  # fmt: skip

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    straight = oracle()
    _search(straight, tmp_path, "straight", epochs=2, space=SMALL)
    interrupted = oracle()
    with pytest.raises(KeyboardInterrupt):
        _search(interrupted, tmp_path, "resumed", epochs=2, callbacks=[Interrupt()], space=SMALL)
    assert interrupted.supernet_epochs_done == 1
    resumed = oracle()
    _search(resumed, tmp_path, "resumed", epochs=2, overwrite=False, space=SMALL)
    assert resumed.supernet_epochs_done == 2
    for name, alphas in straight.alphas().items():
        np.testing.assert_allclose(resumed.alphas()[name], alphas, rtol=1e-5, atol=1e-6)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.history[1]["expected_latency_ms"] == pytest.approx(
        straight.history[1]["expected_latency_ms"], rel=1e-5)  # fmt: skip
    trial = list(resumed.trials.values())[0]
    assert trial.status == "COMPLETED" and trial.hyperparameters.values == resumed.derive()
    # The state is JSON with the table's path (not the table), and reloads.
    state = json.loads(json.dumps(resumed.get_state()))
    assert state["differentiable"]["fbnet"] == {
        "latency_table": path, "latency_target_ms": None, "latency_unit": "us"}  # fmt: skip
    copy = oracle()
    copy.set_state(state)
    assert copy.alphas() == resumed.alphas() and copy.history == resumed.history
