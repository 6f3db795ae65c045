"""ProxylessNAS's steps: the binary-gate gradient, the rescaling, the latency loss,
REINFORCE, the schedules, and the steps on a tiny supernet."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas import blocks
from tfnas.engine import proxyless_steps
from tfnas.engine.proxyless_steps import (
    BinaryGateStep,
    ReinforceStep,
    check_regularization,
    gate_alpha_gradient,
    latency_loss,
    reinforce_gradient,
    rescale_two,
    rl_update_schedule,
)
from tfnas.latency.testing import synthetic_table
from tfnas.tuners.differentiable_testing import (
    Connected,
    classification_data,
    supernet,
    two_choices,
)
from tfnas.tuners.proxyless import ProxylessNAS

# Dense(8) on 8 features (72 parameters): 0.72 ms; skip 0; fixed 2 ms. Fastest 2 ms.
TABLE = synthetic_table(two_choices, ms_per_parameter=0.01, fixed_ms=2.0)


def _softmax(z):
    e = np.exp(z - np.max(z))
    return e / e.sum()


@pytest.mark.parametrize("involved", [[3, 1], [0, 1, 2, 3, 4]])
def test_gate_gradient_is_the_gradient_of_the_expected_loss(involved):
    # With L_j the loss when gate j is the active one (linear in the gate: L_j = c_j),
    # the expected loss over the involved candidates is f(alpha) = sum_j p_j c_j,
    # p = softmax(alpha[involved]); the BinaryConnect formula is its exact gradient.
    rng = np.random.default_rng(0)
    alpha = rng.normal(size=5).astype("float32")
    c = rng.normal(size=5).astype("float32")

    def expected_loss(a):
        return float(_softmax(a[involved]) @ c[involved])

    h = 1e-3
    numeric = np.array([
        (expected_loss(alpha + h * e) - expected_loss(alpha - h * e)) / (2 * h)
        for e in np.eye(5, dtype="float64")
    ])  # fmt: skip
    gradient = keras.ops.convert_to_numpy(
        gate_alpha_gradient(c, alpha, np.asarray(involved, "int32"))
    )
    np.testing.assert_allclose(gradient, numeric, rtol=1e-3, atol=1e-5)
    others = [i for i in range(5) if i not in involved]
    assert np.all(gradient[others] == 0) and np.all(gradient[involved] != 0)


def test_gate_gradient_by_hand():
    # alpha = (0, 0): p = (1/2, 1/2); dL/dg = (1, 0) gives +1/4 and -1/4.
    gradient = gate_alpha_gradient(np.array([0.0, 0.0, 1.0, 0.0], "float32"),
                                   np.zeros(4, "float32"), np.array([2, 0], "int32"))  # fmt: skip
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gradient), [-0.25, 0, 0.25, 0])


def test_rescaling_keeps_the_unsampled_probabilities_and_the_pairs_total():
    old = np.array([0.3, -0.2, 1.0, 0.1, -0.7], "float32")
    new = old.copy()
    new[[1, 3]] += [0.4, -0.1]  # an Adam step on the two involved candidates
    rescaled = keras.ops.convert_to_numpy(rescale_two(new, old, np.array([1, 3], "int32")))
    before, after = _softmax(old), _softmax(rescaled)
    # The authors' invariant: sum exp over the involved alphas is unchanged, so every
    # other candidate's probability is exactly what it was, and so is the pair's total...
    np.testing.assert_allclose(after[[0, 2, 4]], before[[0, 2, 4]], rtol=1e-6)
    assert after[[1, 3]].sum() == pytest.approx(before[[1, 3]].sum(), rel=1e-6)
    assert np.exp(rescaled[[1, 3]]).sum() == pytest.approx(np.exp(old[[1, 3]]).sum(), rel=1e-6)
    # ...while the step's change of the pair's relative probability stays.
    ratio = after[1] / after[3]
    assert ratio == pytest.approx(math.exp(new[1] - new[3]), rel=1e-5)
    np.testing.assert_array_equal(rescaled[[0, 2, 4]], old[[0, 2, 4]])


def test_latency_loss_values():
    ce, lat, ref = 2.0, 40.0, 80.0
    value = latency_loss(ce, lat, regularization="mul#log", reference=ref, alpha=0.2, beta=0.3)
    assert float(value) == pytest.approx(0.2 * 2.0 * (math.log(40) / math.log(80)) ** 0.3)
    value = latency_loss(ce, lat, regularization="add#linear", reference=ref, reg_lambda=0.1)
    assert float(value) == pytest.approx(2.0 + 0.1 * (40 - 80) / 80)  # 1.95
    assert latency_loss(ce, lat, regularization=None, reference=None) == 2.0
    # 'mul#log' grows with the latency when both are > 1.
    slower = latency_loss(ce, 60.0, regularization="mul#log", reference=ref)
    assert float(slower) > float(latency_loss(ce, lat, regularization="mul#log", reference=ref))


def test_configurations_whose_factor_is_nan_or_falling_are_refused():
    # Both < 1 ms: both logs negative, the ratio falls as the latency rises.
    with pytest.raises(ValueError, match=r"mul#log.*fastest .* 0\.4 ms.*latency_unit='us'"):
        check_regularization("mul#log", 0.4, 0.8, "ms")
    with pytest.raises(ValueError, match="mul#log"):
        check_regularization("mul#log", 0.5, 1.0, "ms")  # log(ref) = 0
    with pytest.raises(ValueError, match="latency_target_ms > 0.*latency_target_ms=None"):
        check_regularization("add#linear", 0.4, None)
    check_regularization("mul#log", 400.0, 800.0, "us")  # the same in microseconds
    check_regularization("add#linear", 0.4, 0.8, "ms")  # unit-free
    check_regularization(None, 0.4, None)


def test_reinforce_gradient_sign_and_baseline():
    p = {"op": [0.5, 0.5], "other": [0.25, 0.75]}
    samples = [{"op": 0, "other": 1}, {"op": 1, "other": 1}]
    rewards = [1.0, 0.0]  # choosing op 0 is rewarded
    gradients, baseline = reinforce_gradient(p, samples, rewards, None, 0.99)
    assert baseline == 0.5  # the first baseline is the mean reward
    # mean_j (R_j - b) (p - onehot): ((0.5)(p - e0) + (-0.5)(p - e1)) / 2 = (e1 - e0) / 4.
    np.testing.assert_allclose(gradients["op"], [-0.25, 0.25])
    np.testing.assert_allclose(gradients["other"], [0.0, 0.0])  # both picked the same
    # Adam minimizes: alpha_0 rises. The baseline then moves by 0.99 of the difference.
    _, baseline = reinforce_gradient(p, samples, [1.0, 1.0], 0.5, 0.99)
    assert baseline == pytest.approx(0.5 + 0.99 * 0.5)


def test_rl_update_schedule_is_the_authors():
    assert rl_update_schedule(4, 300) == {0: 1, 1: 1, 2: 1, 3: 1}
    assert rl_update_schedule(10, 3) == {3: 1, 6: 1, 9: 1}  # segments of 4, 3, 3


def _connected(**kwargs):
    options = dict(latency_table=TABLE, latency_target_ms=3.0, seed=0, warmup_epochs=0,
                   arch_update_every=1, arch_learning_rate=0.05)  # fmt: skip
    oracle = ProxylessNAS(**{**options, **kwargs})
    rule, model = supernet(oracle, two_choices)
    _, _, data = classification_data(n=32, batch=8)
    return Connected(oracle, rule, model, data, data), oracle, rule


def _three(hp):
    """Dense(8), then one choice of three candidates (two dense layers and a skip)."""
    inputs = keras.Input((8,))
    x = keras.layers.Dense(8)(inputs)
    x = blocks.layer_choice(hp, "op", {
        "dense": lambda: keras.layers.Dense(8, activation="relu"),
        "tanh": lambda: keras.layers.Dense(8, activation="tanh"),
        "skip": lambda: keras.layers.Identity(),
    })(x)  # fmt: skip
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_one_update_is_adam_on_the_gate_gradient_then_the_rescaling():
    table = synthetic_table(_three, ms_per_parameter=0.01, fixed_ms=2.0)
    oracle = ProxylessNAS(latency_table=table, latency_target_ms=3.0, seed=0, warmup_epochs=0,
                          arch_update_every=1, arch_learning_rate=0.05,
                          regularization="add#linear", reg_lambda=1.0)  # fmt: skip
    rule, model = supernet(oracle, _three)
    x, y, data = classification_data(n=8, batch=8)
    step = Connected(oracle, rule, model, data, data).architecture_step
    assert isinstance(step, BinaryGateStep) and (step.beta_1, step.learning_rate) == (0.0, 0.05)
    rule.set_alphas({"op": [0.3, -0.4, 0.1]})
    active, inactive = rule.sample_gates(np.random.default_rng(3))["op"]
    involved = np.array([active, inactive], "int32")
    out = [i for i in range(3) if i not in involved][0]
    old = np.array(rule.get_alphas()["op"], "float32")
    # The expected gradient, by hand: dL/dg of the gate pass through the formula, plus
    # the latency term's own gradient in alpha (through the two gate probabilities).
    alpha, gates = rule.alpha_variables[0], rule.gate_variables[0]
    with tf.GradientTape() as tape:
        tape.watch(gates.value)
        with rule.gate_pass():
            ce = model.compute_loss(x=x, y=y, y_pred=model(x, training=True), training=True)
        loss = step.loss(ce)
    dg, direct = tape.gradient(loss, [gates.value, alpha.value])
    gradient = keras.ops.convert_to_numpy(direct + gate_alpha_gradient(dg, alpha.value, involved))
    assert gradient[out] == 0 and np.all(gradient[involved] != 0)
    # Adam's first step with beta_1 = 0 is lr * sign(g) where g != 0 (and nothing else).
    stepped = old - 0.05 * np.sign(gradient)
    expected = keras.ops.convert_to_numpy(rescale_two(stepped, old, involved))
    step._checked_function()(tf.constant(x), tf.constant(y))
    new = np.array(rule.get_alphas()["op"])
    np.testing.assert_allclose(new, expected, rtol=1e-4, atol=1e-6)
    assert new[out] == old[out]
    assert _softmax(new)[out] == pytest.approx(_softmax(old)[out], rel=1e-6)


def test_a_strong_latency_term_moves_the_probability_to_the_free_skip():
    connected, oracle, rule = _connected(regularization="add#linear", reg_lambda=20.0)
    start = oracle.expected_latency_ms()
    for step in range(12):
        connected.prepare_step(step)
    assert oracle.expected_latency_ms() < start - 0.3
    assert all(p[1] > 0.7 for p in oracle.softmax().values())  # skip
    # After every step the weight step's path is drawn: one candidate per choice, gate 1.
    assert all(g.numpy().sum() == 1.0 for g in rule.gate_variables)


def test_the_update_schedule_and_the_warm_up():
    connected, oracle, rule = _connected(arch_update_every=3)
    step = connected.architecture_step
    assert [step.updates(b) for b in range(6)] == [0, 0, 1, 0, 0, 1]
    calls = []
    step.update = lambda: calls.append(step._batch) or (1.0, True)
    step.begin_epoch(0)
    for i in range(6):
        step.step(i, 0.0)
    assert calls == [3, 6]  # before the weight steps of batches 2 and 5
    oracle.start_supernet_stage(0, 4)
    step.alphas_frozen = lambda epoch: epoch < 1
    calls.clear()
    step.begin_epoch(0)
    for i in range(6):
        step.step(i, 0.0)
    assert calls == []


def test_reinforce_step_moves_alpha_to_the_rewarded_candidate():
    connected, oracle, rule = _connected(gradient="reinforce", rl_batch_size=4)
    step = connected.architecture_step
    assert isinstance(step, ReinforceStep) and step._schedule == {0: 1, 1: 1, 2: 1, 3: 1}
    # A deterministic reward: 1 when op0 is the dense layer (index 0), else 0.
    step.reward = lambda accuracy, latency: float(rule.active_indices()["op0"] == 0)
    for i in range(10):
        connected.prepare_step(i)
    assert oracle.softmax()["op0"][0] > 0.55
    assert step.baseline is not None
    copy = ReinforceStep(latency_table=TABLE, rng=lambda: None, learning_rate=1e-3,
                         beta_1=0.0, beta_2=0.999, weight_decay=0.0)  # fmt: skip
    copy.set_state(step.get_state())
    assert copy.baseline == step.baseline
    # The real reward: the batch's accuracy times (ref / LAT)^0.1.
    step.reward = None
    assert step.path_reward(0.5, 1.5) == pytest.approx(0.5 * (3.0 / 1.5) ** 0.1)
    loss, finite = step.update()
    assert finite and 0.0 <= loss <= 2.0


def test_the_step_needs_a_binary_gate_rule():
    from tfnas.blocks.rules import SoftmaxMixture

    step = BinaryGateStep(latency_table=TABLE, rng=lambda: None, learning_rate=1e-3,
                          beta_1=0.0, beta_2=0.999, weight_decay=0.0)  # fmt: skip
    rule = SoftmaxMixture(seed=0)
    from tfnas.blocks.supernet import SupernetHyperParameters

    model = two_choices(SupernetHyperParameters(rule))
    with pytest.raises(ValueError, match="needs a BinaryGateMixture rule.*SoftmaxMixture"):
        step.connect(model, rule, classification_data()[2])
    assert proxyless_steps.LATENCY_UNITS == {"ms": 1.0, "us": 1000.0}
