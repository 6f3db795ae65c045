"""`ResNetSpace`: the CIFAR ResNet of TAS (Dong & Yang 2019) with searchable widths and depths.

He et al.'s CIFAR ResNet-(6n+2): a 3x3 stem, three stages of n basic blocks (16, 32, 64
filters at the published size; stride 2 at the start of stages 2 and 3), global average
pooling and a dense classifier, as the authors' `SearchShapeCifarResNet`. Every
convolution's output width is a choice among `tfnas.search.tas.width_choices` (30% to 100%
of its channels); every stage's block count is a choice among
`tfnas.search.tas.depth_choices` (1, 3, 5, ..., n).

Fixed mode builds the pruned network: each convolution at its chosen width; a residual
sum whose two sides differ in width gets a 1x1 convolution and batch norm on the shortcut
(the shortcut the authors add when they train a searched shape); the stride-2 shortcut is
2x2 average pooling and a 1x1 convolution (no batch norm) at the width of its block's
second convolution, with which it shares its width choice (as in the authors' code).

Supernet mode (any weight-sharing oracle; TAS is the one it is made for) builds every
convolution once at full width, its candidate widths as `tfnas.blocks.transformable`
views, residual sums of zero-padded tensors and `repeat` depth choices.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import keras_tuner

from tfnas.blocks import mixing_rule_of, repeat
from tfnas.blocks.transformable import PaddedDense, residual_sum, width_conv
from tfnas.search import tas
from tfnas.spaces.common import validate_common
from tfnas.validation import check_int


class ResNetSpace(keras_tuner.HyperModel):
    """TAS's CIFAR ResNet with searchable widths and depths (see the module docstring).

    Args:
        input_shape: the images' shape (height, width, channels).
        num_classes: number of classes.
        depth: 6n + 2 layers (n basic blocks per stage): 20, 32, 56, 110, ...
        base_filters: the first stage's width (16 in the paper); stages double it.
        width_fractions: the searched fractions of every convolution's width.
        search_depth: search each stage's block count (else every block is kept).
        learning_rate: Adam's learning rate (the paper trains with SGD on CIFAR for
            hundreds of epochs; the tfnas spaces compile with Adam for short runs).
        batch_norm_momentum: the batch norms' momentum.
        name: the model name.

    Example:

    ```python
    space = tfnas.spaces.ResNetSpace((8, 8, 1), 10, depth=14, base_filters=8)
    tuner = tfnas.Tuner(space, oracle=tfnas.oracles.TAS(flops_ratio=0.5), ...)
    ```
    """

    supernet_form = True

    def __init__(
        self,
        input_shape: Sequence[int] = (32, 32, 3),
        num_classes: int = 10,
        *,
        depth: int = 20,
        base_filters: int = 16,
        width_fractions: Sequence[float] = tas.WIDTH_FRACTIONS,
        search_depth: bool = True,
        learning_rate: float = 1e-3,
        batch_norm_momentum: float = 0.9,
        name: str = "resnet",
    ):
        input_shape = tuple(input_shape)
        validate_common(input_shape, num_classes, learning_rate)
        check_int("depth", depth, 8)
        if (depth - 2) % 6:
            raise ValueError(
                f"depth must be 6n + 2 (n basic blocks per stage: 8, 14, 20, 32, 56, 110). "
                f"Received: depth={depth!r}"
            )
        check_int("base_filters", base_filters, 2)
        tas.width_choices(base_filters, width_fractions)  # Checks the fractions.
        super().__init__(name=name)
        self.input_shape, self.num_classes = input_shape, int(num_classes)
        self.depth, self.base_filters = int(depth), int(base_filters)
        self.blocks_per_stage = (self.depth - 2) // 6
        self.width_fractions = tuple(float(f) for f in width_fractions)
        self.search_depth = bool(search_depth)
        self.learning_rate = float(learning_rate)
        self.batch_norm_momentum = float(batch_norm_momentum)

    def widths(self, channels: int) -> list[int]:
        """The candidate widths of a convolution of `channels` channels."""
        return tas.width_choices(channels, self.width_fractions)

    def _conv(self, hp, name: str, x, filters: int, kernel_size: int, **kwargs):
        return width_conv(hp, name, x, filters, kernel_size, self.widths(filters),
                          batch_norm_momentum=self.batch_norm_momentum, **kwargs)  # fmt: skip

    def _residual(self, supernet: bool, shortcut, main):
        """The residual sum and ReLU."""
        x = residual_sum(supernet, shortcut, main, self.batch_norm_momentum)
        return keras.layers.ReLU()(x)

    def build(self, hp):
        supernet = mixing_rule_of(hp) is not None
        inputs = keras.Input(self.input_shape)
        x = self._conv(hp, "stem", inputs, self.base_filters, 3)
        previous = "stem"  # The width choice whose output feeds the next block.
        n = self.blocks_per_stage
        for stage in range(3):
            planes = self.base_filters * 2**stage
            depth_name = f"stage{stage}/depth"
            searched_depth = self.search_depth and n > 1

            def block(index, x, stage=stage, planes=planes, first_input=previous,
                      depth_name=depth_name, searched_depth=searched_depth):  # fmt: skip
                prefix = f"stage{stage}/block{index}"
                strides = 2 if stage > 0 and index == 0 else 1
                input_choice = first_input if index == 0 else f"stage{stage}/block{index - 1}/b"
                depth = (depth_name, index + 1) if searched_depth else None
                a = self._conv(hp, f"{prefix}/a", x, planes, 3, strides=strides,
                               input_choice=input_choice, depth=depth)  # fmt: skip
                b = self._conv(hp, f"{prefix}/b", a, planes, 3, activation=None,
                               input_choice=f"{prefix}/a", depth=depth)  # fmt: skip
                shortcut = x
                if strides == 2:
                    # Shares the width choice of `b`, so both sides of the sum agree.
                    shortcut = self._conv(hp, f"{prefix}/b", x, planes, 1, pool=True,
                                          batch_norm=False, activation=None,
                                          input_choice=input_choice, depth=depth)  # fmt: skip
                return self._residual(supernet, shortcut, b)

            if searched_depth:
                x = repeat(hp, depth_name, tas.depth_choices(n), block, x)
            else:
                for index in range(n):
                    x = block(index, x)
            previous = f"stage{stage}/block{n - 1}/b"
        x = keras.layers.GlobalAveragePooling2D(name="logits_pool")(x)
        head = PaddedDense if supernet else keras.layers.Dense
        outputs = head(self.num_classes, name="logits")(x)
        model = keras.Model(inputs, outputs, name=self.name)
        model.compile(
            keras.optimizers.Adam(self.learning_rate),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    def uniform_values(self, fraction: float = 1.0) -> dict:
        """The architecture that scales every convolution's width by `fraction` (the
        largest candidate width at most `fraction` of its channels, at least the smallest)
        and keeps every block: `fraction=1.0` is the unpruned network; TAS's uniform
        baseline at a FLOPs ratio r uses `fraction=sqrt(r)`."""
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"fraction must be in (0, 1]. Received: fraction={fraction!r}")

        def width(channels):
            widths = self.widths(channels)
            kept = [w for w in widths if w <= fraction * channels + 1e-9]
            return max(kept) if kept else widths[0]

        n = self.blocks_per_stage
        values = {"stem/filters": width(self.base_filters)}
        for stage in range(3):
            planes = self.base_filters * 2**stage
            if self.search_depth and n > 1:
                values[f"stage{stage}/depth"] = n
            for index in range(n):
                for conv in ("a", "b"):
                    values[f"stage{stage}/block{index}/{conv}/filters"] = width(planes)
        return values
