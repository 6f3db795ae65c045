"""ProxylessNAS: plug-ins and defaults, arguments, checks before training, a search that
trades accuracy for latency, and save / reload / continue. (The collapsed model's TFLite
conversion: tfnas/blocks/rules/binary_gate_test.py.)"""

import json

import keras
import numpy as np
import pytest

import tfnas
from tfnas.blocks.rules.binary_gate import BinaryGateMixture
from tfnas.engine.proxyless_steps import BinaryGateStep, ReinforceStep
from tfnas.latency.testing import synthetic_table
from tfnas.spaces.mobile import MobileSpace, Stage
from tfnas.tuners.proxyless import ProxylessNAS


def _space(**kwargs):
    options = dict(stem_filters=4, stem_strides=1, head_filters=0, stages=[Stage(8, (1, 2))],
                   kernel_sizes=(3,), expansions=(1, 3), se_ratios=(0.0,), joint_ops=True)  # fmt: skip
    return MobileSpace((8, 8, 1), 3, **{**options, **kwargs})


# block0: k3_e1 0.116 ms, k3_e3 0.38 ms; block1: k3_e1 0.2, k3_e3 0.824, skip 0 (ms).
SPACE = _space()
TABLE = synthetic_table(SPACE)


def _search(oracle, directory, name="s", epochs=1, overwrite=True, space=SPACE, **kwargs):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 64)
    tuner = tfnas.Tuner(space, oracle=oracle, directory=str(directory), project_name=name,
                        overwrite=overwrite)  # fmt: skip
    tuner.search(x[:32], y[:32], validation_data=(x[32:], y[32:]), epochs=epochs,
                 batch_size=16, verbose=0, **kwargs)  # fmt: skip
    return tuner


def test_plug_ins_and_the_authors_defaults():
    oracle = ProxylessNAS(latency_table=TABLE, latency_target_ms=0.5, seed=0)
    assert (oracle.regularization, oracle.alpha, oracle.beta, oracle.reg_lambda) == (
        "mul#log", 0.2, 0.3, 0.1)  # fmt: skip
    assert (oracle.arch_learning_rate, oracle.arch_beta_1, oracle.arch_beta_2) == (1e-3, 0.0, 0.999)
    assert (oracle.arch_weight_decay, oracle.arch_update_every, oracle.arch_update_steps) == (
        0.0, 5, 1)  # fmt: skip
    assert (oracle.rl_batch_size, oracle.rl_update_steps_per_epoch, oracle.rl_baseline_decay,
            oracle.rl_tradeoff_ratio) == (10, 300, 0.99, 0.1)  # fmt: skip
    rule = oracle.make_mixing_rule()
    assert type(rule) is BinaryGateMixture and rule.binary_mode == "two" and rule.trains_one_path
    assert rule.init_scale == 1e-3
    step = oracle.make_architecture_step()
    assert isinstance(step, BinaryGateStep) and step.split == "validation"
    assert (step.update_every, step.regularization, step.latency_target_ms) == (5, "mul#log", 0.5)
    reinforce = ProxylessNAS(latency_table=TABLE, latency_target_ms=0.5, gradient="reinforce")
    reinforce.make_mixing_rule()
    assert isinstance(reinforce.make_architecture_step(), ReinforceStep)
    # The authors' 41 frozen epochs of 160, scaled (at least one epoch trains the alphas).
    assert [oracle.warmup(e) for e in (1, 2, 5, 10, 160)] == [0, 1, 1, 3, 41]
    oracle.start_supernet_stage(0, 4)
    assert [oracle.alphas_frozen(e) for e in range(4)] == [True, False, False, False]


@pytest.mark.parametrize("kwargs, message", [
    ({}, "ProxylessNAS needs latency_table.*latency_table=None"),
    ({"latency_table": {"a": 1}}, "latency_table must be a .*LookupTable.*dict"),
    ({"latency_table": "/no/such/table.json"}, "No such latency table file"),
    ({"latency_table": TABLE}, "regularization='mul#log' needs latency_target_ms.*=None"),
    ({"latency_table": TABLE, "regularization": "add#linear"}, "needs latency_target_ms"),
    ({"latency_table": TABLE, "gradient": "reinforce"}, "REINFORCE.*needs latency_target_ms"),
    ({"latency_table": TABLE, "regularization": "mul"}, "regularization must be one of"),
    ({"latency_table": TABLE, "gradient": "rl"}, "gradient must be one of.*gradient='rl'"),
    ({"latency_table": TABLE, "binary_mode": "full_v2"}, "binary_mode"),
    ({"latency_table": TABLE, "latency_target_ms": 0}, "latency_target_ms"),
    ({"latency_table": TABLE, "latency_target_ms": 1, "alpha": 0}, "alpha"),
    ({"latency_table": TABLE, "latency_target_ms": 1, "latency_unit": "s"}, "latency_unit"),
    ({"latency_table": TABLE, "latency_target_ms": 1, "warmup_epochs": -1}, "warmup_epochs"),
    ({"latency_table": TABLE, "latency_target_ms": 1, "arch_update_every": 0},
     "arch_update_every"),
    ({"latency_table": TABLE, "latency_target_ms": 1, "rl_baseline_decay": 2},
     "rl_baseline_decay"),
])  # fmt: skip
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProxylessNAS(**kwargs)


def test_accuracy_only_searches_need_no_target():
    ProxylessNAS(latency_table=TABLE, regularization=None)
    ProxylessNAS(latency_table=TABLE, gradient="reinforce", rl_tradeoff_ratio=0.0)


@pytest.mark.parametrize("kwargs, message", [
    # Built for another space: LookupTable's error, before any training.
    ({"latency_table": synthetic_table(_space(expansions=(1, 6))), "latency_target_ms": 1.0,
      "regularization": "add#linear"}, "lacks .* operation"),
    # Below the fastest architecture (k3_e1 then skip: 0.116 ms).
    ({"latency_table": TABLE, "latency_target_ms": 0.05, "regularization": "add#linear"},
     r"latency_target_ms=0\.05 .*fastest one .* takes 0\.1160 ms"),
    # 'mul#log' of sub-millisecond latencies in ms: NaN or falling; in us it works.
    ({"latency_table": TABLE, "latency_target_ms": 0.5},
     r"'mul#log'.*fastest .* 0\.116 ms.*latency_unit='us'"),
])  # fmt: skip
def test_searches_that_cannot_work_fail_before_training(tmp_path, kwargs, message):
    oracle = ProxylessNAS(seed=0, **kwargs)
    with pytest.raises(ValueError, match=message):
        _search(oracle, tmp_path)
    assert oracle.supernet_epochs_done == 0


def test_search_moves_to_cheap_ops_then_save_reload_and_continue_exactly(tmp_path):
    path = TABLE.save(tmp_path / "table.json")

    def oracle():
        # 'mul#log' in microseconds (the fastest is 116 us), with a steep beta. The "full"
        # gate pass traces faster than "two" (no switch; "two" is tested in the steps' test).
        return ProxylessNAS(latency_table=path, latency_target_ms=0.2, latency_unit="us",
                            beta=6.0, arch_update_every=1, arch_learning_rate=0.25,
                            binary_mode="full", warmup_epochs=0, seed=0,
                            bn_recalibration_batches=0)  # fmt: skip

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    straight = oracle()
    _search(straight, tmp_path, "straight", epochs=2)
    uniform = TABLE.fit["fixed_ms"] + sum(
        float(np.mean(TABLE.candidate_latencies(row["name"]))) for row in TABLE.choices
    )
    history = [h["expected_latency_ms"] for h in straight.history]
    assert history[1] < history[0] < uniform
    assert straight.softmax()["stage0/block1/op"][2] > 0.4  # skip, the free block
    assert straight.predicted_latency_ms() < uniform
    interrupted = oracle()
    with pytest.raises(KeyboardInterrupt):
        _search(interrupted, tmp_path, "resumed", epochs=2, callbacks=[Interrupt()])
    assert interrupted.supernet_epochs_done == 1
    resumed = oracle()
    _search(resumed, tmp_path, "resumed", epochs=2, overwrite=False)
    assert resumed.supernet_epochs_done == 2
    for name, alphas in straight.alphas().items():
        np.testing.assert_allclose(resumed.alphas()[name], alphas, rtol=1e-5, atol=1e-6)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.history[1]["expected_latency_ms"] == pytest.approx(history[1], rel=1e-5)
    trial = list(resumed.trials.values())[0]
    assert trial.status == "COMPLETED" and trial.hyperparameters.values == resumed.derive()
    # The derived architecture is the argmax of alpha.
    for name, p in resumed.softmax().items():
        values = resumed._structure["candidates"][name][int(np.argmax(p))]
        assert resumed.derive()[name] == values[name]
    # The state is JSON (alphas, Adam, history, the table's path) and reloads.
    state = json.loads(json.dumps(resumed.get_state()))
    assert state["differentiable"]["proxylessnas"]["latency_table"] == path
    assert state["differentiable"]["architecture_step"]["optimizer"] is not None
    copy = oracle()
    copy.set_state(state)
    assert copy.alphas() == resumed.alphas() and copy.history == resumed.history
