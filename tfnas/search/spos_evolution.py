"""The evolutionary search of Single Path One-Shot NAS (Guo et al. 2019, arXiv 1904.00420).

A generational, elitist genetic algorithm over a trained supernet, as in the authors'
`src/Search/search.py` (github.com/megvii-model/SinglePathOneShot):

1. Generation 0 is `population_size` (50) random candidates.
2. Once every candidate of a generation is scored, the `top_k` (10) best candidates scored
   so far are the parents (the top-k list is kept over all generations: elitist).
3. The next generation is `num_mutations` (25) mutations, each of a random parent with
   every choice resampled uniformly (possibly to the same value) with probability
   `mutation_prob` (0.1), then `num_crossovers` (25) crossovers, each of two random
   parents (possibly the same) taking every choice from one of the two at random, then
   random candidates up to `population_size`.
4. Every candidate must be new and meet the constraints (`is_seen` says no): rejected
   ones are drawn again, at most 10 times the wanted number for mutation and crossover,
   as in the reference; a shortfall is filled with random candidates.
5. The search ends after `generations` (20) generations, 1,000 candidates by default.

The reference evaluates one generation more, whose scores are never used for selection;
here the search ends with the last generation that can be scored. Architectures evaluated
outside the generations (e.g. a caller's random fallback) join the pool the parents are
chosen from but are not part of any generation.
"""

from __future__ import annotations

from typing import Any

from tfnas import validation
from tfnas.search import base, encoding

# Draws per wanted candidate before a mutation or crossover round gives up (reference: 10).
_ATTEMPTS_PER_CANDIDATE = 10


class SPOSEvolution(base.SearchAlgorithm):
    """The SPOS evolutionary algorithm, without Keras.

    Args:
        population_size: Candidates per generation (P = 50), at least 2.
        top_k: Parents kept, the best scored so far (k = 10), in `[1, population_size]`.
        mutation_prob: Per-choice resampling probability of a mutation (0.1), in [0, 1].
        num_mutations: Mutations per generation (default `population_size // 2`, 25).
        num_crossovers: Crossovers per generation (default `population_size // 2`, 25).
        generations: Generations before the search ends (T = 20); None for no end.
        seed: Random seed.

    Attributes:
        fixed: `{name: value}` set on every candidate (the adapter's frozen plain
            hyperparameters); not state, the adapter sets it before proposing.

    Example:

    ```python
    algorithm = SPOSEvolution(population_size=50, top_k=10, seed=0)
    values = algorithm.propose(space, is_seen=lambda v: over_budget(v))
    algorithm.observe(space, values, reward=0.7)
    ```
    """

    def __init__(
        self,
        population_size: int = 50,
        top_k: int = 10,
        mutation_prob: float = 0.1,
        num_mutations: int | None = None,
        num_crossovers: int | None = None,
        generations: int | None = 20,
        seed: int | None = None,
    ):
        super().__init__(seed)
        self.population_size = validation.check_int("population_size", population_size, low=2)
        top_k = validation.check_int("top_k", top_k, low=1)
        if top_k > population_size:
            raise ValueError(
                f"top_k must be in [1, population_size={population_size}]. Received: top_k={top_k}"
            )
        self.top_k = top_k
        self.mutation_prob = validation.check_float(
            "mutation_prob", mutation_prob, low=0.0, high=1.0
        )
        half = population_size // 2
        self.num_mutations = validation.check_int(
            "num_mutations", half if num_mutations is None else num_mutations, low=0
        )
        self.num_crossovers = validation.check_int(
            "num_crossovers", half if num_crossovers is None else num_crossovers, low=0
        )
        if self.num_mutations + self.num_crossovers > population_size:
            raise ValueError(
                "num_mutations + num_crossovers must be <= population_size="
                f"{population_size}. Received: num_mutations={self.num_mutations}, "
                f"num_crossovers={self.num_crossovers}"
            )
        self.generations = (
            None if generations is None else validation.check_int("generations", generations, low=1)
        )
        self.fixed: dict[str, Any] = {}
        # The generation being proposed and scored (0 is the random one); -1 before any.
        self.generation = -1
        # What the current generation still has to propose, in order: per kind
        # ("mutation", "crossover", "random"), [kind, candidates wanted, draws left].
        self.plan: list[list] = []
        # The current generation's candidates: keys of all of them, and those proposed and
        # not yet observed ({"values", "kind"}).
        self.members: list[str] = []
        self.pending: list[dict[str, Any]] = []
        # The current generation's scored candidates: {"values", "reward"}.
        self.scored: list[dict[str, Any]] = []
        # The best `top_k` scored so far, best first: {"values", "reward"}.
        self.top: list[dict[str, Any]] = []
        # What each generation proposed: {"mutation": n, "crossover": n, "random": n}.
        self.history: list[dict[str, int]] = []

    @property
    def finished(self) -> bool:
        """True once the last generation is proposed and scored."""
        return (
            self.generations is not None
            and self.generation >= self.generations - 1
            and not self.plan
            and not self.pending
        )

    # --- Proposals ------------------------------------------------------------------------

    def propose(
        self, space: encoding.SpaceEncoding, is_seen: base.IsSeen
    ) -> encoding.Values | None:
        """The next candidate of the current generation, drawn when asked for (the next
        generation is planned once the current one is proposed and scored); None while
        candidates are still being scored, or once the search has ended."""
        while True:
            if not self.plan:
                exhausted = bool(self.history) and not any(self.history[-1].values())
                if self.pending or self.finished or exhausted:
                    return None  # Exhausted: no new legal candidate in a whole generation.
                self._next_generation()
            values = self._draw(space, is_seen)
            if values is not None:
                return values

    def _next_generation(self) -> None:
        self._update_top(self.scored)
        self.scored = []
        self.members = []
        self.generation += 1
        if self.generation == 0 or not self.top:
            self.plan = [["random", self.population_size, 0]]
        else:
            self.plan = [
                ["mutation", self.num_mutations, self.num_mutations * _ATTEMPTS_PER_CANDIDATE],
                ["crossover", self.num_crossovers, self.num_crossovers * _ATTEMPTS_PER_CANDIDATE],
                ["random", self.population_size - self.num_mutations - self.num_crossovers, 0],
            ]
        for entry in self.plan:
            if entry[0] == "random":
                # The reference draws random candidates until it has them; the bound only
                # ends a search of a space with fewer legal architectures left.
                entry[2] = entry[1] * _ATTEMPTS_PER_CANDIDATE * 10
        self.plan = [entry for entry in self.plan if entry[1] > 0]
        self.history.append({"mutation": 0, "crossover": 0, "random": 0})

    def _draw(self, space, is_seen) -> encoding.Values | None:
        """One draw of the plan's first kind: a new legal candidate, or None."""
        entry = self.plan[0]
        kind, wanted, draws = entry
        if draws == 0:
            self.plan.pop(0)
            if kind != "random":
                # Too few new legal children: random candidates make up the generation.
                if not self.plan or self.plan[-1][0] != "random":
                    self.plan.append(["random", 0, 0])
                self.plan[-1][1] += wanted
                self.plan[-1][2] += wanted * _ATTEMPTS_PER_CANDIDATE * 10
            return None
        entry[2] -= 1
        make = {"mutation": self._mutation, "crossover": self._crossover}.get(kind)
        values = space.sample(self.rng) if make is None else make(space)
        values = {**values, **self.fixed}
        key = encoding.values_key(values)
        if key in self.members or is_seen(values):
            return None
        entry[1] -= 1
        if entry[1] == 0:
            self.plan.pop(0)
        self.members.append(key)
        self.pending.append({"values": values, "kind": kind})
        self.history[-1][kind] += 1
        return values

    def _parent(self) -> encoding.Values:
        return self.top[int(self.rng.integers(len(self.top)))]["values"]

    def _mutation(self, space: encoding.SpaceEncoding) -> encoding.Values:
        return self.mutate(space, self._parent())

    def _crossover(self, space: encoding.SpaceEncoding) -> encoding.Values:
        return self.crossover(space, self._parent(), self._parent())

    def mutate(self, space: encoding.SpaceEncoding, parent: encoding.Values) -> encoding.Values:
        """`parent` with every active choice resampled uniformly with `mutation_prob`."""

        def pick(decision: encoding.Decision, _: encoding.Values) -> Any:
            value = parent.get(decision.name)
            if (
                value is None
                or not decision.accepts(value)
                or self.rng.random() < self.mutation_prob
            ):
                return decision.candidates[int(self.rng.integers(decision.size))]
            return value

        return space.assemble(pick)

    def crossover(
        self, space: encoding.SpaceEncoding, first: encoding.Values, second: encoding.Values
    ) -> encoding.Values:
        """Every choice from `first` or `second` with probability 1/2 (from the one that has
        it where the choice is active in only one, random where in neither)."""

        def pick(decision: encoding.Decision, _: encoding.Values) -> Any:
            options = [
                parent[decision.name]
                for parent in (first, second)
                if decision.name in parent and decision.accepts(parent[decision.name])
            ]
            if len(options) == 2:
                return options[int(self.rng.integers(2))]
            if options:
                return options[0]
            return decision.candidates[int(self.rng.integers(decision.size))]

        return space.assemble(pick)

    # --- Scores ---------------------------------------------------------------------------

    def observe(
        self, space: encoding.SpaceEncoding, values: encoding.Values, reward: float | None
    ) -> None:
        match = next(
            (
                i
                for i, p in enumerate(self.pending)
                if all(values.get(k) == v for k, v in p["values"].items())
            ),
            None,
        )
        if match is not None:
            self.pending.pop(match)
        if reward is None:
            return
        member = {"values": dict(values), "reward": float(reward)}
        if match is None:
            self._update_top([member])  # Not of a generation: a candidate parent at once.
        else:
            self.scored.append(member)
        if match is not None and not self.plan and not self.pending:
            # The generation is scored: its candidates compete for parenthood.
            self._update_top(self.scored)
            self.scored = []

    def _update_top(self, members: list[dict[str, Any]]) -> None:
        # A stable sort, best first: ties keep the earlier member, as the reference's sort.
        merged = sorted([*self.top, *members], key=lambda m: -m["reward"])
        self.top = merged[: self.top_k]

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "generation": self.generation,
            "plan": [list(entry) for entry in self.plan],
            "members": list(self.members),
            "pending": [{"values": dict(p["values"]), "kind": p["kind"]} for p in self.pending],
            "scored": [dict(m) for m in self.scored],
            "top": [dict(m) for m in self.top],
            "history": [dict(h) for h in self.history],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.generation = int(state["generation"])
        self.plan = [list(entry) for entry in state["plan"]]
        self.members = list(state["members"])
        self.pending = [{"values": dict(p["values"]), "kind": p["kind"]} for p in state["pending"]]
        self.scored = [dict(m) for m in state["scored"]]
        self.top = [dict(m) for m in state["top"]]
        self.history = [dict(h) for h in state["history"]]
