"""Regularized (aging) evolution as a KerasTuner oracle (AmoebaNet, Real et al. 2018).

The algorithm itself is `tfnas.search.evolution.AgingEvolution`; this module adapts it.
"""

from __future__ import annotations

from tfnas.search.evolution import AgingEvolution
from tfnas.tuners import multi_trial


class RegularizedEvolution(multi_trial.MultiTrialOracle):
    """Regularized (aging) evolution as a KerasTuner oracle (AmoebaNet, Real et al.).

    Args:
        objective: A string, `keras_tuner.Objective` or list of them, as for
            `keras_tuner.Oracle`.
        max_trials: Maximum number of trials.
        population_size: Number of architectures kept alive (P), at least 2. The first P
            architectures are random.
        sample_size: Tournament size (S), in `[1, population_size]`.
        **kwargs: The other arguments of `MultiTrialOracle` (hyperparameters, seed,
            allow_duplicates, num_bins, ...), forwarded to it.

    Example:

    ```python
    oracle = tfnas.oracles.RegularizedEvolution(
        objective="val_accuracy", max_trials=100, population_size=20, sample_size=5
    )
    tuner = keras_tuner.Tuner(hypermodel=build, oracle=oracle, directory="runs")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=5)
    ```
    """

    def __init__(
        self,
        objective=None,
        max_trials: int = 10,
        population_size: int = 20,
        sample_size: int = 5,
        **kwargs,
    ):
        self.population_size = population_size
        self.sample_size = sample_size
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            **kwargs,
        )

    def make_search_algorithm(self, seed: int) -> AgingEvolution:
        return AgingEvolution(self.population_size, self.sample_size, seed=seed)
