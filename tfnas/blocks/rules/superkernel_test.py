"""SuperKernelThresholds: exact candidates, straight-through indicators, weights, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from tfnas import blocks
from tfnas.blocks import ops, shared
from tfnas.blocks.rules import GumbelMixture
from tfnas.blocks.rules.superkernel import (
    SuperKernelLayout,
    SuperKernelThresholds,
    candidate_weights,
    selected_candidate,
)
from tfnas.blocks.supernet import SupernetHyperParameters
from tfnas.engine.supernet import choice_layers, collapse
from tfnas.latency import tflite
from tfnas.spaces.mobile import MobileSpace, Stage
from tfnas.spaces.proxyless import ProxylessSpace

# Block 0 (stride 2, 4 -> 8): k{3,5} x e{3,6}; block 1 (8 -> 8) also skip.
SPACE = ProxylessSpace((8, 8, 1), 3, stem_filters=4, stem_strides=1, head_filters=0,
                       stages=[Stage(4, 1), Stage(8, (1, 2), 2)], kernel_sizes=(3, 5))  # fmt: skip
BLOCKS = ("stage1/block0/op", "stage1/block1/op")
X = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")


def _supernet(space=SPACE):
    rule = SuperKernelThresholds()
    return space.build(SupernetHyperParameters(rule)), rule


def _select(rule, values):
    """Thresholds under which every layer's indicators select the candidate of `values`."""
    for name, layout in rule.layouts().items():
        names = [v[name] for v in rule.choices(name)[0].candidate_values]
        gates = layout.gates_of(names.index(values[name]))
        rule.set_alphas({name: [-100.0 if g else 100.0 for g in gates]})


def test_candidates_share_one_super_kernel_only_for_this_rule():
    supernet, _ = _supernet()
    for layer in choice_layers(supernet):
        views = [c for c in layer.candidates if isinstance(c, shared.MBConvView)]
        assert len({id(v.shared) for v in views}) == 1
        widest = [v for v in views if v.batch_norms_from is None]
        assert [(v.kernel_size, v.expansion) for v in widest] == [(5, 6)]
    # Other rules get the operations with their own weights, as before.
    other = SPACE.build(SupernetHyperParameters(GumbelMixture(seed=0)))
    candidates = [c for layer in choice_layers(other) for c in layer.candidates]
    assert not any(isinstance(c, shared.MBConvView) for c in candidates)


@pytest.mark.parametrize("values", [
    {"stage1/block0/op": "k3_e3", "stage1/block1/op": "skip"},
    {"stage1/block0/op": "k5_e6", "stage1/block1/op": "k3_e6"},
    {"stage1/block0/op": "k5_e3", "stage1/block1/op": "k5_e3"},
    {"stage1/block0/op": "k3_e6", "stage1/block1/op": "k5_e6"},
])  # fmt: skip
def test_the_super_kernel_computes_exactly_the_candidate_its_indicators_select(values):
    supernet, rule = _supernet()
    # Batch-norm statistics that are not the initial ones, so slicing them matters.
    for variable in supernet.non_trainable_variables:
        variable.assign(np.random.default_rng(1).uniform(0.5, 1.5, variable.shape))
    _select(rule, values)
    exported = collapse(supernet, values)
    assert not any(isinstance(x, shared.MBConvView) for x in exported._flatten_layers())
    for training in (False, True):
        np.testing.assert_allclose(
            supernet(X, training=training), exported(X, training=training), atol=1e-5)  # fmt: skip
    # The same in one-architecture mode, whatever the thresholds.
    rule.set_alphas({name: [0.0] * layout.num_thresholds
                     for name, layout in rule.layouts().items()})  # fmt: skip
    rule.set_architecture(values)
    np.testing.assert_allclose(supernet(X, training=False), exported(X, training=False), atol=1e-5)
    for name in BLOCKS:
        names = [v[name] for v in rule.choices(name)[0].candidate_values]
        weights = keras.ops.convert_to_numpy(rule.relaxed_weights(name))
        np.testing.assert_array_equal(weights, np.eye(len(names))[names.index(values[name])])


def test_exported_candidate_converts_to_tflite_with_the_same_outputs():
    supernet, rule = _supernet()
    values = {"stage1/block0/op": "k5_e3", "stage1/block1/op": "k3_e6"}
    _select(rule, values)
    exported = collapse(supernet, values)
    runner = Interpreter(model_content=tflite.convert(exported)).get_signature_runner()
    (output,) = runner(**{exported.inputs[0].name: X}).values()
    np.testing.assert_allclose(output, exported(X, training=False), atol=1e-4)


def test_a_new_supernet_starts_as_the_largest_candidates():
    supernet, rule = _supernet()
    assert all(m >= 0 for margins in rule.margins().values() for m in margins)
    for name in BLOCKS:
        names = [v[name] for v in rule.choices(name)[0].candidate_values]
        weights = keras.ops.convert_to_numpy(rule.relaxed_weights(name))
        assert names[int(np.argmax(weights))] == "k5_e6" and weights.max() == 1.0


def test_skip_threshold_gradient_is_the_sigmoid_surrogate():
    supernet, rule = _supernet()
    name = "stage1/block1/op"  # kernel, expansion and skip thresholds
    rule.set_alphas({name: [0.3, -0.2, 0.5]})
    layer = next(c for c in choice_layers(supernet) if c.choice_name == name)
    inputs = keras.ops.convert_to_tensor(np.random.default_rng(2).normal(size=(2, 4, 4, 8)),
                                         "float32")  # fmt: skip
    weights = np.random.default_rng(3).normal(size=(2, 4, 4, 8)).astype("float32")
    threshold = rule.alpha_variables[1]
    with tf.GradientTape() as tape:
        y = layer(inputs, training=False)
        loss = tf.reduce_sum(y * weights)
    gradient = tape.gradient(loss, threshold.value).numpy()
    margin = rule.margins()[name][2]
    assert margin >= 0  # the skip indicator is on: the branch is added to the input
    sigmoid = 1 / (1 + np.exp(-margin))
    branch = y.numpy() - inputs.numpy()
    # dL/dt_skip = dL/dg * dg/dt = <w, branch> * (-sigmoid'(margin)); nothing else uses it.
    expected = -sigmoid * (1 - sigmoid) * float(np.sum(weights * branch))
    np.testing.assert_allclose(gradient[2], expected, rtol=1e-4)
    # The candidate weights' gradient w.r.t. t_skip moves mass between skip and the rest.
    with tf.GradientTape() as tape:
        w = rule.relaxed_weights(name)
        costs = np.arange(1.0, 6.0, dtype="float32")  # skip is the last candidate
        expected_cost = tf.reduce_sum(w * costs)
    gradient = tape.gradient(expected_cost, threshold.value).numpy()
    selected = int(np.argmax(w.numpy()))
    assert selected != 4
    np.testing.assert_allclose(
        gradient[2], -sigmoid * (1 - sigmoid) * (costs[selected] - costs[4]), rtol=1e-4)  # fmt: skip


def test_candidate_weights_are_nested_indicators():
    layout = SuperKernelLayout((3, 5, 7), (3, 6), tuple(
        [(k, e) for k in range(3) for e in range(2)] + [None]))  # fmt: skip
    assert layout.num_thresholds == 2 + 1 + 1
    for index in range(len(layout.candidates)):
        gates = layout.gates_of(index)
        np.testing.assert_array_equal(candidate_weights(layout, gates),
                                      np.eye(len(layout.candidates))[index])  # fmt: skip
        margins = [1.0 if g else -1.0 for g in gates]
        assert selected_candidate(layout, margins) == index
    # k7 needs the k5 ring on too: an outer ring alone does not select it.
    assert layout.candidates[selected_candidate(layout, [-1.0, 1.0, 1.0, 1.0])] == (0, 1)
    soft = np.random.default_rng(0).uniform(size=layout.num_thresholds)
    weights = candidate_weights(layout, list(soft))
    assert min(weights) >= 0 and sum(weights) == pytest.approx(1.0)
    assert SuperKernelLayout.from_json(layout.to_json()) == layout


def test_gate_dropout_drops_an_indicator_in_mixture_mode_only():
    supernet, rule = _supernet()
    name = "stage1/block1/op"
    rule.set_gate_dropout({name: [1.0, 1.0, 0.0]})  # skip indicator dropped
    names = [v[name] for v in rule.choices(name)[0].candidate_values]
    assert names[int(np.argmax(rule.relaxed_weights(name)))] == "skip"
    margins = rule.margins()
    rule.set_architecture({"stage1/block0/op": "k3_e3", name: "k3_e6"})
    assert names[int(np.argmax(rule.relaxed_weights(name)))] == "k3_e6"
    # The margins are the learned thresholds' whatever runs (no dropout, no architecture).
    assert rule.margins() == margins and all(m >= 0 for m in margins[name])


def test_config_round_trip():
    rule = SuperKernelThresholds(seed=3, initial_alphas={"a": [0.5, 1.0]})
    config = keras.saving.serialize_keras_object(rule)
    copy = keras.saving.deserialize_keras_object(config)
    assert type(copy) is SuperKernelThresholds and copy.initial_alphas == {"a": [0.5, 1.0]}
    assert copy.seed == 3 and copy.shares_weights


def _conv_choice(hp):
    inputs = keras.Input((4, 4, 2))
    x = blocks.layer_choice(hp, "op", {
        "conv": lambda: keras.layers.Conv2D(2, 3, padding="same"),
        "skip": keras.layers.Identity,
    })(inputs)  # fmt: skip
    return keras.Model(inputs, x)


def _input_choice(hp):
    inputs = keras.Input((4, 4, 2))
    return keras.Model(inputs, blocks.input_choice(hp, "edge", [inputs, inputs * 2.0]))


def _views(combos, **kwargs):
    def build(hp):
        inputs = keras.Input((4, 4, 4))
        views = shared.mbconv_views((4, 4, 4), 4, 1, combos, **kwargs)
        choice = blocks.layer_choice(
            hp, "op", {f"c{i}": lambda: ops.mbconv((4, 4, 4), 4) for i in range(len(combos))},
            shared_factory=lambda names: views)  # fmt: skip
        return keras.Model(inputs, choice(inputs))

    return build


def _combo(k, e, se=0.0):
    return {"kernel_size": k, "expansion": e, "se_ratio": se, "activation": "relu6"}


@pytest.mark.parametrize("build, message", [
    (_conv_choice, r"MBConv views sharing one set of weights.*\['Conv2D', 'Identity'\]"),
    (_input_choice, "layer choices only; 'edge' is an input choice"),
    (_views([_combo(3, 3), _combo(5, 6)], switchable_batch_norm=False),
     r"every \(kernel size, expansion\) pair"),
    (_views([_combo(3, 3), _combo(3, 6)]), "switchable"),
    (_views([_combo(3, 1), _combo(3, 6)], switchable_batch_norm=False), "expansion 1"),
    (_views([_combo(3, 3, 0.25)], switchable_batch_norm=False), "squeeze-and-excitation"),
    (lambda hp: MobileSpace((8, 8, 1), 3, stages=[Stage(4, (1, 2))], stem_filters=4,
                            head_filters=0, se_ratios=(0.0,)).build(hp), "switchable.*joint_ops=True"),
])  # fmt: skip
def test_spaces_without_a_super_kernel_form_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build(SupernetHyperParameters(SuperKernelThresholds()))


def test_choices_sharing_a_name_are_refused():
    def build(hp):
        inputs = keras.Input((4, 4, 4))
        x = inputs
        for _ in range(2):
            views = shared.mbconv_views((4, 4, 4), 4, 1, [_combo(3, 3)],
                                        switchable_batch_norm=False)  # fmt: skip
            x = blocks.layer_choice(hp, "op", {"k3_e3": lambda: ops.mbconv((4, 4, 4), 4)},
                                    shared_factory=lambda names, v=views: v)(x)  # fmt: skip
        return keras.Model(inputs, x)

    with pytest.raises(ValueError, match="cannot share a name.*'op' twice"):
        build(SupernetHyperParameters(SuperKernelThresholds()))
