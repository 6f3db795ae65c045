"""NASNet (Zoph et al. 2017, arXiv 1707.07012): a controller trained with PPO.

NASNet's controller is NAS-RL's recurrent controller (`tfnas.tuners.reinforce`) emitting
the decisions of two convolutional cells, the normal and the reduction cell of the NASNet
search space (`tfnas.spaces.NASNetSpace`, `--space=nasnet`: B = 5 blocks, each two inputs
and two of the paper's 13 operations), and trained with Proximal Policy Optimization
(`tfnas.search.reinforce.PPOUpdate`) instead of REINFORCE; each sampled cell pair is a
trial, trained and scored on the validation accuracy (the reward).

The paper's controller (its Appendix A): a one-layer LSTM of 100 units, weights uniform in
[-0.1, 0.1], PPO at learning rate 0.00035, an entropy penalty of weight 0.00001 and an
exponential-moving-average baseline of weight 0.95, over 20,000 child models trained by
450 GPUs. Deviation: at a budget of tens or hundreds of trials that learning rate never
moves the policy, so the defaults are the `Reinforce` oracle's small-budget settings (32
units, Adam at 0.05, batches of 4, normalized advantages); the paper's are one call away:
`NASNet(hidden_size=100, learning_rate=0.00035, entropy_weight=1e-5, baseline_decay=0.95,
normalize_advantage=False)`. The PPO constants (clip 0.2, 10 epochs per batch) are the PPO
paper's: NASNet does not give them.
"""

from __future__ import annotations

from typing import Any

from tfnas.search.reinforce import PPOUpdate, ReinforceUpdate
from tfnas.tuners.reinforce import Reinforce


class NASNet(Reinforce):
    """NASNet (Zoph et al. 2017): the recurrent controller trained with PPO.

    Args:
        objective: the reward's metric (default "val_accuracy", the paper's).
        max_trials: architectures sampled and trained.
        update_rule: the controller's update rule (default `PPOUpdate()`).
        **kwargs: the arguments of `Reinforce` (controller settings) and of
            `MultiTrialOracle` (seed, hyperparameters, ...).

    Example:

    ```python
    space = tfnas.spaces.NASNetSpace((8, 8, 1), 10, filters=8, num_cells_per_stack=1)
    oracle = tfnas.oracles.NASNet(max_trials=20, seed=0)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs", project_name="nasnet")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=2)
    ```
    """

    def __init__(
        self,
        objective: Any = "val_accuracy",
        max_trials: int = 10,
        *,
        update_rule: ReinforceUpdate | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            update_rule=PPOUpdate() if update_rule is None else update_rule,
            **kwargs,
        )
