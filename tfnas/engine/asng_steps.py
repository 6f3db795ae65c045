"""The architecture step of distribution-based one-shot strategies (ASNG-NAS).

`LossRankingStep` is an `tfnas.engine.architecture_steps.ArchitectureStep` for strategies
that learn a distribution over architectures from the losses of sampled ones, without
gradients through the supernet: before each weight step it asks the strategy for the
architectures to rank (`propose()`, e.g. ASNG's lambda = 2 samples), computes the loss of
each with the shared weights on the same next batch of a split, and hands the losses back
(`learn(architectures, losses)`).

The loss is the supernet's compiled loss in training mode (batch norm normalizes with the
batch's statistics, as the authors' ASNG code evaluates its samples with `model.train()`
under `no_grad`), with the moving statistics left unchanged (momentum 1, as the trainer's
reward step does; PyTorch's train mode would also update them from this batch). The
architecture is set through the rule's variables, so one trace serves every architecture.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfnas.engine.architecture_steps import BatchScoringStep


class LossRankingStep(BatchScoringStep):
    """Losses of proposed architectures on one batch, handed to the strategy.

    Args:
        propose: `propose() -> [values, ...]`, the architectures of this step.
        learn: `learn(architectures, losses)`, the strategy's update (losses: lower is
            better, one per architecture, all on the same batch).
        split: the data the batches come from: "validation" (the authors' code: theta
            learns on the held-out half) or "training".
        owner: the strategy's name, for error messages.

    Example:

    ```python
    step = LossRankingStep(propose=lambda: [a, b], learn=update, split="validation")
    step.connect(supernet, rule, validation_data, training_data)
    step.begin_epoch(0)
    step.step(0, 0.0)  # update([a, b], [loss_a, loss_b]) on the first validation batch
    ```
    """

    def __init__(
        self,
        *,
        propose: Callable[[], Sequence[Mapping[str, Any]]],
        learn: Callable[[Sequence[Mapping[str, Any]], Sequence[float]], Any],
        split: str = "validation",
        owner: str = "ASNGNAS",
    ):
        super().__init__(split, owner)
        self.propose = propose
        self.learn = learn

    def step(self, step: int, progress: float) -> None:
        """Ranks the proposed architectures on the next batch and lets the strategy learn.

        Raises:
            RuntimeError: before `connect`.
            FloatingPointError: when a loss is not finite (nothing is learned).
        """
        self._check_connected()
        architectures = list(self.propose())
        x, y = self.next_batch()
        losses = [self.loss(values, x, y) for values in architectures]
        if not all(np.isfinite(losses)):
            raise FloatingPointError(
                f"{self.owner}'s architecture step at global step {step} (epoch "
                f"{self._epoch + 1}) gave losses {losses}: the search diverged. The "
                "checkpoint of the last finished epoch is kept; lower the supernet's "
                "learning rate and resume or restart."
            )
        self.learn(architectures, losses)

    def loss(self, values: Mapping[str, Any], x, y) -> float:
        """The supernet's loss of architecture `values` on the batch `(x, y)`."""
        return self.score(values, x, y)

    def batch_score(self, supernet):
        def loss(x, y):
            y_pred = supernet(x, training=True)
            # training=False: the data loss only, as the code's `loss_func(h, t)`.
            return supernet.compute_loss(x=x, y=y, y_pred=y_pred, training=False)

        return loss
