"""Gumbel relaxations of the differentiable family: SNAS and GDAS.

Both sample every choice's candidate from the categorical distribution softmax(alpha) with
the Gumbel trick (`argmax(alpha + g)`, `g ~ Gumbel(0, 1)`) and relax the sample with a
temperature tau: `softmax((alpha + g) / tau)`, which becomes one-hot as tau goes to 0
(`tfnas.blocks.rules.GumbelMixture`).

- SNAS (Xie et al. 2018, arXiv 1812.09926): the relaxed sample mixes every candidate
  (soft), tau anneals exponentially, weights and alphas minimize one loss (the training
  loss of the sampled network) in one backward pass per step
  (`architecture_steps.SingleLossStep`), and an optional resource term penalizes the
  sampled network's multiply-adds with the paper's score-function gradient
  (`architecture_steps.ResourceScore`).
- GDAS (Dong & Yang 2019, arXiv 1910.04465): the forward pass computes only the sampled
  candidate, scaled by the straight-through weight `h = one_hot - stop_gradient(y) + y`
  (value 1, gradient that of the relaxed sample y), plus the other candidates' weights
  (0 in value), as the authors' `forward_gdas` does, so a step costs about one path and
  every alpha gets a gradient; tau anneals linearly from 10 to 0.1 and alphas are
  trained on the validation split.

The Gumbel noise is drawn from the oracle's seeded training random state before every
alpha and weight step (SNAS: before every step, which both share; the architecture
step's `GumbelSampling` hook) and assigned to the rule, so a resumed search draws the
same samples.
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

    Every training step mixes all candidates with one fresh Gumbel-softmax sample `Z`;
    weights and alphas minimize the same loss, the training loss of that sample, from one
    forward and one backward pass (`architecture_steps.SingleLossStep`: the engine's
    weight step also applies the alphas' gradient with their Adam; no validation split).
    With `resource_weight`, the resource constraint of the paper (sec. 2.4) is added for
    the alphas: the sampled network's cost `C(Z) = sum_i sum_k Z_ik * MMACs_ik`
    (multiply-adds in millions, per choice), with the score-function gradient
    `lambda * C(Z_i) * grad log p_alpha(Z_i)` ("score", the paper's and the authors'
    default `policy_gradient`) or the reparameterized one of `lambda * C(Z)`
    ("reparameterization", the code's `reparametrization`). The temperature anneals
    exponentially from `temperature[0]` to `temperature[1]`. The derived architecture is
    the argmax of alpha, as for DARTS. The supernet is trained without a distribution
    strategy (the single step updates the alphas on one device).

    Args:
        temperature: `(initial, final)` tau, both > 0 (default (1.0, 0.03): SNAS starts at
            1 and decays by 0.97 per epoch, about 0.03 after 100 epochs).
        resource_weight: lambda of the resource term (>= 0; 0 disables it).
        resource_gradient: "score" or "reparameterization" (see above).
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
        resource_gradient: str = "score",
        **kwargs,
    ):
        self.resource_weight = validation.check_float("resource_weight", resource_weight, low=0.0)
        self.resource_gradient = validation.check_one_of(
            "resource_gradient", resource_gradient, ("score", "reparameterization")
        )
        super().__init__(objective, max_trials, temperature=temperature, **kwargs)

    def _architecture_step_options(self, steps) -> dict[str, Any]:
        options = super()._architecture_step_options(steps)
        if self.resource_weight:
            term = steps.ResourceScore if self.resource_gradient == "score" else steps.ExpectedMacs
            options["loss_term"] = term(self.resource_weight)
        return options

    def _new_architecture_step(self, steps, **options):
        options.pop("alphas_frozen", None)
        return steps.SingleLossStep(**options)


class GDAS(_GumbelOracle):
    """GDAS (Dong & Yang 2019): one Gumbel-max sampled path per step, straight-through.

    Each step computes only the sampled candidate of every choice (`keras.ops.switch`), so
    a step costs about one path in time and memory. As in the authors' `forward_gdas`
    (`sum(h[k] * op_k(x) if k == argmax else h[k] for k ...)`), the output is the sampled
    candidate times its straight-through weight plus the other candidates' weights, which
    are 0 in value but pass the Gumbel-softmax gradient, so every alpha learns at every
    step (not only the sampled candidate's). Alphas are trained on the validation split
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
