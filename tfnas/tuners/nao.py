"""Neural Architecture Optimization (NAO, Luo et al. 2018, arXiv 1808.07233) as a KerasTuner
oracle.

The encoder / predictor / decoder and the embedding-space search are
`tfnas.search.nao.ArchitectureOptimizer`; this module adapts it.
"""

from __future__ import annotations

from tfnas.search.nao import ArchitectureOptimizer
from tfnas.tuners import multi_trial


class NAO(multi_trial.MultiTrialOracle):
    """Neural Architecture Optimization (Luo et al.) as a KerasTuner oracle.

    Args:
        objective: A string, `keras_tuner.Objective` or list of them, as for
            `keras_tuner.Oracle`.
        max_trials: Maximum number of trials.
        num_initial: Random architectures evaluated before the first model is trained.
        batch_size: New architectures generated per round.
        num_seeds: Best architectures whose embeddings start the gradient ascent.
        **kwargs: The other arguments of `MultiTrialOracle` (hyperparameters, seed,
            allow_duplicates, num_bins, ...), forwarded to it.
        **model_kwargs: `embedding_size`, `hidden_size`, `train_steps`, `learning_rate`,
            `predictor_weight`, `step_size`, `max_ascent_steps` and `model` ("mlp", the
            default, or "lstm", the paper's encoder-decoder) of `ArchitectureOptimizer`.

    Example:

    ```python
    oracle = tfnas.oracles.NAO(objective="val_accuracy", max_trials=100, num_initial=20)
    tuner = keras_tuner.Tuner(hypermodel=build, oracle=oracle, directory="runs")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=5)
    ```
    """

    _MODEL_KWARGS = (
        "embedding_size",
        "hidden_size",
        "train_steps",
        "learning_rate",
        "predictor_weight",
        "step_size",
        "max_ascent_steps",
        "model",
    )

    def __init__(
        self,
        objective=None,
        max_trials: int = 10,
        num_initial: int = 10,
        batch_size: int = 5,
        num_seeds: int = 100,
        **kwargs,
    ):
        # The model's knobs go to the optimizer, the rest to the Oracle (which rejects
        # unknown names).
        model_kwargs = {name: kwargs.pop(name) for name in self._MODEL_KWARGS if name in kwargs}
        self._optimizer_args = {
            "num_initial": num_initial,
            "batch_size": batch_size,
            "num_seeds": num_seeds,
            **model_kwargs,
        }
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    def make_search_algorithm(self, seed: int) -> ArchitectureOptimizer:
        return ArchitectureOptimizer(seed=seed, **self._optimizer_args)
