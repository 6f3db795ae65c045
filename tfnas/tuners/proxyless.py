"""ProxylessNAS (Cai, Zhu, Han 2018, arXiv 1812.00332): binarized paths and a latency loss.

ProxylessNAS searches a layer-wise space (every block of a fixed macro-architecture picks
one of its MBConv operations, or `zero`, i.e. skip) directly on the target task, with one
path in memory per step. As every tfnas differentiable strategy it is three plug-ins:

- mixing rule: `tfnas.blocks.rules.binary_gate.BinaryGateMixture`: per choice one
  candidate sampled from softmax(alpha) runs in a weight step (its weights alone are
  updated); the alpha step gates two sampled candidates ("two") or all ("full");
- architecture step (`tfnas.engine.proxyless_steps`): every `arch_update_every` weight
  steps, either the gradient step on the binary gates (`gradient="binary_connect"`, the
  authors' `gradient_step`: dL/dg to dL/dalpha, Adam, and in "two" mode the rescaling that
  keeps the unsampled candidates' probabilities) or REINFORCE (`gradient="reinforce"`,
  the authors' `rl_step`). The loss carries the expected latency E[LAT] of the latency
  lookup table (`tfnas.latency.LookupTable.expected_latency`) through the authors'
  `add_regularization_loss`: 'mul#log' `alpha * CE * (log E[LAT] / log ref)^beta` or
  'add#linear' `CE + lambda * (E[LAT] - ref) / ref`, ref = `latency_target_ms`;
- derivation: each choice's argmax of alpha (the authors' `chosen_index`); further
  candidates (`max_trials > 1`) are sampled from softmax(alpha) and, as all, are trials
  evaluated with the inherited weights.

Defaults are those of the authors' `search/imagenet_arch_search.py` and
`search/nas_manager.py`: alpha initialized N(0, 1e-3^2); Adam lr 1e-3, betas (0, 0.999),
eps 1e-8, no weight decay (beta_1 = 0 leaves the alphas with a zero gradient unchanged,
which the rescaling relies on); one alpha update every 5 weight steps; 'mul#log' with
alpha 0.2, beta 0.3; 'add#linear' lambda 0.1; REINFORCE with 10 paths per update, 300
updates per epoch, baseline decay 0.99, reward `acc * (ref / LAT)^0.1`. The authors train
40 warm-up epochs (weights only, paths sampled from the initial alphas) before 120 joint
epochs, the first of which does not update the alphas either: 41 of 160 epochs. By default
(`warmup_epochs=None`) the same share of the search's epochs keeps the alphas frozen,
`round(epochs * 41 / 160)` (0 for 1 epoch, 1 for 2-5, capped at epochs - 1).

Deviations:
- binary modes: "two" is the default, as the paper describes the gradient step (sec.
  3.2.1: two paths sampled from the multinomial, all others masked, so memory holds two
  paths); the authors' command line defaults to 'full_v2', whose gradients "full"
  computes (every candidate runs in the alpha step, instead of being recomputed in the
  backward pass). In "two" mode E[LAT] uses the authors' `current_prob_over_ops`, the
  softmax over the two sampled candidates (0 elsewhere), so the latency gradient too
  touches only them and the rescaling keeps every other probability; in "full" mode it is
  softmax(alpha) over all candidates.
- the authors' `zero` op short-circuits its block, so when it is the active one the
  edge gets no alpha update at that step; here `skip` is a candidate like the others
  (its gate gradient is `<x, dL/dy>`).
- weights train with the hypermodel's compiled optimizer and loss, and the warm-up keeps
  it (the authors: SGD with their own cosine warm-up learning rate 0.05).
- an alpha update runs before the weight step of batch i when (i + 1) % every == 0 (the
  authors: after it), so the count per epoch is the same, one weight step earlier.
- the REINFORCE accuracy is measured on the batch in training mode (batch statistics),
  as the authors do; the moving batch-norm statistics move with it as in PyTorch.
- 'mul#log' takes logs of `latency_unit` (ms, the authors', or us): it needs E[LAT] and
  ref > 1 in that unit (else the factor is NaN, or with both < 1 it falls as the latency
  rises); such a configuration is refused before training (pass latency_unit="us" for
  the sub-millisecond networks of small inputs, or use 'add#linear', which is unit-free).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from tfnas import validation
from tfnas.tuners.differentiable import DifferentiableOracle
from tfnas.tuners.latency_aware import LatencyTableMixin

if TYPE_CHECKING:
    from tfnas.blocks.rules.binary_gate import BinaryGateMixture
    from tfnas.latency.lookup_table import LookupTable

GRADIENTS = ("binary_connect", "reinforce")
# The authors: 40 warm-up epochs, then 120 joint ones, the first without alpha updates.
AUTHORS_EPOCHS, AUTHORS_FROZEN_EPOCHS = 160, 41


class ProxylessNAS(LatencyTableMixin, DifferentiableOracle):
    """ProxylessNAS (Cai, Zhu, Han 2018): binarized paths, latency from a lookup table.

    Args:
        objective: the candidates' objective (default "val_accuracy").
        max_trials: candidates evaluated (1: the derived architecture only).
        latency_table: a `tfnas.latency.LookupTable` of the searched space, or its path;
            bound to the hypermodel before training (a table lacking operations fails then).
        latency_target_ms: the reference latency `ref` (> 0) of the latency term and the
            reward; needed unless `regularization=None` (and, with "reinforce", unless
            `rl_tradeoff_ratio=0`). A target below the fastest architecture's predicted
            latency is refused before training.
        regularization: "mul#log" (default), "add#linear" or None.
        alpha, beta: the 'mul#log' coefficients (> 0; authors 0.2, 0.3).
        reg_lambda: the 'add#linear' coefficient (>= 0; authors 0.1).
        latency_unit: "ms" or "us", the unit the 'mul#log' logs are taken in.
        gradient: "binary_connect" (default) or "reinforce".
        binary_mode: "two" (default) or "full", the gate pass of "binary_connect".
        warmup_epochs: epochs with frozen alphas, or None for the authors' share (above).
        arch_update_every: weight steps per alpha update (>= 1; authors 5).
        arch_update_steps: alpha updates each time (>= 1; authors 1).
        rl_batch_size, rl_update_steps_per_epoch, rl_baseline_decay, rl_tradeoff_ratio:
            REINFORCE's paths per update (10), updates per epoch (300), baseline decay
            (0.99) and latency exponent (0.1).
        arch_init_scale: standard deviation of the initial alphas (1e-3).
        arch_learning_rate, arch_beta_1, arch_beta_2, arch_weight_decay: the alphas' Adam
            (1e-3, 0, 0.999, 0).
        **kwargs: the arguments of `DifferentiableOracle` / `WeightSharingOracle`.

    Example:

    ```python
    space = tfnas.spaces.MobileSpace((8, 8, 1), 10, joint_ops=True, kernel_sizes=(3, 5, 7),
                                     expansions=(3, 6), se_ratios=(0.0,))
    table = tfnas.latency.build_table(space, tfnas.latency.LocalRunner(), "table.json")
    oracle = tfnas.oracles.ProxylessNAS(latency_table="table.json", latency_target_ms=0.3,
                                        latency_unit="us", seed=0)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs", project_name="proxyless")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=10)
    oracle.derive()                  # {"stage0/block0/op": "k3_e3", ...}
    oracle.predicted_latency_ms()    # its latency according to the table
    ```
    """

    warmup_share = (AUTHORS_FROZEN_EPOCHS, AUTHORS_EPOCHS)

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        latency_table: LookupTable | str | os.PathLike | None = None,
        latency_target_ms: float | None = None,
        regularization: str | None = "mul#log",
        alpha: float = 0.2,
        beta: float = 0.3,
        reg_lambda: float = 0.1,
        latency_unit: str = "ms",
        gradient: str = "binary_connect",
        binary_mode: str = "two",
        warmup_epochs: int | None = None,
        arch_update_every: int = 5,
        arch_update_steps: int = 1,
        rl_batch_size: int = 10,
        rl_update_steps_per_epoch: int = 300,
        rl_baseline_decay: float = 0.99,
        rl_tradeoff_ratio: float = 0.1,
        arch_init_scale: float = 1e-3,
        arch_learning_rate: float = 1e-3,
        arch_beta_1: float = 0.0,
        arch_beta_2: float = 0.999,
        arch_weight_decay: float = 0.0,
        **kwargs: Any,
    ):
        from tfnas.blocks.rules.binary_gate import BINARY_MODES
        from tfnas.engine.proxyless_steps import LATENCY_UNITS, REGULARIZATIONS

        self._init_latency_table(latency_table, latency_target_ms, warmup_epochs)
        self.regularization = validation.check_one_of(
            "regularization", regularization, REGULARIZATIONS
        )
        self.gradient = validation.check_one_of("gradient", gradient, GRADIENTS)
        self.binary_mode = validation.check_one_of("binary_mode", binary_mode, BINARY_MODES)
        self.latency_unit = validation.check_one_of(
            "latency_unit", latency_unit, tuple(LATENCY_UNITS)
        )
        self.alpha = validation.check_float("alpha", alpha, low=0.0, low_inclusive=False)
        self.beta = validation.check_float("beta", beta, low=0.0, low_inclusive=False)
        self.reg_lambda = validation.check_float("reg_lambda", reg_lambda, low=0.0)
        self.rl_batch_size = validation.check_int("rl_batch_size", rl_batch_size, low=1)
        self.rl_update_steps_per_epoch = validation.check_int(
            "rl_update_steps_per_epoch", rl_update_steps_per_epoch, low=1
        )
        self.rl_baseline_decay = validation.check_float(
            "rl_baseline_decay", rl_baseline_decay, low=0.0, high=1.0
        )
        self.rl_tradeoff_ratio = validation.check_float(
            "rl_tradeoff_ratio", rl_tradeoff_ratio, low=0.0
        )
        if self.latency_target_ms is None and self._needs_target():
            needs = (
                f"regularization={self.regularization!r}"
                if self.gradient == "binary_connect"
                else f"the REINFORCE reward with rl_tradeoff_ratio={self.rl_tradeoff_ratio}"
            )
            raise ValueError(
                f"ProxylessNAS's {needs} needs latency_target_ms, the reference latency "
                "(ms) of the latency term. Received: latency_target_ms=None; pass it, or "
                "regularization=None / rl_tradeoff_ratio=0 for an accuracy-only search."
            )
        self.arch_update_every = validation.check_int("arch_update_every", arch_update_every, low=1)
        self.arch_update_steps = validation.check_int("arch_update_steps", arch_update_steps, low=1)
        self.arch_init_scale = validation.check_float("arch_init_scale", arch_init_scale, low=0.0)
        super().__init__(
            objective=objective, max_trials=max_trials, arch_learning_rate=arch_learning_rate,
            arch_beta_1=arch_beta_1, arch_beta_2=arch_beta_2,
            arch_weight_decay=arch_weight_decay, **kwargs,
        )  # fmt: skip

    @classmethod
    def check_search(cls, hypermodel, latency_target_ms: float | None) -> None:
        """The default 'mul#log' loss needs `latency_target_ms`: refused before a table
        is built for nothing."""
        if latency_target_ms is None:
            raise ValueError(
                "ProxylessNAS's latency loss needs latency_target_ms, the reference latency "
                "(ms). Received: latency_target_ms=None; pass --latency_target_ms."
            )

    def _needs_target(self) -> bool:
        if self.gradient == "binary_connect":
            return self.regularization is not None
        return self.rl_tradeoff_ratio > 0

    def _new_rule(self) -> BinaryGateMixture:
        from tfnas.blocks.rules.binary_gate import BinaryGateMixture

        return BinaryGateMixture(
            binary_mode=self.binary_mode, seed=self.seed, init_scale=self.arch_init_scale,
            initial_alphas=self._alphas,
        )  # fmt: skip

    def _new_architecture_step(self, steps, **options):
        from tfnas.engine import proxyless_steps

        options.update(
            latency_table=self.latency_table(),
            rng=lambda: self.training_rng,
            latency_target_ms=self.latency_target_ms,
        )
        if self.gradient == "reinforce":
            return proxyless_steps.ReinforceStep(
                batch_size=self.rl_batch_size, updates_per_epoch=self.rl_update_steps_per_epoch,
                baseline_decay=self.rl_baseline_decay, tradeoff_ratio=self.rl_tradeoff_ratio,
                **options,
            )  # fmt: skip
        return proxyless_steps.BinaryGateStep(
            regularization=self.regularization, latency_unit=self.latency_unit,
            alpha=self.alpha, beta=self.beta, reg_lambda=self.reg_lambda,
            update_every=self.arch_update_every, update_steps=self.arch_update_steps,
            **options,
        )  # fmt: skip

    def _differentiable_state(self) -> dict[str, Any]:
        state = super()._differentiable_state()
        # For the record (constructor arguments are not restored from state).
        state["proxylessnas"] = {
            "latency_table": self.latency_table_path,
            "latency_target_ms": self.latency_target_ms,
            "regularization": self.regularization,
            "gradient": self.gradient,
            "binary_mode": self.binary_mode,
        }
        return state
