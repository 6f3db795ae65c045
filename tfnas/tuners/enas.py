"""ENAS: Efficient Neural Architecture Search via parameter sharing (Pham et al. 2018).

ENAS (arXiv 1802.03268) trains the weights of a supernet and a recurrent controller in
alternation:

1. During each supernet epoch, every training step uses one architecture sampled from the
   controller (the shared weights of that path get the gradient step).
2. At the end of each epoch the controller is trained with REINFORCE for `controller_steps`
   samples, each rewarded with the validation accuracy of the sampled subnet on one
   validation batch, computed with the shared weights (no training of the subnet).
3. Once the supernet is trained, the candidates are sampled from the trained controller and
   ranked as ordinary KerasTuner trials with inherited weights (after batch-norm
   recalibration); the controller keeps learning from the trial scores, as the multi-trial
   `Reinforce` oracle does.

The controller is `tfnas.tuners.reinforce.Controller` (an LSTM in numpy emitting one decision
after another, moving-average baseline, entropy bonus); the same object serves the supernet
phase and the candidate search, so all of its state (weights, optimizer moments, baseline,
random state) is in the oracle's `get_state()` and in each supernet checkpoint.

Differences from the paper, all on the small scale tfnas targets: one controller sample per
controller step (the paper's M = 1 too), `controller_steps` per epoch instead of 2,000, and
the derived architectures are evaluated on the whole validation set rather than on one batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from tfnas import validation
from tfnas.search import encoding
from tfnas.search.reinforce import Controller
from tfnas.tuners.weight_sharing import WeightSharingOracle

if TYPE_CHECKING:
    from tfnas.blocks.rules import MixingRule

logger = logging.getLogger(__name__)


class ENAS(WeightSharingOracle):
    """ENAS (Pham et al. 2018): a REINFORCE controller alternating with shared weights.

    Every supernet training step uses an architecture sampled from the controller; after
    every supernet epoch the controller takes `controller_steps` policy-gradient steps, each
    on one sampled architecture rewarded with its objective (e.g. accuracy) on one
    validation batch with the shared weights. The candidates of the search are then sampled
    from the trained controller. Training-time samples neither update the controller nor
    count as seen trials; they draw on the controller's random state, which is saved in
    the oracle state and in each supernet checkpoint, so an interrupted search resumes
    exactly.

    The reward is the objective's metric as the supernet reports it, negated when the
    objective is minimized (e.g. "val_loss").

    Args:
        objective: the candidates' objective, measured with inherited weights
            (default "val_accuracy"); also the controller's reward during training.
        max_trials: candidates sampled from the trained controller and evaluated.
        controller_steps: controller updates after each supernet epoch (>= 1).
        hidden_size: units of the controller's LSTM cell and decision embeddings.
        learning_rate: step size of the controller optimizer.
        optimizer: "adam" or "sgd" (the controller's optimizer).
        baseline_decay: decay of the moving-average reward baseline, in [0, 1).
        entropy_weight: weight of the entropy bonus (>= 0).
        init_range: controller weights start uniform in `[-init_range, init_range]`.
        **kwargs: the arguments of `WeightSharingOracle` (constraints,
            bn_recalibration_batches, seed, hyperparameters, ...).

    Example:

    ```python
    oracle = tfnas.oracles.ENAS(max_trials=10, controller_steps=50, seed=0)
    tuner = tfnas.Tuner(build, oracle=oracle, directory="runs", project_name="enas")
    tuner.search(x, y, epochs=10, validation_data=(x_val, y_val))  # supernet + controller
    best = tuner.get_best_models(1)[0]  # plain Keras model with inherited weights
    ```
    """

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 20,
        *,
        controller_steps: int = 20,
        hidden_size: int = 32,
        learning_rate: float = 0.02,
        optimizer: str = "adam",
        baseline_decay: float = 0.9,
        entropy_weight: float = 0.05,
        init_range: float = 0.1,
        **kwargs,
    ):
        self.controller_steps = validation.check_int("controller_steps", controller_steps, low=1)
        # Validated by the Controller, built in `super().__init__` (`make_search_algorithm`).
        self._controller_args = {
            "hidden_size": hidden_size,
            "learning_rate": learning_rate,
            "optimizer": optimizer,
            "baseline_decay": baseline_decay,
            "entropy_weight": entropy_weight,
            "init_range": init_range,
        }
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)
        # Mean controller reward of each supernet epoch (for monitoring).
        self.epoch_rewards: list[float | None] = []

    @property
    def controller(self) -> Controller:
        """The controller (also the candidate search algorithm, `self.algorithm`)."""
        return self.algorithm

    def make_search_algorithm(self, seed: int | None) -> Controller:
        return Controller(seed=seed, **self._controller_args)

    # --- Supernet phase ------------------------------------------------------------------

    def sample_from_controller(self) -> encoding.Values:
        """Samples an architecture from the controller's current policy.

        Frozen plain hyperparameters (`frozen_values`) are not sampled: the controller is
        fed their frozen value, so the sample is exactly the rollout it will learn from.
        Uses the controller's random state; updates nothing else, and the sample is not
        recorded as seen.

        Returns:
            The architecture, `frozen_values` included.
        """
        frozen = self.frozen_values
        rng = self.controller.rng

        def choose(decision: encoding.Decision, probs: np.ndarray) -> int:
            if decision.name in frozen:
                return decision.index_of(frozen[decision.name])
            return int(rng.choice(len(probs), p=probs))

        values, _ = self.controller._rollout(self.encoding(), choose)
        return {**values, **frozen}

    def prepare_training_step(
        self, rule: MixingRule, step: int, path: int, progress: float
    ) -> None:
        """Trains the shared weights of one controller sample per step."""
        rule.set_architecture(self.sample_from_controller())

    def train_controller(self, evaluate: Callable[[dict], float], steps: int) -> float | None:
        """Takes `steps` REINFORCE steps, each on one sample rewarded by `evaluate`.

        Args:
            evaluate: `evaluate(values) -> float`, the reward (higher is better) of an
                architecture on one validation batch with the shared weights.
            steps: the number of samples (one controller update each).

        Returns:
            The mean reward of the finite rewards (None if there was none). A reward that
            is NaN or infinite is not learned from.
        """
        space = self.encoding()
        rewards = []
        for _ in range(steps):
            values = self.sample_from_controller()
            reward = float(evaluate(values))
            if not math.isfinite(reward):
                self.controller.observe(space, values, None)
                continue
            self.controller.observe(space, values, reward)
            rewards.append(reward)
        return float(np.mean(rewards)) if rewards else None

    def on_supernet_epoch_end(
        self, epoch: int, evaluate: Callable[[dict], float], logs=None, callbacks=None
    ) -> None:
        """Trains the controller for `controller_steps` samples on validation rewards."""
        mean_reward = self.train_controller(evaluate, self.controller_steps)
        self.epoch_rewards.append(mean_reward)
        logger.info(
            "ENAS epoch %d: controller trained on %d samples, mean reward %s",
            epoch + 1,
            self.controller_steps,
            mean_reward,
        )

    # --- State ---------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["enas"] = {"epoch_rewards": list(self.epoch_rewards)}
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.epoch_rewards = list(state.get("enas", {}).get("epoch_rewards", []))
