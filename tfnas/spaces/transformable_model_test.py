import keras
import keras_tuner
import numpy as np
import pytest

import tfnas
from tfnas.architecture import Architecture
from tfnas.engine import testing as engine_testing
from tfnas.latency.tflite import convert
from tfnas.spaces.transformable_model import TransformableModel
from tfnas.tuners.tas import TAS

layers = keras.layers


def _user_cnn():
    """A user's residual CNN: conv-bn-relu, a residual block, a depthwise conv, a conv
    with its own activation and no batch norm, pooling, dropout and a classifier."""
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    y = layers.Conv2D(8, 3, padding="same", name="block_a")(x)
    y = layers.BatchNormalization(name="block_a_bn")(y)
    y = layers.Activation("relu", name="block_a_relu")(y)
    y = layers.Conv2D(8, 3, padding="same", name="block_b")(y)
    y = layers.BatchNormalization(name="block_b_bn")(y)
    x = layers.Add(name="residual")([x, y])
    x = layers.ReLU(name="residual_relu")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw")(x)
    x = layers.Conv2D(16, 1, activation="relu", name="pointwise")(x)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.1, name="drop")(x)
    return keras.Model(inputs, layers.Dense(10, name="classifier")(x), name="user_cnn")


def _filters(model):
    return {
        layer.name: layer.filters
        for layer in model._flatten_layers()
        if isinstance(layer, layers.Conv2D) and not isinstance(layer, layers.DepthwiseConv2D)
    }


def test_a_user_model_becomes_width_choices_and_builds_at_any_width():
    space = TransformableModel(_user_cnn(), width_fractions=(0.5, 1.0))
    # One choice per convolution; the depthwise follows its input's (the residual's
    # main path, block_b); the classifier is not searched.
    assert list(space.choices) == ["stem", "block_a", "block_b", "pointwise"]
    assert space.uniform_values(1.0) == {
        "stem/filters": 8, "block_a/filters": 8, "block_b/filters": 8, "pointwise/filters": 16,
    }  # fmt: skip
    full = Architecture(space, space.uniform_values(1.0)).build()
    assert full.count_params() == pytest.approx(_user_cnn().count_params(), rel=0.15)
    assert full(np.zeros((2, 8, 8, 1), "float32")).shape == (2, 10)
    half = Architecture(space, space.uniform_values(0.5)).build()
    assert sorted(_filters(half).values()) == [4, 4, 4, 8]
    # The depthwise convolution runs at its input's (halved) width.
    (dw,) = [layer for layer in half._flatten_layers() if isinstance(layer, layers.DepthwiseConv2D)]
    assert dw.kernel.shape == (3, 3, 4, 1)
    # Different widths of stem and block_b: the shortcut is projected (1x1) in fixed mode.
    mixed = Architecture(space, {**space.uniform_values(1.0), "block_b/filters": 4}).build()
    assert mixed(np.zeros((1, 8, 8, 1), "float32")).shape == (1, 10)
    assert len(convert(half)) > 0  # A plain model: LiteRT converts it.


def test_a_sequential_model_and_a_compiled_one_keep_their_compile_config():
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        layers.Conv2D(6, 3, activation="relu", name="c1"),
        layers.Conv2D(6, 3, padding="valid", name="c2"),
        layers.GlobalMaxPooling2D(),
        layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    space = TransformableModel(model, width_fractions=(0.5, 1.0))
    assert list(space.choices) == ["c1", "c2"]
    built = space.build(keras_tuner.HyperParameters())
    assert isinstance(built.optimizer, keras.optimizers.SGD)
    assert built.output_shape == (None, 10)
    # "valid" padding is kept: 8 -> 6 -> 4.
    convs = [layer for layer in built.layers if isinstance(layer, keras.Sequential)]
    assert [layer.output.shape[1] for layer in convs] == [6, 4]


def test_a_convolution_whose_width_is_the_output_is_kept():
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, padding="same", name="features")(inputs)
    outputs = layers.Conv2D(3, 1, name="mask")(x)  # A segmentation head: 3 classes.
    space = TransformableModel(keras.Model(inputs, outputs))
    assert list(space.choices) == ["features"]


def test_tas_searches_a_user_model_to_a_plain_model_at_the_target(tmp_path):
    space = TransformableModel(_user_cnn(), width_fractions=(0.25, 0.5, 1.0))
    oracle = TAS(flops_ratio=0.5, seed=0, bn_recalibration_batches=1)
    (x, y), validation = engine_testing.data(64)
    tuner = tfnas.Tuner(space, oracle=oracle, directory=str(tmp_path), project_name="tas")
    tuner.search(x, y, validation_data=validation, epochs=1, batch_size=32, verbose=0)
    assert set(oracle.distributions()) == set(space.choices)
    derived = oracle.derive()
    Architecture(space, derived)  # A shape of the space.
    model = tuner.get_best_models(1)[0]
    assert all(type(layer).__module__.startswith("keras") for layer in model._flatten_layers())
    assert model(np.zeros((1, 8, 8, 1), "float32")).shape == (1, 10)


def _conv_then(*after):
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    for layer in after:
        x = layer(x)
    if len(x.shape) == 4:
        x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10)(x))


@pytest.mark.parametrize(
    "model, message",
    [
        (_conv_then(layers.Flatten(name="flat")),
         r"layer 'flat' \(Flatten\) width-searchable: it reads the searched width of 'conv'"),
        # A sigmoid after the convolution is its view's; after a pooling it would turn the
        # padding's zeros into 0.5.
        (_conv_then(layers.MaxPooling2D(), layers.Activation("sigmoid", name="sig")),
         r"layer 'sig' \(Activation\)"),
    ],
)  # fmt: skip
def test_a_layer_that_cannot_see_a_searched_width_is_named(model, message):
    with pytest.raises(ValueError, match=message):
        TransformableModel(model)


def test_unsupported_convolutions_and_models_are_named():
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, dilation_rate=2, padding="same", name="dilated")(inputs)
    model = keras.Model(inputs, layers.Dense(10)(layers.GlobalAveragePooling2D()(x)))
    with pytest.raises(ValueError, match=r"'dilated' \(Conv2D\).*dilation_rate=\(2, 2\)"):
        TransformableModel(model)
    x = layers.Conv2D(4, 3, activation="relu", padding="same", name="early")(inputs)
    x = layers.BatchNormalization(name="after")(x)
    model = keras.Model(inputs, layers.Dense(10)(layers.GlobalAveragePooling2D()(x)))
    with pytest.raises(ValueError, match=r"'early'.*'relu' before the BatchNormalization 'after'"):
        TransformableModel(model)
    dense_only = keras.Sequential([keras.Input((4,)), layers.Dense(3)])
    with pytest.raises(ValueError, match="no Conv2D whose width TAS can search"):
        TransformableModel(dense_only)
    with pytest.raises(TypeError, match="model must be a keras.Model. Received: model of type str"):
        TransformableModel("resnet")
