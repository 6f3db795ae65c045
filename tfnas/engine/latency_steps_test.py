"""FBNet's latency cost: the expected latency, the loss factor and its gradient, checks."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfnas.blocks.rules import GumbelMixture
from tfnas.blocks.supernet import SupernetHyperParameters
from tfnas.engine import architecture_steps, latency_steps, quantization_steps
from tfnas.latency.testing import synthetic_table
from tfnas.spaces.mobile import MobileSpace, Stage


def _space(**kwargs):
    options = dict(stem_filters=4, stem_strides=1, head_filters=0, stages=[Stage(8, (1, 2))],
                   kernel_sizes=(3, 5), expansions=(1, 3), se_ratios=(0.0,), joint_ops=True)  # fmt: skip
    return MobileSpace((8, 8, 1), 3, **{**options, **kwargs})


SPACE = _space()
TABLE = synthetic_table(SPACE, fixed_ms=0.05)  # block latencies 0.1-1.2 ms, skip 0


def _supernet(space=SPACE):
    rule = GumbelMixture(seed=0, temperature=5.0)
    return rule, space.build(SupernetHyperParameters(rule))


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 8, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, rng.integers(0, 3, 8))).batch(8)


def _step(rule, model, alpha=0.2, beta=0.6, unit="us"):
    step = quantization_steps.CostScaledStep(
        cost=latency_steps.ExpectedLatencyCost(TABLE, unit=unit), beta=alpha, gamma=beta,
        learning_rate=0.01, beta_1=0.9, beta_2=0.999, weight_decay=0.0)  # fmt: skip
    step.connect(model, rule, _data(), _data())
    return step


def _set_sample(rule, alphas, noise, tau):
    rule.set_alphas(alphas)
    rule.set_noise(noise)
    rule.set_temperature(tau)


ALPHAS = {"stage0/block0/op": [0.5, -1.0, 0.2, 1.0],
          "stage0/block1/op": [0.0, 1.5, -0.5, 0.3, 0.7]}  # fmt: skip
NOISE = {"stage0/block0/op": [0.1, 0.0, -0.3, 0.2],
         "stage0/block1/op": [0.0, -0.2, 0.4, 0.0, 0.1]}  # fmt: skip


def test_expected_latency_is_the_relaxed_weights_times_the_table():
    rule, model = _supernet()
    cost = latency_steps.ExpectedLatencyCost(TABLE, unit="us")
    cost.connect(model, rule)
    _set_sample(rule, ALPHAS, NOISE, 2.0)
    by_hand = 0.05  # the fixed term, ms
    for name, latencies in [("stage0/block0/op", [0.116, 0.38, 0.18, 0.572]),
                            ("stage0/block1/op", [0.2, 0.824, 0.328, 1.208, 0.0])]:  # fmt: skip
        z = (np.array(ALPHAS[name]) + NOISE[name]) / 2.0
        m = np.exp(z) / np.exp(z).sum()
        by_hand += float((m * latencies).sum())
    assert float(cost.expected_cost()) == pytest.approx(1000 * by_hand, rel=1e-5)
    assert cost.fixed == pytest.approx(50.0) and cost.metric == "latency_us"
    np.testing.assert_allclose(dict(cost.candidate_costs)["stage0/block1/op"],
                               [200, 824, 328, 1208, 0], rtol=1e-9)  # fmt: skip


def test_the_loss_is_cross_entropy_times_alpha_log_latency_to_the_beta():
    rule, model = _supernet()
    step = _step(rule, model, alpha=0.2, beta=0.6)
    _set_sample(rule, ALPHAS, NOISE, 2.0)
    x, y = next(iter(_data()))
    latency = float(step.cost.expected_cost())
    factor = 0.2 * math.log(latency) ** 0.6
    assert float(step.cost_factor()) == pytest.approx(factor, rel=1e-5)
    ce = float(architecture_steps.FirstOrderStep._loss(step, x, y))
    assert float(step._loss(x, y)) == pytest.approx(ce * factor, rel=1e-4)


def test_the_factor_gradient_in_theta_matches_finite_differences():
    rule, model = _supernet()
    step = _step(rule, model, alpha=0.2, beta=0.6)
    _set_sample(rule, ALPHAS, NOISE, 2.0)
    variables = rule.alpha_variables
    with tf.GradientTape() as tape:
        factor = step.cost_factor()
    gradients = [g.numpy() for g in tape.gradient(factor, [v.value for v in variables])]
    names = list(rule.get_alphas())
    eps = 1e-2
    for name, variable, gradient in zip(names, variables, gradients):
        assert variable.shape == (len(ALPHAS[name]),)
        for k in range(len(ALPHAS[name])):
            values = []
            for sign in (1.0, -1.0):
                shifted = {**ALPHAS, name: list(np.add(ALPHAS[name], np.eye(len(gradient))[k]
                                                       * sign * eps))}  # fmt: skip
                rule.set_alphas(shifted)
                values.append(float(step.cost_factor()))
            assert gradient[k] == pytest.approx((values[0] - values[1]) / (2 * eps),
                                                rel=2e-2, abs=1e-6)  # fmt: skip
        rule.set_alphas(ALPHAS)
    # The factor rises with latency: a slower candidate's theta gets a positive gradient.
    block1 = gradients[names.index("stage0/block1/op")]
    assert block1[3] > 0 > block1[4]  # k5_e3 (the slowest) vs skip (free)


def test_a_steep_beta_pushes_theta_to_cheap_blocks():
    rule, model = _supernet()
    step = _step(rule, model, alpha=1.0, beta=6.0)
    step.learning_rate = 0.1
    step.begin_epoch(0)
    sampling = architecture_steps.GumbelSampling(lambda: np.random.default_rng(0), lambda p: 5.0)
    step.resample = sampling
    for i in range(20):
        step.step(i, 0.0)
    alphas = rule.get_alphas()["stage0/block1/op"]
    assert int(np.argmax(alphas)) == 4  # skip: 0 ms
    assert alphas[4] > alphas[0] > alphas[3]  # skip > k3_e1 > k5_e3 (the slowest)


def test_fastest_latency_and_target_check():
    assert TABLE.fastest_architecture()[0] == pytest.approx(0.05 + 0.116 + 0.0)
    TABLE.check_target(0.2)
    with pytest.raises(ValueError, match=r"latency_target_ms=0\.1 .*takes 0\.1660 ms"):
        TABLE.check_target(0.1)


def test_log_latency_at_most_one_is_refused_naming_latency_unit():
    rule, model = _supernet()
    with pytest.raises(ValueError, match=r"log\(LAT\) > 1.*0\.166 ms.*latency_unit='us'"):
        _step(rule, model, unit="ms")
    with pytest.raises(ValueError, match="latency_unit must be one of"):
        latency_steps.ExpectedLatencyCost(TABLE, unit="s")


def test_a_table_of_another_space_or_with_depth_choices_is_refused():
    rule, model = _supernet()
    other = synthetic_table(_space(expansions=(1, 6)))
    with pytest.raises(ValueError, match="does not describe this supernet"):
        latency_steps.ExpectedLatencyCost(other, unit="us").connect(model, rule)
    depths = _space(joint_ops=False)
    rule, model = _supernet(depths)
    with pytest.raises(ValueError, match="run under depth choices.*joint_ops=True"):
        latency_steps.ExpectedLatencyCost(synthetic_table(depths), unit="us").connect(model, rule)
