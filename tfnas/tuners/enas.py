"""ENAS: Efficient Neural Architecture Search via parameter sharing (Pham et al. 2018).

ENAS (arXiv 1802.03268) trains the weights of a supernet and a recurrent controller in
alternation:

1. During each supernet epoch, every training step uses one architecture sampled from the
   controller (the shared weights of that path get the gradient step).
2. At the end of each epoch the controller takes `controller_steps` REINFORCE steps, each
   on `controller_batch_size` samples, each rewarded with the validation accuracy of the
   sampled subnet on one validation batch, computed with the shared weights (no training
   of the subnet).
3. Once the supernet is trained, the candidates are sampled from the trained controller and
   ranked as ordinary KerasTuner trials with inherited weights (after batch-norm
   recalibration); the controller keeps learning from the trial scores, as the multi-trial
   `Reinforce` oracle does.

The controller is `tfnas.tuners.reinforce.Controller` (an LSTM in numpy emitting one decision
after another, moving-average baseline, entropy bonus); the same object serves the supernet
phase and the candidate search, so all of its state (weights, optimizer moments, baseline,
random state) is in the oracle's `get_state()` and in each supernet checkpoint.

The controller's defaults are those of the reference code's CIFAR-10 cell (micro) search,
`scripts/cifar10_micro_search.sh` and `src/cifar10/main.py` of github.com/melodyguan/enas:
Adam with learning rate 0.0035, baseline decay (`bl_dec`) 0.99, entropy weight 1e-4, an LSTM
of 64 units, 30 controller steps per epoch (`controller_train_steps`), each on 10 samples
(`controller_num_aggregate`), and logits bounded to `1.10 * tanh(logits)`, the constant
divided by 2.5 on operation decisions (`controller_tanh_constant`,
`controller_op_tanh_reduce`), with no temperature. The paper's tanh constant 2.5 and
temperature 5.0 are its recurrent-cell (PTB) settings (`ENAS(tanh_constant=2.5,
op_tanh_reduce=1, temperature=5)`). An operation decision is one whose values are names
(a layer choice); an input choice ("0,2", the chosen inputs) or a number (a depth) keeps
the whole constant.

Differences from the paper, all on the small scale tfnas targets: the reference adds the
entropy bonus to the reward, tfnas's controller to the loss (both weighted 1e-4); and the
derived architectures are evaluated on the whole validation set rather than on one batch.
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
    on `controller_batch_size` sampled architectures rewarded with their objective (e.g.
    accuracy) on one validation batch with the shared weights. The candidates of the
    search are then sampled from the trained controller. Training-time samples neither
    update the controller nor count as seen trials; they draw on the controller's random
    state, which is saved in the oracle state and in each supernet checkpoint, so an
    interrupted search resumes exactly.

    The reward is the objective's metric as the supernet reports it, negated when the
    objective is minimized (e.g. "val_loss").

    Args:
        objective: the candidates' objective, measured with inherited weights
            (default "val_accuracy"); also the controller's reward during training.
        max_trials: candidates sampled from the trained controller and evaluated.
        controller_steps: controller updates after each supernet epoch (>= 1; reference 30).
        controller_batch_size: rewarded samples per controller update (>= 1; reference
            10); trial scores of the candidate search are batched the same way.
        hidden_size: units of the controller's LSTM cell and decision embeddings (64).
        learning_rate: step size of the controller optimizer (0.0035).
        optimizer: "adam" or "sgd" (the controller's optimizer).
        baseline_decay: decay of the moving-average reward baseline, in [0, 1) (0.99).
        entropy_weight: weight of the entropy bonus (>= 0; 1e-4).
        init_range: controller weights start uniform in `[-init_range, init_range]`.
        tanh_constant: the controller's logits are bounded to `c * tanh(logits)` (1.10;
            None: unbounded).
        op_tanh_reduce: `c` is divided by this on operation decisions (2.5).
        temperature: divides the logits before the bound (None: 1).
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
        controller_steps: int = 30,
        controller_batch_size: int = 10,
        hidden_size: int = 64,
        learning_rate: float = 0.0035,
        optimizer: str = "adam",
        baseline_decay: float = 0.99,
        entropy_weight: float = 1e-4,
        init_range: float = 0.1,
        tanh_constant: float | None = 1.10,
        op_tanh_reduce: float = 2.5,
        temperature: float | None = None,
        **kwargs,
    ):
        self.controller_steps = validation.check_int("controller_steps", controller_steps, low=1)
        self.controller_batch_size = validation.check_int(
            "controller_batch_size", controller_batch_size, low=1
        )
        # Validated by the Controller, built in `super().__init__` (`make_search_algorithm`).
        self._controller_args = {
            "hidden_size": hidden_size,
            "learning_rate": learning_rate,
            "optimizer": optimizer,
            "baseline_decay": baseline_decay,
            "entropy_weight": entropy_weight,
            "init_range": init_range,
            "batch_size": self.controller_batch_size,
            "temperature": temperature,
        }
        self.tanh_constant = (
            None
            if tanh_constant is None
            else validation.check_float("tanh_constant", tanh_constant, low=0, low_inclusive=False)
        )
        self.op_tanh_reduce = validation.check_float(
            "op_tanh_reduce", op_tanh_reduce, low=0, low_inclusive=False
        )
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)
        # Mean controller reward of each supernet epoch (for monitoring).
        self.epoch_rewards: list[float | None] = []

    @property
    def controller(self) -> Controller:
        """The controller (also the candidate search algorithm, `self.algorithm`)."""
        return self.algorithm

    def make_search_algorithm(self, seed: int | None) -> Controller:
        return Controller(seed=seed, tanh_constant=self._tanh_constant, **self._controller_args)

    def _tanh_constant(self, decision: encoding.Decision) -> float | None:
        """The reference's logit bound of `decision`: reduced on operation decisions."""
        if self.tanh_constant is None:
            return None
        return self.tanh_constant / (self.op_tanh_reduce if _is_operation(decision) else 1.0)

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
        """Takes `steps` REINFORCE steps, each on `controller_batch_size` samples rewarded
        by `evaluate`.

        Args:
            evaluate: `evaluate(values) -> float`, the reward (higher is better) of an
                architecture on one validation batch with the shared weights.
            steps: the number of controller updates.

        Returns:
            The mean reward of the finite rewards (None if there was none). A reward that
            is NaN or infinite is not learned from.
        """
        space = self.encoding()
        rewards = []
        for _ in range(steps * self.controller_batch_size):
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
        """Trains the controller for `controller_steps` updates on validation rewards."""
        mean_reward = self.train_controller(evaluate, self.controller_steps)
        self.epoch_rewards.append(mean_reward)
        logger.info(
            "ENAS epoch %d: controller trained on %d samples, mean reward %s",
            epoch + 1,
            self.controller_steps * self.controller_batch_size,
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


def _is_operation(decision: encoding.Decision) -> bool:
    """Whether a decision picks an operation (its values are names), not inputs ("0,2")
    or a number."""
    return any(
        isinstance(value, str) and not all(part.isdigit() for part in value.split(","))
        for value in decision.candidates
    )
