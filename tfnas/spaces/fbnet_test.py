"""The FBNet space: published FBNets as fixed points, the tiny space, argument errors."""

import keras
import keras_tuner
import numpy as np
import pytest

from tfnas import Architecture, cost, spaces
from tfnas.latency.lookup_table import space_operations
from tfnas.spaces import fbnet
from tfnas.spaces.mobile import Stage


def _trainable(model):
    # The papers count PyTorch parameters: batch norms' moving statistics aside.
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "values, head, macs, params, macs_rel, params_rel",
    [
        # FBNet-A matches the paper (Table 3: 249M FLOPs, 4.3M parameters, head 1504).
        (fbnet.fbnet_a_values, 1504, 249e6, 4.3e6, 0.01, 0.01),
        # B and C: the released definitions (mobile-vision fbnet_modeldef_cls_fbnet.py)
        # are not exactly the paper's networks (B: 306.2M / 4.86M measured vs 295M / 4.5M;
        # C: 385.0M / 5.57M vs 375M / 5.5M), so the tolerances are wider.
        (fbnet.fbnet_b_values, 1984, 295e6, 4.5e6, 0.05, 0.09),
        (fbnet.fbnet_c_values, 1984, 375e6, 5.5e6, 0.03, 0.02),
    ],
)
def test_published_fbnets_match_the_paper(values, head, macs, params, macs_rel, params_rel):
    space = fbnet.FBNetSpace((224, 224, 3), 1000, head_filters=head)
    assert len(values(space)) == 22  # Table 1: 22 searched layers.
    model = Architecture(space, values(space)).build()
    assert cost.count_flops(model) == pytest.approx(macs, rel=macs_rel)
    assert _trainable(model) == pytest.approx(params, rel=params_rel)


def test_tiny_space_has_one_choice_of_nine_blocks_per_layer_and_trains():
    space = spaces.make("fbnet", (8, 8, 1), 10)
    assert isinstance(space, fbnet.FBNetSpace)
    choices, operations, hyperparameters = space_operations(space)
    assert [c["name"] for c in choices] == [
        "stage0/block0/op", "stage1/block0/op", "stage1/block1/op",
        "stage2/block0/op", "stage2/block1/op",
    ]  # fmt: skip
    for choice in choices:
        assert [c["values"][choice["name"]] for c in choice["candidates"]] == list(fbnet.FBNET_OPS)
        assert not choice["conditions"]
    assert len(hyperparameters) == 5
    # Every layer has its own input shape, so no two candidates share a measurement.
    assert len(operations) == 5 * 9
    hp = keras_tuner.HyperParameters()
    rng = np.random.default_rng(0)
    for choice in choices:
        hp.values[choice["name"]] = str(rng.choice(fbnet.FBNET_OPS))
    hp.values["stage1/block1/op"] = "k3_e1_g2"
    model = space.build(hp)
    x = rng.random((8, 8, 8, 1), dtype="float32")
    model.fit(x, np.arange(8) % 10, epochs=1, batch_size=8, verbose=0)
    assert model.output.shape == (None, 10)


def test_skip_first_layer_of_a_stage_projects():
    space = spaces.make("fbnet", (8, 8, 1), 10)
    values = {f"stage{s}/block{b}/op": "skip" for s, b in [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1)]}
    model = Architecture(space, values).build()
    convs = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Conv2D)]
    # Stem, the projections of stage1/block0 and stage2/block0 (stage0 keeps 8 wide), head.
    assert [c.filters for c in convs] == [8, 16, 24, 64]


def test_argument_errors():
    with pytest.raises(ValueError, match="stages must be a non-empty list of tfnas.spaces.Stage"):
        fbnet.FBNetSpace(stages=[Stage(8, (1, 2))])
    with pytest.raises(ValueError, match=r"Received: operations=\['k3_e1', 'conv'\]"):
        fbnet.FBNetSpace(operations=("k3_e1", "conv"))
    with pytest.raises(ValueError, match="Received: e1_pointwise=1"):
        fbnet.FBNetSpace(e1_pointwise=1)
    with pytest.raises(ValueError, match="Received: head_filters=-1"):
        fbnet.FBNetSpace(head_filters=-1)
    with pytest.raises(ValueError, match="Received: stem_strides=3"):
        fbnet.FBNetSpace(stem_strides=3)
    tiny = spaces.make("fbnet", (8, 8, 1), 10)
    with pytest.raises(ValueError, match="need a space with FBNET_STAGES' layer counts"):
        fbnet.fbnet_a_values(tiny)
    with pytest.raises(ValueError, match="uses 'k5_e6', which the space does not offer"):
        fbnet.fbnet_c_values(fbnet.FBNetSpace(operations=("k3_e1", "k3_e6", "skip")))
