"""DARTS: softmax mixture, first-order alpha steps, derivation, state, a full search."""

import json

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas import blocks
from tfnas.blocks.rules import SoftmaxMixture
from tfnas.blocks.supernet import SupernetHyperParameters
from tfnas.engine import testing as weight_sharing_testing
from tfnas.engine.supernet import choice_layers
from tfnas.tuners import differentiable
from tfnas.tuners.differentiable_testing import (
    Connected,
    classification_data,
    depth_only,
    search,
    supernet,
    two_choices,
)

# A small DARTS space: the paper's cell with fewer operations (fast to build and trace).
OPS = ("none", "skip_connect", "sep_conv_3x3", "dil_conv_5x5")


def _darts_space(num_nodes=2):
    return tfnas.spaces.DartsSpace(
        (8, 8, 1), 10, init_channels=4, num_cells=3, num_nodes=num_nodes, operations=OPS
    )


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


def _dataset(shape, n=8, batch=4):
    x = np.random.default_rng(0).normal(size=(n, *shape)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, x if len(shape) == 1 else np.zeros(n))).batch(
        batch
    )


def test_layer_choice_is_the_softmax_weighted_sum():
    rule = SoftmaxMixture(seed=0)
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
    rule = SoftmaxMixture(seed=0)
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
    rule, model = supernet(oracle, _identity_or_zero)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    connected = Connected(oracle, rule, model, tf.data.Dataset.from_tensor_slices((x, x)).batch(8))
    before = oracle.softmax()["op"][0]
    for step in range(10):
        connected.prepare_step(step)
    after = oracle.softmax()["op"][0]
    assert after > before + 0.05
    assert oracle.alphas()["op"][0] > oracle.alphas()["op"][1]


def test_alpha_steps_need_thesupernet():
    oracle = differentiable.DARTS(seed=0)
    rule, _ = supernet(oracle, _identity_or_zero)
    with pytest.raises(RuntimeError, match="on_supernet_built"):
        oracle.prepare_training_step(rule, 0, 0, 0.0)


def test_derivation_keeps_the_strongest_non_none_edges_of_a_darts_cell():
    space = _darts_space(num_nodes=3)
    oracle = differentiable.DARTS(seed=0)
    rule, model = supernet(oracle, space.build)
    oracle.on_supernet_built(model, _dataset((8, 8, 1)))
    ops = list(OPS)
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
    oracle = differentiable.DARTS(seed=0, bn_recalibration_batches=0)
    tuner = search(oracle, tmp_path, "d", n=128)
    assert oracle.supernet_epochs_done == 1
    trials = list(oracle.trials.values())
    assert len(trials) == 1 and trials[0].status == "COMPLETED"
    assert trials[0].hyperparameters.values == oracle.derive()
    step = tuner.supernet_trainer().architecture_step
    assert step.optimizer.iterations.numpy() == 4  # One alpha step per weight step.
    best = tuner.get_best_models(1)[0]
    assert all(type(layer).__module__.startswith("keras") for layer in best._flatten_layers())
    # Retrained from scratch: the derived architecture as a fresh plain Keras model.
    x, y, _ = classification_data(32)
    retrained, history = tuner.retrain(None, x, y, epochs=1, verbose=0)
    assert retrained is not best and len(history.history["loss"]) == 1
    assert [type(layer) for layer in retrained._flatten_layers()] == [
        type(layer) for layer in best._flatten_layers()
    ]
    # The checkpoint holds the alphas after the epoch.
    with open(tmp_path / "d" / "supernet" / "supernet.json") as f:
        saved = json.load(f)["oracle"]["differentiable"]
    assert saved["alphas"] == oracle.alphas()
    np.testing.assert_allclose(sum(saved["distributions"]["op0"]), 1.0)


def test_state_round_trip():
    oracle = differentiable.DARTS(seed=0, arch_learning_rate=0.05)
    rule, model = supernet(oracle, _identity_or_zero)
    x = np.ones((8, 4), dtype="float32")
    connected = Connected(oracle, rule, model, tf.data.Dataset.from_tensor_slices((x, x)).batch(4))
    for step in range(3):
        connected.prepare_step(step)
    full = json.loads(json.dumps(oracle.get_state()))
    copy = differentiable.DARTS(seed=0, arch_learning_rate=0.05)
    copy_rule, copy_model = supernet(copy, _identity_or_zero)
    copied = Connected(
        copy, copy_rule, copy_model, tf.data.Dataset.from_tensor_slices((x, x)).batch(4)
    )
    copy.set_state(full)
    assert copy.alphas() == oracle.alphas()
    for step in range(2):  # Same alphas and Adam moments: the same next steps.
        connected.prepare_step(step)
        copied.prepare_step(step)
    np.testing.assert_allclose(copy.alphas()["op"], oracle.alphas()["op"], rtol=1e-6)
    fresh = differentiable.DARTS(seed=0)
    fresh.set_state(full)
    assert fresh._alphas == full["differentiable"]["alphas"]
    assert fresh.derive(fresh.encoding()) == {"op": "identity"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"order": 3}, "order must be 1 or 2. Received: order=3"),
        ({"unrolled_learning_rate": 0.0}, "unrolled_learning_rate"),
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
    rule, model = supernet(oracle, _identity_or_zero)
    oracle.on_supernet_built(model, _dataset((4,)))
    rule.set_alphas({"op": [float("nan"), 0.0]})
    with pytest.raises(ValueError, match="not finite"):
        oracle.on_supernet_epoch_end(0, None)
    with pytest.raises(ValueError, match="not finite"):
        oracle.get_state()
    with pytest.raises(RuntimeError, match="train it first"):
        differentiable.DARTS().derive()


def test_registered_as_oracles():
    assert tfnas.oracles.get("darts") is differentiable.DARTS
    assert tfnas.oracles.get("darts_plus") is differentiable.DARTSPlus
    assert tfnas.oracles.get("pdarts") is differentiable.PDARTS


def test_second_order_gradient_matches_the_exact_unrolled_gradient():
    xi = 0.1
    oracle = differentiable.DARTS(seed=0, order=2, unrolled_learning_rate=xi, arch_weight_decay=0.0)
    rule, model = supernet(oracle, two_choices)
    x_val, y_val, validation = classification_data(seed=1)
    x_train, y_train, training = classification_data(seed=2)
    connected = Connected(oracle, rule, model, validation, training)
    rule.set_alphas({"op0": [0.3, -0.2], "op1": [-0.1, 0.4]})
    captured = [keras.Variable(np.zeros(2, "float32")) for _ in rule.alpha_variables]
    step = connected.architecture_step
    step._apply_gradients = lambda grads: [c.assign(g) for c, g in zip(captured, grads)]
    weights_before = [np.array(w) for w in model.get_weights()]
    connected.prepare_step(0)
    # The weights are restored after the virtual step and the finite differences.
    for before, after in zip(weights_before, model.get_weights()):
        np.testing.assert_allclose(before, after, rtol=0, atol=1e-6)
    # Exact: autodiff through w' = w - xi * grad_w L_train(w, alpha).
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    alphas = [a.value for a in rule.alpha_variables]
    with tf.GradientTape() as outer:
        outer.watch(alphas)
        with tf.GradientTape() as inner:
            inner.watch(trainable)
            out, _ = model.stateless_call(trainable, non_trainable, x_train, training=True)
            train_loss = loss_fn(y_train, out)
        grads = inner.gradient(train_loss, trainable)
        unrolled = [w - xi * g for w, g in zip(trainable, grads)]
        out, _ = model.stateless_call(unrolled, non_trainable, x_val, training=True)
        val_loss = loss_fn(y_val, out)
    exact = outer.gradient(val_loss, alphas)
    first_order = differentiable.DARTS(seed=0, arch_weight_decay=0.0)
    for got, want in zip(captured, exact):
        np.testing.assert_allclose(np.array(got), np.array(want), rtol=2e-2, atol=1e-5)
    # The implicit term matters here: the first-order gradient differs.
    first_rule, first_model = supernet(first_order, two_choices)
    first_model.set_weights(model.get_weights())
    first_step = Connected(first_order, first_rule, first_model, validation).architecture_step
    first_rule.set_alphas(rule.get_alphas())
    with tf.GradientTape() as tape:
        loss = first_step._loss(x_val, y_val)
    direct = tape.gradient(loss, [a.value for a in first_rule.alpha_variables])
    assert max(float(np.abs(np.array(d) - np.array(e)).max()) for d, e in zip(direct, exact)) > 1e-4


def test_second_order_restores_batch_norm_statistics_and_needs_training_data():
    (x, y), (vx, vy) = weight_sharing_testing.data(32)
    oracle = differentiable.DARTS(seed=0, order=2)
    rule, model = supernet(oracle, weight_sharing_testing.build)
    validation = tf.data.Dataset.from_tensor_slices((vx, vy)).batch(8)
    with pytest.raises(ValueError, match="needs training data"):
        oracle.on_supernet_built(model, validation)
    training = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    connected = Connected(oracle, rule, model, validation, training)
    before = [np.array(v) for v in model.weights]
    alphas = oracle.alphas()
    connected.prepare_step(0)
    for b, a in zip(before, model.weights):
        np.testing.assert_allclose(b, np.array(a), atol=1e-6)
    assert oracle.alphas() != alphas


def test_missing_data_and_spaces_without_layer_choices_are_refused():
    oracle = differentiable.DARTS(seed=0)
    _, model = supernet(oracle, _identity_or_zero)
    with pytest.raises(ValueError, match="needs validation data.*validation_data=None"):
        oracle.on_supernet_built(model, None)

    oracle = differentiable.DARTS(seed=0)
    _, model = supernet(oracle, depth_only)
    with pytest.raises(ValueError, match="no layer choice"):
        oracle.on_supernet_built(model, _dataset((4,)))


def test_nan_in_the_alpha_step_names_the_step():
    oracle = differentiable.DARTS(seed=0)
    rule, model = supernet(oracle, _identity_or_zero)
    x = np.full((8, 4), np.nan, dtype="float32")
    connected = Connected(oracle, rule, model, tf.data.Dataset.from_tensor_slices((x, x)).batch(4))
    with pytest.raises(FloatingPointError, match="global step 7 .*diverged"):
        connected.prepare_step(7)


def test_nan_loss_stops_the_search_and_keeps_the_last_checkpoint(tmp_path):
    search(differentiable.DARTS(seed=0, bn_recalibration_batches=0), tmp_path, "n")
    x, y, _ = classification_data(64)
    checkpoint = tmp_path / "n" / "supernet" / "supernet-00001.npz"
    saved = checkpoint.read_bytes()
    bad = x[:32].copy()
    # Finite (the tuner refuses NaN inputs up front) but it overflows the first Dense layer
    # to inf, so the loss of the second batch of the second epoch is not finite.
    bad[20] = 3e38
    resumed = differentiable.DARTS(seed=0, bn_recalibration_batches=0)
    tuner = tfnas.Tuner(two_choices, oracle=resumed, directory=str(tmp_path), project_name="n",
                        overwrite=False)  # fmt: skip
    with pytest.raises(FloatingPointError, match=r"epoch 2, batch \d .*epoch 1 .* is kept"):
        tuner.search(bad, y[:32], validation_data=(x[32:], y[32:]), epochs=2, batch_size=16,
                     verbose=0)  # fmt: skip
    assert checkpoint.read_bytes() == saved


def test_history_is_logged_to_tensorboard_and_drawn(tmp_path):
    oracle = differentiable.DARTS(seed=0, bn_recalibration_batches=0)
    board = keras.callbacks.TensorBoard(str(tmp_path / "logs"))
    search(oracle, tmp_path, "h", epochs=2, callbacks=[board])
    assert [h["epoch"] for h in oracle.history] == [1, 2]
    for name, p in oracle.softmax().items():
        assert oracle.history[-1]["distributions"][name] == pytest.approx(p)
    assert oracle.labels()["op0"] == ["dense", "skip"]
    assert list((tmp_path / "logs" / "architecture").iterdir())
    assert oracle.plot_history(str(tmp_path / "alphas.png")).endswith("alphas.png")
    assert (tmp_path / "alphas.png").read_bytes()[:4] == b"\x89PNG"
    # The history survives a reload of the oracle.
    reloaded = differentiable.DARTS(seed=0)
    reloaded.set_state(json.loads(json.dumps(oracle.get_state())))
    assert reloaded.history == oracle.history


def _skip_heavy_alphas(rule, skip_names, ops=OPS):
    ops = list(ops)
    alphas = {}
    for name in rule.choice_names:
        logits = np.zeros(len(ops))
        logits[2] = 1.0  # A parametric operation.
        if name in skip_names:
            logits[ops.index("skip_connect")] = 2.0 + skip_names.index(name)
        alphas[name] = logits
    rule.set_alphas(alphas)


def test_darts_plus_stops_on_two_skip_connections_in_the_normal_cell():
    space = _darts_space()
    oracle = differentiable.DARTSPlus(seed=0, stable_epochs=None)
    rule, model = supernet(oracle, space.build)
    oracle.on_supernet_built(model, _dataset((8, 8, 1)))
    _skip_heavy_alphas(rule, ["normal/node0/edge0"])
    oracle.on_supernet_epoch_end(0, None)
    assert oracle.supernet_stop_reason is None
    _skip_heavy_alphas(rule, ["normal/node0/edge0", "normal/node1/edge1"])
    oracle.on_supernet_epoch_end(1, None)
    assert "2 skip_connect edges" in oracle.supernet_stop_reason
    state = json.loads(json.dumps(oracle.get_state()))
    copy = differentiable.DARTSPlus(seed=0)
    copy.set_state(state)
    assert copy.supernet_stop_reason == oracle.supernet_stop_reason


def test_darts_plus_stops_when_the_ranking_is_stable():
    oracle = differentiable.DARTSPlus(seed=0, stable_epochs=2)
    rule, model = supernet(oracle, two_choices)
    oracle.on_supernet_built(model, classification_data()[2])
    rule.set_alphas({"op0": [1.0, 0.0], "op1": [1.0, 0.0]})
    for epoch in range(2):
        oracle.on_supernet_epoch_end(epoch, None)
        assert oracle.supernet_stop_reason is None
    oracle.on_supernet_epoch_end(2, None)
    assert "has not changed for 2 epochs" in oracle.supernet_stop_reason


def test_darts_plus_early_stop_ends_supernet_training_and_resume_keeps_it(tmp_path):
    def darts_plus():
        return differentiable.DARTSPlus(seed=0, stable_epochs=1, bn_recalibration_batches=0)

    oracle = darts_plus()
    search(oracle, tmp_path, "p", epochs=6)
    # The alphas barely move in a few steps: the ranking is stable after 2 epochs.
    assert oracle.supernet_epochs_done == 2
    assert "ranking" in oracle.supernet_stop_reason
    again = darts_plus()
    search(again, tmp_path, "p", epochs=6, overwrite=False)
    assert again.supernet_epochs_done == 2


class _Cells(keras_tuner.HyperModel):
    """`num_cells` repeats of a two-choice cell (the choices shared by the repeats)."""

    OPS = ("none", "skip_connect", "dense", "dense_tanh")

    def __init__(self, num_cells=1):
        super().__init__()
        self.num_cells = num_cells

    def build(self, hp):
        inputs = keras.Input((8,))
        x = keras.layers.Dense(8)(inputs)
        for _ in range(self.num_cells):
            for i in range(2):
                x = blocks.layer_choice(hp, f"normal/op{i}", {
                    "none": _zero,
                    "skip_connect": lambda: keras.layers.Identity(),
                    "dense": lambda: keras.layers.Dense(8, activation="relu"),
                    "dense_tanh": lambda: keras.layers.Dense(8, activation="tanh"),
                })(x)  # fmt: skip
        model = keras.Model(inputs, keras.layers.Dense(3)(x))
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])  # fmt: skip
        return model


def test_pdarts_drops_candidates_between_stages_and_caps_skips(tmp_path):
    space, ops = _Cells(), list(_Cells.OPS)
    oracle = differentiable.PDARTS(
        seed=0, keep=(3, 2), depths=(1, 1, 3), max_skip_connections=1,
        bn_recalibration_batches=0,
    )  # fmt: skip
    tuner = search(oracle, tmp_path, "p", build=space, epochs=3)
    assert oracle.stage == 2
    assert space.num_cells == 1  # The stages deepen a copy of the hypermodel.
    excluded = oracle.excluded()
    assert sorted(excluded) == ["normal/op0", "normal/op1"]
    for indices in excluded.values():
        assert len(indices) == len(ops) - 2
    # The last stage's supernet has 3 cells and gives the dropped candidates no weight.
    supernet = tuner.supernet_trainer().supernet
    assert len(choice_layers(supernet)) == 3 * 2
    for name, indices in excluded.items():
        assert all(oracle.softmax()[name][i] == 0.0 for i in indices)
    assert oracle.count_op(oracle.derive(), "skip_connect", "normal/") <= 1
    # Skip cap: force skip everywhere; at most one survives in the normal cell.
    _skip_heavy_alphas(oracle._rule, list(oracle._rule.choice_names), ops)
    oracle._excluded = {}
    assert oracle.count_op(oracle.derive(), "skip_connect", "normal/") == 1
    trials = list(oracle.trials.values())
    assert trials[0].status == "COMPLETED"


def test_pdarts_stage_copies_of_a_keras_tuner_hypermodel_build_themselves():
    oracle = differentiable.PDARTS(depths=(1, 2, 4))
    oracle.stage = 2
    staged = oracle.stage_hypermodel(_Cells())
    model = staged.build(keras_tuner.HyperParameters())
    assert staged.num_cells == 4
    assert len(model.layers) == 2 + 4 * 2 + 1  # Input, Dense, 4 cells x 2 ops, head.
    with pytest.raises(ValueError, match="has no such attribute.*depth_attribute='num_cells'"):
        oracle.stage_hypermodel(tfnas.spaces.NasBench201Space((8, 8, 1), 10))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"keep": (3, 5)}, "keep must decrease"),
        ({"depths": (5, 11)}, "depths must give 3"),
        ({"skip_dropout": (0.1, 1.0, 0.2)}, "skip_dropout must give 3 rates"),
        ({"max_skip_connections": -1}, "max_skip_connections"),
    ],
)
def test_pdarts_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        differentiable.PDARTS(**kwargs)


def test_pdarts_needs_an_epoch_per_stage():
    with pytest.raises(ValueError, match="at least one epoch per stage.*epochs=2"):
        differentiable.PDARTS().start_supernet_stage(0, 2)


def test_skip_dropout_applies_in_mixture_training_only():
    rule = SoftmaxMixture(seed=0, dropout_op="skip")
    hp = SupernetHyperParameters(rule)
    inputs = keras.Input((1000,))
    choice = blocks.layer_choice(hp, "op", {"skip": lambda: keras.layers.Identity(),
                                            "zero": _zero})  # fmt: skip
    model = keras.Model(inputs, choice(inputs))
    rule.set_alphas({"op": [10.0, -10.0]})
    rule.set_dropout_rate(0.5)
    x = np.ones((1, 1000), "float32")
    out = np.array(model(x, training=True))
    assert 0.3 < np.mean(out == 0) < 0.7
    np.testing.assert_allclose(np.array(model(x, training=False)), x, rtol=1e-4)
    rule.set_architecture({"op": "skip"})
    np.testing.assert_allclose(np.array(model(x, training=True)), x)


def test_pdarts_skip_cap_counts_every_choice_when_no_choice_has_the_normal_scope():
    # NAS-Bench-201 style names ("op0", not "normal/..."): the cap still applies.
    oracle = differentiable.PDARTS(seed=0, skip_op="skip", max_skip_connections=1)
    rule, model = supernet(oracle, two_choices)
    oracle.on_supernet_built(model, classification_data()[2])
    rule.set_alphas({"op0": [0.0, 1.0], "op1": [0.0, 2.0]})
    derived = oracle.derive()
    assert oracle.names_with_op(derived, "skip") == ["op1"]  # The weaker skip is replaced.
    assert derived["op0"] == "dense"
    assert oracle.count_op(derived, "skip") == 1


def test_pdarts_ranks_none_like_any_operation_between_stages():
    # The reference's get_min_k between stages; `none` is left out only at the end.
    oracle = differentiable.PDARTS(seed=0, keep=(3, 2), depths=None)
    rule, model = supernet(oracle, _Cells().build)
    oracle.on_supernet_built(model, classification_data()[2])
    none_strongest = {"normal/op0": [3.0, 2.0, 1.0, 0.0], "normal/op1": [-3.0, 2.0, 1.0, 0.0]}
    rule.set_alphas(none_strongest)
    oracle._drop_candidates(3)
    assert oracle.excluded() == {"normal/op0": [3], "normal/op1": [0]}
    oracle._drop_candidates(2)  # before the last stage: `none` still competes
    assert oracle.excluded() == {"normal/op0": [2, 3], "normal/op1": [0, 3]}
    # Removed at the end: the derivation never picks `none`, though op0's is strongest.
    assert oracle.derive() == {"normal/op0": "skip_connect", "normal/op1": "skip_connect"}


def test_pdarts_warmup_and_skip_dropout_follow_the_reference_schedule():
    oracle = differentiable.PDARTS()
    assert oracle.arch_learning_rate == 6e-4
    epochs = 75  # the paper: 3 stages of 25 epochs, the alphas frozen for the first 10
    assert [oracle.stage_bounds(s, epochs) for s in range(3)] == [(0, 25), (25, 25), (50, 25)]
    assert oracle.stage_warmup(25) == 10
    assert [oracle.stage_warmup(n) for n in (1, 2, 5, 100)] == [0, 1, 2, 10]
    assert differentiable.PDARTS(warmup_epochs=3).stage_warmup(25) == 3
    assert differentiable.PDARTS(warmup_epochs=3).stage_warmup(2) == 1  # one alpha epoch left
    rate = oracle.skip_dropout_rate
    # Warm-up: p0 * (L - e - 1) / L; then p0 * exp(-0.2 * (e - W)).
    assert rate(0, epochs) == pytest.approx(0.1 * 24 / 25)
    assert rate(9, epochs) == pytest.approx(0.1 * 15 / 25)
    assert rate(10, epochs) == pytest.approx(0.1)
    assert rate(13, epochs) == pytest.approx(0.1 * np.exp(-0.6))
    assert rate(25, epochs) == pytest.approx(0.4 * 24 / 25)
    assert rate(74, epochs) == pytest.approx(0.7 * np.exp(-0.2 * 14))
    oracle.start_supernet_stage(0, epochs)
    frozen = [epoch for epoch in range(epochs) if oracle.alphas_frozen(epoch)]
    assert frozen == [*range(0, 10), *range(25, 35), *range(50, 60)]
    # Stages of uneven length (7 epochs in 3 stages: 3, 2, 2).
    assert [oracle.stage_bounds(s, 7) for s in range(3)] == [(0, 3), (3, 2), (5, 2)]
    assert [oracle.stage_of(e, 7) for e in range(7)] == [0, 0, 0, 1, 1, 2, 2]


def test_pdarts_deepens_darts_spaces_by_default():
    space = tfnas.spaces.DartsSpace((8, 8, 1), 10, init_channels=4, num_cells=5)
    assert space.progressive_depths(3) == [5, 11, 17]  # the paper's 5 -> 11 -> 17
    assert tfnas.spaces.DartsSpace(num_cells=8).progressive_depths(3) == [8, 20, 32]
    oracle = differentiable.PDARTS()
    assert oracle.stage_depths(space) == [5, 11, 17]
    oracle.stage = 2
    assert oracle.stage_hypermodel(space).num_cells == 17
    assert space.num_cells == 5
    cells = _Cells()  # no progressive_depths: its own depth
    assert oracle.stage_depths(cells) is None and oracle.stage_hypermodel(cells) is cells
    assert differentiable.PDARTS(depths=None).stage_hypermodel(space) is space
    with pytest.raises(ValueError, match="depths must be a sequence of ints, 'auto' or None"):
        differentiable.PDARTS(depths="deep")


def test_darts_space_searches_with_the_papers_search_time_batch_norm():
    # DARTS model_search.py: cells with affine=False and `nn.BatchNorm2d(C, affine=False)`
    # after every pooling candidate; the evaluation network has affine BN, plain pools.
    space = tfnas.spaces.DartsSpace(
        (8, 8, 1), 10, init_channels=4, num_cells=3, num_nodes=1,
        operations=("max_pool_3x3", "skip_connect", "sep_conv_3x3"),
    )  # fmt: skip

    def batch_norms(model):
        return [
            layer
            for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization) and layer.name != "stem_bn"
        ]

    def pools(model):
        return [
            layer
            for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.MaxPooling2D)
        ]

    search_net = space.build(SupernetHyperParameters(SoftmaxMixture(seed=0)))
    assert all(not bn.center and not bn.scale for bn in batch_norms(search_net))
    pool_choices = [c.candidates[0] for c in choice_layers(search_net) if hasattr(c, "candidates")]
    assert pool_choices and all(
        isinstance(p, keras.Sequential)
        and isinstance(p.layers[-1], keras.layers.BatchNormalization)
        for p in pool_choices
    )
    fixed = space.build(keras_tuner.HyperParameters())
    assert batch_norms(fixed) and all(bn.center and bn.scale for bn in batch_norms(fixed))
    assert search_net.get_layer("stem_bn").scale  # the stem keeps affine BN, as in DARTS
    assert all(not isinstance(p, keras.Sequential) for p in pools(fixed))
    forced = tfnas.spaces.DartsSpace((8, 8, 1), 10, init_channels=4, num_cells=3, affine=True)
    assert forced._cell_affine(SupernetHyperParameters(SoftmaxMixture(seed=0))) is True


def test_pdarts_resumes_exactly_inside_a_stage_after_its_warmup(tmp_path):
    # 4 epochs, 2 stages of 2: each stage's first epoch is its alpha-frozen warm-up.
    def oracle():
        return differentiable.PDARTS(
            seed=0, keep=(2,), depths=None, skip_dropout=(0.4, 0.7), arch_learning_rate=0.05,
            bn_recalibration_batches=0,
        )  # fmt: skip

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 3:
                raise KeyboardInterrupt

    straight = oracle()
    search(straight, tmp_path, "straight", build=_Cells(), epochs=4)
    # The first stage's warm-up epoch leaves its seeded initial alphas unchanged.
    initial, _ = supernet(oracle(), _Cells().build)
    history = {h["epoch"]: h["distributions"] for h in straight.history}
    for name, alpha in initial.get_alphas().items():
        softmax = np.exp(alpha) / np.sum(np.exp(alpha))
        np.testing.assert_allclose(history[1][name], softmax, rtol=1e-6)
        assert not np.allclose(history[2][name], softmax, rtol=1e-3)
    interrupted = oracle()
    with pytest.raises(KeyboardInterrupt):
        search(interrupted, tmp_path, "resumed", build=_Cells(), epochs=4, callbacks=[Interrupt()])
    assert interrupted.supernet_epochs_done == 3 and interrupted.stage == 1
    resumed = oracle()
    search(resumed, tmp_path, "resumed", build=_Cells(), epochs=4, overwrite=False)
    assert resumed.stage == 1 and resumed.excluded() == straight.excluded()
    for name, alphas in straight.alphas().items():
        np.testing.assert_allclose(resumed.alphas()[name], alphas, rtol=1e-5, atol=1e-6)
    assert resumed._dropout_rate == pytest.approx(straight._dropout_rate)
