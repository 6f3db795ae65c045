"""Progressive neural architecture search (PNAS, Liu et al. 2017, arXiv 1712.00559) as a
KerasTuner oracle.

The search and its surrogates are `tfnas.search.pnas.ProgressiveSearch`,
`tfnas.search.pnas.Surrogate` and `tfnas.search.pnas.BlockSurrogate`; this module adapts
them. On a cell space (`tfnas.spaces.DartsSpace`) the cells grow block by block: the
networks trained at stage b have b-block cells; on any other space PNAS is a beam search
over groups of hyperparameters (see `tfnas.search.pnas`).
"""

from __future__ import annotations

from collections.abc import Callable

from tfnas.search.pnas import NUM_BLOCKS, ProgressiveSearch
from tfnas.tuners import multi_trial

_SURROGATE_KWARGS = (
    "ensemble_size",
    "hidden_size",
    "train_steps",
    "learning_rate",
    "l2",
    "embedding_size",
)


class PNAS(multi_trial.MultiTrialOracle):
    """Progressive neural architecture search (Liu et al.) as a KerasTuner oracle.

    Args:
        objective: A string, `keras_tuner.Objective` or list of them, as for
            `keras_tuner.Oracle`.
        max_trials: Maximum number of trials.
        beam_width: Architectures proposed per stage after the first (K; the paper: 256).
        num_candidates: At most this many expansions are ranked per stage.
        initial_width: Architectures proposed at stage 1. Default: on a cell space, every
            configuration of the first block (as the paper) as far as `max_trials` leaves
            room for the later stages' `beam_width` each; on a flat space `beam_width`.
            Stage 1 is sized when it starts: a search resumed with another `max_trials`
            keeps the size it started with (pass `initial_width` to fix it).
        surrogate: "mlp" (ensemble of small MLPs) or "ridge".
        block_of: Maps a hyperparameter name to its block name on flat spaces; default: the
            name up to the last "/". Not saved in the state: pass the same callable when
            resuming.
        blocks_hyperparameter: The `Fixed` hyperparameter that makes a space a cell space
            (default "cells/num_blocks", registered by `tfnas.blocks.darts_cell`); None
            searches every space flat.
        **kwargs: The other arguments of `MultiTrialOracle` (hyperparameters, seed,
            allow_duplicates, num_bins, ...), forwarded to it.
        **surrogate_kwargs: `ensemble_size`, `hidden_size`, `train_steps`, `learning_rate`,
            `l2` of the surrogates and `embedding_size` of the cell-space one.

    Example:

    ```python
    space = tfnas.spaces.DartsSpace((8, 8, 1), 10, init_channels=8, num_cells=5)
    oracle = tfnas.oracles.PNAS(objective="val_accuracy", max_trials=60, beam_width=8)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs")
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
        blocks_hyperparameter: str | None = NUM_BLOCKS,
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
            "blocks_hyperparameter": blocks_hyperparameter,
            **surrogate_kwargs,
        }
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    def make_search_algorithm(self, seed: int) -> ProgressiveSearch:
        return ProgressiveSearch(seed=seed, budget=self.max_trials, **self._search_args)
