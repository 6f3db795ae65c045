"""Gumbel relaxations of the differentiable family: SNAS and GDAS.

Both sample every choice's candidate from the categorical distribution softmax(alpha) with
the Gumbel trick (`argmax(alpha + g)`, `g ~ Gumbel(0, 1)`) and relax the sample with a
temperature tau: `softmax((alpha + g) / tau)`, which becomes one-hot as tau goes to 0
(`tfnas.blocks.rules.GumbelMixture`).

- SNAS (Xie et al. 2018, arXiv 1812.09926): the relaxed sample mixes every candidate
  (soft), tau anneals exponentially, weights and alphas minimize one loss (the training
  loss) and an optional resource term adds the expected multiply-adds of the sampled
  network, `lambda * sum_k Z_k * MACs_k`.
- GDAS (Dong & Yang 2019, arXiv 1910.04465): the forward pass computes only the sampled
  candidate, scaled by the straight-through weight `h = one_hot - stop_gradient(y) + y`
  (value 1, gradient that of the relaxed sample y), so a step costs about one path; tau
  anneals linearly from 10 to 0.1 and alphas are trained on the validation split.

The Gumbel noise is drawn from the oracle's seeded training random state before every
alpha and weight step (the architecture step's `GumbelSampling` hook) and assigned to the
rule, so a resumed search draws the same samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tfnas import validation
from tfnas.tuners.differentiable import DifferentiableOracle

if TYPE_CHECKING:
    from tfnas.blocks.rules import GumbelMixture


def _check_temperature(temperature) -> tuple[float, float]:
    try:
        start, end = (float(t) for t in temperature)
    except (TypeError, ValueError):
        raise ValueError(
            "temperature must be a pair (initial, final) of numbers > 0. "
            f"Received: temperature={temperature!r}"
        ) from None
    if not (start > 0 and end > 0 and math.isfinite(start) and math.isfinite(end)):
        raise ValueError(
            "temperature must stay > 0: a schedule that reaches 0 makes the Gumbel-softmax "
            f"divide by zero. Received: temperature={temperature!r}"
        )
    return start, end


class _GumbelOracle(DifferentiableOracle):
    """What SNAS and GDAS share: Gumbel noise per step and an annealed temperature."""

    hard = False
    schedule = "exponential"

    def __init__(self, objective, max_trials, *, temperature, **kwargs):
        self.temperature = _check_temperature(temperature)
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    def _new_rule(self) -> GumbelMixture:
        from tfnas.blocks.rules import GumbelMixture

        return GumbelMixture(
            hard=self.hard,
            temperature=self.temperature[0],
            seed=self.seed,
            initial_alphas=self._alphas,
        )

    def temperature_at(self, progress: float) -> float:
        """tau after `progress` (in [0, 1]) of the search: exponential (SNAS) or linear
        (GDAS) from the initial to the final temperature."""
        start, end = self.temperature
        if self.schedule == "linear":
            return start + (end - start) * progress
        return start * (end / start) ** progress

    def _architecture_step_options(self, steps) -> dict[str, Any]:
        # The noise comes from the training random state current at each step (a restored
        # state replaces the generator object).
        sampling = steps.GumbelSampling(lambda: self.training_rng, self.temperature_at)
        return {**super()._architecture_step_options(steps), "resample": sampling}


class SNAS(_GumbelOracle):
    """SNAS (Xie et al. 2018): stochastic NAS with a soft Gumbel-softmax relaxation.

    Every step mixes all candidates with a fresh Gumbel-softmax sample `Z`; weights and
    alphas minimize the same training loss (no validation split for alphas: the alpha
    step takes its own batch of the training split, then the engine takes the weight step
    on another sample), plus `resource_weight * sum over choice layers of sum_k Z_k * MMACs_k`
    (the sampled network's multiply-adds in millions, SNAS's resource constraint). The
    temperature anneals exponentially from `temperature[0]` to `temperature[1]`. The
    derived architecture is the argmax of alpha, as for DARTS.

    Args:
        temperature: `(initial, final)` tau, both > 0 (default (1.0, 0.03): SNAS starts at
            1 and decays by 0.97 per epoch, about 0.03 after 100 epochs).
        resource_weight: lambda of the resource term (>= 0; 0 disables it).
        **kwargs: the arguments of `DifferentiableOracle` (arch_learning_rate, ...).
    """

    arch_split = "training"

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        temperature: Sequence[float] = (1.0, 0.03),
        resource_weight: float = 0.0,
        **kwargs,
    ):
        self.resource_weight = validation.check_float("resource_weight", resource_weight, low=0.0)
        super().__init__(objective, max_trials, temperature=temperature, **kwargs)

    def _architecture_step_options(self, steps) -> dict[str, Any]:
        options = super()._architecture_step_options(steps)
        if self.resource_weight:
            options["loss_term"] = steps.ExpectedMacs(self.resource_weight)
        return options


class GDAS(_GumbelOracle):
    """GDAS (Dong & Yang 2019): one Gumbel-max sampled path per step, straight-through.

    Each step computes only the sampled candidate of every choice (`keras.ops.switch`), so
    a step costs about one path in time and memory; the straight-through weight passes
    the Gumbel-softmax gradient to alpha. Alphas are trained on the validation split
    (bilevel, first order), weights on the training split, each step with a fresh sample.
    The temperature anneals linearly from 10 to 0.1, as in the paper.

    Args:
        temperature: `(initial, final)` tau, both > 0 (GDAS: (10, 0.1)).
        **kwargs: the arguments of `DifferentiableOracle` (arch_learning_rate, ...).
    """

    hard = True
    schedule = "linear"

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        temperature: Sequence[float] = (10.0, 0.1),
        **kwargs: Any,
    ):
        super().__init__(objective, max_trials, temperature=temperature, **kwargs)
