"""MnasNet (Tan et al. 2018, arXiv 1807.11626): RL search for accuracy and real latency.

MnasNet samples architectures with a recurrent controller, trains each as a trial,
measures its latency on the target device, and rewards the controller with

    ACC(m) * (LAT(m) / T) ** w,   w = alpha if LAT(m) <= T else beta,

with `alpha = beta = -0.07` (the soft constraint: halving the latency is worth about 5%
relative accuracy) or `alpha = 0, beta = -1` (the hard constraint), T the target latency
(`tfnas.results.objectives.MnasNetReward`). The controller is `tfnas.search.reinforce`'s
LSTM with the `Reinforce` oracle's settings, trained as in the paper with Proximal Policy
Optimization (`tfnas.search.reinforce.PPOUpdate`: clipped ratio, several epochs per batch
of sampled architectures, moving-average baseline); `update_rule=` replaces it (e.g.
`ReinforceUpdate()` for plain REINFORCE).

The latency is measured per trial by `tfnas.Tuner`: with `measure_latency=True` (LiteRT on
this machine), with `latency_runner=` (any `tfnas.latency.Runner`, e.g. `AdbRunner` for an
Android phone, as the paper times a Pixel 1), or predicted by a `latency_table=`; a Tuner
with none of them is refused when it is created.

Deviations: the paper gives no PPO constants (clip, epochs) and trains the controller
with NASNet's learning rate 0.00035 over 8,000 sampled models on 64 TPUs (5 epochs of proxy
training each); here PPO has the PPO paper's clip 0.2 and 10 epochs, and the controller
the `Reinforce` oracle's batch of 4 and Adam rate 0.05 with normalized advantages, sized
for budgets of tens of trials (`max_trials`).
"""

from __future__ import annotations

from typing import Any

import keras_tuner

from tfnas import validation
from tfnas.results.objectives import MODES, MnasNetReward
from tfnas.search.reinforce import PPOUpdate, ReinforceUpdate
from tfnas.tuners.reinforce import Reinforce


class MnasNet(Reinforce):
    """MnasNet (Tan et al. 2018): a controller rewarded with `ACC * (LAT / T) ** w`.

    Args:
        latency_target_ms: T, the target latency in milliseconds (> 0).
        max_trials: architectures trained and measured.
        reward: "soft" (w = -0.07 both sides of T) or "hard" (0 within T, -1 above).
        objective: the trial metric used as ACC: its name or a `keras_tuner.Objective`
            (default "val_accuracy"); the oracle maximizes the reward built on it.
        update_rule: the controller's update rule (default
            `tfnas.search.reinforce.PPOUpdate()`, the paper's PPO).
        **kwargs: the arguments of `Reinforce` (controller settings) and of
            `MultiTrialOracle` (seed, hyperparameters, ...).

    Example:

    ```python
    oracle = tfnas.oracles.MnasNet(latency_target_ms=0.05, max_trials=30, seed=0)
    tuner = tfnas.Tuner(space, oracle=oracle, measure_latency=True,
                        directory="runs", project_name="mnas")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=5)
    ```
    """

    # `tfnas.Tuner` refuses a search that gives the trials no `latency_ms`.
    requires_latency = True

    def __init__(
        self,
        latency_target_ms: float,
        max_trials: int = 10,
        *,
        reward: str = "soft",
        objective: str | keras_tuner.Objective = "val_accuracy",
        update_rule: ReinforceUpdate | None = None,
        **kwargs: Any,
    ):
        self.latency_target_ms = validation.check_float(
            "latency_target_ms", latency_target_ms, low=0.0, low_inclusive=False
        )
        self.reward = validation.check_one_of("reward", reward, tuple(MODES))
        accuracy = getattr(objective, "name", objective)
        if isinstance(objective, (list, tuple)) or not isinstance(accuracy, str):
            raise ValueError(
                "MnasNet's objective is the one metric its reward multiplies (ACC), a name "
                f"or a keras_tuner.Objective. Received: objective={objective!r}"
            )
        reward_objective = MnasNetReward(
            target=self.latency_target_ms, accuracy=accuracy, cost="latency_ms", mode=reward
        )
        super().__init__(
            objective=reward_objective,
            max_trials=max_trials,
            update_rule=PPOUpdate() if update_rule is None else update_rule,
            **kwargs,
        )

    @classmethod
    def check_search(cls, hypermodel, latency_target_ms: float | None) -> None:
        """The reward needs a target: refused before anything is built."""
        if latency_target_ms is None:
            raise ValueError(
                "MnasNet's reward ACC * (LAT / T) ** w needs the target latency T. "
                "Received: latency_target_ms=None; pass --latency_target_ms."
            )
