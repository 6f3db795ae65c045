"""`BitWidthMixture`: Wu et al. (2018)'s Gumbel-softmax mixture of a layer's precisions.

DNAS for mixed precision (arXiv 1812.00090, sec. 3-4) relaxes each layer's choice of
edges (one per (weight bits, activation bits) pair) into `sum_i m_i * edge_i(x)` with
`m = GumbelSoftmax(theta_l)`: `softmax((theta + g) / tau)`, a fresh Gumbel sample g per
step and an annealed temperature tau. That is `GumbelMixture` with `hard=False` (the
soft sample mixes every edge); this rule is it under its own name, so a supernet records
which strategy built it, plus the precision of each candidate the cost term needs.
"""

from __future__ import annotations

import keras

from tfnas.blocks.rules.gumbel import GumbelMixture


@keras.saving.register_keras_serializable(package="tfnas")
class BitWidthMixture(GumbelMixture):
    """Soft Gumbel-softmax mixture over every choice's candidates (DNAS).

    Args:
        temperature: the initial tau (> 0).
        **kwargs: the arguments of `SoftmaxMixture` (seed, initial_alphas, ...).
    """

    def __init__(self, temperature: float = 5.0, **kwargs):
        kwargs.pop("hard", None)
        super().__init__(hard=False, temperature=temperature, **kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("hard", None)
        return config


def candidate_precisions(choice) -> list[tuple[int, int] | None]:
    """`(weight_bits, activation_bits)` of each candidate of a layer choice (None for a
    candidate that is not a bit-width candidate, e.g. an architecture choice's op)."""
    return [
        (int(c.weight_bits), int(c.activation_bits)) if hasattr(c, "weight_bits") else None
        for c in choice.candidates
    ]
