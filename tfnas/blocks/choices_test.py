"""Tests of the choice points in fixed and supernet mode."""

import keras
import keras_tuner
import numpy as np
import pytest

from tfnas import blocks


def _candidates(filters=4):
    return {
        "conv3x3": lambda: keras.layers.Conv2D(filters, 3, padding="same"),
        "pool": lambda: keras.layers.MaxPooling2D(3, 1, padding="same"),
        "skip": lambda: keras.layers.Identity(),
    }


def _tfnas_layers(model):
    found = []
    for layer in model._flatten_layers(include_self=False):
        if type(layer).__module__.startswith("tfnas"):
            found.append(type(layer).__name__)
    return found


def test_fixed_mode_builds_only_the_chosen_standard_layer():
    hp = keras_tuner.HyperParameters()
    hp.values["op"] = "conv3x3"
    inputs = keras.Input((8, 8, 4))
    outputs = blocks.layer_choice(hp, "op", _candidates())(inputs)
    model = keras.Model(inputs, outputs)
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Conv2D"]
    assert _tfnas_layers(model) == []
    assert hp.values == {"op": "conv3x3"}


def test_default_is_first_candidate_and_registered_as_choice():
    hp = keras_tuner.HyperParameters()
    choice = blocks.layer_choice(hp, "op", _candidates())
    assert choice.value == "conv3x3"
    (registered,) = hp.space
    assert isinstance(registered, keras_tuner.engine.hyperparameters.Choice)
    assert list(registered.values) == ["conv3x3", "pool", "skip"]


def test_same_name_shares_one_decision_with_separate_weights():
    hp = keras_tuner.HyperParameters()
    hp.values["op"] = "conv3x3"
    inputs = keras.Input((8, 8, 4))
    x = blocks.layer_choice(hp, "op", _candidates())(inputs)
    x = blocks.layer_choice(hp, "op", _candidates())(x)
    model = keras.Model(inputs, x)
    assert len(hp.space) == 1
    assert [type(layer).__name__ for layer in model.layers[1:]] == ["Conv2D", "Conv2D"]


def test_error_empty_candidates():
    with pytest.raises(
        ValueError, match=r"Choice 'op' needs at least one candidate. Received: candidates=\{\}"
    ):
        blocks.layer_choice(keras_tuner.HyperParameters(), "op", {})


def test_error_candidate_not_callable():
    with pytest.raises(
        TypeError, match=r"Candidate 'conv' of choice 'op' must be a callable.*Received: 3"
    ):
        blocks.layer_choice(keras_tuner.HyperParameters(), "op", {"conv": 3})


def test_error_candidate_is_a_layer_instance_not_a_factory():
    conv = keras.layers.Conv2D(4, 3, padding="same")
    with pytest.raises(
        TypeError,
        match=r"Candidate 'conv' of choice 'op' must be a factory that returns a new layer, not "
        r"a layer instance.*Pass a factory such as `lambda: keras.layers.Conv2D\(\.\.\.\)`\. "
        r"Received: <Conv2D",
    ):
        blocks.layer_choice(keras_tuner.HyperParameters(), "op", {"conv": conv})


def test_error_candidate_does_not_return_a_layer():
    with pytest.raises(
        TypeError,
        match=r"Candidate 'conv' of choice 'op' must return a keras.layers.Layer.*Received: 'oops'",
    ):
        blocks.layer_choice(keras_tuner.HyperParameters(), "op", {"conv": lambda: "oops"})


def test_error_same_name_different_candidates():
    hp = keras_tuner.HyperParameters()
    blocks.layer_choice(hp, "op", _candidates())
    with pytest.raises(
        ValueError,
        match=r"'op' is registered twice with different candidates: first \['conv3x3', 'pool', 'skip'\], now \['a'\]",
    ):
        blocks.layer_choice(hp, "op", {"a": lambda: keras.layers.Identity()})


def test_error_output_shapes_disagree():
    hp = keras_tuner.HyperParameters()
    inputs = keras.Input((8, 8, 4))
    choice = blocks.layer_choice(hp, "widths", _candidates(filters=16))
    with pytest.raises(
        ValueError,
        match=r"candidates of choice 'widths' produce different output shapes.*'conv3x3': \(None, 8, 8, 16\).*'pool': \(None, 8, 8, 4\)",
    ):
        choice(inputs)


def test_shape_check_is_redone_for_other_candidates_under_the_same_name():
    # A first model with agreeing candidates must not vouch for a later one whose
    # candidates under the same choice name disagree.
    inputs = keras.Input((8, 8, 4))
    blocks.layer_choice(keras_tuner.HyperParameters(), "reused", _candidates(filters=4))(inputs)
    blocks.layer_choice(keras_tuner.HyperParameters(), "reused", _candidates(filters=4))(inputs)
    choice = blocks.layer_choice(keras_tuner.HyperParameters(), "reused", _candidates(filters=8))
    with pytest.raises(ValueError, match=r"candidates of choice 'reused' produce different"):
        choice(inputs)


def test_shape_check_tells_candidates_apart_by_config_when_factories_hold_objects():
    class Widths:  # Factories that read an object's attributes (as HyperModel methods do).
        filters = 4

        def candidates(self):
            return {
                "conv": lambda: keras.layers.Conv2D(self.filters, 1),
                "skip": lambda: keras.layers.Identity(),
            }

    inputs = keras.Input((8, 8, 4))
    space = Widths()
    blocks.layer_choice(keras_tuner.HyperParameters(), "held", space.candidates())(inputs)
    space.filters = 8
    choice = blocks.layer_choice(keras_tuner.HyperParameters(), "held", space.candidates())
    with pytest.raises(ValueError, match=r"candidates of choice 'held' produce different"):
        choice(inputs)


def test_error_bad_name_and_default():
    with pytest.raises(ValueError, match="non-empty string. Received: name=''"):
        blocks.layer_choice(keras_tuner.HyperParameters(), "", _candidates())
    with pytest.raises(
        ValueError, match=r"default of choice 'op' must be one of .* Received: default='nope'"
    ):
        blocks.layer_choice(keras_tuner.HyperParameters(), "op", _candidates(), default="nope")


def _edge(inputs, name, hp):
    return lambda: blocks.layer_choice(hp, name, _candidates())(inputs)


def test_input_choice_builds_only_chosen_inputs_and_conditions_their_choices():
    hp = keras_tuner.HyperParameters()
    hp.values["node"] = "0,2"
    inputs = [keras.Input((4, 4, 4)) for _ in range(3)]
    out = blocks.input_choice(
        hp, "node", [_edge(x, f"edge{i}", hp) for i, x in enumerate(inputs)], n_chosen=2
    )
    model = keras.Model(inputs, out)
    assert sorted(hp.values) == ["edge0", "edge2", "node"]
    assert not any(p.name == "edge1" for p in hp.space)
    edge0 = next(p for p in hp.space if p.name == "edge0")
    assert edge0.conditions[0].values == ["0,1", "0,2"]
    assert "Add" in [type(layer).__name__ for layer in model.layers]


def test_input_choice_values_are_subsets():
    hp = keras_tuner.HyperParameters()
    inputs = [keras.Input((4, 4, 4)) for _ in range(4)]
    blocks.input_choice(hp, "node", inputs, n_chosen=2, reduction="concat")
    assert list(hp.space[0].values) == ["0,1", "0,2", "0,3", "1,2", "1,3", "2,3"]


def test_input_choice_errors():
    hp = keras_tuner.HyperParameters()
    x = keras.Input((4, 4, 4))
    with pytest.raises(
        ValueError,
        match=r"n_chosen of input choice 'n' must be an int in \[1, 2\]. Received: n_chosen=3",
    ):
        blocks.input_choice(hp, "n", [x, x], n_chosen=3)
    with pytest.raises(ValueError, match="Received: reduction='max'"):
        blocks.input_choice(hp, "n", [x, x], reduction="max")
    with pytest.raises(
        ValueError,
        match=r"inputs of input choice 'n' must be a non-empty list. Received: inputs=\[\]",
    ):
        blocks.input_choice(hp, "n", [])
    y = keras.Input((4, 4, 8))
    hp.values["m"] = "0,1"
    with pytest.raises(ValueError, match="choice 'm' produce different output shapes"):
        blocks.input_choice(hp, "m", [x, y], n_chosen=2)


def _dense_block(hp):
    def block(index, x):
        units = hp.Choice(f"units{index}", [4, 8])
        return keras.layers.Dense(units)(x) if index == 0 else keras.layers.Dense(4)(x)

    return block


def test_repeat_builds_chosen_depth_and_hides_deeper_choices():
    hp = keras_tuner.HyperParameters()
    hp.values["depth"] = 1
    inputs = keras.Input((4,))
    out = blocks.repeat(hp, "depth", [1, 2, 3], _dense_block(hp), inputs)
    model = keras.Model(inputs, out)
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]) == 1
    assert sorted(hp.values) == ["depth", "units0"]


def test_repeat_conditions_blocks_beyond_minimum_depth():
    hp = keras_tuner.HyperParameters()
    hp.values["depth"] = 3

    def block(index, x):
        hp.Choice(f"act{index}", ["relu", "tanh"])
        return keras.layers.Dense(4)(x)

    blocks.repeat(hp, "depth", [1, 3], block, keras.Input((4,)))
    conditions = {p.name: [c.values for c in p.conditions] for p in hp.space if p.name != "depth"}
    assert conditions == {"act0": [], "act1": [[3]], "act2": [[3]]}


def test_repeat_errors():
    hp = keras_tuner.HyperParameters()
    with pytest.raises(
        ValueError,
        match=r"depths of 'd' must be a non-empty list of distinct ints >= 0. Received: depths=\[1, 1\]",
    ):
        blocks.repeat(hp, "d", [1, 1], lambda i, x: x, keras.Input((4,)))


def test_attribute_choice_fixed_mode_returns_standard_layer():
    hp = keras_tuner.HyperParameters()
    hp.values["conv/kernel_size"] = 5
    layer = blocks.attribute_choice(
        hp,
        "conv",
        lambda kernel_size, filters: keras.layers.Conv2D(filters, kernel_size, padding="same"),
        kernel_size=[3, 5, 7],
        filters=8,
    )
    assert type(layer) is keras.layers.Conv2D
    assert layer.kernel_size == (5, 5) and layer.filters == 8
    assert [p.name for p in hp.space] == ["conv/kernel_size"]


def test_attribute_choice_errors():
    hp = keras_tuner.HyperParameters()
    with pytest.raises(
        ValueError,
        match=r"Attribute 'kernel_size' of choice 'c' needs at least one value. Received: kernel_size=\[\]",
    ):
        blocks.attribute_choice(hp, "c", lambda kernel_size: None, kernel_size=[])


def _toy_build(hp):
    inputs = keras.Input((8, 8, 4))
    x = blocks.layer_choice(hp, "op0", _candidates())(inputs)
    x = blocks.layer_choice(hp, "op1", _candidates())(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def test_supernet_single_path_matches_the_fixed_network_with_the_same_weights():
    rule = blocks.SinglePath()
    supernet = _toy_build(blocks.SupernetHyperParameters(rule))
    choices = [layer for layer in supernet.layers if isinstance(layer, blocks.LayerChoice)]
    assert [c.choice_name for c in choices] == ["op0", "op1"]
    assert sorted(rule.choice_names) == ["op0", "op1"]

    arch = {"op0": "skip", "op1": "conv3x3"}
    rule.set_architecture(arch)
    hp = keras_tuner.HyperParameters()
    hp.values.update(arch)
    fixed = _toy_build(hp)
    conv = next(layer for layer in fixed.layers if isinstance(layer, keras.layers.Conv2D))
    conv.set_weights(choices[1].candidates[0].get_weights())
    fixed.layers[-1].set_weights(supernet.layers[-1].get_weights())
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(supernet(x), fixed(x), atol=1e-5)

    rule.set_architecture({"op0": "skip", "op1": "skip"})
    assert rule.active_index("op1") == 2
    assert not np.allclose(supernet(x), fixed(x))


def test_supernet_uniform_mixture_averages_candidates():
    supernet_hp = blocks.SupernetHyperParameters(blocks.UniformMixture())
    inputs = keras.Input((4, 4, 2))
    choice = blocks.layer_choice(
        supernet_hp,
        "op",
        {"skip": lambda: keras.layers.Identity(), "double": lambda: keras.layers.Rescaling(2.0)},
    )
    model = keras.Model(inputs, choice(inputs))
    x = np.ones((1, 4, 4, 2), "float32")
    np.testing.assert_allclose(model(x), 1.5 * x)


def test_supernet_registers_the_same_space_as_fixed_mode():
    supernet_hp = blocks.SupernetHyperParameters(blocks.UniformMixture())
    inputs = [keras.Input((4, 4, 4)) for _ in range(3)]
    blocks.input_choice(
        supernet_hp, "node", [_edge(x, f"edge{i}", supernet_hp) for i, x in enumerate(inputs)], 2
    )
    assert sorted(p.name for p in supernet_hp.space) == ["edge0", "edge1", "edge2", "node"]


def test_supernet_repeat_builds_all_blocks_and_picks_the_depth():
    rule = blocks.SinglePath()
    hp = blocks.SupernetHyperParameters(rule)
    inputs = keras.Input((4,))
    out = blocks.repeat(hp, "depth", [0, 2], lambda i, x: keras.layers.Rescaling(2.0)(x), inputs)
    model = keras.Model(inputs, out)
    x = np.ones((1, 4), "float32")
    rule.set_architecture({"depth": 0})
    np.testing.assert_allclose(model(x), x)
    rule.set_architecture({"depth": 2})
    np.testing.assert_allclose(model(x), 4 * x)


def test_supernet_shape_mismatch_fails_at_build():
    hp = blocks.SupernetHyperParameters(blocks.UniformMixture())
    with pytest.raises(
        ValueError, match="candidates of choice 'op' produce different output shapes"
    ):
        blocks.layer_choice(hp, "op", _candidates(filters=16))(keras.Input((8, 8, 4)))


def test_a_build_with_the_shape_check_has_the_weights_of_one_without():
    # The shape check builds the other candidates only once per process: a seeded build
    # must get the same initial weights either way (else the first trial after a resume
    # trains from other weights than in an uninterrupted search).
    from tfnas.blocks import choices

    def build():
        keras.utils.set_random_seed(123)
        hp = keras_tuner.HyperParameters()
        hp.values["op"] = "conv3x3"
        inputs = keras.Input((8, 8, 4))
        candidates = {**_candidates(), "conv1x1": lambda: keras.layers.Conv2D(4, 1)}
        x = blocks.layer_choice(hp, "op", candidates)(inputs)
        x = keras.layers.Conv2D(2, 3)(x)
        return [w.numpy() for w in keras.Model(inputs, x).weights]

    choices._CHECKED_SHAPES.clear()
    cold = build()  # Checks the shapes: makes the other candidates too.
    warm = build()  # Checked: builds only the chosen candidate.
    for a, b in zip(cold, warm, strict=True):
        np.testing.assert_array_equal(a, b)
