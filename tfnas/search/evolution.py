"""Regularized (aging) evolution of AmoebaNet (Real et al. 2018, arXiv 1802.01548).

A population of `population_size` architectures starts random. Each new architecture is a
mutation of the winner of a tournament among `sample_size` members drawn at random: exactly
one decision changes to another of its candidates. When the child's result comes back it joins
the population and the oldest member dies, whatever its fitness.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfnas import validation
from tfnas.search import base, encoding


class AgingEvolution(base.SearchAlgorithm):
    """The aging-evolution algorithm, without Keras.

    Args:
        population_size: Number of architectures kept alive (P), at least 2.
        sample_size: Tournament size (S), in `[1, population_size]`.
        seed: Random seed.

    Example:

    ```python
    algorithm = AgingEvolution(population_size=20, sample_size=5, seed=0)
    values = algorithm.propose(space, is_seen=lambda v: False)
    algorithm.observe(space, values, reward=0.7)
    ```
    """

    def __init__(self, population_size: int = 20, sample_size: int = 5, seed: int | None = None):
        super().__init__(seed)
        self.population_size = validation.check_int("population_size", population_size, low=2)
        sample_size = validation.check_int("sample_size", sample_size)
        if not 1 <= sample_size <= population_size:
            raise ValueError(
                f"sample_size must be in [1, population_size={population_size}]. "
                f"Received: sample_size={sample_size}"
            )
        self.sample_size = sample_size
        # Oldest first: {"values": architecture, "reward": float}.
        self.population: list[dict[str, Any]] = []
        self.num_observed = 0

    def propose(self, space: encoding.SpaceEncoding, is_seen: base.IsSeen) -> encoding.Values:
        if len(self.population) < self.population_size:
            return space.sample(self.rng)
        return self.mutate(space, self.tournament()["values"])

    def tournament(self) -> dict[str, Any]:
        """Returns the best of `sample_size` members drawn without replacement."""
        size = min(self.sample_size, len(self.population))
        picks = self.rng.choice(len(self.population), size=size, replace=False)
        rewards = [self.population[i]["reward"] for i in picks]
        return self.population[int(picks[int(np.argmax(rewards))])]

    def mutate(self, space: encoding.SpaceEncoding, parent: encoding.Values) -> encoding.Values:
        """Returns `parent` with one active decision changed to another candidate.

        Decisions that the change activates (conditional children), or that the space gained
        after the parent ran, get random candidates.
        """
        mutable = [d for d in space.active(parent) if d.size > 1]
        child = dict(parent)
        if mutable:
            decision = mutable[int(self.rng.integers(len(mutable)))]
            current = decision.index_of(parent[decision.name])
            offset = int(self.rng.integers(1, decision.size))
            child[decision.name] = decision.candidates[(current + offset) % decision.size]
        return space.complete(child, self.rng)

    def observe(
        self, space: encoding.SpaceEncoding, values: encoding.Values, reward: float | None
    ) -> None:
        if reward is None:
            return
        self.num_observed += 1
        self.population.append({"values": dict(values), "reward": float(reward)})
        if len(self.population) > self.population_size:
            self.population.pop(0)

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "population": [dict(member) for member in self.population],
            "num_observed": self.num_observed,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.population = [dict(member) for member in state["population"]]
        self.num_observed = int(state["num_observed"])
