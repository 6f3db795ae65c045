import numpy as np
import pytest
import tensorflow as tf

from tfnas import blocks
from tfnas.engine.asng_steps import LossRankingStep
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
    learned = []
    step = LossRankingStep(
        propose=lambda: [A, B], learn=lambda a, losses: learned.append((a, losses)), split=split
    )
    return rule, supernet, data, (x, y), step, learned


def _loss(rule, supernet, values, x, y):
    rule.set_architecture(values)
    y_pred = supernet(x, training=True)
    return float(supernet.compute_loss(x=x, y=y, y_pred=y_pred, training=False))


def test_losses_of_the_proposed_architectures_on_the_same_next_batch():
    rule, supernet, data, (x, y), step, learned = _setup()
    step.connect(supernet, rule, data, None)
    step.begin_epoch(0)
    norms = batch_norm_layers(supernet)
    moving = [n.moving_mean.numpy().copy() for n in norms]
    step.step(0, 0.0)
    step.step(1, 0.0)
    step.begin_epoch(1)
    step.step(2, 0.5)
    for n, before in zip(norms, moving):
        np.testing.assert_array_equal(n.moving_mean.numpy(), before)  # Left unchanged.
    assert [a for a, _ in learned] == [[A, B]] * 3
    for (_, losses), batch in zip(learned, (slice(0, 4), slice(4, 8), slice(0, 4))):
        expected = [_loss(rule, supernet, v, x[batch], y[batch]) for v in (A, B)]
        assert losses == pytest.approx(expected, rel=1e-5)
    assert learned[0][1][0] != pytest.approx(learned[0][1][1])  # Two different paths.
    assert learned[0][1] == learned[2][1]  # The batches restart every epoch.


def test_non_finite_losses_raise_and_teach_nothing():
    rule, supernet, data, _, step, learned = _setup()
    step.connect(supernet, rule, data, None)
    kernel = supernet.weights[0]
    kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))
    with pytest.raises(FloatingPointError, match=r"ASNGNAS's architecture step at global step 7"):
        step.step(7, 0.0)
    assert learned == []


def test_connect_checks_the_rule_and_the_split():
    rule, supernet, data, _, step, _ = _setup(split="training")
    with pytest.raises(ValueError, match=r"needs training data .* Received: training_data=None"):
        step.connect(supernet, rule, data, None)
    with pytest.raises(ValueError, match=r"built with the rule returned by the oracle"):
        step.connect(supernet, blocks.SinglePath(), data, data)
    with pytest.raises(RuntimeError, match=r"runs after connect"):
        step.step(0, 0.0)
    with pytest.raises(ValueError, match=r"split must be one of \['validation', 'training'\]"):
        LossRankingStep(propose=list, learn=print, split="test")
