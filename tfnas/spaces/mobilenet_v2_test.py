"""MobileNetV2Space: the published network, exports of searched shapes, the FLOPs count."""

import keras
import numpy as np
import pytest

from tfnas.architecture import Architecture
from tfnas.blocks.rules import TransformableMixture
from tfnas.blocks.supernet import SupernetHyperParameters
from tfnas.blocks.transformable import SharedConv
from tfnas.cost import count_flops
from tfnas.engine.supernet import collapse
from tfnas.engine.tas_steps import ExpectedFlopsLoss
from tfnas.latency import tflite
from tfnas.spaces.mobilenet_v2 import MobileNetV2Space

TINY = {"stages": [(1, 8, 1, 1), (6, 16, 2, 2)], "stem_filters": 8, "stem_strides": 1,
        "head_filters": 32, "width_fractions": (0.5, 1.0)}  # fmt: skip


def test_the_full_network_is_keras_applications_mobilenet_v2():
    space = MobileNetV2Space()
    model = Architecture(space, space.uniform_values(1.0)).build()
    assert model.count_params() == 3_538_984  # keras.applications.MobileNetV2(weights=None)
    assert count_flops(model) == pytest.approx(300e6, rel=0.01)  # Published: 300M MACs.


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_an_exported_shape_computes_what_the_supernet_computes(fraction):
    space = MobileNetV2Space((8, 8, 1), 10, **TINY)
    rule = TransformableMixture(seed=0)
    supernet = space.build(SupernetHyperParameters(rule))
    values = space.uniform_values(fraction)
    if fraction < 1:
        values["stage1/depth"] = 1
        values = {k: v for k, v in values.items() if not k.startswith("stage1/block1/")}
    rule.set_architecture(values)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    exported = collapse(supernet, values)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(exported(x)), keras.ops.convert_to_numpy(supernet(x)), atol=1e-5
    )
    assert tflite.convert(exported)[4:8] == b"TFL3"
    fixed = Architecture(space, values).build()
    assert count_flops(fixed) == count_flops(exported)


def test_the_flops_count_has_depthwise_layers_linear_in_their_width():
    space = MobileNetV2Space((8, 8, 1), 10, **TINY)
    rule = TransformableMixture(seed=0)
    supernet = space.build(SupernetHyperParameters(rule))
    term = ExpectedFlopsLoss(0.5)
    term.connect(supernet, rule)
    full = Architecture(space, space.uniform_values(1.0)).build()
    assert term.largest * 1e6 == pytest.approx(count_flops(full) - 32 * 10)  # No classifier.
    depthwise = [layer for layer in term.layers if layer.depthwise]
    assert len(depthwise) == 3 and depthwise[0].choice == "stem"  # t = 1 keeps the stem's.


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"stages must be .* Received: stages=\(\(6, 16, 2\),\)"):
        MobileNetV2Space((8, 8, 1), 10, stages=[(6, 16, 2)])
    with pytest.raises(ValueError, match="Received: stem_strides=3"):
        MobileNetV2Space((8, 8, 1), 10, stem_strides=3)
    shared = SharedConv(8, 3, depthwise=True, choice="dw")
    with pytest.raises(ValueError, match=r"filters=8 for an input of 4 channels \(choice 'dw'\)"):
        shared.build((None, 4, 4, 4))
