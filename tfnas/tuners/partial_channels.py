"""PC-DARTS (Xu et al. 2019, arXiv 1907.05737): partial channel connections.

DARTS keeps every candidate operation of every edge in memory. PC-DARTS sends only 1/K of
an edge's channels through the mixed operation and lets the rest bypass it, which cuts
the supernet's memory and compute by about K, so larger batches fit; edge normalization
(a learned weight per incoming edge of a node) steadies the derivation that the channel
sampling makes noisier.

- `tfnas.blocks.rules.PartialChannelMixture` is the mixing rule: a `LayerChoice` on an
  input of C channels feeds its candidates (built for C/K channels, see
  `tfnas.blocks.candidate_channels`) the first C/K channels, mixes them like
  `SoftmaxMixture`, concatenates the other channels (max-pooled when the candidates halve
  the resolution) and shuffles the channels in K groups. With edge normalization a node
  (`InputChoice`) outputs `sum_j softmax(beta)_j * input_j`.
- `PCDARTS` is `DARTS` with that rule; it derives each node's inputs from the edge
  strength times softmax(beta).

Models exported with inherited weights (`tuner.get_best_models`) keep the partial-channel
wiring, in standard Keras layers, since their operations were trained on C/K channels;
`tuner.retrain(...)` trains the derived architecture with all channels from scratch, as
the paper does.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tfnas import validation
from tfnas.results import alpha_logging
from tfnas.tuners.differentiable import DARTS

if TYPE_CHECKING:
    import keras

    from tfnas.blocks.rules import PartialChannelMixture

__all__ = ["PCDARTS"]

# The paper trains the supernet 50 epochs and the alphas from epoch 15 on.
PAPER_EPOCHS, PAPER_WARMUP_EPOCHS = 50, 15


class PCDARTS(DARTS):
    """PC-DARTS (Xu et al. 2019): DARTS on partial channels, with edge normalization.

    The supernet is built with `PartialChannelMixture`: each edge's mixed operation sees
    1/K of its input's channels (the rest bypass it and the channels are shuffled), which
    cuts the supernet's memory about K times, and every node weighs its incoming edges by
    softmax(beta), learned with the alphas by the same Adam steps on validation batches
    (learning rate 6e-4), after an alpha-frozen warm-up of the first 30% of the epochs
    (the paper: 15 of 50) in which only the weights train.
    The derivation keeps, per node, the `n_chosen` edges with the largest
    `max_{op != none} softmax(alpha)_op * softmax(beta)_edge` and their argmax operation.

    Candidates evaluated with inherited weights (and `tuner.get_best_models`) keep the
    partial-channel wiring their weights were trained with, exported with standard Keras
    layers; `tuner.retrain(...)` trains the derived architecture with full channels from
    scratch, as the paper does. `betas()` and `input_weights()` expose the edge weights;
    `history` entries carry them under "input_weights", `plot_history` draws them, and
    they go to TensorBoard with the alphas. The space must build its layer-choice
    candidates for `tfnas.blocks.candidate_channels(hp, channels, name)` channels, as
    `DartsSpace` and `NasBench201Space` do.

    Args:
        objective: the candidates' objective, measured with inherited weights.
        max_trials: candidates evaluated (default 1: the derived architecture only).
        partial_channels: K (>= 1; the paper: 4 on CIFAR-10, 2 on ImageNet). Must divide
            the channels of every layer choice's input.
        edge_normalization: learn the per-edge weights beta (the paper: True).
        warmup_epochs: the first epochs, which train only the weights with the alphas
            and betas frozen (>= 0). None (the default): the paper's 15 of 50 epochs
            (`if epoch >= 15: architect.step(...)` in the authors' `train_search.py`);
            with fewer than 50 epochs the same share, `round(0.3 * epochs)`, and at least
            one epoch is left to the alphas.
        arch_learning_rate: Adam learning rate of the alphas and betas (the paper: 6e-4).
        **kwargs: the arguments of `DARTS` (order, arch_weight_decay, seed, ...). The
            paper uses the first order.

    Example:

    ```python
    oracle = tfnas.tuners.partial_channels.PCDARTS(partial_channels=4, seed=0)
    space = tfnas.spaces.DartsSpace((8, 8, 1), 10, init_channels=8, num_cells=5)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs", project_name="pcdarts")
    tuner.search(x, y, epochs=10, validation_data=(x_val, y_val))
    print(oracle.derive(), oracle.input_weights())
    model = tuner.get_best_models(1)[0]        # partial channels, inherited weights
    retrained, _ = tuner.retrain(None, x, y, epochs=50)   # full channels, from scratch
    ```
    """

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        partial_channels: int = 4,
        edge_normalization: bool = True,
        warmup_epochs: int | None = None,
        arch_learning_rate: float = 6e-4,
        **kwargs,
    ):
        from tfnas.blocks.rules.partial_channels import check_arguments

        self.partial_channels, self.edge_normalization = check_arguments(
            partial_channels, edge_normalization
        )
        self.warmup_epochs = (
            None
            if warmup_epochs is None
            else validation.check_int("warmup_epochs", warmup_epochs, low=0)
        )
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            arch_learning_rate=arch_learning_rate,
            **kwargs,
        )

    def warmup(self, epochs: int) -> int:
        """The alpha-frozen epochs of a search of `epochs` epochs.

        `warmup_epochs`, or the paper's 15 of 50: `min(15, round(0.3 * epochs))`; never
        all of them (at least one epoch trains the alphas).
        """
        if self.warmup_epochs is not None:
            warmup = self.warmup_epochs
        else:
            scaled = PAPER_WARMUP_EPOCHS * epochs / PAPER_EPOCHS
            warmup = min(PAPER_WARMUP_EPOCHS, math.floor(scaled + 0.5))
        return max(0, min(warmup, epochs - 1))

    def alphas_frozen(self, epoch: int) -> bool:
        """True in the warm-up epochs (needs the supernet's epochs, known in training)."""
        epochs = self._supernet_epochs
        return epochs is not None and epoch < self.warmup(epochs)

    def _new_rule(self) -> PartialChannelMixture:
        from tfnas.blocks.rules import PartialChannelMixture

        return PartialChannelMixture(
            partial_channels=self.partial_channels,
            edge_normalization=self.edge_normalization,
            seed=self.seed,
            initial_alphas=self._alphas,
        )

    def on_supernet_built(self, supernet: keras.Model, validation_data, training_data=None):
        rule = self._rule
        if rule is not None and rule.beta_names and not rule.choice_names:
            # Betas alone would pass DARTS's check, but derive edges from no operation.
            raise ValueError(
                "PCDARTS found no layer choice for its architecture parameters to act on: "
                "the supernet has only input choices. Use a space with layer_choice points."
            )
        super().on_supernet_built(supernet, validation_data, training_data)

    # --- Reading the result -------------------------------------------------------------

    def _input_names(self) -> set[str]:
        return set(self._structure.get("inputs", {}))

    def distributions(self) -> dict[str, list[float]]:
        """softmax(alpha) of the layer choices (the betas are in `input_weights`)."""
        inputs = self._input_names()
        return {name: p for name, p in self.softmax().items() if name not in inputs}

    def betas(self) -> dict[str, list[float]]:
        """The edge-normalization logits, `{input_choice_name: [beta_j]}`."""
        inputs = self._input_names()
        return {name: list(v) for name, v in self.alphas().items() if name in inputs}

    def input_weights(self) -> dict[str, list[float]]:
        """softmax(beta) per input choice: the weight of each incoming edge."""
        inputs = self._input_names()
        return {name: p for name, p in self.softmax().items() if name in inputs}

    def input_labels(self) -> dict[str, list[str]]:
        """Per input choice, a name per input: the producing layer choice, or "input{j}"."""
        return {
            name: [edge or f"input{j}" for j, edge in enumerate(info["edges"])]
            for name, info in self._structure.get("inputs", {}).items()
        }

    def on_supernet_epoch_end(self, epoch, evaluate, logs=None, callbacks=None) -> None:
        """As DARTS, and records / logs the edge weights with the distributions."""
        super().on_supernet_epoch_end(epoch, evaluate, logs=logs, callbacks=callbacks)
        weights = self.input_weights()
        if weights:
            self.history[-1]["input_weights"] = weights
            alpha_logging.write_tensorboard(callbacks, epoch + 1, weights, self.input_labels())

    def plot_history(self, path: str) -> str:
        """Writes a PNG heatmap of every choice's distribution and every node's edge
        weights over the epochs."""
        if not self.history:
            raise RuntimeError(f"{type(self).__name__} has no history yet: train it first.")
        merged = [
            {
                "epoch": entry["epoch"],
                "distributions": {**entry["distributions"], **entry.get("input_weights", {})},
            }
            for entry in self.history
        ]
        labels = {**self.labels(), **self.input_labels()}
        return alpha_logging.plot_alpha_history(merged, path, labels)
