import numpy as np
import pytest

from tfnas.search import instanas


def test_pretraining_keep_rate_is_the_authors_schedule():
    rates = [instanas.pretraining_keep_rate(e, 10) for e in range(10)]
    assert rates[:6] == [1.0] * 6
    np.testing.assert_allclose(rates[6:], [0.9, 0.8, 0.7, 0.6])


def test_bounded_probabilities_and_latency_bounds():
    np.testing.assert_allclose(
        instanas.bounded_probabilities([0.0, 1.0, 0.5], 0.8), [0.2, 0.8, 0.5]
    )
    assert instanas.latency_bounds(0.0, 10.0, 50.0, 2.0) == (35.0, 2.0)
    assert instanas.latency_bounds(1.0, 10.0, 50.0, 2.0) == (5.0, 2.0)
    with pytest.raises(ValueError, match="progress must be in"):
        instanas.latency_bounds(1.5, 10.0, 50.0, 2.0)


def test_instance_reward_peaks_mid_window_and_penalizes_mistakes():
    reward = instanas.instance_reward([True, True, True, False], [6.0, 2.0, 12.0, 6.0], 10.0, 2.0)
    np.testing.assert_allclose(reward, [10.0, 0.0, 0.0, -10.0])
    half = instanas.instance_reward([True], [4.0], 10.0, 2.0)  # bump = 12 / 16
    np.testing.assert_allclose(half, [7.5])
    with pytest.raises(ValueError, match="one value per input"):
        instanas.instance_reward([True], [1.0, 2.0], 10.0, 2.0)


def test_reward_weights_below_zero_are_named():
    with pytest.raises(ValueError, match="correct_weight"):
        instanas.check_reward_weights(-1.0, 10.0, 1.0)
    with pytest.raises(ValueError, match="wrong_penalty"):
        instanas.check_reward_weights(10.0, -0.5, 1.0)
