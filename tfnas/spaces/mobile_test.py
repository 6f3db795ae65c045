"""The mobile MBConv space: published networks as fixed points, depth choices."""

import keras
import keras_tuner
import pytest

from tfnas import Architecture, cost
from tfnas.spaces import mobile


def _mobilenet_v2_space():
    stages = [
        mobile.Stage(s.filters, 1 if i in (0, 6) else (1, 2, 3, 4), s.strides)
        for i, s in enumerate(mobile.MOBILENET_V2_STAGES)
    ]
    return mobile.MobileSpace((224, 224, 3), 1000, stages=stages)


def test_mobilenet_v2_matches_keras_applications_exactly():
    space = _mobilenet_v2_space()
    model = Architecture(space, mobile.mobilenet_v2_values(space)).build()
    reference = keras.applications.MobileNetV2(weights=None)
    assert model.count_params() == reference.count_params() == 3_538_984
    assert cost.count_flops(model) == pytest.approx(cost.count_flops(reference), rel=1e-6)


def test_mnasnet_a1_within_2_percent_of_published_3_9m():
    space = mobile.MobileSpace(
        (224, 224, 3), 1000, stages=mobile.MNASNET_STAGES, activations=("relu",)
    )
    model = Architecture(space, mobile.mnasnet_a1_values(space)).build()
    assert model.count_params() == pytest.approx(3.9e6, rel=0.02)


def test_tiny_space_searches_kernel_expansion_se_and_depth():
    space = mobile.MobileSpace(
        (8, 8, 1), 10, stem_filters=8, stem_strides=1, head_filters=16,
        stages=[mobile.Stage(8, 1), mobile.Stage(16, (1, 2), 2)],
    )  # fmt: skip
    hp = keras_tuner.HyperParameters()
    hp.values["stage1/depth"] = 2
    model = space.build(hp)
    assert sorted(hp.values) == [
        "stage0/block0/expansion", "stage0/block0/kernel_size", "stage0/block0/se_ratio",
        "stage1/block0/expansion", "stage1/block0/kernel_size", "stage1/block0/se_ratio",
        "stage1/block1/expansion", "stage1/block1/kernel_size", "stage1/block1/se_ratio",
        "stage1/depth",
    ]  # fmt: skip
    block1 = next(p for p in hp.space if p.name == "stage1/block1/kernel_size")
    assert block1.conditions[0].values == [2]
    assert model.output.shape == (None, 10)


def test_argument_errors():
    with pytest.raises(
        ValueError, match=r"Stage depths must be ints >= 1. Received: depths=\(0, 1\)"
    ):
        mobile.Stage(8, (0, 1))
    with pytest.raises(ValueError, match="Stage strides must be 1 or 2. Received: strides=3"):
        mobile.Stage(8, 1, 3)
    with pytest.raises(
        ValueError, match=r"kernel_sizes must be odd ints. Received: kernel_sizes=\(4,\)"
    ):
        mobile.MobileSpace(kernel_sizes=(4,))
    with pytest.raises(ValueError, match=r"se_ratios must be in \[0, 1\]"):
        mobile.MobileSpace(se_ratios=(2.0,))
    with pytest.raises(ValueError, match="stages must be a non-empty list of tfnas.spaces.Stage"):
        mobile.MobileSpace(stages=[(8, 1, 1)])
