"""TAS's FLOPs loss: the expected count, its sign around the target, and bad targets."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.architecture import Architecture
from tfnas.blocks.rules import TransformableMixture
from tfnas.blocks.supernet import SupernetHyperParameters
from tfnas.cost import count_flops
from tfnas.engine.tas_steps import ExpectedFlopsLoss
from tfnas.search import tas
from tfnas.spaces.resnet import ResNetSpace

SPACE = ResNetSpace((8, 8, 1), 10, depth=14, base_filters=4, width_fractions=(0.5, 1.0))


def _connected(ratio=0.5, **kwargs):
    rule = TransformableMixture(seed=0)
    supernet = SPACE.build(SupernetHyperParameters(rule))
    term = ExpectedFlopsLoss(ratio, **kwargs)
    term.connect(supernet, rule)
    return term, rule


def test_the_count_is_the_exported_networks_convolutions():
    term, rule = _connected()
    full = Architecture(SPACE, SPACE.uniform_values(1.0)).build()
    # Everything but the 16 x 10 classifier.
    assert term.largest * 1e6 == pytest.approx(count_flops(full) - 160)
    assert term.target == pytest.approx(0.5 * term.largest)
    # With one-hot alphas the expectation is the count of that shape.
    alphas = {}
    for layer in term.layers:
        alphas[layer.choice] = [10.0, -10.0]  # The narrow width.
    for name in term.depth_values:
        alphas[name] = [10.0, -10.0]  # One block per stage.
    rule.set_alphas(alphas)
    widths = {layer.choice: min(layer.widths) for layer in term.layers}
    depths = {name: 1 for name in term.depth_values}
    expected = tas.shape_macs(term.layers, widths, depths)
    assert float(term.expected_macs()) == pytest.approx(expected, rel=1e-4)
    assert float(term.current_macs()) == pytest.approx(expected, rel=1e-6)


def test_uniform_alphas_give_the_product_of_expected_widths():
    term, _ = _connected()
    stem = next(layer for layer in term.layers if layer.choice == "stem")
    conv = next(layer for layer in term.layers if layer.choice == "stage0/block1/a")
    assert conv.input_choice == "stage0/block0/b" and conv.depth == ("stage0/depth", 2)
    assert stem.input_choice is None and stem.in_channels == 1
    assert stem.macs_per_channel_pair == 9 * 64
    # Softmax of near-zero alphas: E[width] = 3 for (2, 4), P(depth >= 2) = 1/2.
    rule_weights = {layer.choice: np.full(2, 0.5, "float32") for layer in term.layers}
    depth_weights = {name: np.full(2, 0.5, "float32") for name in term.depth_values}
    manual = term._macs({**rule_weights, **depth_weights}, {**rule_weights, **depth_weights})
    assert float(term.expected_macs()) == pytest.approx(float(manual), rel=1e-2)


@pytest.mark.parametrize("ratio, sign", [(0.3, 1.0), (1.0, 0.0)])
def test_the_term_shrinks_the_expected_count_above_the_target(ratio, sign):
    term, rule = _connected(ratio)
    # Start at the largest shape: above a 0.3 target, inside the band of a 1.0 target.
    rule.set_alphas({name: [-1.0, 1.0] for name in rule.choice_names})
    with tf.GradientTape() as tape:
        loss = term()
    gradients = tape.gradient(loss, [a.value for a in rule.alpha_variables])
    expected = 2.0 * sign * np.log(float(term.expected_macs()))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    if sign:
        # Descending the loss moves every choice towards its narrow candidate.
        assert all(float(g[1]) > 0 > float(g[0]) for g in gradients)
    else:
        assert all(g is None or not np.any(keras.ops.convert_to_numpy(g)) for g in gradients)


def test_a_target_below_the_smallest_shape_is_refused_before_training():
    with pytest.raises(ValueError, match=r"flops_ratio=0.01 asks for .* below the smallest"):
        _connected(0.01)
