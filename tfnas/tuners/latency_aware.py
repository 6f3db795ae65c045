"""What the latency-aware differentiable strategies (FBNet, ProxylessNAS, Single-Path NAS)
share.

Both take a `tfnas.latency.LookupTable` (or its path) and an optional latency target,
bind the table to the hypermodel the supernet is built from (before training, so a table
lacking the space's operations or a target no architecture meets fails then), never
propose a candidate the table predicts above the target, record the expected latency of
every epoch, and freeze the architecture parameters for the paper's share of the epochs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tfnas import validation

if TYPE_CHECKING:
    from tfnas.latency.lookup_table import LookupTable


class LatencyTableMixin:
    """Latency table, target and warm-up of a `DifferentiableOracle` subclass.

    A subclass calls `_init_latency_table(...)` in its `__init__` (before the oracle's) and
    sets `warmup_share`, the paper's `(frozen epochs, epochs)`.
    """

    warmup_share: tuple[int, int] = (0, 1)

    @classmethod
    def check_search(cls, hypermodel, latency_target_ms: float | None) -> None:
        """Raises when this strategy with its defaults cannot search `hypermodel` with
        `latency_target_ms`; called by `tfnas-search` before it builds a latency table.

        Raises:
            ValueError: naming what is missing (none here).
        """

    def _init_latency_table(self, latency_table, latency_target_ms, warmup_epochs) -> None:
        from tfnas.latency.lookup_table import as_lookup_table

        self._table, self.latency_table_path = as_lookup_table(latency_table, type(self).__name__)
        self.latency_target_ms = (
            None
            if latency_target_ms is None
            else validation.check_float(
                "latency_target_ms", latency_target_ms, low=0.0, low_inclusive=False
            )
        )
        self.warmup_epochs = (
            None
            if warmup_epochs is None
            else validation.check_int("warmup_epochs", warmup_epochs, low=0)
        )
        # The table bound to the space of the supernet (set on first use).
        self._bound_table: LookupTable | None = None
        self._hypermodel = None

    # --- The latency table ----------------------------------------------------------------

    def stage_hypermodel(self, hypermodel):
        """Records the hypermodel the supernet is built from (the table's space)."""
        if hypermodel is not self._hypermodel:
            self._hypermodel, self._bound_table = hypermodel, None
        return super().stage_hypermodel(hypermodel)

    def latency_table(self) -> LookupTable:
        """The latency table, bound to the searched space once the supernet was built.

        Raises:
            ValueError: when the table lacks operations of the space (LookupTable's error),
                or it has no layout and no hypermodel is known to bind it to.
        """
        if self._bound_table is not None:
            return self._bound_table
        if self._hypermodel is None:
            if not self._table.choices:
                raise ValueError(
                    f"{type(self).__name__}'s latency table has no space layout yet: search "
                    "with tfnas.Tuner (which binds it to the hypermodel), or pass "
                    "LookupTable.load(path, space=space)."
                )
            return self._table
        from tfnas.latency.lookup_table import bind_keeping_random_state

        self._bound_table = bind_keeping_random_state(self._table, self._hypermodel)
        return self._bound_table

    def on_supernet_built(self, supernet, validation_data, training_data=None) -> None:
        """Also binds the table and checks the latency target, before any training.

        Raises:
            ValueError: as `DifferentiableOracle.on_supernet_built`, when the table lacks
                operations of the space, or when no architecture meets `latency_target_ms`.
        """
        super().on_supernet_built(supernet, validation_data, training_data)
        table = self.latency_table()
        if self.latency_target_ms is not None:
            table.check_target(self.latency_target_ms)

    # --- The schedule ---------------------------------------------------------------------

    def warmup(self, epochs: int) -> int:
        """Epochs (of `epochs`) with frozen architecture parameters: `warmup_epochs`, or
        the paper's share `warmup_share` of them, rounded, at most `epochs - 1`."""
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        frozen, total = self.warmup_share
        return max(0, min(math.floor(frozen * epochs / total + 0.5), epochs - 1))

    def check_epochs(self, epochs: int) -> None:
        """Also checks that the warm-up leaves epochs for the architecture steps."""
        super().check_epochs(epochs)
        if self.warmup_epochs is not None and self.warmup_epochs >= epochs:
            raise ValueError(
                "warmup_epochs must be smaller than the search's epochs, or the architecture "
                f"parameters never train. Received: warmup_epochs={self.warmup_epochs}, "
                f"epochs={epochs}"
            )

    def in_warmup(self, epoch: int) -> bool:
        """Whether `epoch` (0-based) is a warm-up epoch (known once the supernet's epochs
        are, or from `warmup_epochs`)."""
        if self._supernet_epochs is None:
            return self.warmup_epochs is not None and epoch < self.warmup_epochs
        return epoch < self.warmup(self._supernet_epochs)

    def alphas_frozen(self, epoch: int) -> bool:
        """True in the warm-up epochs."""
        return self.in_warmup(epoch)

    # --- Candidates and results -----------------------------------------------------------

    def is_feasible(self, values: Mapping[str, Any]) -> bool:
        """Also requires the predicted latency to meet `latency_target_ms`, if set."""
        if not super().is_feasible(values):
            return False
        if self.latency_target_ms is None:
            return True
        return self.latency_table().predict(values) <= self.latency_target_ms

    def predicted_latency_ms(self, values: Mapping[str, Any] | None = None) -> float:
        """The table's latency of the derived architecture (or of `values`), in ms."""
        return self.latency_table().predict(self.derive() if values is None else values)

    def expected_latency_ms(self) -> float:
        """The expected latency (ms) under the learned distributions (softmax(alpha) for
        FBNet and ProxylessNAS), no noise."""
        table = self.latency_table()
        names = {row["name"] for row in table.choices}
        weights = {
            n: np.asarray(p, "float32") for n, p in self.distributions().items() if n in names
        }
        return float(table.expected_latency(weights))

    def on_supernet_epoch_end(self, epoch, evaluate, logs=None, callbacks=None) -> None:
        """Also records the expected latency in the epoch's history."""
        super().on_supernet_epoch_end(epoch, evaluate, logs=logs, callbacks=callbacks)
        self.history[-1]["expected_latency_ms"] = self.expected_latency_ms()
