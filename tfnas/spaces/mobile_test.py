"""The mobile MBConv space: published networks as fixed points, depth choices."""

import collections

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


def _joint_space(**kwargs):
    return mobile.MobileSpace(
        (8, 8, 1), 10, stem_filters=8, stem_strides=1, head_filters=16,
        stages=[mobile.Stage(8, 1), mobile.Stage(16, (1, 2, 3), 2)],
        kernel_sizes=(3, 5, 7), expansions=(3, 6), se_ratios=(0.0,), joint_ops=True, **kwargs,
    )  # fmt: skip


OPS = ["k3_e3", "k3_e6", "k5_e3", "k5_e6", "k7_e3", "k7_e6"]


def test_joint_ops_offer_one_choice_per_block_over_its_operations():
    space = _joint_space()
    hp = keras_tuner.HyperParameters()
    model = space.build(hp)
    choices = {p.name: list(p.values) for p in hp.space}
    assert choices == {
        "stage0/block0/op": OPS,
        "stage1/block0/op": OPS,
        "stage1/block1/op": OPS + ["skip"],
        "stage1/block2/op": OPS + ["skip"],
    }
    assert model.output.shape == (None, 10)
    # A skip in the middle of a stage is an architecture of the space, as in the papers.
    values = {name: "k5_e6" for name in choices}
    middle = Architecture(space, {**values, "stage1/block1/op": "skip"}).build()
    trailing = Architecture(space, {**values, "stage1/block2/op": "skip"}).build()
    assert middle.count_params() == trailing.count_params()
    full = Architecture(space, values).build()
    assert full.count_params() > middle.count_params()


def test_joint_mobilenet_v2_matches_keras_applications_exactly():
    stages = [
        mobile.Stage(s.filters, 1 if i in (0, 6) else (1, 2, 3, 4), s.strides)
        for i, s in enumerate(mobile.MOBILENET_V2_STAGES)
    ]
    space = mobile.MobileSpace(
        (224, 224, 3), 1000, stages=stages, kernel_sizes=(3,), expansions=(1, 6),
        se_ratios=(0.0,), joint_ops=True,
    )  # fmt: skip
    values = mobile.mobilenet_v2_values(space)
    assert values["stage1/block2/op"] == "skip" and values["stage1/block1/op"] == "k3_e6"
    model = Architecture(space, values).build()
    reference = keras.applications.MobileNetV2(weights=None)
    assert model.count_params() == reference.count_params() == 3_538_984
    assert cost.count_flops(model) == pytest.approx(cost.count_flops(reference), rel=1e-6)


def test_fairnas_is_strictly_fair_over_each_blocks_joint_operations():
    import tfnas

    hp = keras_tuner.HyperParameters()
    _joint_space().build(hp)
    oracle = tfnas.oracles.FairNAS(seed=0)
    oracle.hyperparameters = hp
    assert oracle.paths_per_step == 7  # Six operations and skip.

    class Recorder:
        architectures = []

        def set_architecture(self, values):
            self.architectures.append(dict(values))

    for step in range(3):
        rule = Recorder()
        rule.architectures = []
        for path in range(7):
            oracle.prepare_training_step(rule, step, path, 0.0)
        for name in ("stage1/block1/op", "stage1/block2/op"):
            assert sorted(a[name] for a in rule.architectures) == sorted(OPS + ["skip"])
        # Blocks without skip have 6 operations: each runs once, one of them twice.
        counts = collections.Counter(a["stage0/block0/op"] for a in rule.architectures)
        assert set(counts) == set(OPS) and sorted(counts.values()) == [1] * 5 + [2]


def test_scarlet_gives_every_joint_skip_a_projection():
    from tfnas import blocks

    rule = blocks.rules.ScarletPath()
    supernet = _joint_space().build(blocks.SupernetHyperParameters(rule))
    choices = {
        c.choice_name: c for c in supernet._flatten_layers() if isinstance(c, blocks.LayerChoice)
    }
    assert sorted(choices) == [
        "stage0/block0/op", "stage1/block0/op", "stage1/block1/op", "stage1/block2/op"
    ]  # fmt: skip
    for name, choice in choices.items():
        expected = ["6"] if name in ("stage1/block1/op", "stage1/block2/op") else []
        assert sorted(choice.scarlet_projections) == expected


def test_scarlet_layer_choice_round_trip_and_tflite():
    from tfnas import blocks
    from tfnas.blocks.testing import run_layer_test

    # (A joint block's operations are nested functional models, which the round trip of
    # `run_layer_test` does not take; the projection of the skip is what is new here.)
    run_layer_test(
        lambda: blocks.LayerChoice(
            "op",
            [keras.layers.Conv2D(4, 3, padding="same"), keras.layers.Identity()],
            [{"op": "k3"}, {"op": "skip"}],
            blocks.rules.ScarletPath(),
        ),
        (6, 6, 4),
    )


def test_joint_ops_argument_errors():
    with pytest.raises(ValueError, match=r"depths must be consecutive. Received: depths=\(1, 3\)"):
        mobile.MobileSpace(stages=[mobile.Stage(8, (1, 3))], joint_ops=True)
    with pytest.raises(ValueError, match="joint_ops must be True or False. Received: joint_ops=1"):
        mobile.MobileSpace(joint_ops=1)
