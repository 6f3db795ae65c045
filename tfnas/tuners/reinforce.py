"""NAS-RL (Zoph & Le 2016, arXiv 1611.01578) as a KerasTuner oracle.

The controller and its REINFORCE updates are `tfnas.search.reinforce.Controller`; this module
adapts it.
"""

from __future__ import annotations

from tfnas.search.reinforce import Controller
from tfnas.tuners import multi_trial


class Reinforce(multi_trial.MultiTrialOracle):
    """NAS-RL: a recurrent controller trained with REINFORCE, as a KerasTuner oracle.

    The reward is the objective (negated when it is minimized).

    Args:
        objective: A string, `keras_tuner.Objective` or list of them, as for
            `keras_tuner.Oracle`.
        max_trials: Maximum number of trials.
        hidden_size: Units of the controller's LSTM cell and decision embeddings.
        learning_rate: Step size of the controller optimizer.
        optimizer: "adam" or "sgd".
        baseline_decay: Decay of the moving-average reward baseline, in [0, 1).
        entropy_weight: Weight of the entropy bonus (>= 0).
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
        learning_rate: float = 0.02,
        optimizer: str = "adam",
        baseline_decay: float = 0.9,
        entropy_weight: float = 0.05,
        **kwargs,
    ):
        self._controller_args = {
            "hidden_size": hidden_size,
            "learning_rate": learning_rate,
            "optimizer": optimizer,
            "baseline_decay": baseline_decay,
            "entropy_weight": entropy_weight,
        }
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            **kwargs,
        )

    def make_search_algorithm(self, seed: int) -> Controller:
        return Controller(seed=seed, **self._controller_args)
