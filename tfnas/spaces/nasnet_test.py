"""The NASNet cell space: NASNet-A's parameters, the cell rules, the encoding, errors."""

import keras
import keras_tuner
import numpy as np
import pytest

from tfnas import Architecture
from tfnas.blocks import SupernetHyperParameters
from tfnas.blocks.rules import SinglePath
from tfnas.latency import tflite
from tfnas.spaces import nasnet

TINY = dict(num_blocks=2, num_cells_per_stack=1, num_stacks=2, filters=4)


def _values(cell, blocks, extra=""):
    """Values of a cell from [(input0, op0, input1, op1), ...]."""
    values = {f"{cell}/extra_outputs": extra}
    for j, (i0, op0, i1, op1) in enumerate(blocks):
        values.update({
            f"{cell}/block{j}/input0": i0, f"{cell}/block{j}/op0": op0,
            f"{cell}/block{j}/input1": i1, f"{cell}/block{j}/op1": op1,
        })  # fmt: skip
    return values


def _cell(blocks, *, reduction=False, filters=4, prev=True, extra="", shape=(8, 8, 4)):
    """A hand-made cell on fresh inputs: (inputs, output, hyperparameters)."""
    hp = keras_tuner.HyperParameters()
    hp.values.update(_values("c", blocks, extra))
    prev_in = keras.Input(shape) if prev else None
    current = keras.Input(shape)
    out = nasnet.nasnet_cell(hp, "c", prev_in, current, filters, reduction=reduction,
                             num_blocks=len(blocks))  # fmt: skip
    return [t for t in (prev_in, current) if t is not None], out, hp


def test_nasnet_a_6_at_768_has_the_papers_3_3m_parameters():
    space = nasnet.NASNetSpace((32, 32, 3), 10, num_cells_per_stack=6, filters=32)
    model = Architecture(space, nasnet.nasnet_a_values(space)).build()
    # Table 1: NASNet-A (6 @ 768), 3.3M parameters (no auxiliary head; BN moving
    # statistics excluded, they are not parameters).
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == pytest.approx(3.3e6, rel=0.03)
    # "@ 768": the last normal cell concatenates 6 states of 4 x 32 channels.
    assert model.get_layer("final_relu").output.shape[-1] == 768


def test_output_concatenates_exactly_the_unused_states():
    # States: 0 = h_{i-2}, 1 = h_{i-1}, 2.. = blocks. Block 0 reads 1 and 1, block 1 reads
    # 2 and 0, block 2 reads 1 and 3: 0, 1, 2, 3 are used, block 2 (state 4) alone is not.
    blocks = [(1, "sep_conv_3x3", 1, "identity"), (2, "max_pool_3x3", 0, "conv_1x1"),
              (1, "avg_pool_3x3", 3, "conv_3x3")]  # fmt: skip
    _, out, _ = _cell(blocks)
    assert out.shape[1:] == (8, 8, 4)
    # Block 2 reading state 2 instead leaves block 1 (state 3) unused too: 2 x filters.
    blocks[2] = (1, "avg_pool_3x3", 2, "conv_3x3")
    _, out, _ = _cell(blocks)
    assert out.shape[1:] == (8, 8, 8)
    # `extra_outputs` concatenates used states too (the released NASNet-A cells).
    _, out, _ = _cell(blocks, extra="0,1")
    assert out.shape[1:] == (8, 8, 16)
    # In a reduction cell an unused cell input is factorized-reduced to the output shape.
    _, out, _ = _cell([(1, "sep_conv_5x5", 1, "max_pool_5x5")], reduction=True)
    assert out.shape[1:] == (4, 4, 8)  # h_{i-2} and block 0, 4 channels each, 4x4.


def test_same_input_twice_sums_two_operations_on_it():
    # One block: identity(h_{i-1}) + identity(h_{i-1}); h_{i-2} (the raw input, no prev)
    # is unused, so the output is [x, 2 * relu_conv_bn(x)].
    inputs, out, _ = _cell([(1, "identity", 1, "identity")], prev=False)
    model = keras.Model(inputs, out)
    (add,) = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    probe = keras.Model(inputs, [add.input[0], out])
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
    state, y = probe([x])
    np.testing.assert_allclose(y[..., :4], x, atol=1e-6)
    # The other summand equals the first: both are the identity of h_{i-1}.
    np.testing.assert_allclose(y[..., 4:], 2 * np.asarray(state), atol=1e-5)


def test_every_operation_builds_on_strided_and_unstrided_states():
    # A 13-block reduction cell: block j applies operation j to a cell input (stride 2)
    # and to the previous state (stride 1 from block 1 on).
    blocks = [(j % 2, op, j + 1, op) for j, op in enumerate(nasnet.NASNET_OPS)]
    inputs, out, hp = _cell(blocks, reduction=True, shape=(8, 8, 6))
    assert out.shape[1:] == (4, 4, 4)  # Only the last block is unused.
    model = keras.Model(inputs, out)
    x = np.ones((1, 8, 8, 6), "float32")
    assert model([x, x]).shape == (1, 4, 4, 4)


def test_hyperparameters_round_trip_through_json():
    space = nasnet.NASNetSpace((8, 8, 1), 10, **TINY)
    hp = keras_tuner.HyperParameters()
    model = space.build(hp)
    expected = {f"{cell}/block{j}/{d}" for cell in nasnet.CELLS for j in range(2)
                for d in ("input0", "input1", "op0", "op1")}  # fmt: skip
    assert set(hp.values) == expected | {"normal/extra_outputs", "reduce/extra_outputs"}
    block1 = next(p for p in hp.space if p.name == "normal/block1/input0")
    assert list(block1.values) == [0, 1, 2]
    assert all(isinstance(p, keras_tuner.engine.hyperparameters.Choice)
               for p in hp.space if "/block" in p.name)  # fmt: skip
    hp.values.update({"normal/block1/input1": 2, "normal/block1/op1": "conv_1x7_7x1",
                      "reduce/block0/op0": "dil_conv_3x3"})  # fmt: skip
    arch = Architecture.from_hyperparameters(space, hp)
    again = Architecture.from_json(space, arch.to_json())
    assert again == arch
    assert again.count_params() == arch.count_params() != model.count_params()
    # A searched combination is one more choice per block.
    both = nasnet.NASNetSpace((8, 8, 1), 10, **TINY, combine=("add", "concat"))
    hp = keras_tuner.HyperParameters()
    hp.values["normal/block0/combine"] = "concat"
    both.build(hp)
    assert list(next(p for p in hp.space if p.name == "normal/block1/combine").values) == [
        "add",
        "concat",
    ]


def test_tiny_model_trains_a_step_on_digit_shapes():
    space = nasnet.NASNetSpace((8, 8, 1), 10, **TINY)
    model = space.build(keras_tuner.HyperParameters())
    x = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype("float32")
    history = model.fit(x, np.arange(8) % 10, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.output.shape == (None, 10)


def test_fixed_model_converts_to_tflite():
    space = nasnet.NASNetSpace((8, 8, 1), 10, **TINY)
    values = Architecture.from_hyperparameters(space, _tiny_hp(space)).values
    values.update({"normal/block0/op0": "conv_1x3_3x1", "reduce/block1/op1": "max_pool_5x5"})
    model = Architecture(space, values).build()
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 1)).astype("float32")
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=tflite.convert(model)).get_signature_runner()
    (output,) = runner(**{model.inputs[0].name: x}).values()
    np.testing.assert_allclose(output, model(x, training=False), atol=1e-4)


def _tiny_hp(space):
    hp = keras_tuner.HyperParameters()
    space.build(hp)
    return hp


def test_weight_sharing_strategies_are_refused():
    space = nasnet.NASNetSpace((8, 8, 1), 10, **TINY)
    with pytest.raises(ValueError, match="no supernet: search it with a multi-trial oracle"):
        space.build(SupernetHyperParameters(SinglePath()))


@pytest.mark.parametrize("kwargs, message", [
    ({"filters": 5}, "filters must be even.*Received: filters=5"),
    ({"num_blocks": 0}, "num_blocks must be >= 1. Received: num_blocks=0"),
    ({"num_stacks": 0}, "num_stacks must be >= 1"),
    ({"operations": ["identity", "conv_5x5"]}, r"operations must be a non-empty subset"),
    ({"combine": "mul"}, r"combine must be 'add', 'concat'.*Received: combine=\['mul'\]"),
    ({"stem_multiplier": 0}, "stem_multiplier must be > 0"),
    ({"dropout": 1.0}, "dropout"),
    ({"input_shape": (8, 8)}, r"input_shape must be \(height, width, channels\)"),
])  # fmt: skip
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nasnet.NASNetSpace(**{"input_shape": (8, 8, 1), **TINY, **kwargs})


def test_invalid_values():
    space = nasnet.NASNetSpace((8, 8, 1), 10, **TINY)
    values = Architecture.from_hyperparameters(space, _tiny_hp(space)).values
    with pytest.raises(ValueError, match=r"Received: normal/extra_outputs='0,9'"):
        Architecture(space, {**values, "normal/extra_outputs": "0,9"})
    with pytest.raises(ValueError, match=r"Unknown operation/value.*'normal/block0/input0'"):
        Architecture(space, {**values, "normal/block0/input0": 2})
    with pytest.raises(ValueError, match="Unknown NASNet operation. Received: 'conv_5x5'"):
        nasnet.nasnet_op("conv_5x5", (8, 8, 4), 4)
    with pytest.raises(ValueError, match="NASNet-A needs a space with num_blocks=5"):
        nasnet.nasnet_a_values(space)
