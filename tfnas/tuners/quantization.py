"""Mixed-precision DNAS (Wu et al. 2018, arXiv 1812.00090): per-layer bits by gradient.

The space's `tfnas.blocks.bit_width_choice` points become, in the supernet, one edge per
(weight bits, activation bits) pair whose quantized candidates share one full-precision
weight tensor (`tfnas.quantization.BitWidthCandidate`). The strategy is the three
plug-ins of any tfnas differentiable strategy:

- mixing rule: `tfnas.blocks.rules.BitWidthMixture`, the soft Gumbel-softmax sample
  `m_l = softmax((theta_l + g) / tau)` of every layer's edges, fresh noise each step
  (drawn from the oracle's seeded training random state) and tau annealed exponentially;
- architecture step: `tfnas.engine.quantization_steps.CostScaledStep`, Adam on theta
  with the paper's multiplicative loss `CE x beta * (log Cost)^gamma` on the validation
  split, Cost the expected bit-operations or model size of the sampled network;
- derivation: each layer's argmax edge (further candidates, `max_trials > 1`, are
  sampled from the learned distributions, as the paper samples architectures from
  P_theta), evaluated as ordinary trials with the inherited (QAT) weights.

Defaults: the paper builds on the authors' DNAS framework (FBNet, Wu et al. 2018,
arXiv 1812.03443), whose published settings are used where the mixed-precision paper
gives none: tau from 5.0 decayed by exp(-0.045) per epoch over its 90 epochs (so it ends
at 0.087; tfnas spreads that decay over the search's epochs), theta's Adam with learning
rate 0.01 and weight decay 5e-4, beta = 0.2 and gamma = 0.6. Architecture steps start
after `warmup_epochs` epochs of weight training (FBNet: 10 of 90).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tfnas import validation
from tfnas.tuners.gumbel import _GumbelOracle

if TYPE_CHECKING:
    from tfnas.blocks.rules import BitWidthMixture

COST_METRICS = ("bitops", "model_size")


class MixedPrecisionDNAS(_GumbelOracle):
    """Differentiable mixed-precision search (Wu et al. 2018).

    Args:
        objective: the candidates' objective (default "val_accuracy").
        max_trials: candidates evaluated (1: the derived bits only).
        cost: "bitops" (multiply-adds x weight bits x activation bits) or "model_size"
            (weight bits).
        beta, gamma: the loss's cost factor `beta * (log Cost)^gamma` (both > 0); a larger
            gamma trades more accuracy for a smaller cost.
        temperature: `(initial, final)` tau, both > 0.
        warmup_epochs: epochs that train only the weights (theta frozen).
        arch_learning_rate, arch_beta_1, arch_weight_decay: theta's Adam.
        **kwargs: the arguments of `DifferentiableOracle` / `WeightSharingOracle`.

    Example:

    ```python
    oracle = tfnas.oracles.MixedPrecisionDNAS(cost="bitops", gamma=0.6, seed=0)
    tuner = tfnas.Tuner(build, oracle=oracle, directory="runs", project_name="bits")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=10)
    oracle.derived_bits()   # {"conv1": {"weight_bits": 4, "activation_bits": 8}, ...}
    ```
    """

    hard = False
    schedule = "exponential"
    arch_split = "validation"

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        cost: str = "bitops",
        beta: float = 0.2,
        gamma: float = 0.6,
        temperature: Sequence[float] = (5.0, 0.087),
        warmup_epochs: int = 0,
        arch_learning_rate: float = 0.01,
        arch_beta_1: float = 0.9,
        arch_weight_decay: float = 5e-4,
        **kwargs: Any,
    ):
        self.cost = validation.check_one_of("cost", cost, COST_METRICS)
        self.beta = validation.check_float("beta", beta, low=0.0, low_inclusive=False)
        self.gamma = validation.check_float("gamma", gamma, low=0.0, low_inclusive=False)
        self.warmup_epochs = validation.check_int("warmup_epochs", warmup_epochs, low=0)
        super().__init__(
            objective, max_trials, temperature=temperature,
            arch_learning_rate=arch_learning_rate, arch_beta_1=arch_beta_1,
            arch_weight_decay=arch_weight_decay, **kwargs,
        )  # fmt: skip

    @classmethod
    def check_search(cls, hypermodel, latency_target_ms: float | None) -> None:
        """A space without bit-width choices has nothing to search: refused before any
        supernet is built (one default-mode build registers the space's choices)."""
        import keras_tuner

        hp = keras_tuner.HyperParameters()
        build = hypermodel.build if isinstance(hypermodel, keras_tuner.HyperModel) else hypermodel
        build(hp)
        if not any(p.name.endswith("/weight_bits") for p in hp.space):
            raise ValueError(
                "MixedPrecisionDNAS searches per-layer bit widths (tfnas.blocks.bit_width_choice), "
                "which this space has none of: pass quantization='mixed' (--quantization=mixed) "
                "to search tfnas's quantized CNN."
            )

    def _new_rule(self) -> BitWidthMixture:
        from tfnas.blocks.rules import BitWidthMixture

        return BitWidthMixture(
            temperature=self.temperature[0], seed=self.seed, initial_alphas=self._alphas
        )

    def check_epochs(self, epochs: int) -> None:
        """Also checks that the warm-up leaves epochs for the architecture steps."""
        super().check_epochs(epochs)
        if self.warmup_epochs >= epochs:
            raise ValueError(
                f"warmup_epochs must be smaller than the search's epochs, or theta never "
                f"trains. Received: warmup_epochs={self.warmup_epochs}, epochs={epochs}"
            )

    def alphas_frozen(self, epoch: int) -> bool:
        return epoch < self.warmup_epochs

    def _new_architecture_step(self, steps, **options):
        from tfnas.engine import quantization_steps

        return quantization_steps.CostScaledStep(
            cost=quantization_steps.ExpectedBitCost(self.cost),
            beta=self.beta,
            gamma=self.gamma,
            **options,
        )

    def derived_bits(self, values=None) -> dict[str, dict[str, Any]]:
        """`{choice name: {"weight_bits": b, "activation_bits": b}}` of the derived
        architecture (or of `values`): the bit-width decisions only."""
        values = self.derive() if values is None else values
        bits: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            prefix, _, field = key.rpartition("/")
            if field in ("weight_bits", "activation_bits"):
                bits.setdefault(prefix, {})[field] = value
        return bits
