import json

import keras
import keras_tuner
import numpy as np
import pytest

from tfnas.latency import tflite
from tfnas.search import path_level as pl
from tfnas.spaces import path_level as sp

C = 8
X = np.random.default_rng(1).uniform(0, 1, (4, 8, 8, 1)).astype("float32")


def _t(kind, node="r", **kwargs):
    return {"type": kind, "node": node, **kwargs}


def randomize(model, seed=0):
    """Random non-trivial weights, batch norms with random moving statistics."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n),
                               rng.normal(0, 0.3, n), rng.uniform(0.5, 2, n)])  # fmt: skip
        elif layer.weights:
            layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.get_weights()])
    return model


def _child_and_parent(parent_cell, transformations, noise_ratio=0.0):
    space = sp.PathLevelSpace(channels=C, noise_ratio=noise_ratio)
    parent = randomize(space.build_cell_model(parent_cell))
    child_cell = pl.apply_transformations(parent_cell, transformations, C)
    child = space.build_cell_model(child_cell)
    sp.transfer_weights(parent, child, parent_cell, transformations, C, space.num_cells,
                        noise_ratio=noise_ratio)  # fmt: skip
    return parent, child


# Every transformation on every operation it applies to, the pooling replacements aside.
CASES = (
    [(op, [_t("set_merge", merge=m, branches=k)]) for op in pl.OPERATIONS
     for m, k in (("add", 2), ("add", 3), ("concat", 2))]
    + [(op, [_t("insert", branch=0)]) for op in pl.OPERATIONS]
    + [("conv3x3", [_t("insert", branch=0), _t("replace_identity", "r.0", branch=0, op=op)])
       for op in pl.IDENTITY_INITIALIZABLE]
    + [("identity", [_t("set_merge", merge="concat", branches=2),
                     _t("replace_identity", branch=1, op=op)]) for op in pl.IDENTITY_INITIALIZABLE]
    + [("sep5x5", [_t("set_merge", merge="add", branches=2), _t("insert", branch=1),
                   _t("set_merge", "r.1", merge="concat", branches=2),
                   _t("replace_identity", "r.1", branch=0, op="conv3x3"),
                   _t("insert", "r.1", branch=1),
                   _t("replace_identity", "r.1.1", branch=0, op="sep7x7")])]
)  # fmt: skip


@pytest.mark.parametrize("start, transformations", CASES)
def test_every_transformation_preserves_the_function(start, transformations):
    parent, child = _child_and_parent(pl.start_cell(start), transformations)
    expected = parent.predict(X, verbose=0)
    assert np.abs(expected).max() > 1e-2  # Non-trivial outputs.
    np.testing.assert_allclose(child.predict(X, verbose=0), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("op", ["avgpool3x3", "maxpool3x3"])
def test_pooling_replacements_inherit_the_rest_but_change_the_function(op):
    transformations = [_t("insert", branch=0), _t("replace_identity", "r.0", branch=0, op=op)]
    assert not pl.preserves_function(transformations[1])
    parent, child = _child_and_parent(pl.start_cell("conv3x3"), transformations)
    for name in ("stem_conv", "cell0_r_b0_conv", "cell1_r_b0_bn", "logits"):
        for a, b in zip(parent.get_layer(name).get_weights(), child.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert np.abs(child.predict(X, verbose=0) - parent.predict(X, verbose=0)).max() > 1e-3


def test_noise_breaks_the_symmetry_of_copies_and_stays_close():
    transformations = [_t("set_merge", merge="add", branches=2)]
    parent, child = _child_and_parent(pl.start_cell("conv3x3"), transformations, 6e-3)
    first = child.get_layer("cell0_r_b0_conv").get_weights()[0]
    second = child.get_layer("cell0_r_b1_conv").get_weights()[0]
    np.testing.assert_array_equal(first, parent.get_layer("cell0_r_b0_conv").get_weights()[0])
    assert 0 < np.abs(first - second).max() < 0.1
    np.testing.assert_allclose(child.predict(X, verbose=0), parent.predict(X, verbose=0),
                               atol=0.05)  # fmt: skip


def test_build_reads_the_fixed_hyperparameters_and_registers_them():
    space = sp.PathLevelSpace(channels=C)
    hp = keras_tuner.HyperParameters()
    model = space.build(hp)
    assert hp.values[pl.CELL] == pl.cell_key(pl.start_cell()) and hp.values[pl.CHANNELS] == C
    assert hp.values[pl.PARENT] == "" and model.output_shape == (None, 10)
    cell = pl.apply_transformation(pl.start_cell(), _t("set_merge", merge="add", branches=3), C)
    hp.values[pl.CELL] = pl.cell_key(cell)
    model = space.build(hp)
    assert {"cell0_r_b2_conv", "cell1_r_add"} <= {layer.name for layer in model.layers}
    assert space.inherit_weights(hp, model, lambda trial_id: pytest.fail("no parent")) is False


def test_inherit_weights_checks_the_transformations_make_the_cell():
    space = sp.PathLevelSpace(channels=C)
    hp = keras_tuner.HyperParameters()
    space.build(hp)
    hp.values.update({pl.PARENT: "00", pl.PARENT_CELL: pl.cell_key(pl.start_cell()),
                      pl.TRANSFORMS: '[{"type": "insert", "node": "r", "branch": 0}]'})  # fmt: skip
    with pytest.raises(ValueError, match=r"make 'conv3x3 > identity' of the parent cell, not "):
        space.inherit_weights(hp, space.build(hp), lambda trial_id: None)


def test_model_config_round_trip_and_keras_file(tmp_path):
    cell = pl.apply_transformations(pl.start_cell("identity"), [
        _t("set_merge", merge="concat", branches=2), _t("replace_identity", branch=0, op="sep3x3"),
    ], C)  # fmt: skip
    model = randomize(sp.PathLevelSpace(channels=C).build_cell_model(cell))
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(X, verbose=0), model.predict(X, verbose=0), atol=1e-6)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0), atol=1e-6)
    assert all(type(layer).__module__.startswith("keras") for layer in loaded.layers)


def test_a_transformed_network_converts_to_tflite():
    transformations = [_t("set_merge", merge="concat", branches=2), _t("insert", branch=1),
                       _t("replace_identity", "r.1", branch=0, op="sep5x5")]  # fmt: skip
    _, child = _child_and_parent(pl.start_cell("maxpool3x3"), transformations)
    flatbuffer = tflite.convert(child)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.set_tensor(inp["index"], X[:1])
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(out["index"]), child.predict(X[:1], verbose=0),
                               atol=1e-4)  # fmt: skip


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"channels": 0}, r"channels must be >= 1"),
        ({"num_cells": 0}, r"num_cells must be >= 1"),
        ({"start_op": "fc"}, r"op must be one of"),
        ({"noise_ratio": -1.0}, r"noise_ratio must be >= 0"),
        ({"input_shape": (8, 8)}, r"input_shape must be \(height, width, channels\)"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sp.PathLevelSpace(**kwargs)


def test_a_cell_that_does_not_fit_the_channels_is_refused():
    space = sp.PathLevelSpace(channels=6)
    hp = keras_tuner.HyperParameters()
    space.build(hp)
    cell = {"merge": "concat", "split": "copy", "branches": [{"op": "conv1x1", "child": None}] * 4}
    hp.values[pl.CELL] = pl.cell_key(cell)
    with pytest.raises(ValueError, match=r"Node 'r' cannot split 6 channels evenly among 4"):
        space.build(hp)


def test_identity_batch_norms_are_calibrated_on_the_data_before_fit():
    space = sp.PathLevelSpace(channels=C, noise_ratio=0.0)
    parent = randomize(space.build_cell_model(pl.start_cell()))
    transforms = [_t("insert", branch=0), _t("replace_identity", "r.0", branch=0, op="sep3x3")]
    hp = keras_tuner.HyperParameters()
    space.build(hp)
    hp.values.update({pl.CELL: pl.cell_key(pl.apply_transformations(pl.start_cell(), transforms, C)),
                      pl.PARENT: "7", pl.PARENT_CELL: pl.cell_key(pl.start_cell()),
                      pl.TRANSFORMS: json.dumps(transforms)})  # fmt: skip
    child = space.build(hp)
    assert space.inherit_weights(hp, child, lambda trial_id: parent if trial_id == "7" else None)
    assert space._to_calibrate[id(child)] == ["cell0_r-0_b0_bn", "cell1_r-0_b0_bn"]
    x = np.random.default_rng(2).uniform(0, 1, (64, 8, 8, 1)).astype("float32")
    space.fit(hp, child, x, np.zeros(64, "int32"), epochs=0, verbose=0)  # Calibrates only.
    assert not space._to_calibrate
    np.testing.assert_allclose(child.predict(X, verbose=0), parent.predict(X, verbose=0),
                               atol=1e-5)  # fmt: skip
    bn = child.get_layer("cell0_r-0_b0_bn")
    assert np.abs(bn.moving_mean.numpy()).max() > 1e-3  # Read from the data, not 0.
    inputs = keras.Model(child.inputs, bn.input).predict(x, verbose=0)
    np.testing.assert_allclose(bn(inputs, training=True), inputs, atol=1e-4)


def test_a_grown_cell_is_a_valid_architecture_of_the_space():
    from tfnas.architecture import Architecture

    space = sp.PathLevelSpace(channels=C)
    cell = pl.apply_transformation(pl.start_cell(), _t("set_merge", merge="add", branches=2), C)
    values = {pl.CHANNELS: C, pl.CELL: pl.cell_key(cell), pl.PARENT: "3",
              pl.PARENT_CELL: pl.cell_key(pl.start_cell()), pl.TRANSFORMS: "[]"}  # fmt: skip
    model = Architecture(space, values).build()
    assert "cell0_r_add" in {layer.name for layer in model.layers}
    with pytest.raises(ValueError, match=r"The architecture's cell has 4 channels, this space 8"):
        Architecture(space, {**values, pl.CHANNELS: 4})
