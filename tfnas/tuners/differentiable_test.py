"""DARTS: softmax mixture, first-order alpha steps, derivation, state, a full search."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas import blocks
from tfnas.blocks.supernet import SupernetHyperParameters
from tfnas.tuners import differentiable


def _zero():
    return keras.layers.Lambda(lambda t: t * 0.0)


def _identity_or_zero(hp):
    """Output = layer_choice(identity, zero)(input): the loss prefers the identity."""
    inputs = keras.Input((4,))
    candidates = {"identity": lambda: keras.layers.Identity(), "zero": _zero}
    x = blocks.layer_choice(hp, "op", candidates)(inputs)
    model = keras.Model(inputs, x)
    model.compile(keras.optimizers.SGD(0.0), "mse")
    return model


def _two_choices(hp):
    inputs = keras.Input((8,))
    x = keras.layers.Dense(8)(inputs)
    for i in range(2):
        x = blocks.layer_choice(hp, f"op{i}", {
            "dense": lambda: keras.layers.Dense(8, activation="relu"),
            "skip": lambda: keras.layers.Identity(),
        })(x)  # fmt: skip
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _supernet(oracle, build):
    rule = oracle.make_mixing_rule()
    hp = SupernetHyperParameters(rule)
    model = build(hp)
    oracle.hyperparameters = hp
    return rule, model


def test_layer_choice_is_the_softmax_weighted_sum():
    rule = differentiable.SoftmaxMixture(seed=0)
    inputs = keras.Input((3,))
    hp = SupernetHyperParameters(rule)
    choice = blocks.layer_choice(hp, "op", {
        "double": lambda: keras.layers.Lambda(lambda t: 2.0 * t),
        "square": lambda: keras.layers.Lambda(lambda t: t * t),
        "identity": lambda: keras.layers.Identity(),
    })  # fmt: skip
    model = keras.Model(inputs, choice(inputs))
    rule.set_alphas({"op": [0.5, -1.0, 2.0]})
    x = np.array([[1.0, -2.0, 3.0]], dtype="float32")
    w = np.exp([0.5, -1.0, 2.0]) / np.exp([0.5, -1.0, 2.0]).sum()
    expected = w[0] * 2 * x + w[1] * x * x + w[2] * x
    np.testing.assert_allclose(model(x), expected, rtol=1e-5)
    # One architecture: exactly that candidate; back to the mixture afterwards.
    rule.set_architecture({"op": "square"})
    np.testing.assert_allclose(model(x), x * x, rtol=1e-6)
    rule.use_mixture()
    np.testing.assert_allclose(model(x), expected, rtol=1e-5)


def test_input_choice_sums_all_inputs_in_mixture_mode():
    rule = differentiable.SoftmaxMixture(seed=0)
    hp = SupernetHyperParameters(rule)
    inputs = [keras.Input((2,)) for _ in range(3)]
    out = blocks.input_choice(hp, "in", inputs, n_chosen=2, reduction="sum")
    model = keras.Model(inputs, out)
    xs = [np.full((1, 2), v, dtype="float32") for v in (1.0, 10.0, 100.0)]
    np.testing.assert_allclose(model(xs), [[111.0, 111.0]])
    rule.set_architecture({"in": "0,2"})
    np.testing.assert_allclose(model(xs), [[101.0, 101.0]])


def test_alpha_steps_move_towards_the_candidate_lowering_validation_loss():
    oracle = differentiable.DARTS(seed=0, arch_learning_rate=0.05)
    rule, model = _supernet(oracle, _identity_or_zero)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    oracle.on_supernet_built(model, tf.data.Dataset.from_tensor_slices((x, x)).batch(8))
    before = oracle.softmax()["op"][0]
    for step in range(10):
        oracle.prepare_training_step(rule, step, 0, 0.0)
    after = oracle.softmax()["op"][0]
    assert after > before + 0.05
    assert oracle.alphas()["op"][0] > oracle.alphas()["op"][1]


def test_alpha_steps_need_the_supernet():
    oracle = differentiable.DARTS(seed=0)
    rule, _ = _supernet(oracle, _identity_or_zero)
    with pytest.raises(RuntimeError, match="on_supernet_built"):
        oracle.prepare_training_step(rule, 0, 0, 0.0)


def test_derivation_keeps_the_strongest_non_none_edges_of_a_darts_cell():
    space = tfnas.spaces.DartsSpace((8, 8, 1), 10, init_channels=4, num_cells=3)
    oracle = differentiable.DARTS(seed=0)
    rule, model = _supernet(oracle, space.build)
    oracle.on_supernet_built(model, None)
    ops = list(tfnas.blocks.ops.DARTS_OPS)
    alphas = {}
    for name in rule.choice_names:
        logits = np.zeros(len(ops))
        logits[ops.index("none")] = 5.0  # `none` dominates every edge: never chosen.
        logits[ops.index("skip_connect")] = 1.0
        alphas[name] = logits
    # normal node 2 (inputs 0..3): edge 1 strongest with sep_conv_3x3, then edge 3.
    alphas["normal/node2/edge1"][ops.index("sep_conv_3x3")] = 4.0
    alphas["normal/node2/edge3"][ops.index("dil_conv_5x5")] = 3.0
    rule.set_alphas(alphas)
    values = oracle.derive()
    assert values["normal/node2/inputs"] == "1,3"
    assert values["normal/node2/edge1"] == "sep_conv_3x3"
    assert values["normal/node2/edge3"] == "dil_conv_5x5"
    assert "normal/node2/edge0" not in values
    edges = [v for k, v in values.items() if "/edge" in k]
    assert "none" not in edges
    # Equal strengths elsewhere: the lower edges, with the strongest non-none op.
    assert values["normal/node0/inputs"] == "0,1"
    assert values["reduce/node0/edge0"] == "skip_connect"
    # The derived architecture is the first proposal; later ones are sampled.
    first = oracle.algorithm.propose(oracle.encoding(), lambda v: False)
    assert first == values
    other = oracle.algorithm.propose(oracle.encoding(), lambda v: v == values)
    assert set(other) == set(oracle.encoding().complete(other))


def test_search_with_a_tuner(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    y = rng.integers(0, 3, 96)
    oracle = differentiable.DARTS(seed=0, bn_recalibration_batches=0)
    tuner = tfnas.Tuner(_two_choices, oracle=oracle, directory=str(tmp_path), project_name="d")
    tuner.search(x[:64], y[:64], validation_data=(x[64:], y[64:]), epochs=1, batch_size=16,
                 verbose=0)  # fmt: skip
    assert oracle.supernet_epochs_done == 1
    trials = list(oracle.trials.values())
    assert len(trials) == 1 and trials[0].status == "COMPLETED"
    assert trials[0].hyperparameters.values == oracle.derive()
    assert oracle._optimizer.iterations.numpy() == 4  # One alpha step per weight step.
    best = tuner.get_best_models(1)[0]
    assert all(type(layer).__module__.startswith("keras") for layer in best._flatten_layers())
    # The checkpoint holds the alphas after the epoch.
    with open(tmp_path / "d" / "supernet" / "supernet.json") as f:
        saved = json.load(f)["oracle"]["darts"]
    assert saved["alphas"] == oracle.alphas()
    np.testing.assert_allclose(sum(saved["softmax"]["op0"]), 1.0)


def test_state_round_trip():
    oracle = differentiable.DARTS(seed=0, arch_learning_rate=0.05)
    rule, model = _supernet(oracle, _identity_or_zero)
    x = np.ones((8, 4), dtype="float32")
    oracle.on_supernet_built(model, tf.data.Dataset.from_tensor_slices((x, x)).batch(4))
    for step in range(3):
        oracle.prepare_training_step(rule, step, 0, 0.0)
    state = json.loads(json.dumps(oracle.training_state()))
    full = json.loads(json.dumps(oracle.get_state()))
    copy = differentiable.DARTS(seed=0, arch_learning_rate=0.05)
    copy_rule, copy_model = _supernet(copy, _identity_or_zero)
    copy.on_supernet_built(copy_model, tf.data.Dataset.from_tensor_slices((x, x)).batch(4))
    copy.set_training_state(state)
    assert copy.alphas() == oracle.alphas()
    for step in range(2):  # Same alphas and Adam moments: the same next steps.
        oracle.prepare_training_step(rule, step, 0, 0.0)
        copy.prepare_training_step(copy_rule, step, 0, 0.0)
    np.testing.assert_allclose(copy.alphas()["op"], oracle.alphas()["op"], rtol=1e-6)
    fresh = differentiable.DARTS(seed=0)
    fresh.set_state(full)
    assert fresh._alphas == full["darts"]["alphas"]
    assert fresh.derive(fresh.encoding()) == {"op": "identity"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"order": 2}, "order=2 is not available yet"),
        ({"order": 3}, "order must be 1"),
        ({"arch_learning_rate": 0.0}, "arch_learning_rate"),
        ({"arch_learning_rate": -1.0}, "arch_learning_rate"),
        ({"arch_weight_decay": -1.0}, "arch_weight_decay"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        differentiable.DARTS(**kwargs)


def test_non_finite_alphas_are_refused():
    oracle = differentiable.DARTS(seed=0)
    rule, model = _supernet(oracle, _identity_or_zero)
    oracle.on_supernet_built(model, None)
    rule.set_alphas({"op": [float("nan"), 0.0]})
    with pytest.raises(ValueError, match="not finite"):
        oracle.on_supernet_epoch_end(0, None)
    with pytest.raises(ValueError, match="not finite"):
        oracle.get_state()
    with pytest.raises(RuntimeError, match="train it first"):
        differentiable.DARTS().derive()


def test_registered_as_an_oracle():
    assert tfnas.oracles.get("darts") is differentiable.DARTS
