"""Every candidate operation: shape, save/load, training step and TFLite conversion."""

import keras
import pytest

from tfnas.blocks import ops
from tfnas.blocks.testing import run_layer_test

SHAPE = (8, 8, 4)


@pytest.mark.parametrize("name", ops.DARTS_OPS)
def test_darts_ops_stride_1(name):
    model = run_layer_test(lambda: ops.darts_op(name, SHAPE, 4, 1), SHAPE)
    assert model.output.shape == (None, 8, 8, 4)


@pytest.mark.parametrize(
    "name", ["none", "skip_connect", "dil_conv_3x3", "sep_conv_5x5", "max_pool_3x3"]
)
def test_darts_ops_stride_2_halve_resolution(name):
    model = run_layer_test(lambda: ops.darts_op(name, SHAPE, 4, 2), SHAPE)
    assert model.output.shape == (None, 4, 4, 4)


def test_factorized_reduce_handles_odd_sizes():
    model = run_layer_test(lambda: ops.factorized_reduce((7, 7, 4), 6), (7, 7, 4))
    assert model.output.shape == (None, 4, 4, 6)


@pytest.mark.parametrize("name", ops.NASBENCH201_OPS)
def test_nasbench201_ops(name):
    model = run_layer_test(lambda: ops.nasbench201_op(name, 4), SHAPE)
    assert model.output.shape == (None, 8, 8, 4)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(filters=4, expansion=3, se_ratio=0.25), (None, 8, 8, 4)),
        (dict(filters=6, expansion=1, kernel_size=5, strides=2), (None, 4, 4, 6)),
    ],
)
def test_mbconv(kwargs, expected):
    model = run_layer_test(lambda: ops.mbconv(SHAPE, **kwargs), SHAPE)
    assert model.output.shape == expected


def test_mbconv_residual_only_when_shape_is_kept():
    with_residual = ops.mbconv(SHAPE, 4)
    without = ops.mbconv(SHAPE, 8)
    assert any(isinstance(layer, keras.layers.Add) for layer in with_residual.layers)
    assert not any(isinstance(layer, keras.layers.Add) for layer in without.layers)


def test_unknown_operations():
    with pytest.raises(ValueError, match="Unknown DARTS operation. Received: 'conv_9x9'"):
        ops.darts_op("conv_9x9", SHAPE, 4, 1)
    with pytest.raises(ValueError, match="Unknown NAS-Bench-201 operation. Received: 'conv'"):
        ops.nasbench201_op("conv", 4)
    with pytest.raises(ValueError, match="Received: expansion=0"):
        ops.mbconv(SHAPE, 4, expansion=0)
    with pytest.raises(ValueError, match="even channel count. Received: 5"):
        ops.factorized_reduce(SHAPE, 5)


@pytest.mark.parametrize("name", ["max_pool_3x3", "avg_pool_3x3"])
def test_search_pooling_is_followed_by_batch_norm_without_scale_and_offset(name):
    # DARTS model_search.py: `if 'pool' in primitive: op = nn.Sequential(op,
    # nn.BatchNorm2d(C, affine=False))`; the evaluation network pools plainly.
    import numpy as np

    search = ops.darts_op(name, SHAPE, 4, 1, affine=False)
    batch_norms = [
        layer for layer in search.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(batch_norms) == 1 and not batch_norms[0].center and not batch_norms[0].scale
    x = np.random.default_rng(0).normal(3.0, 2.0, (16, *SHAPE)).astype("float32")
    y = keras.ops.convert_to_numpy(search(x, training=True))
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.var(axis=(0, 1, 2)), 1.0, atol=1e-2)
    assert not search.trainable_weights  # no gamma/beta: nothing for the optimizer
    evaluation = ops.darts_op(name, SHAPE, 4, 1, affine=True)
    assert isinstance(evaluation, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D))
    forced = ops.darts_op(name, SHAPE, 4, 1, affine=True, pool_batch_norm=True)
    assert isinstance(forced.layers[-1], keras.layers.BatchNormalization)


def test_channel_shuffle_matches_numpy_reshape_transpose():
    import numpy as np

    shuffle = ops.channel_shuffle((2, 3, 6), 2)
    x = np.random.default_rng(0).random((1, 2, 3, 6), dtype="float32")
    got = keras.ops.convert_to_numpy(shuffle(x))
    expected = x.reshape(1, 2, 3, 2, 3).transpose(0, 1, 2, 4, 3).reshape(1, 2, 3, 6)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got[0, 0, 0], x[0, 0, 0, [0, 3, 1, 4, 2, 5]])


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(filters=4, expansion=1, groups=2), (None, 8, 8, 4)),
        (dict(filters=6, expansion=3, kernel_size=5, strides=2), (None, 4, 4, 6)),
    ],
)
def test_fbnet_block(kwargs, expected):
    # Grouped 1x1 convolutions and the shuffle convert to TFLite with the same outputs.
    model = run_layer_test(lambda: ops.fbnet_block(SHAPE, **kwargs), SHAPE)
    assert model.output.shape == expected


def test_fbnet_block_residual_and_e1_pointwise():
    with_residual = ops.fbnet_block(SHAPE, 4)
    assert any(isinstance(layer, keras.layers.Add) for layer in with_residual.layers)
    assert not any(
        isinstance(layer, keras.layers.Add) for layer in ops.fbnet_block(SHAPE, 8).layers
    )
    # e1: the paper's block keeps the first 1x1 convolution (4 * 4 weights more).
    without = ops.fbnet_block(SHAPE, 4, e1_pointwise=False)
    assert with_residual.count_params() - without.count_params() == 4 * 4 + 4 * 4


def test_fbnet_skip_is_identity_or_a_projection():
    assert isinstance(ops.fbnet_skip(SHAPE, 4, 1), keras.layers.Identity)
    model = run_layer_test(lambda: ops.fbnet_skip(SHAPE, 6, 2), SHAPE)
    assert model.output.shape == (None, 4, 4, 6)
    widen = ops.fbnet_skip(SHAPE, 8, 1)
    assert isinstance(widen.layers[0], keras.layers.Conv2D) and widen.layers[0].filters == 8


def test_fbnet_op_argument_errors():
    with pytest.raises(ValueError, match="Received: groups=3, channels=8"):
        ops.channel_shuffle((4, 4, 8), 3)
    with pytest.raises(ValueError, match="Received: expansion=0"):
        ops.fbnet_block(SHAPE, 4, expansion=0)
    with pytest.raises(ValueError, match="groups=3"):
        ops.fbnet_block(SHAPE, 4, groups=3)
    with pytest.raises(ValueError, match="Received: strides=3"):
        ops.fbnet_skip(SHAPE, 4, 3)
