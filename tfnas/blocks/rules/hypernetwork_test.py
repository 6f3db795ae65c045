"""HyperNetworkPath (SMASH): generated kernels, gradients, export equality, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas import blocks
from tfnas.blocks.rules.hypernetwork import HyperNetworkPath, glorot_std
from tfnas.engine.supernet import choice_layers, collapse
from tfnas.engine.testing import build, data

VALUES = {"op0": "conv1x1", "op1": "conv3x3", "depth": 1}


def _supernet(**kwargs):
    rule = HyperNetworkPath(**kwargs)
    supernet = build(blocks.SupernetHyperParameters(rule))
    layer_choices = [c for c in choice_layers(supernet) if isinstance(c, blocks.LayerChoice)]
    return rule, supernet, layer_choices


def _images(n=8):
    return np.random.default_rng(0).random((n, 8, 8, 1), dtype="float32")


def test_only_1x1_kernels_are_generated_by_default():
    rule, supernet, (op0, op1) = _supernet()
    # Candidates: conv3x3, conv1x1, skip; only conv1x1 has a generated kernel.
    assert [len(rule.generated_kernels(op0, i)) for i in range(3)] == [0, 1, 0]
    kernel = rule.generated_kernels(op0, 1)[0]
    assert tuple(kernel.shape) == (1, 1, 8, 8)
    trainable = {id(w) for w in supernet.trainable_weights}
    assert id(kernel) not in trainable  # Its value comes from the hypernetwork...
    assert id(op0.hypernet_heads["1_0"].kernel) in trainable  # ...which is trained.
    # The free 3x3 kernel stays trainable.
    free = op0.candidates[0].layers[0].kernel
    assert id(free) in trainable
    # One encoder per choice name (op0, op1, depth), one head set per choice point.
    assert sorted(rule._encoders) == ["depth", "op0", "op1"]
    assert op0.hypernet_heads is not op1.hypernet_heads
    _, _, (all0, _) = _supernet(generate="all")
    assert [len(rule_kernels) for rule_kernels in all0.mixing_rule._targets[id(all0)]] == [1, 1, 0]


def test_generated_kernels_start_at_glorot_scale_and_depend_on_the_architecture():
    keras.utils.set_random_seed(0)
    rule, _, (op0, _) = _supernet(hidden_units=256)
    rule.set_architecture(VALUES)
    first = keras.ops.convert_to_numpy(rule.candidate_weights(op0, 1)[0])
    assert first.shape == (1, 1, 8, 8)
    assert 0.5 < first.std() / glorot_std((1, 1, 8, 8)) < 2.0
    # Another choice's decision changes this choice point's generated kernel.
    rule.set_architecture({**VALUES, "op1": "skip"})
    second = keras.ops.convert_to_numpy(rule.candidate_weights(op0, 1)[0])
    assert np.abs(first - second).max() > 1e-3


def test_gradients_reach_the_hypernetwork_and_batch_norm_statistics_update():
    rule, supernet, (op0, _) = _supernet()
    rule.set_architecture(VALUES)
    x, y = _images(), np.arange(8) % 10
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    head, encoder = op0.hypernet_heads["1_0"].kernel, rule._encoders["op1"].kernel
    with tf.GradientTape() as tape:
        loss = loss_fn(y, supernet(x, training=True))
    gradients = tape.gradient(loss, [head, encoder])
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)
    # The batch norm inside the generated candidate got its moving statistics written back.
    norm = op0.candidates[1].layers[1]
    assert float(np.abs(norm.moving_mean.numpy()).max()) > 0
    # A traced training step (fit) trains the hypernetwork.
    before = head.numpy().copy()
    supernet.fit(x, y, epochs=1, verbose=0)
    assert np.abs(head.numpy() - before).max() > 0


def test_export_computes_what_the_supernet_computes_and_converts_to_tflite():
    from ai_edge_litert.interpreter import Interpreter

    from tfnas.latency import convert

    rule, supernet, _ = _supernet(generate="all")
    (x, y), _ = data(64)
    rule.set_architecture(VALUES)
    supernet.fit(x, y, epochs=1, batch_size=32, verbose=0)
    for values in (VALUES, {"op0": "skip", "op1": "conv1x1", "depth": 0}):
        rule.set_architecture(values)
        expected = keras.ops.convert_to_numpy(supernet(x[:4], training=False))
        fixed = collapse(supernet, values)
        names = {type(layer).__module__.split(".")[0] for layer in fixed._flatten_layers()}
        assert names == {"keras"}
        np.testing.assert_allclose(fixed(x[:4]).numpy(), expected, atol=1e-5)
    runner = Interpreter(model_content=convert(fixed)).get_signature_runner()
    (got,) = runner(**{fixed.inputs[0].name: x[:4]}).values()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_export_needs_the_architecture_to_be_set():
    rule, supernet, _ = _supernet()
    rule.set_architecture({**VALUES, "op0": "conv3x3"})
    with pytest.raises(ValueError, match=r"choice 'op0' is set to candidate 0 .*set_architecture"):
        collapse(supernet, VALUES)


def test_mismatched_generated_weights_name_the_choice():
    rule, _, (op0, _) = _supernet()
    rule.set_architecture(VALUES)
    wrong = [keras.ops.zeros((1, 1, 8, 4))]
    with pytest.raises(
        ValueError,
        match=r"candidate \['conv1x1'\] of choice 'op0' .* expected shapes \[\(1, 1, 8, 8\)\]"
        r".*Received: shapes \[\(1, 1, 8, 4\)\]",
    ):
        rule.run_candidate(op0, 1, keras.ops.zeros((2, 8, 8, 8)), wrong)
    with pytest.raises(ValueError, match=r"Received: shapes \[\]"):
        rule.check_generated_weights(op0, 1, [])


def test_config_round_trip_and_bad_arguments():
    rule = HyperNetworkPath(generate="all", hidden_units=8, negative_slope=0.1)
    config = keras.saving.serialize_keras_object(rule)
    clone = keras.saving.deserialize_keras_object(config)
    assert isinstance(clone, HyperNetworkPath) and clone.get_config() == rule.get_config()
    with pytest.raises(ValueError, match=r"generate must be one of .*Received: generate='3x3'"):
        HyperNetworkPath(generate="3x3")
    with pytest.raises(ValueError, match="Received: hidden_units=0"):
        HyperNetworkPath(hidden_units=0)
    with pytest.raises(ValueError, match="Received: negative_slope=1"):
        HyperNetworkPath(negative_slope=1)


def test_layer_choice_round_trip_and_tflite():
    from tfnas.blocks.testing import run_layer_test

    run_layer_test(
        lambda: blocks.LayerChoice(
            "op",
            [
                keras.Sequential(
                    [keras.layers.Conv2D(4, 1, use_bias=False), keras.layers.BatchNormalization()]
                ),
                keras.layers.Identity(),
            ],
            [{"op": "conv1x1"}, {"op": "skip"}],
            HyperNetworkPath(hidden_units=8),
        ),
        (6, 6, 4),
    )
