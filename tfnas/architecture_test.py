"""Architecture: JSON encoding, strict validation against the space, costs."""

import json

import keras
import keras_tuner
import pytest

from tfnas import Architecture, blocks


def build(hp):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = blocks.layer_choice(hp, "op", {
        "conv": lambda: keras.layers.Conv2D(4, 3, padding="same", use_bias=False),
        "skip": lambda: keras.layers.Identity(),
    })(x)  # fmt: skip
    units = hp.Int("units", 4, 16, step=4)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(units, use_bias=False)(x)
    return keras.Model(inputs, keras.layers.Dense(10, use_bias=False)(x))


def test_json_round_trip_is_plain_json():
    arch = Architecture(build, {"op": "conv", "units": 8})
    text = arch.to_json()
    assert json.loads(text) == {
        "format": "tfnas.architecture", "version": 1, "values": {"op": "conv", "units": 8}
    }  # fmt: skip
    assert Architecture.from_json(build, text) == arch
    assert Architecture.from_json(build, '{"op": "skip", "units": 4}').values["op"] == "skip"


def test_flops_and_params_match_a_hand_computation():
    arch = Architecture(build, {"op": "conv", "units": 8})
    stem = 8 * 8 * 9 * 1 * 4
    conv = 8 * 8 * 9 * 4 * 4
    dense = 256 * 8 + 8 * 10
    assert arch.count_flops() == stem + conv + dense
    assert arch.count_params() == 9 * 4 + 9 * 16 + 256 * 8 + 80
    assert Architecture(build, {"op": "skip", "units": 8}).count_flops() == stem + dense


def test_built_model_is_fresh_and_standard():
    model = Architecture(build, {"op": "conv", "units": 8}).build()
    assert all(type(layer).__module__.startswith("keras") for layer in model.layers)


def test_from_hyperparameters_keeps_only_active_values():
    hp = keras_tuner.HyperParameters()
    hp.Choice("op", ["conv", "skip"])
    hp.Int("units", 4, 16, step=4)
    with hp.conditional_scope("op", ["skip"]):
        hp.Choice("unused", ["a", "b"])
    hp.values["unused"] = "a"
    arch = Architecture.from_hyperparameters(build, hp)
    assert arch.values == {"op": "conv", "units": 4}


def test_error_invalid_json():
    with pytest.raises(ValueError, match=r"Invalid architecture JSON .*Received: '\{op: conv'"):
        Architecture.from_json(build, "{op: conv")


def test_error_unknown_operation():
    with pytest.raises(
        ValueError,
        match=r"Unknown operation/value for choice 'op'. Received: 'sep9x9'; expected one of \['conv', 'skip'\]",
    ):
        Architecture(build, {"op": "sep9x9", "units": 8})


def test_error_missing_choice():
    with pytest.raises(
        ValueError,
        match=r"The architecture is missing the choice 'units'. Received values for: \['op'\]",
    ):
        Architecture(build, {"op": "conv"})


def test_error_unknown_choice_name():
    with pytest.raises(ValueError, match=r"names choices the space does not have .*\['extra'\]"):
        Architecture(build, {"op": "conv", "units": 8, "extra": 1})


def test_error_out_of_range_and_bad_types():
    with pytest.raises(ValueError, match=r"Value of 'units' must be in \[4, 16\]. Received: 99"):
        Architecture(build, {"op": "conv", "units": 99})
    with pytest.raises(
        ValueError, match=r"map names to str, int, float or bool. Received: 'op': \['conv'\]"
    ):
        Architecture(build, {"op": ["conv"], "units": 8})
    with pytest.raises(ValueError, match="Unsupported architecture version. Received: version=7"):
        Architecture.from_json(
            build, '{"format": "tfnas.architecture", "version": 7, "values": {}}'
        )
    with pytest.raises(TypeError, match="hypermodel must be a keras_tuner.HyperModel or a build"):
        Architecture(42, {})
