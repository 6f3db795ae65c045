"""DARTS cells built with their first b blocks (the cells progressive search trains)."""

import keras
import keras_tuner
import pytest

from tfnas import Architecture
from tfnas.blocks import cells
from tfnas.spaces import darts

OPS = ["skip_connect", "sep_conv_3x3"]


def _space(num_nodes=3):
    return darts.DartsSpace(
        (8, 8, 1), 10, init_channels=2, num_cells=3, num_nodes=num_nodes, operations=OPS
    )


def _values(blocks):
    values = {cells.NUM_BLOCKS: blocks}
    for cell in ("normal", "reduce"):
        for j in range(blocks):
            values[f"{cell}/node{j}/inputs"] = f"0,{j + 1}"
            values[f"{cell}/node{j}/edge0"] = "sep_conv_3x3"
            values[f"{cell}/node{j}/edge{j + 1}"] = "skip_connect"
    return values


def _cell_outputs(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Concatenate)]


@pytest.mark.parametrize("blocks", [1, 2])
def test_cells_build_exactly_the_present_blocks(blocks):
    model = Architecture(_space(), _values(blocks)).build()  # Strict: no value is unused.
    concatenations = _cell_outputs(model)
    if blocks == 1:
        assert concatenations == []  # One node is the cell output itself.
    else:
        assert [len(layer.input) for layer in concatenations] == [blocks] * 3
    # Each node is the sum of its two edges: one `Add` per node, in each of the 3 cells.
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == blocks * 3
    # The cell output has `blocks * C` channels: the classifier sees 4C * blocks.
    assert model.get_layer("logits").input.shape[-1] == 4 * 2 * blocks


def test_space_registers_the_block_count_and_conditions_on_it():
    hp = keras_tuner.HyperParameters()
    _space().build(hp)
    fixed = hp.space[0]
    assert (fixed.name, fixed.value, type(fixed).__name__) == (cells.NUM_BLOCKS, 3, "Fixed")
    node2 = next(p for p in hp.space if p.name == "normal/node2/inputs")
    assert [c.get_config() for c in node2.conditions] == [{"name": cells.NUM_BLOCKS, "values": [3]}]
    # With 2 blocks, node 2's choices are inactive: a KerasTuner trial holds no value there.
    hp.values[cells.NUM_BLOCKS] = 2
    assert not hp.is_active(node2)
    assert darts.values_to_genotype(_values(2))["normal"] == [
        ("sep_conv_3x3", 0),
        ("skip_connect", 1),
        ("sep_conv_3x3", 0),
        ("skip_connect", 2),
    ]


def test_block_count_outside_its_range_is_refused():
    for value in (0, 4, "2"):
        with pytest.raises(
            ValueError,
            match=rf"cells/num_blocks .* must be an int in \[1, 3\]\. Received: "
            rf"cells/num_blocks={value!r}",
        ):
            Architecture(_space(), {**_values(1), cells.NUM_BLOCKS: value})


def test_without_blocks_name_the_cell_has_no_block_count():
    hp = keras_tuner.HyperParameters()
    inputs = keras.Input((8, 8, 4))
    out = cells.darts_cell(
        hp,
        "normal",
        inputs,
        inputs,
        4,
        reduction=False,
        reduction_prev=False,
        num_nodes=2,
        operations=OPS,
        blocks_name=None,
    )
    assert out.shape[-1] == 8
    assert cells.NUM_BLOCKS not in hp.values
    assert all(not p.conditions for p in hp.space if p.name.endswith("/inputs"))
