"""PC-DARTS: partial-channel mixture, edge normalization, derivation, export, state, search."""

import json

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas import blocks
from tfnas.blocks.rules import PartialChannelMixture, SoftmaxMixture, channel_shuffle
from tfnas.blocks.supernet import SupernetHyperParameters
from tfnas.blocks.testing import run_layer_test
from tfnas.engine import testing as weight_sharing_testing
from tfnas.engine.supernet import collapse
from tfnas.tuners import partial_channels
from tfnas.tuners.differentiable_testing import Connected, depth_only, supernet

K = 4


def _scale_choice(hp, name="op"):
    """Candidates that work on any channel count: x2 and zero."""
    return blocks.layer_choice(hp, name, {
        "double": lambda: keras.layers.Rescaling(2.0),
        "zero": lambda: keras.layers.Rescaling(0.0),
    })  # fmt: skip


def _tiny_cell(hp):
    """Two DARTS-like nodes on 8 channels; edge ops built with `candidate_channels`."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    states = [x, keras.layers.ReLU()(x)]
    for node in range(2):

        def edge(i, node=node):
            name = f"node{node}/edge{i}"
            c = blocks.candidate_channels(hp, 8, name)
            return blocks.layer_choice(hp, name, {
                "conv": lambda: keras.layers.Conv2D(c, 3, padding="same", use_bias=False),
                "skip": lambda: keras.layers.Identity(),
                "none": lambda: keras.layers.Rescaling(0.0),
            })(states[i])  # fmt: skip

        states.append(
            blocks.input_choice(
                hp, f"node{node}/inputs", [lambda i=i: edge(i) for i in range(len(states))], 2
            )
        )
    x = keras.layers.GlobalAveragePooling2D()(states[-1])
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _batches(n=16, batch=8):
    (x, y), _ = weight_sharing_testing.data(n)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def test_layer_choice_matches_a_hand_computation_with_the_shuffle_order():
    rule = PartialChannelMixture(partial_channels=K, seed=0)
    inputs = keras.Input((1, 1, 8))
    model = keras.Model(inputs, _scale_choice(SupernetHyperParameters(rule))(inputs))
    alpha = [0.3, -0.4]
    rule.set_alphas({"op": alpha})
    w = np.exp(alpha) / np.exp(alpha).sum()
    x = np.arange(1.0, 9.0, dtype="float32").reshape(1, 1, 1, 8)
    # Channels 1, 2 go through the mixture (x2 or 0), 3..8 bypass it; the K groups of 2
    # channels [a1 a2] [3 4] [5 6] [7 8] interleave: a1 3 5 7 a2 4 6 8.
    a1, a2 = 2 * w[0] * 1.0, 2 * w[0] * 2.0
    expected = [a1, 3, 5, 7, a2, 4, 6, 8]
    np.testing.assert_allclose(model(x)[0, 0, 0], expected, rtol=1e-6)
    rule.set_architecture({"op": "zero"})
    np.testing.assert_allclose(model(x)[0, 0, 0], [0, 3, 5, 7, 0, 4, 6, 8])
    rule.use_mixture()
    np.testing.assert_allclose(model(x)[0, 0, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(channel_shuffle(x, K)[0, 0, 0], [1, 3, 5, 7, 2, 4, 6, 8])


def test_stride_two_bypass_is_max_pooled_and_exports_the_same():
    rule = PartialChannelMixture(partial_channels=2, seed=0)
    hp = SupernetHyperParameters(rule)
    inputs = keras.Input((3, 3, 4))
    choice = blocks.layer_choice(hp, "op", {
        "subsample": lambda: keras.layers.MaxPooling2D(1, 2),
        "zero": lambda: blocks.ops.zero(2),
    })  # fmt: skip
    model = keras.Model(inputs, choice(inputs))
    assert model.output.shape == (None, 2, 2, 4)
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype("float32")
    rule.set_architecture({"op": "subsample"})
    got = np.array(model(x))
    head = x[:, ::2, ::2, :2]
    padded = np.pad(x[..., 2:], ((0, 0), (0, 1), (0, 1), (0, 0)), constant_values=-np.inf)
    bypass = padded.reshape(2, 2, 2, 2, 2, 2).max(axis=(2, 4))  # 2x2 max pool, "same"
    both = np.concatenate([head, bypass], -1)
    expected = both.reshape(2, 2, 2, 2, 2).swapaxes(-1, -2).reshape(2, 2, 2, 4)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    exported = collapse(model, {"op": "subsample"})
    assert {type(layer).__module__.split(".")[0] for layer in exported._flatten_layers()} == {
        "keras"
    }
    np.testing.assert_allclose(np.array(exported(x)), expected, rtol=1e-6)


def test_edge_normalization_weights_the_inputs_and_the_alpha_step_trains_beta():
    def build(hp):
        inputs = keras.Input((2, 2, 4))
        edges = [_scale_choice(hp, "op")(inputs), keras.layers.Rescaling(0.0)(inputs),
                 keras.layers.Rescaling(-1.0)(inputs)]  # fmt: skip
        model = keras.Model(inputs, blocks.input_choice(hp, "in", edges, n_chosen=2))
        model.compile(keras.optimizers.SGD(0.0), "mse")
        return model

    oracle = partial_channels.PCDARTS(seed=0, arch_learning_rate=0.05, arch_weight_decay=0.0)
    rule, model = supernet(oracle, build)
    assert rule.beta_names == ["in"] and len(rule.alpha_variables) == 2
    x = np.random.default_rng(0).normal(size=(8, 2, 2, 4)).astype("float32")
    rule.set_alphas({"op": [0.0, 0.0], "in": [1.0, 0.0, -1.0]})
    beta = np.exp([1.0, 0.0, -1.0]) / np.exp([1.0, 0.0, -1.0]).sum()
    choice = next(layer for layer in model.layers if isinstance(layer, blocks.LayerChoice))
    edge0 = np.array(keras.Model(model.input, choice.output)(x))
    np.testing.assert_allclose(model(x), beta[0] * edge0 - beta[2] * x, rtol=1e-5, atol=1e-6)
    rule.set_architecture({"in": "0,2", "op": "double"})
    edge0 = np.array(keras.Model(model.input, choice.output)(x))
    np.testing.assert_allclose(model(x), edge0 - x, rtol=1e-5, atol=1e-6)
    # Target: the first input alone. The betas' gradient moves the weight towards it.
    connected = Connected(oracle, rule, model, tf.data.Dataset.from_tensor_slices((x, x)).batch(4))
    before = oracle.input_weights()["in"]
    for step in range(5):
        connected.prepare_step(step)
    after = oracle.input_weights()["in"]
    assert after[0] > before[0] + 0.01 and after[2] < before[2]
    assert set(oracle.betas()) == {"in"} and set(oracle.distributions()) == {"op"}


def test_first_node_has_betas_in_mixture_mode_and_sums_in_one_architecture():
    rule = PartialChannelMixture(seed=0)
    hp = SupernetHyperParameters(rule)
    inputs = [keras.Input((2,)) for _ in range(2)]
    model = keras.Model(inputs, blocks.input_choice(hp, "node0", inputs, n_chosen=2))
    rule.set_alphas({"node0": [0.0, np.log(3.0)]})
    xs = [np.full((1, 2), 4.0, "float32"), np.full((1, 2), 8.0, "float32")]
    np.testing.assert_allclose(model(xs), [[7.0, 7.0]], rtol=1e-6)
    rule.set_architecture({"node0": "0,1"})
    np.testing.assert_allclose(model(xs), [[12.0, 12.0]])


def test_derivation_scores_edges_by_strength_times_beta():
    space = tfnas.spaces.DartsSpace((8, 8, 1), 10, init_channels=8, num_cells=3)
    oracle = partial_channels.PCDARTS(seed=0)
    rule, model = supernet(oracle, space.build)
    # Edge operations are built for C/K channels (C = 8 in the normal cell).
    edge = next(
        layer for layer in model.layers if layer.name.startswith("choice_normal_node0_edge0")
    )
    sep = edge.candidates[list(blocks.ops.DARTS_OPS).index("sep_conv_3x3")]
    assert sep.layers[2].filters == 8 // K
    oracle.on_supernet_built(model, _batches())
    alphas = {name: np.zeros(8) for name in rule.choice_names}
    rule.set_alphas({**alphas, **{name: np.zeros(len(b)) for name, b in oracle.betas().items()}})
    assert oracle.derive()["normal/node2/inputs"] == "0,1"  # Equal scores: lower edges.
    rule.set_alphas({"normal/node2/inputs": [0.0, 0.0, 2.0, 1.0]})
    assert oracle.derive()["normal/node2/inputs"] == "2,3"
    # A stronger operation on edge 0 outweighs its smaller beta.
    alphas["normal/node2/edge0"][list(blocks.ops.DARTS_OPS).index("sep_conv_3x3")] = 6.0
    rule.set_alphas(alphas)
    assert oracle.derive()["normal/node2/inputs"] == "0,2"
    weights = oracle.input_weights()
    assert "normal/node0/inputs" in weights and "normal/node0/inputs" not in oracle.distributions()
    np.testing.assert_allclose(sum(weights["normal/node2/inputs"]), 1.0)
    assert oracle.input_labels()["normal/node2/inputs"][3] == "normal/node2/edge3"


def test_without_edge_normalization_there_are_no_betas():
    oracle = partial_channels.PCDARTS(seed=0, edge_normalization=False)
    rule, model = supernet(oracle, _tiny_cell)
    oracle.on_supernet_built(model, _batches())
    assert rule.beta_names == [] and oracle.input_weights() == {}
    assert set(oracle.alphas()) == set(rule.choice_names)


def test_search_exports_standard_layers_that_match_the_supernet_and_convert(tmp_path):
    # Normal and reduction cells; fewer nodes and operations than DARTS keep tracing short.
    operations = ("none", "skip_connect", "dil_conv_3x3", "max_pool_3x3")
    space = tfnas.spaces.DartsSpace(
        (8, 8, 1), 10, init_channels=8, num_cells=3, num_nodes=2, operations=operations
    )
    (x, y), validation = weight_sharing_testing.data(32)
    oracle = partial_channels.PCDARTS(seed=0, bn_recalibration_batches=0)
    tuner = tfnas.Tuner(space, oracle=oracle, directory=str(tmp_path), project_name="pc")
    tuner.search(x, y, validation_data=validation, epochs=1, batch_size=16, verbose=0)
    trials = list(oracle.trials.values())
    assert len(trials) == 1 and trials[0].status == "COMPLETED"
    values = oracle.derive()
    assert trials[0].hyperparameters.values == values
    recorded = oracle.history[-1]["input_weights"]
    assert {n: pytest.approx(p) for n, p in oracle.input_weights().items()} == recorded
    best = tuner.get_best_models(1)[0]
    kinds = {type(layer) for layer in best._flatten_layers()}
    assert all(kind.__module__.startswith("keras.") for kind in kinds)
    assert keras.layers.Lambda not in kinds and keras.layers.Cropping3D in kinds
    # The exported model computes what the supernet computes for that architecture.
    supernet = tuner.supernet_trainer().supernet
    tuner.supernet_trainer().rule.set_architecture(values)
    batch = validation[0][:4]
    expected = np.array(best(batch, training=False))
    np.testing.assert_allclose(supernet(batch, training=False), expected, rtol=1e-4, atol=1e-5)
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=tfnas.latency.convert(best)).get_signature_runner()
    (got,) = runner(**{best.inputs[0].name: batch}).values()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # Retraining builds the full-channel derived network (no partial-channel wiring).
    full = tfnas.Architecture(space, values).build()
    assert keras.layers.Cropping3D not in {type(layer) for layer in full._flatten_layers()}
    assert full.count_params() > best.count_params()


def test_state_round_trip_and_resume(tmp_path):
    (x, y), validation = weight_sharing_testing.data(32)

    def tuner(oracle, overwrite):
        return tfnas.Tuner(_tiny_cell, oracle=oracle, directory=str(tmp_path), project_name="s",
                           overwrite=overwrite)  # fmt: skip

    oracle = partial_channels.PCDARTS(seed=0, bn_recalibration_batches=0, arch_learning_rate=0.05)
    tuner(oracle, True).search(x, y, validation_data=validation, epochs=1, batch_size=16, verbose=0)
    state = json.loads(json.dumps(oracle.get_state()))
    assert set(state["differentiable"]["alphas"]) == {*oracle.distributions(), *oracle.betas()}
    assert "node1/inputs" in oracle.betas()
    fresh = partial_channels.PCDARTS(seed=0)
    fresh.set_state(state)
    assert fresh.betas() == oracle.betas() and fresh.input_weights() == oracle.input_weights()
    assert fresh.derive(fresh.encoding()) == oracle.derive()
    # A new rule starts from the saved betas.
    rule, model = supernet(fresh, _tiny_cell)
    fresh.on_supernet_built(model, _batches())
    assert {n: rule.get_alphas()[n] for n in fresh.betas()} == oracle.betas()
    # Resume: the supernet continues from epoch 1 with the saved alphas and betas.
    resumed = partial_channels.PCDARTS(seed=0, bn_recalibration_batches=0, arch_learning_rate=0.05)
    tuner(resumed, False).search(
        x, y, validation_data=validation, epochs=2, batch_size=16, verbose=0
    )
    assert resumed.supernet_epochs_done == 2
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    first = {n: pytest.approx(p) for n, p in oracle.input_weights().items()}
    assert resumed.history[0]["input_weights"] == first
    assert resumed.betas() != oracle.betas()
    assert resumed.plot_history(str(tmp_path / "a.png")).endswith("a.png")


def test_rule_config_round_trip_and_layer_test():
    rule = PartialChannelMixture(
        partial_channels=2, edge_normalization=False, seed=3, initial_alphas={"op": [1.0, 2.0]}
    )
    config = rule.get_config()
    assert config["partial_channels"] == 2 and config["edge_normalization"] is False
    clone = PartialChannelMixture.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(rule))
    assert type(restored) is PartialChannelMixture
    assert restored.get_config() == config

    def make():
        return blocks.LayerChoice(
            "op",
            [keras.layers.Conv2D(2, 3, padding="same"), keras.layers.Identity()],
            [{"op": "conv"}, {"op": "skip"}],
            PartialChannelMixture(partial_channels=4, seed=0),
        )

    model = run_layer_test(make, (6, 6, 8))
    assert model.output.shape == (None, 6, 6, 8)


def test_fixed_mode_and_other_rules_keep_all_channels():
    assert blocks.candidate_channels(keras_tuner.HyperParameters(), 8, "op") == 8
    assert blocks.partial_channel_divisor(keras_tuner.HyperParameters()) == 1
    softmax = SupernetHyperParameters(SoftmaxMixture())
    assert blocks.partial_channel_divisor(softmax) == 1
    pc = SupernetHyperParameters(PartialChannelMixture(partial_channels=2))
    assert blocks.candidate_channels(pc, 8, "op") == 4


def test_k_must_divide_the_channels():
    hp = SupernetHyperParameters(PartialChannelMixture(partial_channels=K))
    with pytest.raises(
        ValueError,
        match="Choice 'op' has 6 input channels, which partial_channels=4 does not divide",
    ):
        _scale_choice(hp)(keras.Input((2, 2, 6)))
    with pytest.raises(
        ValueError, match="'normal/node0/edge0' has 6 input channels.*partial_channels=4"
    ):
        tfnas.spaces.DartsSpace((8, 8, 1), 10, init_channels=6, num_cells=3).build(hp)


@pytest.mark.parametrize("cls", [PartialChannelMixture, partial_channels.PCDARTS])
def test_invalid_arguments(cls):
    with pytest.raises(
        ValueError, match="partial_channels must be >= 1. Received: partial_channels=0"
    ):
        cls(partial_channels=0)
    with pytest.raises(
        ValueError, match="partial_channels must be an integer. Received: partial_channels=2.0"
    ):
        cls(partial_channels=2.0)
    with pytest.raises(
        ValueError, match="edge_normalization must be a bool. Received: edge_normalization='yes'"
    ):
        cls(edge_normalization="yes")


def test_candidates_not_built_for_partial_channels_are_refused():
    hp = SupernetHyperParameters(PartialChannelMixture(partial_channels=K))
    full_width = blocks.layer_choice(hp, "wide", {
        "conv": lambda: keras.layers.Conv2D(8, 3, padding="same"),
        "skip": lambda: keras.layers.Identity(),
    })  # fmt: skip
    with pytest.raises(
        ValueError,
        match=r"different output shapes.*PartialChannelMixture feeds the candidates inputs of shape \(None, 4, 4, 2\), not the choice's input shape \(None, 4, 4, 8\).*candidate_channels",
    ):
        full_width(keras.Input((4, 4, 8)))
    all_wide = blocks.layer_choice(hp, "all_wide", {
        "conv": lambda: keras.layers.Conv2D(8, 3, padding="same"),
        "conv1x1": lambda: keras.layers.Conv2D(8, 1),
    })  # fmt: skip
    with pytest.raises(
        ValueError,
        match=r"return 8 channels, but PC-DARTS \(partial_channels=4\) feeds them 2 of the input's 8 channels.*candidate_channels\(hp, 8, 'all_wide'\)",
    ):
        all_wide(keras.Input((4, 4, 8)))

    def fixed_input():
        inputs = keras.Input((4, 4, 8))
        return keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))

    fixed = blocks.layer_choice(hp, "fixed", {"model": fixed_input})
    with pytest.raises(
        ValueError,
        match=r"Candidate \['model'\] of choice 'fixed' cannot take its input. PartialChannelMixture feeds the candidates inputs of shape \(None, 4, 4, 2\).*candidate_channels.*expected shape=\(None, 4, 4, 8\)",
    ):
        fixed(keras.Input((4, 4, 8)))


def test_input_choices_alone_are_refused():
    oracle = partial_channels.PCDARTS(seed=0)
    _, model = supernet(oracle, depth_only)
    with pytest.raises(ValueError, match="no layer choice"):
        oracle.on_supernet_built(model, _batches())


def test_registered_as_an_oracle():
    assert tfnas.oracles.get("pcdarts") is partial_channels.PCDARTS


def test_alpha_frozen_warmup_and_learning_rate_default_to_the_paper():
    oracle = partial_channels.PCDARTS()
    assert oracle.arch_learning_rate == 6e-4
    # The paper: 15 of 50 epochs; the same share for shorter searches, at most 15.
    assert [oracle.warmup(n) for n in (50, 100, 10, 5, 2, 1)] == [15, 15, 3, 2, 1, 0]
    assert partial_channels.PCDARTS(warmup_epochs=4).warmup(50) == 4
    assert partial_channels.PCDARTS(warmup_epochs=4).warmup(3) == 2  # one alpha epoch left
    with pytest.raises(ValueError, match="warmup_epochs"):
        partial_channels.PCDARTS(warmup_epochs=-1)


def test_search_keeps_the_alphas_frozen_during_the_warmup(tmp_path):
    (x, y), validation = weight_sharing_testing.data(32)
    initial_rule, model = supernet(partial_channels.PCDARTS(seed=0), _tiny_cell)
    initial = initial_rule.get_alphas()
    oracle = partial_channels.PCDARTS(seed=0, bn_recalibration_batches=0, arch_learning_rate=0.05)
    tuner = tfnas.Tuner(_tiny_cell, oracle=oracle, directory=str(tmp_path), project_name="w")
    tuner.search(x, y, validation_data=validation, epochs=2, batch_size=16, verbose=0)
    assert oracle.warmup(2) == 1
    softmax = {name: np.exp(a) / np.sum(np.exp(a)) for name, a in initial.items()}
    first = oracle.history[0]
    for name, p in first["distributions"].items():
        np.testing.assert_allclose(p, softmax[name], rtol=1e-6)  # epoch 1: frozen
    for name, p in first["input_weights"].items():
        np.testing.assert_allclose(p, softmax[name], rtol=1e-6)
    second = oracle.history[1]["distributions"]
    assert any(not np.allclose(second[n], softmax[n], rtol=1e-4) for n in second)
