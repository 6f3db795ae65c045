"""The base of weight-sharing strategies that learn a distribution over the decisions.

ASNG-NAS (one categorical distribution) and MANAS (one bandit agent per decision) keep
what they learn in a numpy core (`tfnas.search.asng`, `tfnas.search.manas`) over the
space's searched decisions (every decision but the frozen plain hyperparameters). This
module holds what they share: the core made on first use (when the supernet has fixed the
space) or restored from the oracle state, the mapping of one index per decision to an
architecture, and the candidates after training: the derived architecture first, then
samples of the learned distribution, ranked like any trial with inherited weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfnas.search import base, encoding
from tfnas.tuners.weight_sharing import WeightSharingOracle


class _DerivedFirst(base.SearchAlgorithm):
    """Proposes the derived architecture, then samples of the learned distribution."""

    def __init__(self, oracle: DistributionOracle, seed: int | None = None):
        super().__init__(seed)
        self._oracle = oracle

    def propose(self, space, is_seen):
        best = self._oracle.derive()
        if not is_seen(best):
            return best
        return self._oracle.sample_architecture(self.rng)

    def observe(self, space, values, reward) -> None:
        pass


class DistributionOracle(WeightSharingOracle):
    """A `WeightSharingOracle` whose strategy is a numpy core over the searched decisions.

    Subclasses set `core_name` (the key of the core's state in the oracle state) and
    implement `make_core(categories, seed)`, `core_is_untouched(core)`, `derive()` and
    `sample_architecture(rng)`.
    """

    core_name = "core"

    def __init__(self, *args, **kwargs):
        self._core = None
        self._core_keys: list[str] = []
        # The core's state while no core is made (after set_state).
        self._pending_core: dict[str, Any] | None = None
        super().__init__(*args, **kwargs)

    def make_search_algorithm(self, seed):
        return _DerivedFirst(self, seed)

    def make_core(self, categories: list[int], seed: int | None):
        """The fresh core over decisions of `categories` candidates each."""
        raise NotImplementedError

    def core_is_untouched(self, core) -> bool:
        """Whether `core` has learned nothing yet (so the space may still change)."""
        raise NotImplementedError

    def derive(self) -> encoding.Values:
        raise NotImplementedError

    def sample_architecture(self, rng=None) -> encoding.Values:
        raise NotImplementedError

    def _decisions(self) -> list[encoding.Decision]:
        """The searched decisions: every decision of the space but the frozen plain ones."""
        return [d for d in self.encoding().decisions if d.name not in self.frozen_values]

    @property
    def core(self):
        """The core over the searched decisions, made (or restored) on first use.

        Raises:
            ValueError: when the decisions changed after the core learned, the space has
                no decision, or a restored state is for other decisions.
        """
        owner = type(self).__name__
        decisions = self._decisions()
        keys = [d.key for d in decisions]
        if self._core is None or keys != self._core_keys:
            if self._core is not None and not self.core_is_untouched(self._core):
                raise ValueError(
                    f"{owner}'s decisions changed while searching, from {self._core_keys} to "
                    f"{keys}: the space must be fixed by the supernet."
                )
            if not decisions:
                raise ValueError(
                    f"{owner} found no decision to search: the space has only frozen plain "
                    "hyperparameters."
                )
            core = self.make_core(
                [d.size for d in decisions], None if self.seed is None else self.seed + 2
            )
            if self._pending_core is not None:
                if self._pending_core["keys"] != keys:
                    raise ValueError(
                        f"The saved {owner} state is for the decisions "
                        f"{self._pending_core['keys']}, not {keys}."
                    )
                core.set_state(self._pending_core[self.core_name])
                self._pending_core = None
            self._core, self._core_keys = core, keys
        return self._core

    def named_rows(self, rows: Sequence) -> dict[str, Any]:
        """`{decision name: row}` of one row per searched decision (in the core's order)."""
        names = {d.key: d.name for d in self._decisions()}
        return {names[key]: row for key, row in zip(self._core_keys, rows)}

    def to_values(self, indices: Sequence[int]) -> encoding.Values:
        """The architecture of one index per searched decision (frozen values included)."""
        position = {key: i for i, key in enumerate(self._core_keys)}

        def pick(decision: encoding.Decision, _: encoding.Values) -> Any:
            if decision.name in self.frozen_values:
                return self.frozen_values[decision.name]
            return decision.candidates[indices[position[decision.key]]]

        return {**self.encoding().assemble(pick), **self.frozen_values}

    def core_state(self) -> dict[str, Any] | None:
        """The core's state for the oracle state: `{"keys", core_name}` (or the pending)."""
        if self._core is None:
            return self._pending_core
        return {"keys": list(self._core_keys), self.core_name: self._core.get_state()}

    def restore_core(self, saved: dict[str, Any] | None) -> None:
        """Restores `core_state()`'s value; the core is rebuilt on first use."""
        self._pending_core = saved
        self._core, self._core_keys = None, []
