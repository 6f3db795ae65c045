"""The architecture-step plug-ins of TAS (Dong & Yang 2019): its FLOPs loss and its sampling.

`ExpectedFlopsLoss` is the `loss_term` of TAS's alpha step (`FirstOrderStep`), the
authors' `get_flop_loss`: with `E[F]` the expected multiply-adds of the searched
convolutions under softmax(alpha) and `F` those of the current argmax shape,

    loss = weight * log(E[F])    if F > target              (shrink)
         = -weight * log(E[F])   if F < target - tolerance  (grow)
         = 0                     otherwise,

`target = flops_ratio * F_max`, `tolerance = flops_tolerance * F_max` (the paper's
defaults: weight 2, tolerance 0.05). `E[F]` follows the authors' `search_forward`: per
convolution `MACs/(in*out) * E[in] * E[out] * P(its block is kept)`, `E[out]` the
softmax-weighted width, `E[in]` that of the convolution feeding it, `P` the probability
that its stage's depth reaches its block.

`TransformableSampling` is the `resample` hook run before the alpha step and before the
weight step: fresh Gumbel noise, the temperature of the schedule, and the two widths per
choice, drawn from the oracle's seeded training random state.
"""

from __future__ import annotations

import keras
import numpy as np

from tfnas.blocks.transformable import is_width_choice
from tfnas.engine.architecture_steps import GumbelSampling
from tfnas.engine.supernet import choice_layers
from tfnas.search import tas


def shape_layers(supernet: keras.Model) -> list[tas.ShapeLayer]:
    """The width-searchable convolutions of a supernet built with TAS's views."""
    layers = []
    for choice in choice_layers(supernet):
        if not is_width_choice(choice):
            continue
        shared = choice.candidates[0].shared
        layers.append(
            tas.ShapeLayer(
                choice=choice.choice_name,
                widths=tuple(view.filters for view in choice.candidates),
                input_choice=shared.input_choice,
                in_channels=int(shared.in_channels),
                macs_per_channel_pair=shared.macs_per_channel_pair,
                depth=shared.depth,
                depthwise=shared.depthwise,
            )
        )
    return layers


class ExpectedFlopsLoss:
    """TAS's FLOPs term of the alpha loss (see the module docstring).

    Args:
        flops_ratio: the target as a share of the unpruned network's multiply-adds, in
            (0, 1].
        weight: the term's weight (TAS: 2).
        tolerance: the band below the target, as a share of the unpruned multiply-adds
            (TAS: 0.05).

    Raises (at `connect`):
        ValueError: when the smallest network of the space is above the target (the
            message gives the smallest reachable ratio), or a convolution names an input
            choice the supernet lacks.
    """

    def __init__(self, flops_ratio: float, weight: float = 2.0, tolerance: float = 0.05):
        self.flops_ratio, self.weight = float(flops_ratio), float(weight)
        self.tolerance = float(tolerance)
        self.layers: list[tas.ShapeLayer] = []
        self.depth_values: dict[str, list[int]] = {}
        self.largest = self.smallest = self.target = 0.0
        self._rule = None

    def connect(self, supernet: keras.Model, rule) -> None:
        self._rule = rule
        self.layers = shape_layers(supernet)
        if not self.layers:
            raise ValueError(
                "TAS found no width-searchable convolution in the supernet: build the space "
                "with tfnas.blocks.transformable views (e.g. tfnas.spaces.ResNetSpace)."
            )
        names = {layer.choice for layer in self.layers}
        for layer in self.layers:
            if layer.input_choice is not None and layer.input_choice not in names:
                raise ValueError(
                    f"Width choice {layer.choice!r} reads the output of {layer.input_choice!r}, "
                    "which is not a width choice of this supernet."
                )
        self.depth_values = {
            name: [int(next(iter(v.values()))) for v in values]
            for name, values in rule.structure()["depths"].items()
        }
        self.largest = tas.extreme_macs(self.layers, self.depth_values, largest=True)
        self.smallest = tas.extreme_macs(self.layers, self.depth_values, largest=False)
        self.target = tas.check_target(self.flops_ratio, self.largest, self.smallest)

    def _macs(self, width_weights, depth_weights):
        """`sum MACs/(in*out) * in * out * P(kept)` with the widths `width_weights[name] @
        widths` and the depth distributions `depth_weights`, in millions."""
        ops = keras.ops
        expected_widths = {
            layer.choice: ops.sum(width_weights[layer.choice] * np.asarray(layer.widths, "float32"))
            for layer in self.layers
        }
        total = 0.0
        for layer in self.layers:
            if layer.depthwise:
                in_channels = 1.0
            elif layer.input_choice is None:
                in_channels = float(layer.in_channels)
            else:
                in_channels = expected_widths[layer.input_choice]
            term = layer.macs_per_channel_pair * in_channels * expected_widths[layer.choice]
            if layer.depth is not None:
                name, blocks = layer.depth
                kept = np.asarray([d >= blocks for d in self.depth_values[name]], "float32")
                term = term * ops.sum(depth_weights[name] * kept)
            total = total + term
        return total / 1e6

    def _weights(self, argmax: bool):
        ops = keras.ops
        names = {layer.choice for layer in self.layers} | set(self.depth_values)
        weights = {}
        for name in names:
            logits = self._rule.masked_logits(name) + 0.0  # A tensor, not the variable.
            if argmax:
                weights[name] = ops.one_hot(ops.argmax(logits), int(logits.shape[0]))
            else:
                weights[name] = ops.softmax(logits)
        return weights

    def expected_macs(self):
        """E[F] under softmax(alpha), in millions (a tensor, differentiable in alpha)."""
        weights = self._weights(argmax=False)
        return self._macs(weights, weights)

    def current_macs(self):
        """F of the argmax shape, in millions (a tensor)."""
        weights = self._weights(argmax=True)
        return self._macs(weights, weights)

    def __call__(self):
        ops = keras.ops
        current = self.current_macs()
        direction = ops.where(
            current > self.target,
            1.0,
            ops.where(current < self.target - self.tolerance * self.largest, -1.0, 0.0),
        )
        return self.weight * ops.stop_gradient(direction) * ops.log(self.expected_macs())


class TransformableSampling(GumbelSampling):
    """A `resample` hook: Gumbel noise, the temperature, and two widths per choice.

    Args:
        rng: returns the generator the samples are drawn from (read at each call, so a
            restored state is used).
        temperature: `temperature(progress)`, tau after `progress` of the search.
    """

    def __call__(self, rule, progress: float) -> None:
        super().__call__(rule, progress)
        rule.set_pairs(rule.sample_pairs(self.rng()))
