"""SinglePathNAS: the authors' defaults, the runtime loss, the warm-up, searches, resume."""

import json
import math

import keras
import numpy as np
import pytest

import tfnas
from tfnas.blocks.rules import SuperKernelThresholds
from tfnas.engine import latency_steps
from tfnas.latency.testing import synthetic_table
from tfnas.spaces.mobile import Stage
from tfnas.spaces.nasbench201 import NasBench201Space
from tfnas.spaces.proxyless import ProxylessSpace
from tfnas.tuners.single_path import SinglePathNAS

# Block 0 (stride 2): k{3,5} x e{3,6}; block 1 also skip.
SPACE = ProxylessSpace((8, 8, 1), 3, stem_filters=4, stem_strides=1, head_filters=0,
                       stages=[Stage(4, 1), Stage(8, (1, 2), 2)], kernel_sizes=(3, 5))  # fmt: skip
TABLE = synthetic_table(SPACE)
BLOCKS = ("stage1/block0/op", "stage1/block1/op")


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 8, 8, 1)).astype("float32"), rng.integers(0, 3, n)


def _search(oracle, directory, name="s", epochs=2, overwrite=True, space=SPACE, **kwargs):
    x, y = _data()
    tuner = tfnas.Tuner(space, oracle=oracle, directory=str(directory), project_name=name,
                        overwrite=overwrite)  # fmt: skip
    tuner.search(x[:32], y[:32], validation_data=(x[32:], y[32:]), epochs=epochs,
                 batch_size=8, verbose=0, **kwargs)  # fmt: skip
    return tuner


def _connected_step(oracle):
    """The oracle's rule, supernet and step, connected as the trainer connects them."""
    import tensorflow as tf

    rule = oracle.make_mixing_rule()
    supernet = SPACE.build(tfnas.blocks.SupernetHyperParameters(rule))
    x, y = _data(16)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    oracle.stage_hypermodel(SPACE)
    oracle.on_supernet_built(supernet, data, data)
    step = oracle.make_architecture_step()
    step.connect(supernet, rule, data, data)
    return supernet, rule, step, (x, y)


def test_plug_ins_and_the_authors_defaults():
    oracle = SinglePathNAS(latency_table=TABLE, seed=0)
    assert (oracle.runtime_lambda, oracle.gate_drop_rate, oracle.threshold_learning_rate,
            oracle.arch_weight_decay) == (0.020, 0.4, 0.016, 1e-5)  # fmt: skip
    assert type(oracle.make_mixing_rule()) is SuperKernelThresholds
    step = oracle.make_architecture_step()
    assert isinstance(step, latency_steps.SinglePathStep)
    assert isinstance(step.loss_term, latency_steps.RuntimeLogLoss)
    assert step.split == "training" and step.learning_rate == 0.016
    assert step.make_optimizer is latency_steps.authors_rmsprop
    rmsprop = step.make_optimizer(0.016)
    assert (type(rmsprop).__name__, rmsprop.rho, rmsprop.momentum, rmsprop.epsilon) == (
        "RMSprop", 0.9, 0.9, 1e-3)  # fmt: skip
    # 5 of the authors' 8 epochs (6255 of 10008 steps) are the warm-up.
    assert [oracle.warmup(e) for e in (1, 2, 4, 8, 16)] == [0, 1, 3, 5, 10]
    oracle.start_supernet_stage(0, 8)
    assert [oracle.in_warmup(e) for e in range(8)] == [True] * 5 + [False] * 3
    assert not any(oracle.alphas_frozen(e) for e in range(8))


@pytest.mark.parametrize("kwargs, message", [
    ({}, "SinglePathNAS needs latency_table.*latency_table=None"),
    ({"latency_table": TABLE, "runtime_lambda": 0.0}, "runtime_lambda"),
    ({"latency_table": TABLE, "gate_drop_rate": 1.0}, "gate_drop_rate"),
    ({"latency_table": TABLE, "threshold_learning_rate": -1.0}, "arch_learning_rate"),
    ({"latency_table": TABLE, "latency_target_ms": -1.0}, "latency_target_ms"),
    ({"latency_table": TABLE, "warmup_epochs": -1}, "warmup_epochs"),
])  # fmt: skip
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SinglePathNAS(**kwargs)


def test_runtime_loss_and_warmup_dropout_follow_the_reference(monkeypatch):
    oracle = SinglePathNAS(latency_table=TABLE, seed=0, runtime_lambda=0.5, warmup_epochs=1)
    oracle.start_supernet_stage(0, 2)
    _, rule, step, _ = _connected_step(oracle)
    term = step.loss_term
    sizes = {n: lay.num_thresholds for n, lay in rule.layouts().items()}
    expected_rng = np.random.default_rng(oracle.seed + 1)  # the oracle's training_rng
    step.begin_epoch(0)
    for index in range(3):
        step.step(index, index / 8)
        assert float(term()) == 0.0  # lambda = 0 in the warm-up
        for name, size in sizes.items():
            keep = (expected_rng.random(size) >= 0.4).astype("float32")
            np.testing.assert_array_equal(rule._gate_keep[name].numpy(), keep)
    step.begin_epoch(1)
    step.step(4, 0.5)
    for name in sizes:
        np.testing.assert_array_equal(rule._gate_keep[name].numpy(), np.ones(sizes[name]))
    # 1000 * lambda * log(R), R the table latency of the selected (largest) candidates.
    largest = {name: "k5_e6" for name in BLOCKS}
    latency = TABLE.predict(largest)
    assert float(term()) == pytest.approx(1000 * 0.5 * math.log(latency), rel=1e-5)


def test_a_large_lambda_raises_the_thresholds_of_costly_groups():
    oracle = SinglePathNAS(latency_table=TABLE, seed=0, runtime_lambda=10.0, warmup_epochs=0,
                           threshold_learning_rate=0.01)  # fmt: skip
    oracle.start_supernet_stage(0, 1)
    supernet, rule, step, (x, y) = _connected_step(oracle)
    before = rule.get_alphas()
    step.begin_epoch(0)
    step.step(0, 0.0)
    supernet.train_on_batch(x[:8], y[:8])
    after = rule.get_alphas()
    # Every indicator turns on a costlier group of the synthetic table: each threshold
    # rises (the runtime term dominates the cross-entropy at lambda = 10).
    for name in BLOCKS:
        assert all(a > b for a, b in zip(after[name], before[name])), (name, before, after)


def test_search_selects_by_thresholds_save_reload_and_continue_exactly(tmp_path):
    path = TABLE.save(tmp_path / "table.json")

    def oracle():
        return SinglePathNAS(latency_table=path, seed=0, threshold_learning_rate=0.05,
                             runtime_lambda=0.1, bn_recalibration_batches=0)  # fmt: skip

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    straight = oracle()
    _search(straight, tmp_path, "straight", epochs=3)
    interrupted = oracle()
    with pytest.raises(KeyboardInterrupt):
        _search(interrupted, tmp_path, "resumed", epochs=3, callbacks=[Interrupt()])
    assert interrupted.supernet_epochs_done == 2
    resumed = oracle()
    _search(resumed, tmp_path, "resumed", epochs=3, overwrite=False)
    assert resumed.supernet_epochs_done == 3
    for name, thresholds in straight.alphas().items():
        np.testing.assert_allclose(resumed.alphas()[name], thresholds, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(resumed.margins()[name], straight.margins()[name],
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    # The derived architecture is what the hard indicators select, and the trial.
    derived = resumed.derive()
    for name in BLOCKS:
        names = [c["values"][name] for row in TABLE.choices if row["name"] == name
                 for c in row["candidates"]]  # fmt: skip
        assert names[int(np.argmax(resumed.selection()[name]))] == derived[name]
        assert sum(resumed.distributions()[name]) == pytest.approx(1.0)
    assert resumed.history[-1]["latency_ms"] == pytest.approx(TABLE.predict(derived))
    trial = list(resumed.trials.values())[0]
    assert trial.status == "COMPLETED" and trial.hyperparameters.values == derived
    # The state is JSON and reloads without the supernet.
    state = json.loads(json.dumps(resumed.get_state()))
    copy = oracle()
    copy.set_state(state)
    assert copy.alphas() == resumed.alphas() and copy.derive() == derived
    assert copy.distributions() == resumed.distributions()


def test_a_space_without_super_kernels_fails_before_training(tmp_path):
    space = NasBench201Space((8, 8, 1), 3, channels=4, cells_per_stage=1)
    oracle = SinglePathNAS(latency_table=synthetic_table(space), seed=0)
    with pytest.raises(ValueError, match="MBConv views sharing one set of weights"):
        _search(oracle, tmp_path, space=space)
    assert oracle.supernet_epochs_done == 0
