import numpy as np
import pytest
import tensorflow as tf

from tfnas import blocks
from tfnas.engine.manas_steps import TrainedPathRewardStep
from tfnas.engine.supernet import batch_norm_layers
from tfnas.engine.testing import build

A = {"op0": "skip", "op1": "conv3x3", "depth": 1}
B = {"op0": "conv1x1", "op1": "skip", "depth": 0}


def _setup(split="validation"):
    rule = blocks.SinglePath()
    supernet = build(blocks.SupernetHyperParameters(rule))
    rng = np.random.default_rng(0)
    x = rng.random((12, 8, 8, 1), dtype="float32")
    y = rng.integers(10, size=12)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    pending = [A, None, B]  # What the strategy has trained and not rewarded, per call.
    learned = []

    def learn(values, reward):
        learned.append((values, reward))
        pending.pop(0)

    step = TrainedPathRewardStep(
        pending=lambda: pending[0] if pending else None, learn=learn, split=split
    )
    return rule, supernet, data, (x, y), step, pending, learned


def _accuracy(rule, supernet, values, x, y):
    rule.set_architecture(values)
    predicted = np.argmax(supernet(x, training=True).numpy(), axis=-1)
    return float(np.mean(predicted == y))


def test_rewards_the_pending_path_with_its_accuracy_on_the_next_batch():
    rule, supernet, data, (x, y), step, pending, learned = _setup()
    step.connect(supernet, rule, data, None)
    step.begin_epoch(0)
    norms = batch_norm_layers(supernet)
    moving = [n.moving_mean.numpy().copy() for n in norms]
    step.step(0, 0.0)  # A, on batch 0.
    assert step.step(1, 0.0) is None and len(learned) == 1  # Nothing pending: no batch used.
    pending[0] = B
    assert step.reward_pending() == learned[-1][1]  # B at the epoch's end, on batch 1.
    assert [v for v, _ in learned] == [A, B]
    step.begin_epoch(1)
    step.step(5, 0.5)  # B again, on batch 0 (the batches restart each epoch).
    for n, before in zip(norms, moving):
        np.testing.assert_array_equal(n.moving_mean.numpy(), before)  # Left unchanged.
    expected = [
        _accuracy(rule, supernet, A, x[:4], y[:4]),
        _accuracy(rule, supernet, B, x[4:8], y[4:8]),
        _accuracy(rule, supernet, B, x[:4], y[:4]),
    ]
    assert [r for _, r in learned] == pytest.approx(expected)
    assert all(r in (0.0, 0.25, 0.5, 0.75, 1.0) for _, r in learned)


def test_no_pending_path_no_batch_consumed():
    rule, supernet, data, _, step, pending, learned = _setup()
    step.connect(supernet, rule, data, None)
    pending[:] = []
    assert step.reward_pending() is None
    assert step._iterator is None and learned == []


def test_non_finite_outputs_raise_and_teach_nothing():
    rule, supernet, data, _, step, _, learned = _setup()
    step.connect(supernet, rule, data, None)
    kernel = supernet.weights[0]
    kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))
    with pytest.raises(FloatingPointError, match=r"MANAS's reward at global step 7 of epoch 1"):
        step.step(7, 0.0)
    assert learned == []


def test_connect_checks_the_rule_and_the_split():
    rule, supernet, data, _, step, _, _ = _setup(split="training")
    with pytest.raises(ValueError, match=r"needs training data .* Received: training_data=None"):
        step.connect(supernet, rule, data, None)
    with pytest.raises(ValueError, match=r"built with the rule returned by the oracle"):
        step.connect(supernet, blocks.SinglePath(), data, data)
    with pytest.raises(RuntimeError, match=r"runs after connect"):
        step.step(0, 0.0)
    with pytest.raises(
        ValueError, match=r"reward_split must be one of \['validation', 'training'\]"
    ):
        TrainedPathRewardStep(pending=dict, learn=print, split="test")
