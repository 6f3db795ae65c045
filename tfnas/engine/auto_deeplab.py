"""The network-level relaxation of Auto-DeepLab (Liu et al. 2019, arXiv 1901.02985).

`TrellisMixture` is DARTS's `SoftmaxMixture` (the cell level, alpha) plus one logit vector
beta per trellis node (the network level): `network/layer{l}/level{s}` holds one logit per
valid transition out of level `s` of layer `l - 1` (the stem for `l == 0`), in the order
up, same, down (`tfnas.search.auto_deeplab.transition_mask`). The betas live among the
rule's alphas, so the DARTS architecture step (`tfnas.engine.architecture_steps`) steps
them with the alphas, and the oracle's state saves them with the alphas.

In mixture mode the weight of a transition is the softmax over the node's outgoing
transitions (the paper's normalisation); after `set_architecture(values)` the weights are
one-hot on the path `values["network/layer{l}"]`, and only the head of the path's last
level counts, so the supernet computes exactly that network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from tfnas.blocks.rules.softmax import SoftmaxMixture
from tfnas.search import auto_deeplab as adl


def beta_name(layer: int, level: int) -> str:
    """The name of the betas of the transitions out of `level` into layer `layer`."""
    return f"network/layer{layer}/level{level}"


def path_name(layer: int) -> str:
    """The hyperparameter holding the level of layer `layer` on the decoded path."""
    return f"network/layer{layer}"


def transitions(mask: np.ndarray, layer: int, level: int) -> list[int]:
    """The valid directions (`UP`, `SAME`, `DOWN`) out of `level` into `layer`."""
    return [k for k in range(3) if mask[layer, level, k]]


@keras.saving.register_keras_serializable(package="tfnas")
class TrellisMixture(SoftmaxMixture):
    """`SoftmaxMixture` with Auto-DeepLab's betas over the trellis transitions.

    Args:
        **kwargs: the arguments of `SoftmaxMixture` (seed, init_scale, initial_alphas, ...);
            `initial_alphas` may hold betas too (as the oracle's saved alphas do).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._mask: np.ndarray | None = None
        self._heads: keras.Variable | None = None

    def build_trellis(self, num_layers: int, num_levels: int) -> None:
        """Creates the betas of a trellis (once; a second call must match)."""
        mask = adl.transition_mask(num_layers, num_levels)
        if self._mask is not None:
            if self._mask.shape != mask.shape:
                raise ValueError(
                    f"This rule already has a trellis of shape {self._mask.shape[:2]}. "
                    f"Received: num_layers={num_layers}, num_levels={num_levels}"
                )
            return
        self._mask = mask
        if self._mixing is None:
            self._mixing = keras.Variable(1.0, dtype="float32", trainable=False, name="mixing")
        self._heads = keras.Variable(
            np.ones(num_levels, dtype="float32"), trainable=False, name="heads"
        )
        for layer in range(num_layers):
            for level in range(num_levels):
                size = len(transitions(mask, layer, level))
                if not size:
                    continue
                name = beta_name(layer, level)
                initial = self.initial_alphas.get(name)
                if initial is None or len(initial) != size:
                    initial = self._rng.normal(0.0, self.init_scale, size)
                self._alphas[name] = keras.Variable(
                    np.asarray(initial, dtype="float32"), trainable=True, name="beta"
                )
                self._masks[name] = keras.Variable(
                    np.zeros(size, dtype="float32"), trainable=False, name="onehot"
                )

    @property
    def mask(self) -> np.ndarray:
        """The trellis's `transition_mask`."""
        if self._mask is None:
            raise RuntimeError("TrellisMixture has no trellis yet: call build_trellis().")
        return self._mask

    def transition_weight(self, layer: int, level: int, direction: int):
        """The weight of the transition out of `level` into `layer` in `direction`."""
        weights, _ = self._weights(beta_name(layer, level))
        return weights[transitions(self.mask, layer, level).index(direction)]

    def head_weight(self, level: int):
        """1 in mixture mode (the paper sums the heads of all levels); in one-architecture
        mode, 1 for the path's last level only."""
        return self._heads[level]

    def betas(self) -> np.ndarray:
        """The betas as a `(num_layers, num_levels, 3)` array (0 where masked)."""
        alphas = self.get_alphas()
        return betas_array(alphas, self.mask)

    def use_mixture(self) -> None:
        super().use_mixture()
        if self._heads is not None:
            self._heads.assign(np.ones(self._heads.shape, dtype="float32"))

    def set_architecture(self, values: Mapping[str, Any]) -> None:
        super().set_architecture(values)
        if self._mask is None:
            return
        num_layers, num_levels, _ = self._mask.shape
        path = adl.validate_path([values[path_name(i)] for i in range(num_layers)], num_levels)
        src = 0
        for layer, dst in enumerate(path):
            for level in range(num_levels):
                name = beta_name(layer, level)
                if name not in self._masks:
                    continue
                valid = transitions(self._mask, layer, level)
                one_hot = np.zeros(len(valid), dtype="float32")
                if level == src:
                    one_hot[valid.index(dst - src + 1)] = 1.0
                self._masks[name].assign(one_hot)
            src = dst
        self._heads.assign(np.eye(num_levels, dtype="float32")[path[-1]])


def betas_array(alphas: Mapping[str, Any], mask: np.ndarray) -> np.ndarray:
    """The betas among `alphas` (`{name: logits}`) as a `(layers, levels, 3)` array."""
    betas = np.zeros(mask.shape)
    for layer, level in zip(*np.nonzero(mask.any(axis=-1))):
        name = beta_name(int(layer), int(level))
        if name in alphas:
            betas[layer, level, transitions(mask, layer, level)] = alphas[name]
    return betas
