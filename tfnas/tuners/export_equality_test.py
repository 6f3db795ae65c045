"""Inherited-weight export computes what was scored, for every one-shot oracle.

A candidate is scored on the supernet with its path set (`SupernetTrainer.evaluate`) and
exported with `tfnas.engine.supernet.collapse` (`get_best_models`): both must compute the
same function of the same weights.
"""

import keras
import numpy as np
import pytest

import tfnas
from tfnas import blocks
from tfnas.engine.supernet import collapse
from tfnas.engine.testing import build

ORACLES = ["spos", "fairnas", "scarlet_nas", "one_shot", "random_weight_sharing", "enas"]
ARCHITECTURES = [
    {"op0": "skip", "op1": "conv3x3", "depth": 1},
    {"op0": "conv1x1", "op1": "skip", "depth": 0},
    {"op0": "skip", "op1": "skip", "depth": 1},
]


def _perturb(model, seed):
    """Moves every weight (batch-norm statistics included) off its initial value, so that
    e.g. an identity-initialized projection no longer equals the skip it stands for."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable.value)
        if variable.dtype not in ("float32", "float64") or "mask" in variable.path:
            continue
        noise = rng.normal(0.0, 0.3, size=value.shape).astype(value.dtype)
        variable.assign(np.abs(value + noise) if "variance" in variable.path else value + noise)


@pytest.mark.parametrize("name", ORACLES)
def test_exported_candidate_equals_the_scored_path(name):
    oracle = tfnas.oracles.get(name)(seed=0)
    rule = oracle.make_mixing_rule()
    hp = blocks.SupernetHyperParameters(rule)
    supernet = build(hp)
    _perturb(supernet, seed=1)
    x = np.random.default_rng(2).normal(size=(4, 8, 8, 1)).astype("float32")
    for values in ARCHITECTURES:
        rule.set_architecture(values)
        scored = keras.ops.convert_to_numpy(supernet(x, training=False))
        exported = collapse(supernet, values)
        assert not any(
            isinstance(layer, (blocks.LayerChoice, blocks.InputChoice))
            for layer in exported._flatten_layers()
        )
        np.testing.assert_allclose(exported(x, training=False), scored, rtol=1e-5, atol=1e-5)


def test_scarlet_exports_its_trained_skip_projections():
    rule = blocks.rules.ScarletPath()
    supernet = build(blocks.SupernetHyperParameters(rule))
    _perturb(supernet, seed=3)
    values = {"op0": "skip", "op1": "conv1x1", "depth": 0}
    rule.set_architecture(values)
    exported = collapse(supernet, values)
    convolutions = [
        layer
        for layer in exported._flatten_layers()
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel.shape[:2] == (1, 1)
    ]
    choice = next(c for c in supernet._flatten_layers() if getattr(c, "choice_name", "") == "op0")
    trained = keras.ops.convert_to_numpy(choice.scarlet_projections["2"].kernel.value)
    assert not np.allclose(trained[0, 0], np.eye(8))
    assert any(np.array_equal(c.kernel.numpy(), trained) for c in convolutions)


def test_scarlet_projects_every_block_a_depth_choice_skips():
    rule = blocks.rules.ScarletPath()
    inputs = keras.Input((4, 4, 3))
    outputs = [inputs]
    for j in range(3):
        outputs.append(keras.layers.Conv2D(3, 3, padding="same", name=f"block{j}")(outputs[-1]))
    # `repeat(hp, "depth", [0, 1, 3], ...)`'s choice: inputs are the outputs at each depth.
    choice = blocks.InputChoice(
        "depth", [(0,), (1,), (2,)], [{"depth": d} for d in (0, 1, 3)], 1, "sum", rule
    )
    choice.built_input_shape = [(None, 4, 4, 3)] * 3  # What InputChoice.build would record.
    model = keras.Model(inputs, choice([outputs[0], outputs[1], outputs[3]]))
    assert sorted(choice.scarlet_projections) == ["0", "1", "2"]  # Blocks 0, 1, 2.
    _perturb(model, seed=4)
    x = np.random.default_rng(5).normal(size=(2, 4, 4, 3)).astype("float32")
    p = {j: choice.scarlet_projections[str(j)] for j in range(3)}
    hidden = keras.Model(inputs, [outputs[0], outputs[1], outputs[3]])(x)
    expected = {0: p[2](p[1](p[0](hidden[0]))), 1: p[2](p[1](hidden[1])), 3: hidden[2]}
    for depth, want in expected.items():
        rule.set_architecture({"depth": depth})
        np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)
        index = [0, 1, 3].index(depth)
        symbolic = [keras.Input((4, 4, 3)) for _ in range(3)]
        exported = keras.Model(symbolic, rule.export_input_choice(choice, index, symbolic))
        np.testing.assert_allclose(exported(list(hidden)), want, rtol=1e-5, atol=1e-5)


def test_depth_choices_are_told_from_input_choices():
    from tfnas.blocks.rules.scarlet import depth_choice_depths

    rule = blocks.rules.ScarletPath()
    depth = blocks.InputChoice("d", [(0,), (1,)], [{"d": 1}, {"d": 2}], 1, "sum", rule)
    edge = blocks.InputChoice("e", [(0,), (1,)], [{"e": "0"}, {"e": "1"}], 1, "sum", rule)
    assert depth_choice_depths(depth) == [1, 2]
    assert depth_choice_depths(edge) is None
