"""Progressive neural architecture search (PNAS, Liu et al. 2017, arXiv 1712.00559) as a
KerasTuner oracle.

The search and its surrogate are `tfnas.search.pnas.ProgressiveSearch` and
`tfnas.search.pnas.Surrogate`; this module adapts them.
"""

from __future__ import annotations

from collections.abc import Callable

from tfnas.search.pnas import ProgressiveSearch
from tfnas.tuners import multi_trial

_SURROGATE_KWARGS = ("ensemble_size", "hidden_size", "train_steps", "learning_rate", "l2")


class PNAS(multi_trial.MultiTrialOracle):
    """Progressive neural architecture search (Liu et al.) as a KerasTuner oracle.

    Args:
        objective: A string, `keras_tuner.Objective` or list of them, as for
            `keras_tuner.Oracle`.
        max_trials: Maximum number of trials.
        beam_width: Architectures proposed per stage (K), and parents expanded per stage.
        num_candidates: At most this many expansions are ranked per stage.
        initial_width: Architectures proposed at stage 1 (default: `beam_width`; the paper
            evaluates every configuration of the first block).
        surrogate: "mlp" (ensemble of small MLPs) or "ridge".
        block_of: Maps a hyperparameter name to its block name; default: the name up to the
            last "/". Not saved in the state: pass the same callable when resuming.
        **kwargs: The other arguments of `MultiTrialOracle` (hyperparameters, seed,
            allow_duplicates, num_bins, ...), forwarded to it.
        **surrogate_kwargs: `ensemble_size`, `hidden_size`, `train_steps`, `learning_rate`,
            `l2` of the surrogate.

    Example:

    ```python
    oracle = tfnas.oracles.PNAS(objective="val_accuracy", max_trials=60, beam_width=8)
    tuner = keras_tuner.Tuner(hypermodel=build, oracle=oracle, directory="runs")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=5)
    ```
    """

    def __init__(
        self,
        objective=None,
        max_trials: int = 10,
        beam_width: int = 8,
        num_candidates: int = 1000,
        initial_width: int | None = None,
        surrogate: str = "mlp",
        block_of: Callable[[str], str] | None = None,
        **kwargs,
    ):
        # The surrogate's knobs go to the search algorithm, the rest to the Oracle (which
        # rejects unknown names).
        surrogate_kwargs = {name: kwargs.pop(name) for name in _SURROGATE_KWARGS if name in kwargs}
        self._search_args = {
            "beam_width": beam_width,
            "num_candidates": num_candidates,
            "initial_width": initial_width,
            "surrogate": surrogate,
            "block_of": block_of,
            **surrogate_kwargs,
        }
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    def make_search_algorithm(self, seed: int) -> ProgressiveSearch:
        return ProgressiveSearch(seed=seed, **self._search_args)
