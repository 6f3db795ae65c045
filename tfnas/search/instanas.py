"""The algorithm core of InstaNAS (Cheng et al. 2018, arXiv 1811.10201), numpy only.

InstaNAS trains a controller that picks, per input, which modules of a one-shot
meta-graph run. A policy is a binary matrix `[cells, actions]` per input: module `a` of cell
`t` runs where it is 1, the cell's output is the sum of the modules that run. This module
holds what the authors' code (github.com/AnjieCheng/InstaNAS, `search/search.py`,
`pretrain/train.py`) computes outside the networks:

- `pretraining_keep_rate`: the meta-graph's pre-training keeps every module for the first
  half of the epochs, then drops each module of each input independently, the keep rate
  falling linearly from 1 to 0.5 (`pretrain/train.py`).
- `bounded_probabilities`: the controller's exploration, `alpha * p + (1 - alpha) * (1 - p)`
  (alpha 0.8), so no module is ever certain while the controller learns.
- `latency_bounds`: the latency window of the reward, whose upper bound falls during the
  search from 0.7 x the latency of every module running to 0.5 x the latency of the
  baseline policy (the first action everywhere, MobileNetV2's block); its lower bound is
  the latency of the cheapest network.
- `instance_reward`: per input, a quadratic bump over the window (1 at its middle, 0 at and
  outside its bounds) scaled by `correct_weight` (10) where the prediction is right, and
  `-wrong_penalty` (-10) where it is wrong.
- `policy_gradient_terms`: the self-critical REINFORCE advantage (the sampled policy's
  reward minus that of the greedy policy `p >= 0.5`) the controller's loss multiplies the
  log-probabilities with.
"""

from __future__ import annotations

import numpy as np

from tfnas import validation


def pretraining_keep_rate(epoch: int, epochs: int) -> float:
    """The probability that a module runs for an input in pre-training epoch `epoch`.

    1 for the first half of `epochs` (every module trains), then `1 - (0.5 / (epochs // 2))
    * (epoch - epochs // 2)`, the authors' drop-path schedule (it reaches 0.5 at the last
    epoch of an even count).
    """
    epoch = validation.check_int("epoch", epoch, low=0)
    epochs = validation.check_int("epochs", epochs, low=1)
    half = epochs // 2
    if epoch <= half or half == 0:
        return 1.0
    return float(1.0 - (0.5 / half) * (epoch - half))


def bounded_probabilities(probabilities, alpha: float) -> np.ndarray:
    """The exploration bound of the authors' controller: `alpha * p + (1 - alpha) * (1 - p)`."""
    p = np.asarray(probabilities, dtype="float64")
    return alpha * p + (1.0 - alpha) * (1.0 - p)


def latency_bounds(
    progress: float, baseline: float, all_modules: float, cheapest: float
) -> tuple[float, float]:
    """The reward's latency window `(upper, lower)` at `progress` in [0, 1] of the search.

    Args:
        progress: the search epoch over the last search epoch (0 first, 1 last).
        baseline: the cost of the baseline policy (the first action of every cell).
        all_modules: the cost of the policy running every module.
        cheapest: the cost of the cheapest policy (no module where a cell can skip).

    Returns:
        `(upper, lower)`: upper goes linearly from `0.7 * all_modules` to `0.5 * baseline`
        (the authors' `ub_sp`, `ub_ep`); lower is `cheapest`.
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1]. Received: progress={progress!r}")
    start, end = 0.7 * all_modules, 0.5 * baseline
    return float(start - (start - end) * progress), float(cheapest)


def instance_reward(
    correct,
    cost,
    upper: float,
    lower: float,
    *,
    correct_weight: float = 10.0,
    wrong_penalty: float = 10.0,
    cost_exponent: float = 1.0,
) -> np.ndarray:
    """The authors' per-input reward (`get_reward` in `search/search.py`).

    Args:
        correct: bool per input, whether the prediction is right.
        cost: the latency (or FLOPs) of each input's policy.
        upper, lower: the window of `latency_bounds`.
        correct_weight: the reward scale of a right prediction (the authors' `pos_w`, 10).
        wrong_penalty: the reward of a wrong prediction is `-wrong_penalty` (`neg_w`, -10).
        cost_exponent: the bump is raised to this power (`lat_exp`, 1).

    Returns:
        `correct_weight * bump(cost) ** cost_exponent` where right, `-wrong_penalty`
        where wrong; `bump(c) = max(0, -(c - upper) * (c - lower) / ((upper - lower)^2 /
        4))` is 1 at the window's middle and 0 at and outside its bounds.
    """
    correct = np.asarray(correct, dtype=bool)
    cost = np.asarray(cost, dtype="float64")
    if correct.shape != cost.shape:
        raise ValueError(
            "correct and cost need one value per input. Received shapes "
            f"correct={correct.shape}, cost={cost.shape}"
        )
    peak = (upper - lower) ** 2 / 4.0
    if peak <= 0:
        bump = np.zeros_like(cost)
    else:
        bump = np.clip(-(cost - upper) * (cost - lower) / peak, 0.0, None)
    return np.where(correct, correct_weight * bump**cost_exponent, -wrong_penalty)


def policy_gradient_terms(sampled_reward, greedy_reward) -> np.ndarray:
    """The self-critical advantage of each input: its sampled policy's reward minus the
    reward of the controller's greedy policy on it (the authors' baseline)."""
    return np.asarray(sampled_reward, dtype="float64") - np.asarray(greedy_reward, "float64")


def check_reward_weights(correct_weight: float, wrong_penalty: float, cost_exponent: float):
    """Checks the reward's weights (each >= 0; the exponent > 0) and returns them as floats."""
    return (
        validation.check_float("correct_weight", correct_weight, low=0.0),
        validation.check_float("wrong_penalty", wrong_penalty, low=0.0),
        validation.check_float("cost_exponent", cost_exponent, low=0.0, low_inclusive=False),
    )
