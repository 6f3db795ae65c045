import numpy as np
import pytest

from tfnas.search import tas


def test_width_choices_are_the_authors_fractions():
    assert tas.width_choices(16) == [4, 6, 8, 9, 11, 12, 14, 16]
    assert tas.width_choices(8) == [2, 3, 4, 5, 6, 7, 8]
    assert tas.width_choices(2, (0.3, 1.0)) == [2]  # int(0.6) = 0 is dropped


@pytest.mark.parametrize(
    "blocks, expected", [(1, [1]), (2, [1, 2]), (3, [1, 2, 3]), (5, [1, 3, 5]), (6, [1, 3, 5, 6])]
)
def test_depth_choices(blocks, expected):
    assert tas.depth_choices(blocks) == expected


def test_bad_widths_and_depths_name_the_argument():
    with pytest.raises(ValueError, match="channels must be an int >= 1. Received: channels=0"):
        tas.width_choices(0)
    with pytest.raises(ValueError, match=r"fractions=\[0.0, 1.0\]"):
        tas.width_choices(8, [0.0, 1.0])
    with pytest.raises(ValueError, match="Received: blocks=0"):
        tas.depth_choices(0)


def test_temperature_is_the_cosine_schedule_from_5_to_0_1():
    assert tas.temperature_at(0.0) == pytest.approx(5.0)
    assert tas.temperature_at(0.5) == pytest.approx(2.55)
    assert tas.temperature_at(1.0) == pytest.approx(0.1)
    assert tas.temperature_at(0.25) > tas.temperature_at(0.75)


def test_flops_direction_shrinks_above_the_target_and_grows_below_the_band():
    assert tas.flops_direction(1.1, 1.0, 0.05) == 1.0
    assert tas.flops_direction(1.0, 1.0, 0.05) == 0.0
    assert tas.flops_direction(0.96, 1.0, 0.05) == 0.0
    assert tas.flops_direction(0.94, 1.0, 0.05) == -1.0


def _adaptive_average(x, output):
    """Reference adaptive average pooling over the last axis (PyTorch's rule)."""
    width = x.shape[-1]
    return np.stack(
        [
            x[..., (o * width) // output : -((-(o + 1) * width) // output)].mean(-1)
            for o in range(output)
        ],
        -1,
    )


@pytest.mark.parametrize("width, output", [(3, 5), (5, 3), (4, 4), (2, 7)])
def test_interpolation_matrix_is_adaptive_average_pooling_of_the_set_channels(width, output):
    rng = np.random.default_rng(0)
    x = np.zeros((2, 8), "float32")
    x[:, :width] = rng.normal(size=(2, width))
    y = x @ tas.interpolation_matrix(width, output, 8)
    np.testing.assert_allclose(y[:, :output], _adaptive_average(x[:, :width], output), rtol=1e-6)
    np.testing.assert_array_equal(y[:, output:], 0.0)


def _layers():
    return [
        tas.ShapeLayer("stem", (2, 4), None, 1, 9),
        tas.ShapeLayer("a", (2, 4), "stem", 0, 9, ("depth", 1)),
        tas.ShapeLayer("b", (2, 4), "a", 0, 9, ("depth", 2)),
    ]


def test_shape_macs_counts_kept_layers_with_their_input_widths():
    layers = _layers()
    widths = {"stem": 4, "a": 2, "b": 4}
    assert tas.shape_macs(layers, widths, {"depth": 2}) == pytest.approx(
        (9 * 1 * 4 + 9 * 4 * 2 + 9 * 2 * 4) / 1e6
    )
    assert tas.shape_macs(layers, widths, {"depth": 1}) == pytest.approx((36 + 72) / 1e6)
    depths = {"depth": [1, 2]}
    assert tas.extreme_macs(layers, depths, largest=True) == pytest.approx((36 + 144 + 144) / 1e6)
    assert tas.extreme_macs(layers, depths, largest=False) == pytest.approx((18 + 36) / 1e6)


def test_a_target_below_the_smallest_network_is_refused_with_the_smallest_ratio():
    assert tas.check_target(0.5, 2.0, 0.5) == 1.0
    with pytest.raises(
        ValueError, match=r"flops_ratio=0.1 .* ratio 0.250\). Pass flops_ratio >= 0.250"
    ):
        tas.check_target(0.1, 2.0, 0.5)
