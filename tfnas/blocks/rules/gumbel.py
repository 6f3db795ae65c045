"""`GumbelMixture`: the Gumbel-softmax relaxation of SNAS and GDAS.

Every choice's candidate is sampled from softmax(alpha) with the Gumbel trick
(`argmax(alpha + g)`, `g ~ Gumbel(0, 1)`) and the sample is relaxed with a temperature tau:
`softmax((alpha + g) / tau)`, which becomes one-hot as tau goes to 0. The noise and the
temperature are variables set between steps (by `tfnas.engine.architecture_steps.GumbelSampling`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import keras
import numpy as np

from tfnas.blocks.rules.softmax import SoftmaxMixture, is_layer_choice


@keras.saving.register_keras_serializable(package="tfnas")
class GumbelMixture(SoftmaxMixture):
    """Candidates mixed by a Gumbel-softmax sample: `softmax((alpha + g) / tau)`.

    `set_noise` and `set_temperature` set g (per choice name) and tau between steps,
    without retracing. With `hard=True` (GDAS) only the sampled candidate runs
    (`keras.ops.switch`), multiplied by the straight-through one-hot weight `h`, and the
    other candidates' weights `h_k` (0 in value) are added to the output, as the
    authors' `forward_gdas` does, so every alpha gets the straight-through gradient. In
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
        if is_layer_choice(choice) and name not in self._noise:
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

    def sample_log_density(self, name: str):
        """log p_alpha(Z) of the current relaxed sample Z of `name`, Z held fixed.

        `concrete_log_density` of alpha at Z, with `stop_gradient` on Z, so the gradient
        w.r.t. alpha is the score `grad_alpha log p_alpha(Z)` of the drawn sample (SNAS's
        resource term). Excluded candidates are not supported here.
        """
        tau = self._tau.value
        log_z = keras.ops.log_softmax(self.sample_logits(name) / tau)
        return concrete_log_density(self.masked_logits(name), keras.ops.stop_gradient(log_z), tau)

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
        output = keras.ops.switch(index, branches, inputs)
        # GDAS (`forward_gdas` in the authors' search_cells.py) adds the weights of the
        # candidates it does not compute: `sum(h[k] * op_k(x) if k == argmax else h[k])`.
        # They are 0 in value (so the output is the sampled path's), but each carries the
        # straight-through gradient, so every candidate's alpha learns, not only the
        # sampled one's. In one-architecture mode `weights` is that one-hot: the sum is 0.
        unselected = keras.ops.sum(weights * (1.0 - keras.ops.one_hot(index, size)))
        return output + keras.ops.cast(unselected, output.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "hard": self.hard, "temperature": self.temperature}


def concrete_log_density(logits, log_z, temperature):
    """log-density of the Gumbel-softmax (Concrete) distribution at Z (last axis).

    With logits alpha and temperature tau over n candidates (Maddison et al. 2017, eq. in
    SNAS's appendix and its code's `logp`): `log (n-1)! + (n-1) log tau + sum_k (alpha_k -
    (tau + 1) log Z_k) - n logsumexp_k(alpha_k - tau log Z_k)`, w.r.t. the Lebesgue
    measure on the first n - 1 coordinates of the simplex.

    Args:
        logits: alpha, shape (..., n).
        log_z: log Z of points of the simplex, shape (..., n).
        temperature: tau (> 0).
    """
    n = int(logits.shape[-1])
    tau = keras.ops.convert_to_tensor(temperature, dtype=log_z.dtype)
    return (
        float(math.lgamma(n))
        + (n - 1) * keras.ops.log(tau)
        + keras.ops.sum(logits - (tau + 1.0) * log_z, axis=-1)
        - n * keras.ops.logsumexp(logits - tau * log_z, axis=-1)
    )
