"""FBNet (Wu et al. 2018, arXiv 1812.03443): hardware-aware DNAS with a latency table.

FBNet searches a layer-wise space (every block of a fixed macro-architecture picks one
of its candidate blocks, `skip` included) by gradient. The strategy is the three plug-ins
of any tfnas differentiable strategy:

- mixing rule: `tfnas.blocks.rules.GumbelMixture` (soft), every layer's output the
  Gumbel-softmax mixture `sum_i m_{l,i} b_{l,i}(x)`, `m_l = softmax((theta_l + g) / tau)`,
  fresh noise g each step (drawn from the oracle's seeded training random state) and tau
  annealed exponentially;
- architecture step: `tfnas.engine.quantization_steps.CostScaledStep` with the latency
  cost `tfnas.engine.latency_steps.ExpectedLatencyCost`: Adam on theta, on the validation
  split (the paper trains theta on 20% of the training set held out from the weights), of
  the loss `CE(a, w_a) * alpha * log(LAT(a))^beta`, LAT the expected latency of the
  relaxed sample that the latency lookup table (`tfnas.latency.LookupTable`) predicts;
- derivation: each layer's argmax block; further candidates (`max_trials > 1`) are
  sampled from P_theta, as the paper samples six architectures from the trained
  distribution, and evaluated as ordinary trials with the inherited weights.

Defaults are the paper's (sec. 4.1): tau from 5.0 decayed by exp(-0.045) per epoch over
its 90 epochs (ending at 5 exp(-4.05) = 0.087; tfnas spreads that decay over the search's
epochs, step by step, as `MixedPrecisionDNAS` does), theta's Adam with learning rate 0.01
and weight decay 5e-4, alpha = 0.2, beta = 0.6, and w trained alone for the first 10 of
the 90 epochs (by default the same share of the search's epochs).

Deviations: the weights train with the hypermodel's compiled optimizer and loss (the
paper: SGD on the same multiplicative loss, whose factor does not depend on w, so it only
rescales the weights' gradient). `log(LAT)^beta` is read as `(log LAT)^beta` and LAT is
taken in `latency_unit` (the paper's milliseconds by default): with tiny inputs a network
runs in well under a millisecond, log(ms) < 0 and the fractional power is undefined, so
the search refuses, before training, a unit in which the fastest architecture's log is not
> 1 (pass latency_unit="us"). FBNet has no latency target (beta sets the trade-off);
with `latency_target_ms` the candidates whose predicted latency exceeds it are not
proposed (the argmax architecture is replaced by samples of P_theta, then by random and
scanned architectures, until one meets it), and a target that even the fastest
architecture misses is refused before training.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tfnas import validation
from tfnas.tuners.gumbel import _GumbelOracle
from tfnas.tuners.latency_aware import LatencyTableMixin

if TYPE_CHECKING:
    from tfnas.blocks.rules import GumbelMixture
    from tfnas.latency.lookup_table import LookupTable

# The paper: 90 epochs, tau *= exp(-0.045) per epoch, theta frozen for the first 10.
PAPER_EPOCHS, PAPER_WARMUP_EPOCHS, PAPER_DECAY = 90, 10, 0.045
FINAL_TEMPERATURE = 5.0 * math.exp(-PAPER_DECAY * PAPER_EPOCHS)


class FBNet(LatencyTableMixin, _GumbelOracle):
    """FBNet (Wu et al. 2018): Gumbel-softmax DNAS on the latency of a lookup table.

    Args:
        objective: the candidates' objective (default "val_accuracy").
        max_trials: candidates evaluated (1: the derived architecture only; the paper
            samples 6 from P_theta).
        latency_table: a `tfnas.latency.LookupTable` of the searched space (measured on
            the target device), or the path of one; it is bound to the hypermodel the
            supernet is built from, so a table lacking operations fails before training.
        latency_target_ms: optional cap (> 0) on the predicted latency of the proposed
            candidates (see the module doc).
        latency_unit: "ms" (the paper's) or "us": the unit LAT is taken in by the loss.
        alpha, beta: the loss factor `alpha * (log LAT)^beta` (both > 0); a larger beta
            trades more accuracy for a lower latency.
        temperature: `(initial, final)` tau, both > 0.
        warmup_epochs: epochs that train only the weights (theta frozen), or None for the
            paper's 10 of 90 scaled to the search (`round(epochs / 9)`, leaving at least
            one epoch for theta).
        arch_learning_rate, arch_beta_1, arch_weight_decay: theta's Adam.
        **kwargs: the arguments of `DifferentiableOracle` / `WeightSharingOracle`.

    Example:

    ```python
    space = tfnas.spaces.MobileSpace((8, 8, 1), 10, joint_ops=True, ...)
    table = tfnas.latency.build_table(space, tfnas.latency.LocalRunner(), "table.json")
    oracle = tfnas.oracles.FBNet(latency_table="table.json", latency_unit="us", seed=0)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs", project_name="fbnet")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=10)
    oracle.derive()                  # {"stage0/block0/op": "k3_e3", ...}
    oracle.predicted_latency_ms()    # its latency according to the table
    ```
    """

    hard = False
    schedule = "exponential"
    arch_split = "validation"
    warmup_share = (PAPER_WARMUP_EPOCHS, PAPER_EPOCHS)

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        latency_table: LookupTable | str | os.PathLike | None = None,
        latency_target_ms: float | None = None,
        latency_unit: str = "ms",
        alpha: float = 0.2,
        beta: float = 0.6,
        temperature: Sequence[float] = (5.0, FINAL_TEMPERATURE),
        warmup_epochs: int | None = None,
        arch_learning_rate: float = 0.01,
        arch_beta_1: float = 0.9,
        arch_weight_decay: float = 5e-4,
        **kwargs: Any,
    ):
        from tfnas.engine.latency_steps import LATENCY_UNITS

        self._init_latency_table(latency_table, latency_target_ms, warmup_epochs)
        self.latency_unit = validation.check_one_of(
            "latency_unit", latency_unit, tuple(LATENCY_UNITS)
        )
        self.alpha = validation.check_float("alpha", alpha, low=0.0, low_inclusive=False)
        self.beta = validation.check_float("beta", beta, low=0.0, low_inclusive=False)
        super().__init__(
            objective, max_trials, temperature=temperature,
            arch_learning_rate=arch_learning_rate, arch_beta_1=arch_beta_1,
            arch_weight_decay=arch_weight_decay, **kwargs,
        )  # fmt: skip

    def _new_rule(self) -> GumbelMixture:
        from tfnas.blocks.rules import GumbelMixture

        return GumbelMixture(
            hard=False, temperature=self.temperature[0], seed=self.seed,
            initial_alphas=self._alphas,
        )  # fmt: skip

    def _new_architecture_step(self, steps, **options):
        from tfnas.engine import latency_steps, quantization_steps

        cost = latency_steps.ExpectedLatencyCost(
            self.latency_table(), unit=self.latency_unit, owner=type(self).__name__
        )
        # CostScaledStep's factor is `beta * (log Cost)^gamma`: FBNet's alpha and beta.
        return quantization_steps.CostScaledStep(
            cost=cost, beta=self.alpha, gamma=self.beta, **options
        )

    def _differentiable_state(self) -> dict[str, Any]:
        state = super()._differentiable_state()
        # What the search ran against, for the record (constructor arguments are not
        # restored from state): the table's path, not the table.
        state["fbnet"] = {
            "latency_table": self.latency_table_path,
            "latency_target_ms": self.latency_target_ms,
            "latency_unit": self.latency_unit,
        }
        return state
