"""The DARTS cell space: the published DARTS-V2 network and the space's encoding."""

import keras
import keras_tuner
import pytest

from tfnas import Architecture
from tfnas.spaces import darts


def _trainable(model, skip_prefix=None):
    return sum(
        int(keras.ops.size(w))
        for layer in model.layers
        if skip_prefix is None or not layer.name.startswith(skip_prefix)
        for w in layer.trainable_weights
    )


def test_darts_v2_cifar10_reproduces_the_released_parameter_count():
    # DARTS's released CIFAR-10 model: "param size = 3.349342MB" (auxiliary head excluded,
    # as the authors' count_parameters_in_MB does); the paper rounds it to 3.3M.
    space = darts.DartsSpace((32, 32, 3), 10, init_channels=36, num_cells=20, auxiliary=True)
    model = Architecture(space, darts.genotype_to_values(darts.DARTS_V2), validate=False).build()
    assert _trainable(model, skip_prefix="aux") == 3_349_342
    assert set(model.output) == {"logits", "aux_logits"}
    assert model.output["aux_logits"].shape == (None, 10)


def test_genotype_round_trip_and_space_has_14_edges_per_cell():
    values = darts.genotype_to_values(darts.DARTS_V1)
    round_trip = darts.values_to_genotype(values)
    for cell, pairs in darts.DARTS_V1.items():
        for node in range(4):
            assert set(round_trip[cell][2 * node : 2 * node + 2]) == set(
                pairs[2 * node : 2 * node + 2]
            )
    assert values["normal/node3/inputs"] == "0,2"
    space = darts.DartsSpace((8, 8, 1), 10, init_channels=4, num_cells=3)
    tuner_hp = keras_tuner.HyperParameters()
    # The first build registers the default inputs; KerasTuner's conditional-scope
    # exploration (tested in tuner_test) then registers the rest.
    space.build(tuner_hp)
    assert tuner_hp.values["normal/node0/inputs"] == "0,1"
    assert list(next(p for p in tuner_hp.space if p.name == "normal/node3/inputs").values) == [
        "0,1",
        "0,2",
        "0,3",
        "0,4",
        "1,2",
        "1,3",
        "1,4",
        "2,3",
        "2,4",
        "3,4",
    ]


def test_tiny_darts_trains_on_digits_shapes():
    space = darts.DartsSpace((8, 8, 1), 10, init_channels=4, num_cells=3)
    model = Architecture(space, darts.genotype_to_values(darts.DARTS_V2)).build()
    x = keras.random.normal((4, 8, 8, 1))
    history = model.fit(x, keras.ops.arange(4), epochs=1, verbose=0)
    assert "accuracy" in history.history


def test_genotype_errors():
    with pytest.raises(ValueError, match="takes input 0 twice"):
        darts.genotype_to_values({"normal": [("sep_conv_3x3", 0), ("skip_connect", 0)]})
    with pytest.raises(ValueError, match="two \\(operation, input\\) pairs per node. Received 1"):
        darts.genotype_to_values({"normal": [("sep_conv_3x3", 0)]})


def test_space_argument_errors():
    with pytest.raises(ValueError, match="init_channels must be even"):
        darts.DartsSpace(init_channels=5)
    with pytest.raises(ValueError, match="num_cells must be >= 3. Received: num_cells=1"):
        darts.DartsSpace(num_cells=1)
    with pytest.raises(
        ValueError, match=r"operations must be a non-empty subset.*Received: operations=\['conv'\]"
    ):
        darts.DartsSpace(operations=["conv"])
    with pytest.raises(ValueError, match=r"input_shape must be \(height, width, channels\)"):
        darts.DartsSpace(input_shape=(8, 8))
    with pytest.raises(
        ValueError, match="needs features of at least 5x5 at 2/3 depth. Received: 2x2"
    ):
        darts.DartsSpace((8, 8, 1), 10, init_channels=4, num_cells=3, auxiliary=True).build(
            keras_tuner.HyperParameters()
        )
