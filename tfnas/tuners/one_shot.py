"""The one-shot family: strategies that train one supernet, then rank candidates on it.

- `SPOS` (Guo et al. 2019): one uniformly sampled path per step; evolutionary search.
- `FairNAS` (Chu et al. 2019): strict fairness, every candidate of every choice trained
  once per step on m paths, gradients accumulated into one update.
- `ScarletNAS` (Chu et al. 2019): single-path training where skip candidates carry a
  learnable linearly equivalent transformation (a 1x1 convolution) in the supernet.
- `RandomWeightSharing` (Li & Talwalkar 2019): random path per step, random search.
- `OneShot` (Bender et al. 2018): the whole supernet with scheduled path dropout, then
  candidates ranked with the shared weights.

All are `WeightSharingOracle`s: `tfnas.Tuner` trains the supernet, then each candidate the
search proposes becomes a KerasTuner trial scored with inherited weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tfnas import validation
from tfnas.search import base, encoding, evolution
from tfnas.tuners.weight_sharing import WeightSharingOracle

if TYPE_CHECKING:
    from tfnas.blocks.rules import MixingRule


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

    Supernet training samples one path uniformly at random per step; the search then
    evolves candidates (aging evolution: tournament, one-choice mutation) scored with the
    inherited weights after batch-norm recalibration, under optional `constraints`.

    Args:
        objective, max_trials, constraints, bn_recalibration_batches, seed, ...: see
            `WeightSharingOracle`.
        population_size, sample_size: of the evolutionary search.

    Example:

    ```python
    oracle = tfnas.oracles.SPOS(max_trials=30, constraints={"flops": 2e5}, seed=0)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs", project_name="spos")
    tuner.search(x, y, epochs=5, validation_data=(x_val, y_val))  # supernet, then search
    best = tuner.get_best_models(1)[0]   # inherited weights
    ```
    """


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

    The whole supernet is trained; each step drops every candidate of every choice with a
    probability that grows linearly from 0 to `max_drop_rate` over training (at least one
    candidate per choice is kept). Candidates are then random architectures ranked with
    the shared weights.

    Args:
        max_drop_rate: the drop probability reached at the end of training, in [0, 1).
        **kwargs: see `WeightSharingOracle`.
    """

    def __init__(self, *args, max_drop_rate: float = 0.5, **kwargs):
        self.max_drop_rate = validation.check_float(
            "max_drop_rate", max_drop_rate, low=0.0, high=1.0, high_inclusive=False
        )
        super().__init__(*args, **kwargs)

    def make_mixing_rule(self) -> MixingRule:
        from tfnas.blocks.rules import PathDropout

        return PathDropout()

    def make_search_algorithm(self, seed):
        return RandomSampling(seed)

    def prepare_training_step(self, rule, step, path, progress):
        rate = self.max_drop_rate * progress
        masks = {}
        for name in rule.choice_names:
            size = rule.num_candidates(name)
            keep = self.training_rng.random(size) >= rate
            if not keep.any():
                keep[self.training_rng.integers(size)] = True
            masks[name] = keep.astype("float32")
        rule.set_masks(masks)


class ScarletNAS(_EvolutionarySearch):
    """SCARLET-NAS (Chu et al. 2019): scalable supernet training with learnable skips.

    Like SPOS (uniform single path, evolutionary search) but every skip (identity)
    candidate of a 4-D choice is trained as a 1x1 convolution initialized to the identity
    (the linearly equivalent transformation, rule `tfnas.blocks.rules.ScarletPath`), so
    supernets where many choices can skip train stably.
    """

    def make_mixing_rule(self) -> MixingRule:
        from tfnas.blocks.rules import ScarletPath

        return ScarletPath()
