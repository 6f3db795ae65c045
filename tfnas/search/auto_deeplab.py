"""The network-level core of Auto-DeepLab (Liu et al. 2019, "Auto-DeepLab: Hierarchical
Neural Architecture Search for Semantic Image Segmentation", arXiv 1901.02985): the trellis
of downsampling rates, the normalisation of its transition weights (the betas) and the
Viterbi decoding of the maximum-probability resolution path.

The trellis has `num_layers` layers; every layer has one node per downsampling rate
(`RATES`, /4, /8, /16, /32). The stem ends at /4 (level 0). Node `(l, s)` mixes the outputs of
the previous layer at the same rate, at the finer rate (`s - 1`, downsampled by the cell) and
at the coarser rate (`s + 1`, upsampled) with the weights `beta[l, src, k]`, where `k` is the
direction of the transition out of `src`: 0 up to a finer rate (`src - 1`), 1 same, 2 down to
a coarser rate (`src + 1`). As in the paper (Sec. 3.2, "beta_{s->s/2} + beta_{s->s} +
beta_{s->2s} = 1") the weights are a softmax over the transitions *out of* each node, so a
path's probability is the product of its transitions and the best path is found by Viterbi
(Sec. 3.3).

A node is reachable at layer `l` if `level <= l + 1` (one step coarser per layer from the
stem); transitions into or out of unreachable nodes, and off the ends of the rates, are
masked.

Deliberate deviation: the unofficial PyTorch code (NoamRosenberg/autodeeplab,
`decoding_formulas.py`) scales the softmax of the two-way border nodes (/4 and /32) by 2/3;
the paper states the plain normalisation, which is what this module does.

No TensorFlow or Keras here: the Keras side is `tfnas.spaces.auto_deeplab`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Downsampling rates of the trellis levels (the paper's 4, 8, 16, 32).
RATES = (4, 8, 16, 32)

# Transition directions out of a node: to the finer level, the same, the coarser level.
UP, SAME, DOWN = 0, 1, 2
_OFFSETS = (-1, 0, 1)


def _check_positive_int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
    return int(value)


def reachable(layer: int, level: int) -> bool:
    """Whether node `(layer, level)` is on some path from the /4 stem (`level <= layer + 1`)."""
    return 0 <= level <= layer + 1


def transition_mask(num_layers: int, num_levels: int = len(RATES)) -> np.ndarray:
    """The valid transitions of the trellis, a bool array `(num_layers, num_levels, 3)`.

    `mask[l, src, k]` is True when layer `l` has a transition from level `src` of layer
    `l - 1` (the stem, level 0, for `l == 0`) in direction `k` (`UP`, `SAME`, `DOWN`) to a
    reachable level of layer `l`.

    Raises:
        ValueError: for `num_layers` or `num_levels` below 1.
    """
    num_layers = _check_positive_int("num_layers", num_layers)
    num_levels = _check_positive_int("num_levels", num_levels)
    mask = np.zeros((num_layers, num_levels, 3), dtype=bool)
    for layer, src, k in itertools.product(range(num_layers), range(num_levels), range(3)):
        dst = src + _OFFSETS[k]
        src_ok = src == 0 if layer == 0 else reachable(layer - 1, src)
        mask[layer, src, k] = src_ok and 0 <= dst < num_levels and reachable(layer, dst)
    return mask


def normalize_betas(betas: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Softmax of `betas` over the valid transitions out of each node; invalid ones get 0.

    Args:
        betas: Logits, shape `(num_layers, num_levels, 3)`.
        mask: `transition_mask` of the same shape.

    Returns:
        The transition probabilities: every reachable node's outgoing transitions sum to 1.

    Raises:
        ValueError: if the shapes differ.
    """
    betas = np.asarray(betas, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if betas.shape != mask.shape:
        raise ValueError(
            f"`betas` must have the mask's shape {mask.shape}. Received: betas.shape={betas.shape}"
        )
    logits = np.where(mask, betas, -np.inf)
    top = np.max(logits, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    exp = np.where(mask, np.exp(logits - top), 0.0)
    total = exp.sum(axis=-1, keepdims=True)
    return np.divide(exp, total, out=np.zeros_like(exp), where=total > 0)


def path_probability(probs: np.ndarray, path: Sequence[int]) -> float:
    """The product of the transition probabilities along `path` (one level per layer)."""
    probs = np.asarray(probs)
    prob, src = 1.0, 0
    for layer, dst in enumerate(path):
        k = int(dst) - src + 1
        if not 0 <= k < 3:
            return 0.0
        prob *= float(probs[layer, src, k])
        src = int(dst)
    return prob


def viterbi_path(probs: np.ndarray) -> list[int]:
    """The maximum-probability path through the trellis (the paper's Sec. 3.3 decoding).

    Args:
        probs: Normalised transition probabilities `(num_layers, num_levels, 3)`, as from
            `normalize_betas`.

    Returns:
        The level (index into `RATES`) of every layer, from the first to the last. Ties go
        to the finer level (the first maximum).

    Raises:
        ValueError: if `probs` is not 3-D with a last axis of 3.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 3 or probs.shape[-1] != 3:
        raise ValueError(
            "`probs` must have shape (num_layers, num_levels, 3). Received: "
            f"probs.shape={probs.shape}"
        )
    num_layers, num_levels, _ = probs.shape
    # best[s]: probability of the best path ending at level s of the current layer.
    best = np.zeros(num_levels)
    best[0] = 1.0  # the stem
    back = np.zeros((num_layers, num_levels), dtype=int)
    for layer in range(num_layers):
        new = np.zeros(num_levels)
        for dst in range(num_levels):
            for src in (dst - 1, dst, dst + 1):
                if not 0 <= src < num_levels:
                    continue
                value = best[src] * probs[layer, src, dst - src + 1]
                if value > new[dst]:
                    new[dst], back[layer, dst] = value, src
        best = new
    path = [int(np.argmax(best))]
    for layer in range(num_layers - 1, 0, -1):
        path.append(int(back[layer, path[-1]]))
    return path[::-1]


def path_rates(path: Sequence[int]) -> list[int]:
    """The downsampling rate of every layer of a decoded path (`RATES[level]`)."""
    return [RATES[level] for level in path]


def validate_path(path: Sequence[int], num_levels: int = len(RATES)) -> list[int]:
    """Checks that `path` starts at /4 or /8 and moves at most one level per layer.

    Returns:
        The path as a list of ints.

    Raises:
        ValueError: naming the first bad step.
    """
    path = [int(level) for level in path]
    if not path:
        raise ValueError(f"`path` must have at least one layer. Received: path={path!r}")
    src = 0
    for layer, dst in enumerate(path):
        if not 0 <= dst < num_levels or abs(dst - src) > 1:
            raise ValueError(
                f"`path` must move at most one level per layer within 0..{num_levels - 1}, "
                f"from level 0 (the stem). Received: path={path!r} (layer {layer})"
            )
        src = dst
    return path


def project_path(levels: Sequence[int], num_levels: int = len(RATES)) -> list[int]:
    """The valid path nearest to independently chosen levels, layer by layer.

    Each layer's level is clamped to within one level of the previous layer's (the stem's
    /4 for layer 0) and to `0..num_levels - 1`. A valid path is returned unchanged, so
    samplers that choose each `network/layer{l}` on its own (random search, evolution)
    build valid networks, and equal values always build the same one.
    """
    path, src = [], 0
    for level in levels:
        src = min(max(int(level), src - 1, 0), src + 1, num_levels - 1)
        path.append(src)
    return path


def architecture_to_json(cell: Mapping[str, Any], path: Sequence[int]) -> dict[str, Any]:
    """A plain JSON dict of a decoded architecture: the cell genotype and the path."""
    path = validate_path(path)
    return {"cell": dict(cell), "path": path, "rates": path_rates(path)}


def architecture_from_json(state: Mapping[str, Any]) -> tuple[dict[str, Any], list[int]]:
    """Inverse of `architecture_to_json`: `(cell, path)`."""
    for key in ("cell", "path"):
        if key not in state:
            raise ValueError(
                f"An Auto-DeepLab architecture needs key {key!r}. Received keys: {sorted(state)}"
            )
    return dict(state["cell"]), validate_path(state["path"])
