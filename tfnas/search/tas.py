"""The numeric core of TAS (Dong & Yang 2019, "Network Pruning via Transformable
Architecture Search", arXiv 1905.09717): candidate widths and depths, the temperature
schedule, channel-wise interpolation and the FLOPs of a network shape.

No TensorFlow or Keras here: the Keras side is `tfnas.blocks.transformable` (the width
views), `tfnas.blocks.rules.transformable` (the mixing rule) and
`tfnas.engine.tas_steps` (the FLOPs loss). Values follow the authors' code
(`xautodl/models/shape_searchs/SoftSelect.py`, `SearchCifarResNet.py`,
`procedures/search_main_v2.py`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# The fractions of a layer's channels TAS searches (`get_width_choices`).
WIDTH_FRACTIONS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def width_choices(channels: int, fractions: Sequence[float] = WIDTH_FRACTIONS) -> list[int]:
    """The candidate channel counts of a layer of `channels` channels, ascending.

    As the authors' `get_width_choices`: `int(channels * f)` for every fraction, duplicates
    removed; counts of 0 are dropped (a layer keeps at least one channel).

    Raises:
        ValueError: for a non-positive `channels` or fractions outside (0, 1].
    """
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise ValueError(f"channels must be an int >= 1. Received: channels={channels!r}")
    fractions = list(fractions)
    if not fractions or any(not (0.0 < float(f) <= 1.0) for f in fractions):
        raise ValueError(
            f"width fractions must be a non-empty list of numbers in (0, 1]. Received: "
            f"fractions={fractions!r}"
        )
    widths = sorted({int(channels * float(f)) for f in fractions} - {0})
    return widths or [channels]


def depth_choices(blocks: int) -> list[int]:
    """The candidate block counts of a stage of `blocks` blocks (the authors'
    `get_depth_choices`): all of 1..3 for up to 3 blocks, else 1, 3, 5, ... and `blocks`.

    Raises:
        ValueError: for `blocks` < 1.
    """
    if not isinstance(blocks, int) or isinstance(blocks, bool) or blocks < 1:
        raise ValueError(f"blocks must be an int >= 1. Received: blocks={blocks!r}")
    if blocks <= 3:
        return list(range(1, blocks + 1))
    choices = list(range(1, blocks + 1, 2))
    if choices[-1] != blocks:
        choices.append(blocks)
    return choices


def temperature_at(progress: float, tau_max: float = 5.0, tau_min: float = 0.1) -> float:
    """The Gumbel-softmax temperature after `progress` (in [0, 1]) of the search: cosine
    from `tau_max` to `tau_min`, as the authors' `set_tau` (their defaults 5 and 0.1)."""
    progress = min(max(float(progress), 0.0), 1.0)
    return tau_min + (tau_max - tau_min) * (1.0 + math.cos(math.pi * progress)) / 2.0


def flops_direction(current: float, target: float, tolerance: float) -> float:
    """The sign of TAS's FLOPs loss `sign * log(E[FLOPs])` (`get_flop_loss`).

    +1 (shrink) when the current (argmax) shape has more FLOPs than `target`, -1 (grow)
    when it has fewer than `target - tolerance`, 0 inside the band.
    """
    if current > target:
        return 1.0
    if current < target - tolerance:
        return -1.0
    return 0.0


def interpolation_matrix(width: int, output: int, channels: int) -> np.ndarray:
    """Channel-wise interpolation (CWI) as a `channels x channels` matrix.

    `x @ M` maps a tensor whose first `width` channels are set (the rest zero) to one whose
    first `output` channels are the adaptive average pooling of those `width` channels to
    `output` (the authors' `ChannelWiseInterV2`, `adaptive_avg_pool3d` over channels:
    output channel o averages inputs `floor(o*width/output)` to `ceil((o+1)*width/output)`),
    the rest zero. `width == output` gives the identity on the first `width` channels.
    """
    matrix = np.zeros((channels, channels), dtype="float32")
    for o in range(output):
        start = (o * width) // output
        stop = -((-(o + 1) * width) // output)
        matrix[start:stop, o] = 1.0 / (stop - start)
    return matrix


def interpolation_matrices(widths: Sequence[int], channels: int) -> np.ndarray:
    """`M[i, j]`: the CWI matrix from `widths[i]` to `widths[j]` channels (shape
    `(n, n, channels, channels)`)."""
    n = len(widths)
    matrices = np.zeros((n, n, channels, channels), dtype="float32")
    for i, width in enumerate(widths):
        for j, output in enumerate(widths):
            matrices[i, j] = interpolation_matrix(width, output, channels)
    return matrices


@dataclass(frozen=True)
class ShapeLayer:
    """One width-searchable convolution, as the FLOPs count sees it.

    Attributes:
        choice: the name of its width choice (layers sharing it share the width).
        widths: its candidate output channel counts.
        input_choice: the width choice that produces its input, or None for a fixed input.
        in_channels: its input channels when `input_choice` is None.
        macs_per_channel_pair: multiply-adds per input and output channel
            (kernel height x width x output height x width).
        depth: `(depth choice, blocks)`: the layer runs only when that stage keeps at least
            `blocks` blocks; None for a layer outside any depth choice.
        depthwise: a depthwise convolution: `macs_per_channel_pair` per output channel
            (its input is its output's width; `input_choice` is not counted).
    """

    choice: str
    widths: tuple[int, ...]
    input_choice: str | None
    in_channels: int
    macs_per_channel_pair: int
    depth: tuple[str, int] | None = None
    depthwise: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "choice": self.choice,
            "widths": list(self.widths),
            "input_choice": self.input_choice,
            "in_channels": self.in_channels,
            "macs_per_channel_pair": self.macs_per_channel_pair,
            "depth": None if self.depth is None else list(self.depth),
            "depthwise": self.depthwise,
        }


def shape_macs(
    layers: Sequence[ShapeLayer],
    widths: Mapping[str, int],
    depths: Mapping[str, int],
) -> float:
    """Multiply-adds (millions) of the searched convolutions for one network shape.

    Args:
        layers: the width-searchable convolutions.
        widths: `{width choice: channels}` (every layer's choice).
        depths: `{depth choice: blocks kept}`.

    Returns:
        `sum(macs_per_channel_pair * in * out) / 1e6` over the layers the depths keep, as
        the authors' `get_flop("genotype")` (their classifier term is left out here).
    """
    total = 0.0
    for layer in layers:
        if layer.depth is not None and depths[layer.depth[0]] < layer.depth[1]:
            continue
        source = layer.input_choice
        if layer.depthwise:
            in_channels = 1
        else:
            in_channels = layer.in_channels if source is None else widths[source]
        total += layer.macs_per_channel_pair * in_channels * widths[layer.choice]
    return total / 1e6


def extreme_macs(
    layers: Sequence[ShapeLayer], depth_values: Mapping[str, Sequence[int]], largest: bool
) -> float:
    """`shape_macs` of the largest (every width and depth at its maximum) or the smallest
    shape."""
    pick = max if largest else min
    widths = {layer.choice: pick(layer.widths) for layer in layers}
    depths = {name: pick(values) for name, values in depth_values.items()}
    return shape_macs(layers, widths, depths)


def check_target(target_ratio: float, largest: float, smallest: float) -> float:
    """The FLOPs target (millions of multiply-adds) `target_ratio * largest`.

    Raises:
        ValueError: when even the smallest shape exceeds the target; the message gives the
            smallest reachable ratio.
    """
    target = float(target_ratio) * largest
    if smallest > target:
        raise ValueError(
            f"flops_ratio={target_ratio} asks for {target:.4f} M multiply-adds, below the "
            f"smallest network the space can reach ({smallest:.4f} M of {largest:.4f} M, "
            f"ratio {smallest / largest:.3f}). Pass flops_ratio >= "
            f"{math.ceil(smallest / largest * 1000) / 1000:.3f}, or a space with smaller "
            "width fractions."
        )
    return target
