"""TransformableMixture: TAS's two sampled widths, channel-wise interpolation, gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas import blocks
from tfnas.blocks.rules.transformable import TransformableMixture
from tfnas.blocks.supernet import SupernetHyperParameters
from tfnas.blocks.transformable import SharedConv, width_views
from tfnas.search import tas

WIDTHS = (2, 3, 4)


def _width_choice(rule, widths=WIDTHS):
    hp = SupernetHyperParameters(rule)
    inputs = keras.Input((4, 4, 2))

    def views(combos):
        shared = SharedConv(max(widths), 3, choice="conv")
        return width_views(shared, [c["filters"] for c in combos], batch_norm=False)

    layer = blocks.attribute_choice(hp, "conv", lambda filters: None, shared_factory=views,
                                    filters=list(widths))  # fmt: skip
    return keras.Model(inputs, layer(inputs)), layer


def _sampled(rule, noise, tau, pair):
    rule.set_noise({"conv": noise})
    rule.set_temperature(tau)
    rule.set_pairs({"conv": pair})


def test_output_is_the_two_selected_widths_interpolated_and_weighted():
    rule = TransformableMixture(seed=0, init_scale=1.0)
    model, layer = _width_choice(rule)
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype("float32")
    noise, tau, pair = [0.3, -0.2, 0.5], 0.7, [2, 0]
    _sampled(rule, noise, tau, pair)
    got = keras.ops.convert_to_numpy(model(x))
    logits = (np.asarray(rule.get_alphas()["conv"]) + noise) / tau
    p = np.exp(logits[pair] - logits[pair].max())
    p /= p.sum()
    views = [keras.ops.convert_to_numpy(v(x)) for v in layer.candidates]
    largest = WIDTHS[max(pair)]
    expected = sum(
        weight * views[i] @ tas.interpolation_matrix(WIDTHS[i], largest, 4)
        for weight, i in zip(p, pair)
    )
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # Only the first `largest` channels can be set; a narrow view is zero beyond its width.
    np.testing.assert_array_equal(views[0][..., 2:], 0.0)


def test_alpha_gradient_matches_finite_differences():
    rule = TransformableMixture(seed=1, init_scale=1.0)
    model, _ = _width_choice(rule)
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 2)).astype("float32")
    weights = np.random.default_rng(2).normal(size=(2, 4, 4, 4)).astype("float32")
    _sampled(rule, [0.1, 0.4, -0.3], 0.9, [1, 2])
    alpha = rule.alpha_variables[0]

    def value():
        return float(np.sum(keras.ops.convert_to_numpy(model(x)) * weights))

    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x) * weights)
    gradient = tape.gradient(loss, alpha.value).numpy()
    start = keras.ops.convert_to_numpy(alpha.value).astype("float64")
    numeric = []
    for k in range(3):
        step = np.zeros(3)
        step[k] = 1e-2
        alpha.assign((start + step).astype("float32"))
        up = value()
        alpha.assign((start - step).astype("float32"))
        numeric.append((up - value()) / 2e-2)
    alpha.assign(start.astype("float32"))
    np.testing.assert_allclose(gradient, numeric, rtol=2e-2, atol=1e-3)
    assert gradient[0] == pytest.approx(0.0, abs=1e-6)  # Not selected: no gradient.


def test_one_architecture_mode_computes_that_width_only():
    rule = TransformableMixture(seed=0)
    model, layer = _width_choice(rule)
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 2)).astype("float32")
    _sampled(rule, [0.0, 0.0, 0.0], 1.0, [0, 2])
    rule.set_architecture({"conv/filters": 3})
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)),
        keras.ops.convert_to_numpy(layer.candidates[1](x)),
        atol=1e-6,
    )


def test_sampled_pairs_are_two_distinct_widths_following_the_probabilities():
    rule = TransformableMixture(seed=0, initial_alphas={"conv": [0.0, 0.0, 4.0]})
    _width_choice(rule)
    rule.set_noise({"conv": [0.0, 0.0, 0.0]})
    rule.set_temperature(2.0)
    rng = np.random.default_rng(0)
    pairs = [rule.sample_pairs(rng)["conv"] for _ in range(400)]
    assert all(a != b for a, b in pairs)
    # The first draw follows softmax(alpha / tau): p = (0.1065, 0.1065, 0.787).
    assert np.mean([pair[0] == 2 for pair in pairs]) == pytest.approx(0.787, abs=0.05)


def test_choices_that_are_not_width_views_are_refused_with_their_name():
    rule = TransformableMixture(seed=0)
    hp = SupernetHyperParameters(rule)
    inputs = keras.Input((4, 4, 2))
    with pytest.raises(ValueError, match=r"choice 'op' has candidates \['Conv2D', 'Identity'\]"):
        blocks.layer_choice(hp, "op", {
            "conv": lambda: keras.layers.Conv2D(2, 3, padding="same"),
            "skip": lambda: keras.layers.Identity(),
        })(inputs)  # fmt: skip


def test_config_round_trip():
    rule = TransformableMixture(temperature=3.0, seed=4, init_scale=0.02)
    copy = TransformableMixture.from_config(rule.get_config())
    assert copy.get_config() == rule.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(rule))
    assert isinstance(restored, TransformableMixture) and restored.temperature == 3.0


def test_depths_are_mixed_by_their_gumbel_softmax_weights():
    rule = TransformableMixture(seed=0, init_scale=1.0)
    hp = SupernetHyperParameters(rule)
    inputs = keras.Input((3,))
    outputs = blocks.repeat(hp, "depth", [1, 2], lambda i, x: keras.layers.Dense(3)(x), inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(2, 3)).astype("float32")
    rule.set_noise({"depth": [0.2, -0.4]})
    rule.set_temperature(0.5)
    first, second = (layer for layer in model.layers if isinstance(layer, keras.layers.Dense))
    one = keras.ops.convert_to_numpy(first(x))
    two = keras.ops.convert_to_numpy(second(first(x)))
    logits = (np.asarray(rule.get_alphas()["depth"]) + [0.2, -0.4]) / 0.5
    w = np.exp(logits - logits.max())
    w /= w.sum()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), w[0] * one + w[1] * two,
                               atol=1e-5)  # fmt: skip
    rule.set_architecture({"depth": 1})
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), one, atol=1e-6)
