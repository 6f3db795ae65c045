"""DNAS's cost: per-candidate costs, the expected cost, the multiplicative loss."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas import blocks
from tfnas.blocks.rules import BitWidthMixture
from tfnas.blocks.supernet import SupernetHyperParameters
from tfnas.engine import architecture_steps, quantization_steps


def _supernet(rule):
    hp = SupernetHyperParameters(rule)
    inputs = keras.Input((8, 8, 1))
    conv = blocks.bit_width_choice(
        hp, "c", lambda: keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        weight_bits=[2, 8], activation_bits=[4, 8])  # fmt: skip
    x = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, conv


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 8, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, rng.integers(0, 3, 8))).batch(8)


def test_candidate_costs_are_the_papers():
    model, conv = _supernet(BitWidthMixture(seed=0))
    macs = 8 * 8 * 9 * 1 * 4
    # Candidates: (2, 4), (2, 8), (8, 4), (8, 8).
    np.testing.assert_array_equal(
        quantization_steps.candidate_costs(conv, "bitops"),
        [macs * 8, macs * 16, macs * 32, macs * 64],
    )
    np.testing.assert_array_equal(
        quantization_steps.candidate_costs(conv, "model_size"),
        [36 * 2 + 4 * 32, 36 * 2 + 4 * 32, 36 * 8 + 4 * 32, 36 * 8 + 4 * 32],
    )
    cost = quantization_steps.ExpectedBitCost("bitops")
    cost.connect(model, conv.mixing_rule)
    assert cost.fixed == 4 * 3 * 32 * 32  # the float Dense head
    rule = conv.mixing_rule
    rule.set_alphas({"c": [1.0, 0.0, -1.0, 2.0]})
    rule.set_noise({"c": [0.0, 0.5, 0.0, 0.0]})
    rule.set_temperature(2.0)
    z = np.array([1.0, 0.5, -1.0, 2.0]) / 2.0
    m = np.exp(z) / np.exp(z).sum()
    expected = cost.fixed + (m * [macs * 8, macs * 16, macs * 32, macs * 64]).sum()
    assert float(cost.expected_cost()) == pytest.approx(expected, rel=1e-5)


def test_the_alpha_loss_is_cross_entropy_times_beta_log_cost_to_the_gamma():
    model, conv = _supernet(BitWidthMixture(seed=0))
    rule = conv.mixing_rule
    step = quantization_steps.CostScaledStep(
        cost=quantization_steps.ExpectedBitCost("bitops"), beta=0.3, gamma=0.7,
        learning_rate=0.1, beta_1=0.9, beta_2=0.999, weight_decay=0.0)  # fmt: skip
    data = _data()
    step.connect(model, rule, data, data)
    x, y = next(iter(data))
    ce = float(architecture_steps.FirstOrderStep._loss(step, x, y))
    factor = 0.3 * math.log(float(step.cost.expected_cost())) ** 0.7
    assert float(step._loss(x, y)) == pytest.approx(ce * factor, rel=1e-4)


def test_a_steep_cost_pushes_theta_to_the_cheapest_precision():
    model, conv = _supernet(BitWidthMixture(seed=0, temperature=1.0))
    rule = conv.mixing_rule
    step = quantization_steps.CostScaledStep(
        cost=quantization_steps.ExpectedBitCost("bitops"), beta=1.0, gamma=4.0,
        learning_rate=0.05, beta_1=0.9, beta_2=0.999, weight_decay=0.0)  # fmt: skip
    data = _data()
    step.connect(model, rule, data, data)
    step.begin_epoch(0)
    for i in range(30):
        step.step(i, 0.0)
    alphas = rule.get_alphas()["c"]
    # The 2-bit-weight edges (8 and 16 bits x MACs) overtake the 8-bit ones (32, 64).
    assert min(alphas[:2]) > max(alphas[2:])
    assert int(np.argmax(alphas)) == 0


def test_cost_metric_and_cost_below_e_are_refused():
    with pytest.raises(ValueError, match="Received: cost='flops'"):
        quantization_steps.ExpectedBitCost("flops")
    model, conv = _supernet(BitWidthMixture(seed=0))
    step = quantization_steps.CostScaledStep(
        cost=quantization_steps.ExpectedBitCost("bitops"), beta=1.0, gamma=1.0,
        learning_rate=0.1, beta_1=0.9, beta_2=0.999, weight_decay=0.0)  # fmt: skip
    step.cost.fixed = 0.0
    step.cost.connect = lambda supernet, rule: setattr(
        step.cost, "candidate_costs", [("c", np.array([1.0, 2.0]))]
    )  # noqa: E501
    with pytest.raises(ValueError, match="log\\(cost\\) > 1"):
        step.connect(model, conv.mixing_rule, _data(), _data())
