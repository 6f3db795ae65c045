import keras
import keras_tuner
import numpy as np
import pytest

from tfnas import data
from tfnas.blocks.rules import SoftmaxMixture
from tfnas.blocks.supernet import SupernetHyperParameters
from tfnas.data import shapes
from tfnas.engine.auto_deeplab import TrellisMixture, beta_name
from tfnas.engine.supernet import collapse
from tfnas.export import tflite_predict
from tfnas.latency import convert
from tfnas.spaces import auto_deeplab
from tfnas.spaces.auto_deeplab import AutoDeepLabSpace
from tfnas.spaces.darts import DARTS_V2

_TINY = dict(num_layers=3, num_nodes=1, filter_multiplier=4, stem_channels=8, head_channels=8)
_CELL = DARTS_V2["normal"][:2]


def _fixed(space, path):
    hp = keras_tuner.HyperParameters()
    hp.values.update(space.architecture_values(_CELL, path))
    return space.build(hp)


def test_adl_fixed_model_follows_the_path_and_converts_to_tflite():
    space = AutoDeepLabSpace((32, 32, 3), 4, **_TINY)
    model = _fixed(space, [1, 2, 1])
    assert model.output_shape == (None, 32, 32, 4)
    # The three cells run at /8, /16, /8: their sep convs see 4x4, 2x2 and 4x4 maps.
    sizes = sorted(
        {layer.output.shape[1] for layer in model.layers if "depthwise" in layer.name.lower()}
        | {
            sub.output.shape[1]
            for layer in model.layers
            if isinstance(layer, keras.Sequential)
            for sub in layer.layers
            if isinstance(sub, keras.layers.DepthwiseConv2D)
        }
    )
    assert sizes == [2, 4]
    x = shapes.generate(2, 32, seed=0)[0]
    got = tflite_predict(convert(model), x)
    np.testing.assert_allclose(got, model(x, training=False).numpy(), atol=1e-4)


def test_adl_supernet_has_one_beta_per_reachable_node():
    space = AutoDeepLabSpace((32, 32, 3), 4, **_TINY)
    rule = TrellisMixture(seed=0)
    model = space.build(SupernetHyperParameters(rule))
    assert model.output_shape == (None, 32, 32, 4)
    betas = [name for name in rule.choice_names if name.startswith("network/")]
    # Layer 0: the stem; layer 1: /4, /8; layer 2: /4, /8, /16.
    assert len(betas) == 6 and beta_name(2, 2) in betas
    assert [len(rule.get_alphas()[beta_name(2, s)]) for s in range(3)] == [2, 3, 3]


def test_adl_one_architecture_weights_follow_the_path():
    space = AutoDeepLabSpace((32, 32, 3), 4, **_TINY)
    rule = TrellisMixture(seed=0)
    space.build(SupernetHyperParameters(rule))
    # Mixture mode: each node's outgoing weights sum to 1; every head counts.
    total = sum(float(rule.transition_weight(2, 1, k)) for k in range(3))
    assert total == pytest.approx(1.0)
    assert [float(rule.head_weight(s)) for s in range(4)] == [1.0] * 4
    rule.set_architecture(space.architecture_values(_CELL, [1, 1, 0]))
    assert float(rule.transition_weight(0, 0, 2)) == 1.0
    assert float(rule.transition_weight(1, 1, 1)) == 1.0
    assert float(rule.transition_weight(2, 1, 0)) == 1.0
    assert float(rule.transition_weight(2, 1, 1)) == 0.0
    assert float(rule.transition_weight(2, 0, 1)) == 0.0
    assert [float(rule.head_weight(s)) for s in range(4)] == [1.0, 0.0, 0.0, 0.0]


def test_adl_collapsed_supernet_is_the_path_network_with_the_supernet_weights():
    space = AutoDeepLabSpace((32, 32, 3), 4, **_TINY)
    rule = TrellisMixture(seed=0)
    supernet = space.build(SupernetHyperParameters(rule))
    values = space.architecture_values(_CELL, [1, 2, 1])
    rule.set_architecture(values)  # One-hot on the path: the supernet is that network.
    fixed = collapse(supernet, values)
    assert not any(isinstance(layer, auto_deeplab._WeightedSum) for layer in fixed.layers)
    # One head (the path's last level) and one cell per layer, not the whole trellis.
    assert sum("logits" in layer.name and "head" in layer.name for layer in fixed.layers) == 1
    assert fixed.count_params() < supernet.count_params() / 3
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(
        fixed(x, training=False), supernet(x, training=False), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        tflite_predict(convert(fixed), x), fixed(x, training=False), rtol=1e-4, atol=1e-4
    )


def test_plot_network_path_writes_a_png_with_and_without_probabilities(tmp_path):
    for name, probabilities in (("plain", None), ("betas", np.full((3, 4, 3), 1 / 3))):
        png = auto_deeplab.plot_network_path(
            str(tmp_path / f"{name}.png"), [1, 2, 1], probabilities
        )
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert auto_deeplab.path_of({"network/layer0": 1, "network/layer1": 2, "x": 0}) == [1, 2]


def test_adl_space_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"rate 32. Received: input_shape=\(24, 24, 3\)"):
        AutoDeepLabSpace((24, 24, 3), 4)
    with pytest.raises(ValueError, match=r"needs per-pixel masks .*'digits' .*shape \(\)"):
        AutoDeepLabSpace.from_dataset(data.load("digits"))
    with pytest.raises(ValueError, match="Received: num_levels=5"):
        AutoDeepLabSpace((32, 32, 3), 4, num_levels=5)
    with pytest.raises(ValueError, match="Received: filter_multiplier=3"):
        AutoDeepLabSpace((32, 32, 3), 4, filter_multiplier=3)
    space = AutoDeepLabSpace((32, 32, 3), 4, **_TINY)
    with pytest.raises(ValueError, match=r"Received: path=\[0, 2, 2\] \(layer 1\)"):
        space.architecture_values(_CELL, [0, 2, 2])
    with pytest.raises(ValueError, match=r"one level per layer \(3\). Received: path=\[0\]"):
        space.architecture_values(_CELL, [0])
    with pytest.raises(ValueError, match="Received: SoftmaxMixture"):
        space.build(SupernetHyperParameters(SoftmaxMixture(seed=0)))
    ok = AutoDeepLabSpace.from_dataset(data.load("shapes", limit=8), num_layers=2)
    assert ok.input_shape == (32, 32, 3) and ok.num_classes == 4
