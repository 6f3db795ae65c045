"""The one-shot family: strategies that train one supernet, then rank candidates on it.

- `SPOS` (Guo et al. 2019): one uniformly sampled path per step; the paper's generational
  evolutionary search (`tfnas.search.spos_evolution`), aging evolution as an option.
- `FairNAS` (Chu et al. 2019): strict fairness, every candidate of every choice trained
  once per step on m paths, gradients accumulated into one update.
- `ScarletNAS` (Chu et al. 2019): single-path training where every skip carries a
  learnable linearly equivalent transformation (a 1x1 convolution), kept on export.
- `RandomWeightSharing` (Li & Talwalkar 2019): random path per step, random search.
- `OneShot` (Bender et al. 2018): the whole supernet with scheduled path dropout (each
  of k paths dropped with probability r^(1/k), masks per ghost batch), then candidates
  ranked with the shared weights.

All are `WeightSharingOracle`s: `tfnas.Tuner` trains the supernet, then each candidate the
search proposes becomes a KerasTuner trial scored with inherited weights.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from tfnas import validation
from tfnas.search import base, encoding, evolution, spos_evolution
from tfnas.tuners.multi_trial import TrialStatus
from tfnas.tuners.weight_sharing import WeightSharingOracle

if TYPE_CHECKING:
    from tfnas.blocks.rules import MixingRule

logger = logging.getLogger(__name__)


class RandomSampling(base.SearchAlgorithm):
    """Uniform random architectures (random search); learns nothing."""

    def propose(self, space: encoding.SpaceEncoding, is_seen) -> encoding.Values:
        return space.sample(self.rng)

    def observe(self, space, values, reward) -> None:
        pass


class _EvolutionarySearch(WeightSharingOracle):
    """Candidates searched by aging evolution over the trained supernet."""

    def __init__(self, *args, population_size: int = 20, sample_size: int = 5, **kwargs):
        self.population_size = population_size
        self.sample_size = sample_size
        super().__init__(*args, **kwargs)

    def make_search_algorithm(self, seed):
        return evolution.AgingEvolution(self.population_size, self.sample_size, seed=seed)


class SPOS(_EvolutionarySearch):
    """Single Path One-Shot NAS (Guo et al. 2019).

    Supernet training samples one path uniformly at random per step. The search is then,
    by default, the paper's evolutionary algorithm (`search="evolution"`,
    `tfnas.search.spos_evolution.SPOSEvolution`, as the authors' `search.py`): generations
    of `population_size` (50) candidates, the first random, each next one 25 mutations
    (every choice resampled with probability `mutation_prob`, 0.1) and 25 crossovers of
    the `top_k` (10) best candidates scored so far, then random ones; candidates above the
    `constraints` or already scored are rejected and drawn again; the search ends after
    `generations` (20) generations or `max_trials` candidates, whichever comes first. Each
    candidate is scored with the inherited weights after batch-norm recalibration.
    `search="aging"` searches with aging evolution instead (tournament of `sample_size`,
    one-choice mutation, `population_size` default 20), the earlier tfnas behaviour.

    Args:
        objective, max_trials, constraints, bn_recalibration_batches, seed, ...: see
            `WeightSharingOracle`. The paper scores 1,000 candidates: pass
            `max_trials=1000` (or more) for its whole search.
        search: "evolution" (the paper's) or "aging".
        population_size: candidates per generation (evolution, default 50) or the aging
            population (default 20).
        top_k: parents per generation (evolution; default 10, or `population_size` when
            smaller).
        mutation_prob: per-choice mutation probability (evolution; 0.1).
        generations: generations before the search ends (evolution; 20; None: no end).
        sample_size: tournament size (aging only; default 5).

    Example:

    ```python
    oracle = tfnas.oracles.SPOS(max_trials=30, constraints={"flops": 2e5}, seed=0)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs", project_name="spos")
    tuner.search(x, y, epochs=5, validation_data=(x_val, y_val))  # supernet, then search
    best = tuner.get_best_models(1)[0]   # inherited weights
    ```
    """

    def __init__(
        self,
        *args,
        search: str = "evolution",
        population_size: int | None = None,
        top_k: int | None = None,
        mutation_prob: float = 0.1,
        generations: int | None = 20,
        sample_size: int | None = None,
        **kwargs,
    ):
        self.search = validation.check_one_of("search", search, ("evolution", "aging"))
        if search == "evolution" and sample_size is not None:
            logger.warning(
                "SPOS(search='evolution') has no tournament: sample_size=%r is unused "
                "(it is the tournament size of search='aging').",
                sample_size,
            )
        if population_size is None:
            population_size = 50 if search == "evolution" else 20
        self.top_k = min(10, population_size) if top_k is None else top_k
        self.mutation_prob = mutation_prob
        self.generations = generations
        super().__init__(
            *args,
            population_size=population_size,
            sample_size=5 if sample_size is None else sample_size,
            **kwargs,
        )

    def make_search_algorithm(self, seed):
        if self.search == "aging":
            return super().make_search_algorithm(seed)
        return spos_evolution.SPOSEvolution(
            population_size=self.population_size,
            top_k=self.top_k,
            mutation_prob=self.mutation_prob,
            generations=self.generations,
            seed=seed,
        )

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        algorithm = self.algorithm
        if isinstance(algorithm, spos_evolution.SPOSEvolution):
            # Candidates carry the frozen plain hyperparameters, so that each one is
            # recognised when its score comes back.
            algorithm.fixed = dict(self.frozen_values)
            self._observe_finished_trials()
            if algorithm.finished:
                return {"status": TrialStatus.STOPPED, "values": None}
        return super().populate_space(trial_id)


class RandomWeightSharing(WeightSharingOracle):
    """Random search with weight sharing (Li & Talwalkar 2019).

    A random architecture per training step, then random candidates ranked with the
    shared weights.
    """

    def make_search_algorithm(self, seed):
        return RandomSampling(seed)


class FairNAS(_EvolutionarySearch):
    """FairNAS with strict fairness (Chu et al. 2019).

    Each training step draws, per choice, a random permutation of its candidates and
    trains m = (largest number of candidates) paths on the same batch, path k taking the
    k-th candidate of every choice (choices with fewer candidates wrap around), and applies
    the accumulated gradients in one update. Candidates are then searched by evolution.
    """

    @property
    def paths_per_step(self) -> int:
        sizes = [d.size for d in self.encoding().decisions if d.name not in self.frozen_values]
        return max(sizes, default=1)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._permutations: dict[str, np.ndarray] = {}

    def prepare_training_step(self, rule, step, path, progress):
        space = self.encoding()
        if path == 0:
            self._permutations = {
                d.key: self.training_rng.permutation(d.size) for d in space.decisions
            }

        def pick(decision: encoding.Decision, _: encoding.Values) -> Any:
            order = self._permutations[decision.key]
            return decision.candidates[int(order[path % decision.size])]

        rule.set_architecture({**space.assemble(pick), **self.frozen_values})


class OneShot(WeightSharingOracle):
    """One-shot model with scheduled path dropout (Bender et al. 2018).

    The whole supernet is trained. Each step, every candidate of a choice with k
    candidates (k incoming paths) is dropped independently with probability `r ** (1/k)`,
    as the paper specifies, so that all k are dropped together with probability r; the
    rate r grows linearly from 0 to `max_drop_rate` over training (the paper's schedule).
    Each of `ghost_batches` consecutive parts of the batch draws its own masks (the paper
    drops different paths per ghost batch; `tfnas.blocks.rules.PathDropout`). A choice
    whose candidates are all dropped outputs zeros for those examples. Candidates are then
    random architectures ranked with the shared weights.

    Args:
        max_drop_rate: r at the end of training, in [0, 1).
        ghost_batches: parts of each batch with masks of their own (>= 1; 1 for one mask
            per batch; the batch size for one per example).
        **kwargs: see `WeightSharingOracle`.
    """

    def __init__(self, *args, max_drop_rate: float = 0.5, ghost_batches: int = 4, **kwargs):
        self.max_drop_rate = validation.check_float(
            "max_drop_rate", max_drop_rate, low=0.0, high=1.0, high_inclusive=False
        )
        self.ghost_batches = validation.check_int("ghost_batches", ghost_batches, low=1)
        super().__init__(*args, **kwargs)

    def make_mixing_rule(self) -> MixingRule:
        from tfnas.blocks.rules import PathDropout

        return PathDropout(ghost_batches=self.ghost_batches)

    def make_search_algorithm(self, seed):
        return RandomSampling(seed)

    def drop_probability(self, num_candidates: int, progress: float) -> float:
        """The drop probability of each of `num_candidates` paths at `progress`:
        `r ** (1 / k)` with `r = max_drop_rate * progress`."""
        rate = self.max_drop_rate * progress
        return float(rate ** (1.0 / num_candidates)) if rate > 0 else 0.0

    def prepare_training_step(self, rule, step, path, progress):
        masks = {}
        for name in rule.choice_names:
            size = rule.num_candidates(name)
            drop = self.drop_probability(size, progress)
            keep = self.training_rng.random((rule.ghost_batches, size)) >= drop
            masks[name] = keep.astype("float32")
        rule.set_masks(masks)


class ScarletNAS(_EvolutionarySearch):
    """SCARLET-NAS (Chu et al. 2019): scalable supernet training with learnable skips.

    Uniform single-path training where every skip is trained as a learnable 1x1
    convolution without bias, batch norm or activation, initialized to the identity (the
    linearly equivalent transformation, rule `tfnas.blocks.rules.ScarletPath`): every
    identity candidate of a 4-D layer choice (e.g. the `skip` of
    `MobileSpace(joint_ops=True)`, the paper's form) and every block a depth choice
    (`tfnas.blocks.repeat`) skips, so that supernets where many layers can skip train
    stably (depth choices need `InputChoice.build` to record `built_input_shape`; without
    it a warning says they keep plain skips). The exported candidate keeps the trained
    1x1 convolutions: it computes what was scored. Candidates are searched by aging
    evolution (the paper uses NSGA-II, which tfnas does not offer).
    """

    def make_mixing_rule(self) -> MixingRule:
        from tfnas.blocks.rules import ScarletPath

        return ScarletPath()
