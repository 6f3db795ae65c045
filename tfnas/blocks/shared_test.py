"""Shared-weight MBConv candidates: one weight tensor, exact export, TFLite."""

import keras
import numpy as np
import pytest

from tfnas.blocks import shared

SHAPE = (8, 8, 4)
COMBOS = [
    {"kernel_size": k, "expansion": e, "se_ratio": r, "activation": "relu6"}
    for k in (3, 5)
    for e in (1, 3)
    for r in (0.0, 0.25)
]


def _views(filters=4, strides=1):
    return shared.mbconv_views(SHAPE, filters, strides, COMBOS)


def test_candidates_share_one_set_of_convolution_weights():
    views = _views()
    inputs = keras.Input(SHAPE)
    outputs = [view(inputs) for view in views]
    model = keras.Model(inputs, outputs)
    parent = views[0].shared
    assert all(view.shared is parent for view in views)
    assert parent.depthwise_kernel.shape == (5, 5, 12, 1)
    assert parent.expand_kernel.shape == (1, 1, 4, 12)
    # Convolutions are counted once; only batch norms are per candidate.
    conv_weights = {id(w) for w in model.weights if "batch_normalization" not in w.path}
    assert len(conv_weights) == len(parent.weights)


@pytest.mark.parametrize("index", [0, 3, 5, 7])
@pytest.mark.parametrize("strides, filters", [(1, 4), (2, 6)])
def test_export_computes_exactly_what_the_candidate_computes(index, strides, filters):
    view = _views(filters, strides)[index]
    inputs = keras.Input(SHAPE)
    model = keras.Model(inputs, view(inputs))
    x = np.random.default_rng(index).normal(size=(2, *SHAPE)).astype("float32")
    model.compile("adam", "mse")
    model.fit(x, np.zeros_like(model(x)), epochs=1, verbose=0)  # moves BN statistics too
    exported = view.export_layer()
    assert all(type(layer).__module__.startswith("keras") for layer in exported._flatten_layers())
    np.testing.assert_allclose(exported(x, training=False), model(x, training=False), atol=1e-5)


@pytest.mark.parametrize("switchable", [True, False])
def test_views_and_their_export_keep_the_batch_norm_momentum(switchable):
    combos = [c for c in COMBOS if c["se_ratio"] == 0.0]
    views = shared.mbconv_views(
        SHAPE, 4, 1, combos, switchable_batch_norm=switchable, batch_norm_momentum=0.9
    )
    owner = views[-1] if not switchable else views[0]  # (5, 3) is the widest combination.
    assert {bn.momentum for bn in (owner.depthwise_bn, owner.project_bn)} == {0.9}
    for view in views:
        view.build((None, *SHAPE))
    exported = views[0].export_layer()
    norms = [x for x in exported.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert norms and {bn.momentum for bn in norms} == {0.9}


def test_view_in_a_model_converts_to_tflite():
    views = _views()
    inputs = keras.Input(SHAPE)
    model = keras.Model(inputs, views[7](inputs))
    from ai_edge_litert.interpreter import Interpreter

    from tfnas.latency import convert

    x = np.random.default_rng(0).normal(size=(1, *SHAPE)).astype("float32")
    runner = Interpreter(model_content=convert(model)).get_signature_runner()
    (got,) = runner(**{model.inputs[0].name: x}).values()
    np.testing.assert_allclose(got, model(x, training=False), atol=1e-4)


def test_shared_weights_config_round_trip_and_direct_call_error():
    parent = shared.SharedMBConv(4, [3, 5], [1, 3], [0.0, 0.25], strides=2)
    clone = shared.SharedMBConv.from_config(parent.get_config())
    assert clone.get_config() == parent.get_config()
    with pytest.raises(TypeError, match="only holds weights"):
        parent(keras.ops.ones((1, *SHAPE)))


def test_exportable_passes_standard_layers_through():
    dense = keras.layers.Dense(3)
    assert shared.exportable(dense) is dense
