"""A KerasTuner search space seen as a list of categorical decisions.

Every multi-trial strategy of `tfnas.tuners` (evolution, RL controller, PNAS, NAO) searches
the same thing: an ordered list of categorical decisions, one per tunable hyperparameter. This
module turns any `keras_tuner.HyperParameters` space into that list:

* `Choice` and `Boolean` keep their values as candidates.
* `Int` and `Float` are discretized into at most `num_bins` candidates through
  `hp.prob_to_value` at the bin centres, so `step`, `sampling="log"` and `"reverse_log"` are
  honoured; the hyperparameter's default is added as a candidate so that "leave it at its
  default" stays expressible. A range with fewer steps than bins keeps every value.
* `Fixed` is not a decision; its value is always filled in.

Conditional hyperparameters (`conditional_scope`) are decisions too; an architecture only holds
values for the ones active under its own parent values, as KerasTuner requires. The space may
grow while searching (hyperparameters registered by later builds): KerasTuner only ever appends
to `HyperParameters.space`, so the decision list only ever grows at its end and a decision's
index and key stay valid.

An architecture is the KerasTuner `{name: value}` dict of active values (JSON in, JSON out).

This module does not import KerasTuner: it reads hyperparameters through their public
attributes and methods (`name`, `conditions`, `default`, `values`, `min_value`, `max_value`,
`value_to_prob`, `prob_to_value`, `value`) and tells their types apart by class name, so the
algorithm cores stay free of TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from keras_tuner.engine import hyperparameters as hp_module

Values = dict[str, Any]

# The KerasTuner hyperparameter classes this module knows, by name.
_KINDS = ("Boolean", "Choice", "Int", "Float", "Fixed")


def _kind(hp: hp_module.HyperParameter) -> str | None:
    """Returns the KerasTuner class `hp` is (or derives from), by name; None if none of them.

    Names rather than `isinstance`, so this module needs no `keras_tuner` import.
    """
    for cls in type(hp).__mro__:
        if cls.__name__ in _KINDS:
            return cls.__name__
    return None


def values_key(values: Values) -> str:
    """Returns a canonical string for an architecture, for deduplication inside a batch."""
    return json.dumps(values, sort_keys=True)


def decision_key(hp: hp_module.HyperParameter) -> str:
    """Returns the unique key of a hyperparameter: its name, plus its conditions if any.

    KerasTuner identifies a hyperparameter by name and conditions, so two conditional
    hyperparameters may share a name (e.g. "units" under two model types).
    """
    if not hp.conditions:
        return hp.name
    conditions = [condition.get_config() for condition in hp.conditions]
    return f"{hp.name}|{json.dumps(conditions, sort_keys=True)}"


def _is_active(hp: hp_module.HyperParameter, values: Values) -> bool:
    return all(condition.is_active(values) for condition in hp.conditions)


@dataclasses.dataclass(frozen=True)
class Decision:
    """One categorical decision: a tunable hyperparameter and its candidate values.

    Attributes:
        index: Position in `SpaceEncoding.decisions`.
        key: Unique key (`decision_key`), stable while the space grows.
        hp: The KerasTuner hyperparameter.
        candidates: The values this decision chooses among.
        offset: Position of this decision's first column in the one-hot encoding.
    """

    index: int
    key: str
    hp: hp_module.HyperParameter
    candidates: tuple
    offset: int

    @property
    def name(self) -> str:
        return self.hp.name

    @property
    def size(self) -> int:
        return len(self.candidates)

    @property
    def default_index(self) -> int:
        return self.index_of(self.hp.default)

    def accepts(self, value: Any) -> bool:
        """Whether `value` is a legal value of the hyperparameter (not only a candidate)."""
        hp = self.hp
        kind = _kind(hp)
        if kind == "Boolean":
            return isinstance(value, bool)
        if kind == "Choice":
            return any(type(value) is type(c) and value == c for c in hp.values)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if kind == "Int" and not float(value).is_integer():
            return False
        return hp.min_value <= value <= hp.max_value

    def index_of(self, value: Any) -> int:
        """Returns the index of the candidate equal, or for numbers nearest, to `value`."""
        for i, candidate in enumerate(self.candidates):
            if type(candidate) is type(value) and candidate == value:
                return i
        if not self.accepts(value):
            return self.index_of(self.hp.default)
        if _kind(self.hp) in ("Int", "Float"):
            # Nearest in the hyperparameter's own [0, 1] scale, so log sampling is respected.
            prob = self.hp.value_to_prob(value)
            distances = [abs(self.hp.value_to_prob(c) - prob) for c in self.candidates]
            return int(np.argmin(distances))
        return self.index_of(self.hp.default)


def _candidates(hp: hp_module.HyperParameter, num_bins: int) -> tuple:
    kind = _kind(hp)
    if kind == "Boolean":
        return (False, True)
    if kind == "Choice":
        return tuple(hp.values)
    if kind in ("Int", "Float"):
        values = {hp.prob_to_value((i + 0.5) / num_bins) for i in range(num_bins)}
        values.add(hp.default)
        cast = int if kind == "Int" else float
        return tuple(sorted(cast(v) for v in values))
    raise TypeError(f"Unsupported hyperparameter type: {hp!r}.")


class SpaceEncoding:
    """The decisions of a KerasTuner search space, and conversions of architectures.

    Args:
        hyperparameters: The `keras_tuner.HyperParameters` space (only its `space` is read).
        num_bins: Number of candidates an `Int` or `Float` range is discretized into (plus its
            default value). A range with fewer distinct values keeps all of them.

    Example:

    ```python
    hp = keras_tuner.HyperParameters()
    hp.Choice("op", ["conv", "pool"])
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    space = SpaceEncoding(hp, num_bins=4)
    values = space.sample(np.random.default_rng(0))  # {"op": ..., "lr": ...}
    space.one_hot(values)  # 2 + 5 columns
    ```
    """

    def __init__(self, hyperparameters: hp_module.HyperParameters, num_bins: int = 10):
        self.hyperparameters = hyperparameters
        self.num_bins = num_bins
        self.decisions: list[Decision] = []
        # Every hyperparameter in space order, with its decision (None for `Fixed`).
        self._walk: list[tuple[hp_module.HyperParameter, Decision | None]] = []
        offset = 0
        for hp in hyperparameters.space:
            if _kind(hp) == "Fixed":
                self._walk.append((hp, None))
                continue
            candidates = _candidates(hp, num_bins)
            decision = Decision(len(self.decisions), decision_key(hp), hp, candidates, offset)
            offset += decision.size
            self.decisions.append(decision)
            self._walk.append((hp, decision))
        self.feature_size = offset
        self.by_key = {d.key: d for d in self.decisions}

    def __len__(self) -> int:
        return len(self.decisions)

    @property
    def num_hyperparameters(self) -> int:
        """Number of hyperparameters in the space, `Fixed` ones included."""
        return len(self._walk)

    def fixed_hyperparameters(self) -> dict[str, hp_module.HyperParameter]:
        """Returns the `Fixed` hyperparameters of the space, by name, in space order."""
        return {hp.name: hp for hp, decision in self._walk if decision is None}

    def assemble(
        self,
        pick: Callable[[Decision, Values], Any],
        fixed: Mapping[str, Any] | None = None,
    ) -> Values:
        """Builds an architecture decision by decision, in space order.

        Args:
            pick: Called as `pick(decision, values_so_far)` for each decision active under the
                values picked so far (parents always come before their children); returns
                the decision's value.
            fixed: Values that replace those of `Fixed` hyperparameters (by name), for a
                hypermodel that reads a `Fixed` value the search sets (e.g. the number of
                blocks of a cell that `tfnas.search.pnas` grows). Default: their own values.

        Returns:
            The dict of active values, `Fixed` values included.
        """
        fixed = fixed or {}
        values: Values = {}
        for hp, decision in self._walk:
            if hp.name in values or not _is_active(hp, values):
                continue
            if decision is None:
                values[hp.name] = fixed.get(hp.name, hp.value)
            else:
                values[hp.name] = pick(decision, values)
        return values

    def complete(
        self,
        values: Values,
        rng: np.random.Generator | None = None,
        fixed: Mapping[str, Any] | None = None,
    ) -> Values:
        """Returns `values` made a valid architecture of this space.

        Values of inactive hyperparameters are dropped. An active decision whose value is
        missing or illegal gets a random candidate when `rng` is given, else its default.
        `Fixed` hyperparameters take their value, or the one in `fixed` (see `assemble`).
        """

        def pick(decision: Decision, _: Values) -> Any:
            value = values.get(decision.name)
            if value is not None and decision.accepts(value):
                return value
            if rng is None:
                return decision.hp.default
            return decision.candidates[int(rng.integers(decision.size))]

        return self.assemble(pick, fixed)

    def sample(self, rng: np.random.Generator) -> Values:
        """Returns an architecture with every active decision uniformly random."""
        return self.complete({}, rng)

    def defaults(self) -> Values:
        """Returns the architecture with every decision at its default."""
        return self.complete({})

    def active(self, values: Values) -> list[Decision]:
        """Returns the decisions that are active in `values` and hold a value there."""
        return [
            d
            for hp, d in self._walk
            if d is not None and hp.name in values and _is_active(hp, values)
        ]

    def indices(self, values: Values) -> np.ndarray:
        """Returns the candidate index of each decision, -1 where inactive or missing."""
        out = np.full(len(self.decisions), -1, dtype=np.int64)
        for d in self.active(values):
            out[d.index] = d.index_of(values[d.name])
        return out

    def from_indices(
        self, indices: Sequence[int], rng: np.random.Generator | None = None
    ) -> Values:
        """Inverse of `indices`: decisions with index -1 (or beyond) are completed as in
        `complete`."""
        indices = list(indices)

        def pick(decision: Decision, _: Values) -> Any:
            i = indices[decision.index] if decision.index < len(indices) else -1
            if 0 <= i < decision.size:
                return decision.candidates[i]
            if rng is None:
                return decision.hp.default
            return decision.candidates[int(rng.integers(decision.size))]

        return self.assemble(pick)

    def one_hot(self, values: Values) -> np.ndarray:
        """Returns the concatenated one-hot encoding of `values`; inactive decisions are 0."""
        out = np.zeros(self.feature_size)
        for d, i in zip(self.decisions, self.indices(values)):
            if i >= 0:
                out[d.offset + i] = 1.0
        return out

    def one_hot_batch(self, architectures: Sequence[Values]) -> np.ndarray:
        """Stacks `one_hot` of each architecture into a `(n, feature_size)` array."""
        if not architectures:
            return np.zeros((0, self.feature_size))
        return np.stack([self.one_hot(v) for v in architectures])

    def size_upper_bound(self, decisions: Sequence[Decision] | None = None) -> int:
        """Product of candidate counts (ignoring conditions): an upper bound on the count."""
        decisions = self.decisions if decisions is None else decisions
        return math.prod(d.size for d in decisions)

    def architectures(
        self,
        base: Values | None = None,
        decisions: Sequence[Decision] | None = None,
        fixed: Mapping[str, Any] | None = None,
    ) -> Iterator[Values]:
        """Yields every architecture that varies `decisions` (default: all) around `base`.

        Decisions not varied keep their value in `base` (or their default). Only active
        decisions are varied, so conditional spaces are enumerated without phantoms. The
        order is deterministic (depth first, candidates in order). `Fixed` hyperparameters
        take their value, or the one in `fixed` (see `assemble`).
        """
        base = base or {}
        fixed = fixed or {}
        varied = {d.index for d in (self.decisions if decisions is None else decisions)}

        def walk(position: int, values: Values) -> Iterator[Values]:
            while position < len(self._walk):
                hp, decision = self._walk[position]
                position += 1
                if hp.name in values or not _is_active(hp, values):
                    continue
                if decision is None:
                    values = {**values, hp.name: fixed.get(hp.name, hp.value)}
                elif decision.index in varied:
                    for candidate in decision.candidates:
                        yield from walk(position, {**values, hp.name: candidate})
                    return
                else:
                    value = base.get(hp.name)
                    if value is None or not decision.accepts(value):
                        value = hp.default
                    values = {**values, hp.name: value}
            yield values

        yield from walk(0, {})

    def first_unseen(self, is_seen: Callable[[Values], bool], limit: int) -> Values | None:
        """Scans the space in `architectures` order for an architecture not seen yet.

        Returns:
            The first unseen architecture, or None if the whole space is seen or `limit`
            architectures were scanned without finding one.
        """
        for count, values in enumerate(self.architectures()):
            if count >= limit:
                return None
            if not is_seen(values):
                return values
        return None
