"""Single-Path NAS (Stamoulis et al. 2019, arXiv 1904.02877): one super-kernel per layer.

Single-Path NAS searches the ProxylessNAS/MnasNet-style mobile space (per layer an MBConv
with kernel {3, 5} and expansion {3, 6}, or skip where the layer keeps the shape) with no
paths to mix: every layer is one super-kernel holding all its candidates, and which one it
is follows from the weights themselves, through thresholds on the norms of weight groups.
As every tfnas differentiable strategy it is three plug-ins:

- mixing rule: `tfnas.blocks.rules.superkernel.SuperKernelThresholds` (the authors'
  `DepthwiseConv2DMasked`): indicators `1(||w_group|| > t)` choose the kernel size, the
  expansion and skip; forward hard, backward through a sigmoid; the thresholds t are
  the architecture parameters;
- architecture step: `tfnas.engine.latency_steps.SinglePathStep`: weights and thresholds
  minimize one loss, `CE + 1000 * lambda * log(R)` (the authors' `search_main.py`), from
  one backward pass per training batch (no validation split, no bilevel step); R is the
  latency lookup table's runtime of the selected candidates (the candidate weights the
  indicators give, differentiable through their sigmoids);
- derivation: each layer's candidate under its hard indicators (what the super-kernel
  computes); further candidates (`max_trials > 1`) are sampled from the indicators'
  sigmoid weights and, as all, evaluated as trials with the inherited weights.

Defaults are the authors' (`search_main.py`, `nas_utils.py`, README): thresholds start at
0 (every layer starts as its largest candidate); lambda = 0.020 (README); for the first
6255 of 10008 steps (5 of 8 epochs) lambda is 0 and every indicator is dropped with
probability 0.4 at each step (the "warm-up"); the thresholds are trained with the weights'
RMSProp (decay 0.9, momentum 0.9, epsilon 1e-3, base learning rate 0.016 for batch 256,
which the authors scale by batch / 256) and weight decay 1e-5.

Deviations:
- the thresholds have their own RMSProp (same settings), the weights the hypermodel's
  compiled optimizer; the loss and its single backward pass are the authors'. Pass
  `threshold_learning_rate=0.016 * batch_size / 256` to scale it as they do; the
  authors' staircase decay of the rate (0.97 every 2.4 epochs) is not applied.
- the warm-up dropout keeps a kept indicator at 1 (the authors' `tf.nn.dropout` also
  scales it by 1 / 0.6, which scales the kept weight groups), so that the super-kernel
  always computes one of its candidates exactly.
- R comes from a lookup table of every candidate (all kernel x expansion pairs), summed,
  not from the authors' per-layer model that scales the runtime of the 50% / 100% channel
  variants by the ratio of the 3x3 and 5x5 runtimes; with 0/1 indicators both give the
  table latency of the selected candidates, and the table's is exact for every pair.
- the rule's deviations (dropped channels zeroed after the depthwise batch norm, skip
  multiplying the branch) are in `tfnas.blocks.rules.superkernel`.
- with `latency_target_ms`, candidates predicted above it are not proposed (as FBNet
  here); Single-Path NAS itself has no target (lambda sets the trade-off).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tfnas import validation
from tfnas.tuners.differentiable import DifferentiableOracle
from tfnas.tuners.latency_aware import LatencyTableMixin

if TYPE_CHECKING:
    from tfnas.blocks.rules.superkernel import SuperKernelThresholds
    from tfnas.latency.lookup_table import LookupTable

# The authors: lambda 0 and indicator dropout for the first 6255 of 10008 steps (5 of 8 epochs).
AUTHORS_EPOCHS, AUTHORS_WARMUP_EPOCHS = 8, 5


class SinglePathNAS(LatencyTableMixin, DifferentiableOracle):
    """Single-Path NAS (Stamoulis et al. 2019): super-kernels, thresholds, runtime loss.

    Args:
        objective: the candidates' objective (default "val_accuracy").
        max_trials: candidates evaluated (1: the derived architecture only).
        latency_table: a `tfnas.latency.LookupTable` of the searched space (measured on
            the target device), or the path of one.
        latency_target_ms: optional cap (> 0) on the predicted latency of the proposed
            candidates.
        runtime_lambda: lambda (> 0) of the runtime term `1000 * lambda * log(R_ms)`.
        warmup_epochs: epochs with lambda = 0 and indicator dropout, or None for the
            authors' 5 of 8 scaled to the search (`epochs * 5 / 8` rounded half up, at most
            epochs - 1).
        gate_drop_rate: the warm-up's indicator dropout probability, in [0, 1).
        threshold_learning_rate: the thresholds' RMSProp learning rate (> 0).
        threshold_weight_decay: L2 decay of the thresholds (>= 0).
        **kwargs: the arguments of `WeightSharingOracle` (constraints,
            bn_recalibration_batches, seed, ...).

    Example:

    ```python
    space = tfnas.spaces.ProxylessSpace((8, 8, 1), 10, kernel_sizes=(3, 5), ...)
    table = tfnas.latency.build_table(space, tfnas.latency.LocalRunner(), "table.json")
    oracle = tfnas.oracles.SinglePathNAS(latency_table="table.json", seed=0)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs", project_name="spnas")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=8)
    oracle.derive()                  # {"stage1/block0/op": "k5_e3", ...}
    ```
    """

    arch_split = "training"
    warmup_share = (AUTHORS_WARMUP_EPOCHS, AUTHORS_EPOCHS)

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        latency_table: LookupTable | str | os.PathLike | None = None,
        latency_target_ms: float | None = None,
        runtime_lambda: float = 0.020,
        warmup_epochs: int | None = None,
        gate_drop_rate: float = 0.4,
        threshold_learning_rate: float = 0.016,
        threshold_weight_decay: float = 1e-5,
        **kwargs: Any,
    ):
        self._init_latency_table(latency_table, latency_target_ms, warmup_epochs)
        self.runtime_lambda = validation.check_float(
            "runtime_lambda", runtime_lambda, low=0.0, low_inclusive=False
        )
        self.gate_drop_rate = validation.check_float(
            "gate_drop_rate", gate_drop_rate, low=0.0, high=1.0, high_inclusive=False
        )
        # `norm - threshold` of every indicator at the last epoch end (JSON, in state).
        self._margins: dict[str, list[float]] = {}
        self._layouts: dict[str, dict[str, Any]] = {}
        super().__init__(
            objective, max_trials, arch_learning_rate=threshold_learning_rate,
            arch_weight_decay=threshold_weight_decay, **kwargs,
        )  # fmt: skip

    @classmethod
    def check_search(cls, hypermodel, latency_target_ms: float | None) -> None:
        """Builds `hypermodel`'s supernet once: a space without super-kernels (e.g. a
        cell space) is refused, by `SuperKernelThresholds`, before a table is built."""
        from tfnas.blocks.rules.superkernel import SuperKernelThresholds
        from tfnas.blocks.supernet import SupernetHyperParameters

        hypermodel.build(SupernetHyperParameters(SuperKernelThresholds()))

    @property
    def threshold_learning_rate(self) -> float:
        return self.arch_learning_rate

    def _new_rule(self) -> SuperKernelThresholds:
        from tfnas.blocks.rules.superkernel import SuperKernelThresholds

        return SuperKernelThresholds(seed=self.seed, initial_alphas=self._alphas)

    def on_supernet_built(self, supernet, validation_data, training_data=None) -> None:
        """Also records each layer's super-kernel layout and indicator margins.

        Raises:
            ValueError: as `LatencyTableMixin.on_supernet_built`.
        """
        super().on_supernet_built(supernet, validation_data, training_data)
        self._layouts = {name: lay.to_json() for name, lay in self._rule.layouts().items()}
        self._margins = self._rule.margins()

    def _new_architecture_step(self, steps, **options):
        from tfnas.engine import latency_steps

        options.pop("alphas_frozen", None)
        loss = latency_steps.RuntimeLogLoss(
            self.latency_table(), self.runtime_lambda, owner=type(self).__name__
        )
        return latency_steps.SinglePathStep(
            runtime_loss=loss,
            in_warmup=self.in_warmup,
            gate_drop_rate=self.gate_drop_rate,
            rng=lambda: self.training_rng,
            **options,
        )

    def alphas_frozen(self, epoch: int) -> bool:
        """Never: the thresholds learn from the cross-entropy in the warm-up too (which
        has lambda = 0 and indicator dropout, `in_warmup`)."""
        return False

    # --- What the thresholds select -------------------------------------------------------

    def _sync_from_rule(self) -> None:
        super()._sync_from_rule()
        if self._rule is not None and self._rule.alpha_variables:
            self._margins = self._rule.margins()

    def _layout(self, name: str):
        from tfnas.blocks.rules.superkernel import SuperKernelLayout

        return SuperKernelLayout.from_json(self._layouts[name])

    def margins(self) -> dict[str, list[float]]:
        """`norm - threshold` of every indicator (>= 0: on), per layer choice, as of the
        last supernet epoch (or state) read."""
        return {name: list(values) for name, values in self._margins.items()}

    def _weights(self, surrogate) -> dict[str, list[float]]:
        from tfnas.blocks.rules.superkernel import candidate_weights

        weights = {}
        for name in self._layouts:
            gates = [surrogate(m) for m in self._margins.get(name, [])]
            weights[name] = [float(w) for w in candidate_weights(self._layout(name), gates)]
        return weights

    def selection(self) -> dict[str, list[float]]:
        """The one-hot of each layer's selected candidate (hard indicators)."""
        return self._weights(lambda m: float(m >= 0))

    def distributions(self) -> dict[str, list[float]]:
        """Each layer's candidate weights under the indicators' sigmoids (they sum to 1;
        the selected candidate is the one of `selection()`)."""
        return self._weights(lambda m: float(1.0 / (1.0 + np.exp(-m))))

    def _derivation_weights(self, rng) -> dict[str, list[float]]:
        return self.selection() if rng is None else self.distributions()

    def on_supernet_epoch_end(self, epoch, evaluate, logs=None, callbacks=None) -> None:
        """Also records the selected architecture's predicted latency."""
        super().on_supernet_epoch_end(epoch, evaluate, logs=logs, callbacks=callbacks)
        self.history[-1]["latency_ms"] = self.predicted_latency_ms()
        self.history[-1]["margins"] = self.margins()

    # --- State --------------------------------------------------------------------------

    def _differentiable_state(self) -> dict[str, Any]:
        state = super()._differentiable_state()
        state["single_path"] = {
            "margins": self._margins,
            "layouts": self._layouts,
            "latency_table": self.latency_table_path,
            "latency_target_ms": self.latency_target_ms,
            "runtime_lambda": self.runtime_lambda,
        }
        return state

    def _set_differentiable_state(self, state: Mapping[str, Any]) -> None:
        super()._set_differentiable_state(state)
        single_path = state.get("single_path") or {}
        self._margins = {k: list(v) for k, v in (single_path.get("margins") or {}).items()}
        self._layouts = dict(single_path.get("layouts") or {})
