"""The architecture step of MANAS: the reward of the path the weights just trained.

MANAS (Carlucci et al. 2019) plays one round per training step: its agents choose an
architecture, the shared weights train it on a training batch, and its reward is measured
on a validation batch *after* that weight step. The trainer runs architecture steps
before weight steps, so `TrainedPathRewardStep` measures, before the weight step of batch
`t`, the reward of the architecture trained on batch `t - 1` (the strategy's `pending()`
path) and hands it to the strategy (`learn(values, reward)`); the strategy then draws
the architecture of batch `t`. The path trained on an epoch's last batch is rewarded by
`end_epoch` (the trainer calls it before the oracle's epoch hook), so every trained path
is rewarded exactly once, right after its weight step, and no round spans a checkpoint.

The reward is the accuracy of the path on the next batch of the split (NaN when the
outputs are not finite, so a diverged supernet is caught), with the supernet
in training mode (batch norm normalizes with the batch's statistics, as the trainer's
reward step does) and the moving statistics left unchanged. The architecture is set
through the rule's variables, so one trace serves every architecture.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tfnas.engine.architecture_steps import BatchScoringStep


class TrainedPathRewardStep(BatchScoringStep):
    """The accuracy of the last trained path on the next batch, handed to the strategy.

    Args:
        pending: `pending() -> values or None`, the architecture trained last and not yet
            rewarded.
        learn: `learn(values, reward)`, the strategy's update (reward: the accuracy in
            [0, 1] on one batch).
        split: where the reward batches come from: "validation" (the paper's) or
            "training".
        owner: the strategy's name, for error messages.

    Example:

    ```python
    step = TrainedPathRewardStep(pending=lambda: a, learn=update, split="validation")
    step.connect(supernet, rule, validation_data, training_data)
    step.begin_epoch(0)
    step.step(0, 0.0)  # update(a, accuracy of a on the first validation batch)
    ```
    """

    def __init__(
        self,
        *,
        pending: Callable[[], Mapping[str, Any] | None],
        learn: Callable[[Mapping[str, Any], float], Any],
        split: str = "validation",
        owner: str = "MANAS",
    ):
        super().__init__(split, owner, split_argument="reward_split")
        self.pending = pending
        self.learn = learn

    def step(self, step: int, progress: float) -> None:
        """Rewards the path trained on the previous batch, if any (see `reward_pending`)."""
        self.reward_pending(step)

    def end_epoch(self, epoch: int) -> None:
        """Rewards the path of the epoch's last batch (so no round spans a checkpoint)."""
        self.reward_pending()

    def reward_pending(self, step: int | None = None) -> float | None:
        """Measures the pending path's reward on the next batch and lets the strategy learn.

        Args:
            step: the global step, for error messages (None: at an epoch's end).

        Returns:
            The reward, or None when no path was pending.

        Raises:
            RuntimeError: before `connect`.
            FloatingPointError: when the reward is not finite (nothing is learned).
        """
        self._check_connected()
        values = self.pending()
        if values is None:
            return None
        x, y = self.next_batch()
        reward = self.reward(values, x, y)
        if not np.isfinite(reward):
            where = "the end of" if step is None else f"global step {step} of"
            raise FloatingPointError(
                f"{self.owner}'s reward at {where} epoch {self._epoch + 1} is {reward}: the "
                "supernet diverged. The checkpoint of the last finished epoch is kept; lower "
                "the supernet's learning rate and resume or restart."
            )
        self.learn(values, reward)
        return reward

    def reward(self, values: Mapping[str, Any], x, y) -> float:
        """The accuracy of architecture `values` on the batch `(x, y)`."""
        return self.score(values, x, y)

    def batch_score(self, supernet):
        import tensorflow as tf

        def accuracy(x, y):
            y_pred = supernet(x, training=True)
            predicted = tf.argmax(y_pred, axis=-1, output_type=tf.int64)
            if y.shape.rank == y_pred.shape.rank:  # One-hot labels.
                labels = tf.argmax(y, axis=-1, output_type=tf.int64)
            else:
                labels = tf.cast(tf.reshape(y, tf.shape(predicted)), tf.int64)
            accuracy = tf.reduce_mean(tf.cast(tf.equal(predicted, labels), "float32"))
            # argmax hides a diverged supernet: NaN outputs make the reward NaN.
            finite = tf.reduce_all(tf.math.is_finite(y_pred))
            return tf.where(finite, accuracy, tf.constant(float("nan")))

        return accuracy
