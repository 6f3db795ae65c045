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
