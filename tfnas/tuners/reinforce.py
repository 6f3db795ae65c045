"""NAS-RL (Zoph & Le 2016, arXiv 1611.01578) as a KerasTuner oracle.

The controller and its REINFORCE updates are `tfnas.search.reinforce.Controller`; this module
adapts it.
"""

from __future__ import annotations

from tfnas.search.reinforce import Controller, ReinforceUpdate
from tfnas.tuners import multi_trial


class Reinforce(multi_trial.MultiTrialOracle):
    """NAS-RL: a recurrent controller trained with REINFORCE, as a KerasTuner oracle.

    The reward is the objective (negated when it is minimized). The controller takes one
    REINFORCE step per `batch_size` samples (the paper's m) and is kept on-policy under
    deduplication: a sample of an architecture already evaluated is answered from the
    record of rewards (no query spent) and counts as a sample of the batch; only its own
    proposals are learned from (`tfnas.search.reinforce`). With `allow_duplicates=True`
    every sample is evaluated instead.

    Deviations from Zoph & Le (2016), whose controller (a 2-layer LSTM of 35 units, Adam
    at 6e-4, m = 8 per replica over 100 replicas) saw 12,800 architectures: at a budget of a
    few hundred trials that learning rate never moves the policy, so the defaults here are
    a 1-layer LSTM of 32 units, Adam at 0.05, m = 4, and advantages divided by a moving
    standard deviation of the rewards (`normalize_advantage`), which makes the step
    independent of the objective's scale (accuracies of good architectures differ by
    about 0.01). Measured on a synthetic 15,625-cell NAS-Bench-201 table
    (`benchmarks/compare_multi_trial.py --synthetic`).

    Args:
        objective: A string, `keras_tuner.Objective` or list of them, as for
            `keras_tuner.Oracle`.
        max_trials: Maximum number of trials.
        hidden_size: Units of the controller's LSTM cell and decision embeddings.
        learning_rate: Step size of the controller optimizer.
        optimizer: "adam" or "sgd".
        baseline_decay: Decay of the moving-average reward baseline, in [0, 1).
        entropy_weight: Weight of the entropy bonus (>= 0).
        batch_size: Samples per policy-gradient step (the paper's m).
        normalize_advantage: Divide `reward - baseline` by a moving standard deviation of
            the rewards.
        reuse_seen: Answer samples of evaluated architectures from the record (on-policy
            deduplication); forced off by `allow_duplicates=True`.
        max_resamples: Samples drawn per proposal before falling back to a random
            architecture (which is recorded, not learned from).
        update_rule: How a batch updates the policy (default
            `tfnas.search.reinforce.ReinforceUpdate()`; `PPOUpdate()` for PPO).
        **kwargs: The other arguments of `MultiTrialOracle` (hyperparameters, seed,
            allow_duplicates, num_bins, ...), forwarded to it.

    Example:

    ```python
    oracle = tfnas.oracles.Reinforce(objective="val_accuracy", max_trials=200)
    tuner = keras_tuner.Tuner(hypermodel=build, oracle=oracle, directory="runs")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=5)
    ```
    """

    def __init__(
        self,
        objective=None,
        max_trials: int = 10,
        hidden_size: int = 32,
        learning_rate: float = 0.05,
        optimizer: str = "adam",
        baseline_decay: float = 0.9,
        entropy_weight: float = 0.0,
        batch_size: int = 4,
        normalize_advantage: bool = True,
        reuse_seen: bool = True,
        max_resamples: int = 10,
        update_rule: ReinforceUpdate | None = None,
        **kwargs,
    ):
        self._controller_args = {
            "hidden_size": hidden_size,
            "learning_rate": learning_rate,
            "optimizer": optimizer,
            "baseline_decay": baseline_decay,
            "entropy_weight": entropy_weight,
            "batch_size": batch_size,
            "normalize_advantage": normalize_advantage,
            "max_resamples": max_resamples,
        }
        self._reuse_seen = bool(reuse_seen)
        self._update_rule = update_rule
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            **kwargs,
        )

    def make_search_algorithm(self, seed: int) -> Controller:
        return Controller(
            seed=seed,
            reuse_seen=self._reuse_seen and not self.allow_duplicates,
            update_rule=self._update_rule,
            **self._controller_args,
        )
