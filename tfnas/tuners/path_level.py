"""Path-level EAS (Cai, Yang, Zhang, Han & Yu 2018, arXiv 1806.02639) as a KerasTuner oracle.

The search grows a tree-structured cell by function-preserving path-level transformations
chosen by an RL meta-controller: the first trial trains the start cell from scratch; each
later trial transforms one of the best cells so far (the parent) into a child whose network
inherits the parent trial's trained weights, transformed so that it computes the same
function, and trains it for the search's few epochs; the child's validation accuracy is the
controller's reward. The cell, the transformations, the decisions and the controller are in
`tfnas.search.path_level`; the network and the weight mapping in
`tfnas.spaces.path_level.PathLevelSpace`, whose `inherit_weights` `tfnas.Tuner` calls before
it fits a trial (a plain `keras_tuner.Tuner` trains every child from scratch instead).

Defaults are the reference implementation's (github.com/han-cai/PathLevel-EAS,
`arch_search_tree_cell.py`): merges "none", add of 2 or 3 branches, concat of 2; identity
replacements among separable 3x3/5x5/7x7, conv 1x1, identity, 3x3 max and average pooling;
cells of at most 3 levels of nodes; REINFORCE with Adam at 6e-3, an entropy weight of 0.01,
a baseline of decay 0.95 and 10 networks per update; rewards `tan(acc * pi / 2)`. The
reference trains 500 networks for 20 epochs each on CIFAR-10 (200 GPU-hours); a digits
search trains tens for a few epochs.

Deviations (see `tfnas.search.path_level`): the tree-LSTM meta-controller is the numpy
LSTM of `tfnas.search.reinforce` over the decisions in traversal order; parents are drawn
from the `pool_size` best cells (the reference always transforms its start network);
concat splits need evenly divisible channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfnas.search import encoding
from tfnas.search import path_level as pl
from tfnas.tuners import multi_trial

TrialStatus = multi_trial.TrialStatus


class PathLevelEAS(multi_trial.MultiTrialOracle):
    """Path-level EAS: an RL meta-controller growing a tree cell by function-preserving
    transformations, each child trained from its parent's weights.

    Searches `tfnas.spaces.path_level.PathLevelSpace` (or any hypermodel that registers its
    `Fixed` hyperparameters `path_level/cell` and `path_level/channels`); use it with
    `tfnas.Tuner` so that children inherit their parent's weights.

    Args:
        objective: the reward's metric (default "val_accuracy"); with the default
            `reward_transform="tan"` it must be an accuracy (or
            `tfnas.results.objectives.BudgetedAccuracy`, negative above a cost limit).
        max_trials: networks trained (the start cell included).
        pool_size: parents are drawn uniformly among this many best cells (>= 1).
        merge_choices: candidates of a merge decision ("none", "add:k", "concat:k").
        replace_choices: candidates of an identity's replacement (operations of
            `tfnas.search.path_level.OPERATIONS`, "identity" among them; empty: never).
        max_depth: levels of nodes a cell may reach (>= 1).
        reward_transform: "tan" (the reference's) or "identity".
        hidden_size: units of the controller's LSTM.
        learning_rate: the controller's Adam step.
        entropy_weight: the entropy bonus (>= 0).
        baseline_decay: decay of the moving-average baseline, in [0, 1).
        batch_size: rewarded networks per controller update.
        normalize_advantage: divide advantages by a moving std of the rewards.
        max_resamples: controller samples per parent before another parent is tried.
        **kwargs: the arguments of `MultiTrialOracle` (seed, hyperparameters, ...).

    Example:

    ```python
    space = tfnas.spaces.path_level.PathLevelSpace((8, 8, 1), 10, channels=8)
    oracle = PathLevelEAS(max_trials=20, seed=0)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs", project_name="path_level")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=2)
    ```
    """

    default_space = "path_level"

    def __init__(
        self,
        objective: Any = "val_accuracy",
        max_trials: int = 10,
        pool_size: int = 5,
        merge_choices: Sequence[str] = pl.DEFAULT_MERGE_CHOICES,
        replace_choices: Sequence[str] = pl.DEFAULT_REPLACE_CHOICES,
        max_depth: int = 3,
        reward_transform: str = "tan",
        hidden_size: int = 32,
        learning_rate: float = 6e-3,
        entropy_weight: float = 0.01,
        baseline_decay: float = 0.95,
        batch_size: int = 10,
        normalize_advantage: bool = False,
        max_resamples: int = 20,
        **kwargs: Any,
    ):
        if kwargs.get("allow_duplicates"):
            raise ValueError(
                "PathLevelEAS trains every cell once (a child inherits one trained parent). "
                f"Received: allow_duplicates={kwargs['allow_duplicates']!r}"
            )
        self._search_args = {
            "pool_size": pool_size,
            "merge_choices": merge_choices,
            "replace_choices": replace_choices,
            "max_depth": max_depth,
            "reward_transform": reward_transform,
            "hidden_size": hidden_size,
            "learning_rate": learning_rate,
            "entropy_weight": entropy_weight,
            "baseline_decay": baseline_decay,
            "batch_size": batch_size,
            "normalize_advantage": normalize_advantage,
            "max_resamples": max_resamples,
        }
        # Validates every argument before KerasTuner's constructor runs.
        pl.PathLevelSearch(**self._search_args)
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    @classmethod
    def check_search(cls, hypermodel, latency_target_ms: float | None) -> None:
        """Refuses, before anything is built, a hypermodel that is not a tree-cell space."""
        del latency_target_ms  # Each trial is timed after training, as other multi-trial ones.
        if not callable(getattr(hypermodel, "inherit_weights", None)):
            raise ValueError(
                "PathLevelEAS grows the tree cell of PathLevelSpace (--space=path_level) from "
                f"its parents' weights. Received: {type(hypermodel).__name__}"
            )

    def make_search_algorithm(self, seed: int) -> pl.PathLevelSearch:
        return pl.PathLevelSearch(seed=seed, **self._search_args)

    def _check_space(self) -> None:
        names = {hp.name for hp in self.hyperparameters.space}
        missing = [n for n in (pl.CELL, pl.CHANNELS, pl.PARENT) if n not in names]
        if missing:
            raise ValueError(
                f"PathLevelEAS searches a tree-cell space whose hypermodel registers the "
                f"Fixed hyperparameters {[pl.CELL, pl.CHANNELS, pl.PARENT]} "
                f"(tfnas.spaces.path_level.PathLevelSpace). Missing: {missing}"
            )

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        self._check_space()
        self._observe_finished_trials()
        values = self.algorithm.propose(self.encoding(), self._is_seen)
        if values is None:
            return {"status": TrialStatus.STOPPED, "values": None}
        values = {**self._fixed_values(), **values, pl.PARENT: ""}
        if values[pl.PARENT_CELL]:
            values[pl.PARENT] = self._trial_of(values[pl.PARENT_CELL])
        return {"status": TrialStatus.RUNNING, "values": values}

    def _fixed_values(self) -> encoding.Values:
        return {name: hp.value for name, hp in self.encoding().fixed_hyperparameters().items()}

    def _trial_of(self, cell: str) -> str:
        """The completed trial that trained `cell` (the first, should there be several)."""
        for trial_id in self.end_order:
            trial = self.trials[trial_id]
            if (
                trial.status == TrialStatus.COMPLETED
                and trial.hyperparameters.values.get(pl.CELL) == cell
            ):
                return trial_id
        raise RuntimeError(f"No completed trial trained the parent cell {cell!r}.")
