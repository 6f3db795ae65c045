"""Auto-DeepLab (Liu et al. 2019, "Auto-DeepLab: Hierarchical Neural Architecture Search for
Semantic Image Segmentation", arXiv 1901.02985) on the differentiable engine.

The paper searches two levels at once with DARTS's first-order alternating steps: the cell's
alphas and the network-level betas over the trellis of downsampling rates
(`tfnas.spaces.AutoDeepLabSpace`). Here the betas are architecture variables of the
supernet's rule (`tfnas.engine.auto_deeplab.TrellisMixture`) next to the alphas, so the
DARTS architecture step (`tfnas.engine.architecture_steps.FirstOrderStep`) updates both on
each validation batch, and the oracle's DARTS state (alphas, optimizer state, history) holds
both. Decoding, as the paper's Sec. 3.3: the cell by the DARTS rule
(`tfnas.search.derivation`) and the network path by Viterbi over the normalised betas
(`tfnas.search.auto_deeplab.viterbi_path`).

Defaults from the paper: first order, Adam on the architecture with learning rate 3e-3 and
weight decay 1e-3 (Sec. 4.1); the paper starts the architecture steps after 20 of 40
epochs, which `arch_warmup_epochs` reproduces as a share of the supernet's epochs (default
0.5). Sampled candidates (`max_trials > 1`) draw the cell from the alphas' softmax and the
path from the betas, transition by transition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras_tuner
import numpy as np

from tfnas import validation
from tfnas.search import auto_deeplab as adl
from tfnas.tuners.differentiable import DARTS

_PATH_PREFIX = "network/layer"


class AutoDeepLab(DARTS):
    """Auto-DeepLab's hierarchical differentiable search (cell alphas + network betas).

    Args:
        objective: the candidates' objective (default: maximise "val_mean_iou", the metric
            `AutoDeepLabSpace` compiles).
        max_trials: candidates evaluated (default 1: the decoded architecture only).
        arch_learning_rate: Adam learning rate of alphas and betas (the paper: 3e-3).
        arch_warmup_epochs: share of the supernet epochs, in [0, 1), trained with the
            architecture frozen (the paper: 20 of 40 epochs, 0.5).
        **kwargs: the arguments of `DifferentiableOracle` and `WeightSharingOracle` (seed,
            arch_weight_decay, ...). The order is always 1, as in the paper.

    Example:

    ```python
    data = tfnas.data.load("shapes")
    space = tfnas.spaces.AutoDeepLabSpace.from_dataset(data, num_layers=4)
    oracle = tfnas.oracles.AutoDeepLab(seed=0)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs", project_name="adl")
    tuner.search(data.x_train, data.y_train, epochs=10,
                 validation_data=(data.x_val, data.y_val))
    print(oracle.derived_architecture())   # {"cell": ..., "path": [...], "rates": [...]}
    oracle.plot_path("path.png")
    ```
    """

    # `tfnas-search --oracle=auto_deeplab` searches the segmentation trellis by default.
    default_space = "auto_deeplab"

    def __init__(
        self,
        objective=None,
        max_trials: int = 1,
        *,
        arch_learning_rate: float = 3e-3,
        arch_warmup_epochs: float = 0.5,
        **kwargs,
    ):
        if "order" in kwargs and kwargs["order"] != 1:
            raise ValueError(
                f"AutoDeepLab uses first-order steps. Received: order={kwargs['order']!r}"
            )
        kwargs.pop("order", None)
        self.arch_warmup_epochs = validation.check_float(
            "arch_warmup_epochs", arch_warmup_epochs, low=0.0, high=1.0, high_inclusive=False
        )
        if objective is None:
            objective = keras_tuner.Objective("val_mean_iou", "max")
        super().__init__(
            objective, max_trials, order=1, arch_learning_rate=arch_learning_rate, **kwargs
        )

    @classmethod
    def check_search(cls, hypermodel, latency_target_ms: float | None) -> None:
        """Refused before anything is built: a space without the trellis, and a latency
        target (the betas are not latency-aware; a multi-trial oracle on the space times
        each trial instead).

        Raises:
            ValueError: naming the space or the target received.
        """
        from tfnas.spaces.auto_deeplab import AutoDeepLabSpace

        if not isinstance(hypermodel, AutoDeepLabSpace):
            raise ValueError(
                "AutoDeepLab searches the segmentation trellis of AutoDeepLabSpace "
                f"(--space=auto_deeplab --dataset=shapes). Received: {type(hypermodel).__name__}"
            )
        if latency_target_ms is not None:
            raise ValueError(
                "AutoDeepLab has no latency term; search the space with a multi-trial oracle "
                "(e.g. --oracle=regularized_evolution) to meet a target. Received: "
                f"latency_target_ms={latency_target_ms!r}"
            )

    @property
    def frozen_values(self) -> dict[str, Any]:
        """Plain hyperparameters held at their build value, except the network path: the
        betas search it."""
        return self._frozen_values

    @frozen_values.setter
    def frozen_values(self, values: Mapping[str, Any]) -> None:
        self._frozen_values = {
            name: value for name, value in dict(values).items()
            if not name.startswith(_PATH_PREFIX)
        }  # fmt: skip

    def _new_rule(self):
        from tfnas.engine.auto_deeplab import TrellisMixture

        return TrellisMixture(seed=self.seed, initial_alphas=self._alphas)

    def alphas_frozen(self, epoch: int) -> bool:
        """The paper's warm-up: the first `arch_warmup_epochs` share of epochs train only
        the weights."""
        if self._supernet_epochs is None:
            return False
        return epoch < int(self.arch_warmup_epochs * self._supernet_epochs)

    # --- The network level --------------------------------------------------------------

    def _trellis_shape(self) -> tuple[int, int]:
        hps = [hp for hp in self.hyperparameters.space if hp.name.startswith(_PATH_PREFIX)]
        if not hps:
            raise RuntimeError(
                "AutoDeepLab needs the space's network path (network/layer{l}): search an "
                "AutoDeepLabSpace first."
            )
        return len(hps), len(hps[0].values)

    def transition_mask(self) -> np.ndarray:
        """The trellis's valid transitions (`tfnas.search.auto_deeplab.transition_mask`)."""
        return adl.transition_mask(*self._trellis_shape())

    def betas(self) -> np.ndarray:
        """The network-level logits, `(num_layers, num_levels, 3)` (0 where masked)."""
        from tfnas.engine.auto_deeplab import betas_array

        return betas_array(self.alphas(), self.transition_mask())

    def network_probabilities(self) -> np.ndarray:
        """The betas normalised over each node's outgoing transitions."""
        mask = self.transition_mask()
        return adl.normalize_betas(self.betas(), mask)

    def decoded_path(self) -> list[int]:
        """The maximum-probability path (Viterbi), one level per layer."""
        return adl.viterbi_path(self.network_probabilities())

    def _sample_path(self, rng: np.random.Generator) -> list[int]:
        probs = self.network_probabilities()
        path, src = [], 0
        for layer in range(probs.shape[0]):
            direction = int(rng.choice(3, p=probs[layer, src] / probs[layer, src].sum()))
            src = src + direction - 1
            path.append(src)
        return path

    def derive(self, space=None, rng: np.random.Generator | None = None) -> dict[str, Any]:
        """The decoded architecture: the DARTS-derived cell and the Viterbi path (with
        `rng`, a cell sampled from the alphas and a path sampled from the betas)."""
        values = super().derive(space, rng)
        path = self.decoded_path() if rng is None else self._sample_path(rng)
        for layer, level in enumerate(path):
            values[f"{_PATH_PREFIX}{layer}"] = level
        return values

    def derived_architecture(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Plain JSON of the decoded (or given) architecture: the cell genotype ("normal":
        (operation, input) pairs) and the path with its rates."""
        values = dict(values or self.derive())
        pairs, node = [], 0
        while f"normal/node{node}/inputs" in values:
            for i in (int(s) for s in values[f"normal/node{node}/inputs"].split(",")):
                pairs.append([values[f"normal/node{node}/edge{i}"], i])
            node += 1
        num_layers, _ = self._trellis_shape()
        path = [int(values[f"{_PATH_PREFIX}{layer}"]) for layer in range(num_layers)]
        return adl.architecture_to_json({"normal": pairs}, path)

    def plot_path(self, path: str) -> str:
        """Writes a PNG of the trellis: transitions shaded by probability, the decoded path
        in red (`tfnas.spaces.auto_deeplab.plot_network_path`)."""
        from tfnas.spaces.auto_deeplab import plot_network_path

        return plot_network_path(path, self.decoded_path(), self.network_probabilities())

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["arch_warmup_epochs"] = self.arch_warmup_epochs
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.arch_warmup_epochs = float(state.get("arch_warmup_epochs", self.arch_warmup_epochs))
