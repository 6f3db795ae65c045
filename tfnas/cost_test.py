"""Static costs: multiply-adds against hand computations and MobileNetV2's published 300M."""

import keras
import pytest

from tfnas import cost


def test_flops_of_each_layer_kind():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
    x = keras.layers.SeparableConv2D(5, 3, padding="same")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10)(x)
    model = keras.Model(inputs, outputs)
    expected = 8 * 8 * 27 * 4 + 4 * 4 * 9 * 4 + 4 * 4 * (9 * 4 + 4 * 5) + 80 * 10
    assert cost.count_flops(model) == expected


def test_nested_models_and_shared_layers_count_per_call():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    inputs = keras.Input((4,))
    outputs = inner(inner(inputs))
    assert cost.count_flops(keras.Model(inputs, outputs)) == 2 * 16


def test_mobilenet_v2_is_about_300m_multiply_adds():
    model = keras.applications.MobileNetV2(weights=None)
    assert cost.count_flops(model) == pytest.approx(300e6, rel=0.01)


def test_params_and_bytes():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    assert cost.count_params(model) == 15
    assert cost.model_bytes(model) == 60
