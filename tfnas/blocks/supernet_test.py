"""Tests of the supernet layers and mixing rules: config round trip, TFLite, errors."""

import keras
import pytest

from tfnas import blocks
from tfnas.blocks.testing import run_layer_test

SUBSETS = [(0, 1), (0, 2), (1, 2)]
SUBSET_VALUES = [{"node": "0,1"}, {"node": "0,2"}, {"node": "1,2"}]


def _layer_choice(rule):
    return lambda: blocks.LayerChoice(
        "op",
        [keras.layers.Conv2D(4, 3, padding="same"), keras.layers.Identity()],
        [{"op": "conv"}, {"op": "skip"}],
        rule,
    )


def _input_choice(rule, reduction="sum"):
    return lambda: blocks.InputChoice("node", SUBSETS, SUBSET_VALUES, 2, reduction, rule)


@pytest.mark.parametrize("rule", [blocks.SinglePath, blocks.UniformMixture])
def test_layer_choice_round_trip_training_and_tflite(rule):
    run_layer_test(_layer_choice(rule()), (6, 6, 4))


@pytest.mark.parametrize("rule", [blocks.SinglePath, blocks.UniformMixture])
def test_input_choice_round_trip_and_tflite(rule):
    run_layer_test(_input_choice(rule()), (4, 4, 2), num_inputs=3)


def test_single_path_input_choice_concat():
    rule = blocks.SinglePath()
    model = run_layer_test(_input_choice(rule, "concat"), (4, 4, 2), num_inputs=3)
    assert model.output.shape == (None, 4, 4, 4)


def test_uniform_mixture_refuses_concat():
    layer = _input_choice(blocks.UniformMixture(), "concat")()
    inputs = [keras.Input((4, 4, 2)) for _ in range(3)]
    with pytest.raises(ValueError, match="cannot mix input choice 'node' with reduction='concat'"):
        keras.Model(inputs, layer(inputs))([keras.ops.ones((1, 4, 4, 2))] * 3)


def test_supernet_hyperparameters_requires_a_rule():
    with pytest.raises(
        TypeError,
        match="mixing_rule must be a tfnas.blocks.MixingRule. Received: mixing_rule='darts'",
    ):
        blocks.SupernetHyperParameters("darts")


def test_supernet_hyperparameters_copy_keeps_rule_and_space():
    rule = blocks.SinglePath()
    hp = blocks.SupernetHyperParameters(rule)
    hp.Choice("a", ["x", "y"])
    copied = hp.copy()
    assert copied.mixing_rule is rule and copied.values == {"a": "x"}
    assert blocks.mixing_rule_of(copied) is rule
    assert blocks.mixing_rule_of(keras_tuner_hp()) is None


def keras_tuner_hp():
    import keras_tuner

    return keras_tuner.HyperParameters()


def test_candidate_index_errors():
    layer = _layer_choice(blocks.SinglePath())()
    assert blocks.candidate_index(layer, {"op": "skip"}) == 1
    with pytest.raises(ValueError, match=r"has no value for \['op'\]"):
        blocks.candidate_index(layer, {})
    with pytest.raises(ValueError, match=r"No candidate of choice 'op' matches \{'op': 'pool'\}"):
        blocks.candidate_index(layer, {"op": "pool"})


def test_layer_choice_constructor_errors():
    with pytest.raises(ValueError, match=r"LayerChoice 'op' needs candidates. Received: \[\]"):
        blocks.LayerChoice("op", [], [], blocks.SinglePath())
    with pytest.raises(ValueError, match="Received: reduction='max'"):
        blocks.InputChoice("n", SUBSETS, SUBSET_VALUES, 2, "max", blocks.SinglePath())


def test_mixing_rule_base_class_names_missing_method():
    layer = _layer_choice(blocks.MixingRule())()
    with pytest.raises(NotImplementedError, match="MixingRule does not implement mix_layers"):
        layer(keras.ops.ones((1, 6, 6, 4)))
