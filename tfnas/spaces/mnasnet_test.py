"""MnasNet's factorized hierarchical space: MnasNet-A1, per-block decisions, errors."""

import keras
import keras_tuner
import numpy as np
import pytest

from tfnas import Architecture
from tfnas.blocks import SupernetHyperParameters
from tfnas.blocks.rules import SinglePath
from tfnas.latency import tflite
from tfnas.spaces import mnasnet, mobile

TINY = dict(stem_filters=8, stem_strides=1, head_filters=16,
            blocks=[mnasnet.MnasBlock(8, 1), mnasnet.MnasBlock(16, 2, 2)])  # fmt: skip


def test_mnasnet_a1_is_a_fixed_point_with_the_published_3_9m_parameters():
    space = mnasnet.MnasNetSpace((224, 224, 3), 1000, blocks=mnasnet.MNASNET_A1_BLOCKS)
    model = Architecture(space, mnasnet.mnasnet_a1_values(space)).build()
    # The same network as MnasNet-A1 in the mobile space, and the paper's 3.9M.
    other = mobile.MobileSpace((224, 224, 3), 1000, stages=mobile.MNASNET_STAGES,
                               activations=("relu",))  # fmt: skip
    expected = Architecture(other, mobile.mnasnet_a1_values(other)).build().count_params()
    assert model.count_params() == expected
    assert model.count_params() == pytest.approx(3.9e6, rel=0.02)


def test_each_block_decides_for_all_its_layers():
    space = mnasnet.MnasNetSpace((8, 8, 1), 10, **TINY)
    hp = keras_tuner.HyperParameters()
    hp.values.update({"block1/conv_op": "conv", "block1/filters": 1.25, "block1/layers": 1,
                      "block1/skip": "none", "block0/conv_op": "mbconv6"})  # fmt: skip
    model = space.build(hp)
    names = sorted(hp.values)
    assert names == sorted(f"block{i}/{d}" for i in (0, 1) for d in (
        "conv_op", "kernel_size", "se_ratio", "skip", "filters", "layers"))  # fmt: skip
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    # Block 0: 1 + delta layers (at least 1); block 1: 2 + 1 = 3 regular convolutions of
    # round(16 * 1.25) = 24 (a multiple of 8) filters, without residuals ("none").
    block1 = nested[-3:]
    assert [layer.output.shape[-1] for layer in block1] == [24, 24, 24]
    assert all(not any(isinstance(x, keras.layers.Add) for x in layer.layers) for layer in block1)
    assert not any(isinstance(x, keras.layers.DepthwiseConv2D)
                   for layer in block1 for x in layer.layers)  # fmt: skip
    hp.values["block1/skip"] = "identity"
    residual = space.build(hp)
    adds = [x for layer in residual.layers if isinstance(layer, keras.Model)
            for x in layer.layers if isinstance(x, keras.layers.Add)]  # fmt: skip
    # Block 0's layer (8 -> 8, stride 1) and block 1's 2nd and 3rd layers keep the shape.
    assert len(adds) == 3


def test_fixed_mode_models_convert_to_tflite():
    space = mnasnet.MnasNetSpace((8, 8, 1), 10, **TINY)
    hp = keras_tuner.HyperParameters()
    hp.values.update({"block0/conv_op": "dconv", "block1/conv_op": "mbconv3",
                      "block1/se_ratio": 0.25})  # fmt: skip
    model = space.build(hp)
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 1)).astype("float32")
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=tflite.convert(model)).get_signature_runner()
    (output,) = runner(**{model.inputs[0].name: x}).values()
    np.testing.assert_allclose(output, model(x, training=False), atol=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    ({"conv_ops": ("conv", "pool")}, r"conv_ops must be a non-empty list.*'pool'"),
    ({"kernel_sizes": (4,)}, "kernel_sizes"),
    ({"skip_ops": ("pooling",)}, "skip_ops"),
    ({"filter_multipliers": ()}, "filter_multipliers"),
    ({"blocks": [(16, 1, 1)]}, "blocks must be a non-empty list of MnasBlock"),
    ({"dropout": 1.0}, "dropout"),
])  # fmt: skip
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mnasnet.MnasNetSpace((8, 8, 1), 10, **{**TINY, **kwargs})
    with pytest.raises(ValueError, match="MnasBlock layers must be an int >= 1"):
        mnasnet.MnasBlock(8, 0)


def test_weight_sharing_strategies_are_refused():
    space = mnasnet.MnasNetSpace((8, 8, 1), 10, **TINY)
    with pytest.raises(ValueError, match="no supernet: search it with a multi-trial oracle"):
        space.build(SupernetHyperParameters(SinglePath()))
