"""Quantized layers: layer test helper, the quantization grid, the STE, bad bits, env."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.blocks.testing import run_layer_test
from tfnas.quantization import (
    QuantizedActivation,
    QuantizedConv2D,
    QuantizedDense,
    QuantizedDepthwiseConv2D,
    QuantizedSeparableConv2D,
    quantize_layer,
)
from tfnas.quantization.export import snapped_kernels

LAYERS = {
    "conv": (lambda b, pc: QuantizedConv2D(4, 3, padding="same", weight_bits=b,
                                           activation_bits=b, per_channel=pc), (6, 6, 2)),
    "depthwise": (lambda b, pc: QuantizedDepthwiseConv2D(3, padding="same", weight_bits=b,
                                                         activation_bits=b, per_channel=pc),
                  (6, 6, 2)),
    "separable": (lambda b, pc: QuantizedSeparableConv2D(4, 3, padding="same", weight_bits=b,
                                                         activation_bits=b, per_channel=pc),
                  (6, 6, 2)),
    "dense": (lambda b, pc: QuantizedDense(5, weight_bits=b, activation_bits=b,
                                           per_channel=pc), (7,)),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_layer_test_with_tflite_at_8_bits(kind):
    make, shape = LAYERS[kind]
    model = run_layer_test(lambda: make(8, True), shape, atol=1e-3)
    assert model.layers[1].get_config()["weight_bits"] == 8


def test_low_bit_layers_round_trip_without_tflite():
    # TFLite cannot run a 2-4-bit fake-quant op (a uint4 QUANTIZE); these layers export
    # through tfnas.quantization.export instead (see export_test).
    for kind, (make, shape) in LAYERS.items():
        model = run_layer_test(lambda m=make: m(3, False), shape, check_tflite=False)
        assert model.layers[1].weight_bits == 3, kind
    run_layer_test(lambda: QuantizedActivation("relu", activation_bits=8), (5,), atol=1e-3)


@pytest.mark.parametrize("per_channel", [False, True])
def test_weights_lie_on_a_grid_of_2_to_the_bits_minus_1_levels(per_channel):
    layer = QuantizedDense(6, weight_bits=3, per_channel=per_channel)
    layer.build((None, 40))
    (kernel,) = snapped_kernels(layer)
    columns = [kernel[:, j] for j in range(6)] if per_channel else [kernel.ravel()]
    for values in columns:
        levels = np.unique(np.round(values, 6))
        # Symmetric narrow range: -(2^(b-1) - 1) .. 2^(b-1) - 1 times one scale.
        assert len(levels) <= 7
        scale = np.abs(values).max() / 3
        np.testing.assert_allclose(levels / scale, np.round(levels / scale), atol=1e-4)
    float_layer = QuantizedDense(6, weight_bits=32)
    float_layer.build((None, 40))
    np.testing.assert_array_equal(snapped_kernels(float_layer)[0], float_layer.kernel.numpy())


def test_depthwise_per_channel_has_one_range_per_depthwise_channel():
    layer = QuantizedDepthwiseConv2D(3, depth_multiplier=2, weight_bits=4, per_channel=True)
    layer.build((None, 5, 5, 3))
    assert tuple(layer._ranges["kernel"][0].shape) == (6,)


def test_straight_through_estimator_and_moving_range():
    layer = QuantizedActivation("linear", activation_bits=4, ema_decay=0.5)
    layer.build((None, 3))
    x = tf.constant([[0.3, -2.0, 100.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=False)
    # Inside the range (-6, 6) the gradient passes unchanged; outside it is 0.
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [[1.0, 1.0, 0.0]])
    # Clamped to the top of the 15-step grid over (-6, 6), nudged so that 0 is a level.
    step = 12.0 / 15
    assert float(y[0, 2]) == pytest.approx(float(layer(tf.constant([[0.0, 0.0, 7.0]]))[0, 2]))
    assert 6.0 - step < float(y[0, 2]) < 6.0 + step
    assert float(y[0, 0]) / step == pytest.approx(round(float(y[0, 0]) / step), abs=1e-4)
    layer(x, training=True)  # EMA with decay 0.5 towards the batch range [-2, 100]
    assert float(layer.output_max.numpy()) == pytest.approx(0.5 * 6 + 0.5 * 100)
    assert float(layer.output_min.numpy()) == pytest.approx(0.5 * -6 + 0.5 * -2)


@pytest.mark.parametrize("bits", [1, 9, 12, 64, 4.0, True, None])
def test_bits_outside_the_valid_set_are_refused(bits):
    with pytest.raises(ValueError, match=r"weight_bits must be an int in 2\.\.8"):
        QuantizedConv2D(4, 3, weight_bits=bits)
    with pytest.raises(ValueError, match="activation_bits"):
        QuantizedActivation("relu", activation_bits=bits)


def test_quantize_layer_keeps_the_config_and_refuses_layers_without_kernels():
    layer = quantize_layer(keras.layers.Conv2D(5, 3, strides=2, activation="relu"),
                           weight_bits=4, per_channel=True)  # fmt: skip
    assert isinstance(layer, QuantizedConv2D)
    assert (layer.filters, layer.strides, layer.weight_bits, layer.per_channel) == (
        5, (2, 2), 4, True)  # fmt: skip
    with pytest.raises(ValueError, match="Received: layer of type Flatten"):
        quantize_layer(keras.layers.Flatten())


def test_the_legacy_keras_variable_is_unchanged_in_a_fresh_process():
    script = (
        "import os, sys\n"
        "want = sys.argv[1] if len(sys.argv) > 1 else None\n"
        "import numpy as np\n"
        "from tfnas.quantization import QuantizedDense\n"
        "layer = QuantizedDense(2, weight_bits=4, activation_bits=8)\n"
        "layer(np.ones((1, 3), 'float32'), training=True)\n"
        "import tensorflow_model_optimization  # imported by the call above\n"
        "assert os.environ.get('TF_USE_LEGACY_KERAS') == want, os.environ.get('TF_USE_LEGACY_KERAS')\n"
    )  # fmt: skip
    # Unset before; tfmot sets it to "1" on import.
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
