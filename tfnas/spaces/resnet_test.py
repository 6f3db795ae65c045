"""ResNetSpace: TAS's CIFAR ResNet in fixed and supernet mode, exports, TFLite."""

import keras
import keras_tuner
import numpy as np
import pytest

from tfnas.architecture import Architecture
from tfnas.blocks.rules import TransformableMixture
from tfnas.blocks.supernet import SupernetHyperParameters
from tfnas.blocks.transformable import PaddedAdd, PaddedDense
from tfnas.cost import count_flops
from tfnas.engine.supernet import collapse
from tfnas.latency import tflite
from tfnas.spaces.resnet import ResNetSpace


def _space(**kwargs):
    return ResNetSpace((8, 8, 1), 10, depth=14, base_filters=4, **kwargs)


def test_the_published_resnet20_has_its_size_and_the_searched_choices():
    space = ResNetSpace((32, 32, 3), 10, depth=20)
    model = Architecture(space, space.uniform_values(1.0)).build()
    # He et al.'s ResNet-20 (0.27 M parameters) with the stride-2 shortcuts of TAS
    # (average pooling and a 1x1 convolution).
    assert model.count_params() == pytest.approx(272_474, rel=0.01)
    values = space.uniform_values(1.0)
    assert values["stage2/depth"] == 3 and values["stage2/block2/b/filters"] == 64
    hp = keras_tuner.HyperParameters()
    space.build(hp)
    assert hp.space[0].name == "stem/filters" and hp.space[0].values == [4, 6, 8, 9, 11, 12, 14, 16]
    assert [p.values for p in hp.space if p.name == "stage0/depth"] == [[1, 2, 3]]


def test_fixed_mode_builds_the_pruned_network_with_projection_shortcuts():
    space = _space()
    values = space.uniform_values(1.0)
    values.update({"stage0/depth": 1, "stage0/block0/b/filters": 2})
    values = {k: v for k, v in values.items() if not k.startswith("stage0/block1/")}
    model = Architecture(space, values).build()
    full = Architecture(space, space.uniform_values(1.0)).build()
    assert count_flops(model) < count_flops(full)
    # Stage 0 keeps one block; its 2-channel output differs from the 4-channel stem, so
    # the shortcut gets a 1x1 convolution.
    kernels = [w.shape for w in model.weights if "kernel" in w.path]
    assert (1, 1, 4, 2) in [tuple(k) for k in kernels]
    assert model(np.zeros((1, 8, 8, 1), "float32")).shape == (1, 10)


@pytest.mark.parametrize("fraction, shallow", [(1.0, False), (0.5, True)])
def test_an_exported_shape_computes_what_the_supernet_computes_and_converts(fraction, shallow):
    space = _space()
    rule = TransformableMixture(seed=0)
    supernet = space.build(SupernetHyperParameters(rule))
    values = space.uniform_values(fraction)
    if shallow:
        values.update({"stage1/depth": 1, "stage0/block1/a/filters": 2})
    rule.set_architecture(values)
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 1)).astype("float32")
    exported = collapse(supernet, values)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(exported(x)),
        keras.ops.convert_to_numpy(supernet(x)),
        atol=1e-5,
    )
    assert all(type(layer).__module__.startswith("keras") for layer in exported._flatten_layers())
    assert tflite.convert(exported)[4:8] == b"TFL3"


def test_padded_layers_round_trip_their_config():
    for layer in (PaddedAdd(), PaddedDense(3)):
        copy = type(layer).from_config(layer.get_config())
        assert copy.get_config() == layer.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depth": 12}, "depth must be 6n \\+ 2 .* Received: depth=12"),
        ({"base_filters": 1}, "base_filters"),
        ({"width_fractions": (0.0, 1.0)}, "fractions=\\[0.0, 1.0\\]"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResNetSpace((8, 8, 1), 10, **{"depth": 14, **kwargs})


def test_uniform_values_refuses_a_fraction_outside_0_1():
    with pytest.raises(ValueError, match="Received: fraction=0"):
        _space().uniform_values(0)
