"""Gumbel relaxations of the differentiable family: SNAS and GDAS.

Both sample every choice's candidate from the categorical distribution softmax(alpha) with
the Gumbel trick (`argmax(alpha + g)`, `g ~ Gumbel(0, 1)`) and relax the sample with a
temperature tau: `softmax((alpha + g) / tau)`, which becomes one-hot as tau goes to 0.

- SNAS (Xie et al. 2018, arXiv 1812.09926): the relaxed sample mixes every candidate
  (soft), tau anneals exponentially, weights and alphas minimize one loss (the training
  loss) and an optional resource term adds the expected multiply-adds of the sampled
  network, `lambda * sum_k Z_k * MACs_k`.
- GDAS (Dong & Yang 2019, arXiv 1910.04465): the forward pass computes only the sampled
  candidate, scaled by the straight-through weight `h = one_hot - stop_gradient(y) + y`
  (value 1, gradient that of the relaxed sample y), so a step costs about one path; tau
  anneals linearly from 10 to 0.1 and alphas are trained on the validation split.

The Gumbel noise is drawn by the oracle from its seeded training random state before
every alpha and weight step and assigned to the rule, so a resumed search draws the same
samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from tfnas import cost, validation
from tfnas.blocks.supernet import LayerChoice
from tfnas.engine.supernet import choice_layers
from tfnas.tuners.differentiable import DifferentiableOracle, SoftmaxMixture


@keras.saving.register_keras_serializable(package="tfnas")
class GumbelMixture(SoftmaxMixture):
    """Candidates mixed by a Gumbel-softmax sample: `softmax((alpha + g) / tau)`.

    `set_noise` and `set_temperature` set g (per choice name) and tau between steps,
    without retracing. With `hard=True` (GDAS) only the sampled candidate runs
    (`keras.ops.switch`), multiplied by the straight-through one-hot weight. In
    one-architecture mode (`set_architecture`) both compute exactly that architecture.

    Args:
        hard: one sampled candidate per choice (GDAS) instead of the soft mixture (SNAS).
        temperature: the initial tau (> 0).
        **kwargs: the arguments of `SoftmaxMixture`.
    """

    def __init__(self, hard: bool = False, temperature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.hard = bool(hard)
        self.temperature = float(temperature)
        self._noise: dict[str, keras.Variable] = {}
        self._tau: keras.Variable | None = None

    def build(self, choice):
        super().build(choice)
        name = choice.choice_name
        if isinstance(choice, LayerChoice) and name not in self._noise:
            self._noise[name] = keras.Variable(
                np.zeros(len(choice.candidate_values), "float32"), trainable=False, name="gumbel"
            )
        if self._tau is None:
            self._tau = keras.Variable(self.temperature, trainable=False, name="temperature")

    def set_noise(self, noise: Mapping[str, Sequence[float]]) -> None:
        """Assigns the Gumbel noise g of the named choices."""
        for name, values in noise.items():
            self._noise[name].assign(np.asarray(values, dtype="float32"))

    def set_temperature(self, temperature: float) -> None:
        """Sets tau (> 0) for the next steps."""
        self._tau.assign(float(temperature))

    def sample_logits(self, name: str):
        """alpha + g of `name` (excluded candidates pushed to -1e9)."""
        return self.masked_logits(name) + self._noise[name].value

    def relaxed_weights(self, name: str):
        return keras.ops.softmax(self.sample_logits(name) / self._tau.value)

    def mix_layers(self, choice, inputs, training=None):
        if not self.hard:
            return super().mix_layers(choice, inputs, training=training)
        name = choice.choice_name
        mixing = self._mixing.value
        relaxed = self.relaxed_weights(name)
        one_hot = self._masks[name].value
        size = len(choice.candidates)
        sampled = keras.ops.one_hot(keras.ops.argmax(self.sample_logits(name)), size)
        # Straight-through: the value is the one-hot sample, the gradient that of `relaxed`.
        straight = sampled - keras.ops.stop_gradient(relaxed) + relaxed
        weights = mixing * straight + (1.0 - mixing) * one_hot
        index = keras.ops.cast(
            keras.ops.argmax(mixing * sampled + (1.0 - mixing) * one_hot), "int32"
        )
        branches = [
            (
                lambda x, i=i: (
                    choice.candidates[i](x, training=training) * keras.ops.cast(weights[i], x.dtype)
                )
            )
            for i in range(size)
        ]
        return keras.ops.switch(index, branches, inputs)

    def get_config(self) -> dict:
        return {**super().get_config(), "hard": self.hard, "temperature": self.temperature}


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

    def _new_rule(self) -> SoftmaxMixture:
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

    def _resample(self, progress: float) -> None:
        rule = self._rule
        noise = {
            name: self.training_rng.gumbel(size=len(values)).tolist()
            for name, values in rule.get_alphas().items()
        }
        rule.set_noise(noise)
        rule.set_temperature(self.temperature_at(progress))

    def _before_arch_step(self, step: int, progress: float) -> None:
        self._resample(progress)

    def _before_weight_step(self, step: int, progress: float) -> None:
        self._resample(progress)


class SNAS(_GumbelOracle):
    """SNAS (Xie et al. 2018): stochastic NAS with a soft Gumbel-softmax relaxation.

    Every step mixes all candidates with a fresh Gumbel-softmax sample `Z`; weights and
    alphas minimize the same training loss (no validation split for alphas: the alpha
    step takes its own batch of the training split, then `fit` takes the weight step on
    another sample), plus `resource_weight * sum over choice layers of sum_k Z_k * MMACs_k`
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
        self._candidate_macs: list[tuple[str, np.ndarray]] = []
        super().__init__(objective, max_trials, temperature=temperature, **kwargs)

    def on_supernet_built(self, supernet, validation_data, training_data=None):
        super().on_supernet_built(supernet, validation_data, training_data)
        self._candidate_macs = [
            (
                layer.choice_name,
                np.asarray(
                    [cost.layer_macs(c, layer.built_input_shape) / 1e6 for c in layer.candidates],
                    dtype="float32",
                ),
            )
            for layer in choice_layers(supernet)
            if isinstance(layer, LayerChoice)
        ]

    def expected_macs(self):
        """The relaxed sample's multiply-adds in millions (a tensor; differentiable in alpha)."""
        total = 0.0
        for name, macs in self._candidate_macs:
            total = total + keras.ops.sum(self._rule.relaxed_weights(name) * macs)
        return total

    def _arch_loss_extra(self):
        if not self.resource_weight:
            return 0.0
        return self.resource_weight * self.expected_macs()


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
