"""The protocol every multi-trial search algorithm follows, and its random-state helpers.

A `SearchAlgorithm` is a small object with explicit state that proposes architectures
(`propose`) and learns from their rewards (`observe`); it knows nothing of Keras, trials or
files and is tested on its own (design principle 4). `tfnas.tuners.multi_trial.MultiTrialOracle`
adapts one to KerasTuner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tfnas.search import encoding

IsSeen = Callable[[encoding.Values], bool]

# Architectures `first_unseen` scans before declaring a space exhausted.
_EXHAUSTIVE_SCAN_LIMIT = 20_000


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """Returns the JSON-able state of a numpy generator (Python ints are arbitrary size)."""
    return rng.bit_generator.state


def rng_from_state(state: dict[str, Any]) -> np.random.Generator:
    """Inverse of `rng_state`."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


class SearchAlgorithm:
    """Base class of a multi-trial search algorithm: explicit state, no Keras.

    Subclasses implement `propose` and `observe`, and extend `get_state` / `set_state` with
    everything they learn. The random state lives in `self.rng`.

    Args:
        seed: Seed of `self.rng`.

    Example:

    ```python
    algorithm = tfnas.search.evolution.AgingEvolution(population_size=10, sample_size=3)
    space = SpaceEncoding(hp)
    values = algorithm.propose(space, is_seen=lambda v: False)
    algorithm.observe(space, values, reward=0.9)
    state = algorithm.get_state()  # JSON-able
    ```
    """

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def propose(self, space: encoding.SpaceEncoding, is_seen: IsSeen) -> encoding.Values | None:
        """Returns the next architecture to evaluate.

        Args:
            space: The current encoding of the search space.
            is_seen: Whether an architecture was already proposed (always False when
                duplicates are allowed). An algorithm may use it to skip known candidates;
                the caller checks the result again and asks for another proposal if needed.

        Returns:
            An architecture (dict of active values), or None if the algorithm has nothing to
            propose (the caller then falls back to random sampling).
        """
        raise NotImplementedError

    def observe(
        self, space: encoding.SpaceEncoding, values: encoding.Values, reward: float | None
    ) -> None:
        """Learns from a finished architecture.

        Args:
            space: The current encoding of the search space.
            values: The architecture as evaluated (including values of hyperparameters that
                its build registered).
            reward: Higher is better. None when the trial failed or its objective was not a
                finite number: the algorithm must not learn from it.
        """
        raise NotImplementedError

    def get_state(self) -> dict[str, Any]:
        """Returns the JSON-able state, random state included."""
        return {"rng": rng_state(self.rng)}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores what `get_state` returned."""
        self.rng = rng_from_state(state["rng"])


def propose_unseen(
    algorithm: SearchAlgorithm,
    space: encoding.SpaceEncoding,
    is_seen: IsSeen,
    max_collisions: int = 20,
) -> encoding.Values | None:
    """Asks `algorithm` for an architecture that was not seen yet.

    After `max_collisions` proposals that were all seen (or a None), falls back to uniform
    random sampling, then to a scan of the space in a fixed order, as KerasTuner's random
    search declares a space exhausted after its own collision limit.

    Returns:
        An unseen architecture, or None if the space is exhausted.
    """
    for _ in range(max_collisions + 1):
        values = algorithm.propose(space, is_seen)
        if values is None:
            break
        if not is_seen(values):
            return values
    for _ in range(max_collisions + 1):
        values = space.sample(algorithm.rng)
        if not is_seen(values):
            return values
    return space.first_unseen(is_seen, _EXHAUSTIVE_SCAN_LIMIT)
