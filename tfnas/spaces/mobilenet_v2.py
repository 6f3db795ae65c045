"""`MobileNetV2Space`: MobileNetV2 (Sandler et al. 2018) with TAS's searchable widths and depths.

The network of `keras.applications.MobileNetV2` (alpha 1): a 3x3 stem of 32 filters,
inverted-residual blocks (1x1 expansion by t, 3x3 depthwise, linear 1x1 projection,
identity shortcut where stride and width allow) in the stages (t, c, n, s) of the paper's
Table 2, a 1x1 head of 1280 filters, global average pooling and a dense classifier. For
TAS (`tfnas.oracles.TAS`) every convolution's output width is a choice among
`tfnas.search.tas.width_choices`; a depthwise convolution keeps its input's width (it
shares the choice of the expansion before it); every stage's block count is a choice
among `tfnas.search.tas.depth_choices`. Fixed mode builds the pruned network (a 1x1
projection where a residual sum's widths differ); supernet mode shares one kernel per
convolution among its widths (`tfnas.blocks.transformable`).
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

# (expansion t, filters c, blocks n, stride s) of the paper's Table 2.
MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip


class MobileNetV2Space(keras_tuner.HyperModel):
    """MobileNetV2 with searchable widths and depths (see the module docstring).

    Args:
        input_shape: the images' shape (height, width, channels).
        num_classes: number of classes.
        stages: `(expansion, filters, blocks, strides)` per stage (default the paper's).
        stem_filters, stem_strides: the 3x3 stem (32, 2 in the paper).
        head_filters: the last 1x1 convolution (1280).
        width_fractions: the searched fractions of every convolution's width.
        search_depth: search each stage's block count (else every block is kept).
        learning_rate: Adam's learning rate.
        batch_norm_momentum: the batch norms' momentum.
        name: the model name.
    """

    supernet_form = True

    def __init__(
        self,
        input_shape: Sequence[int] = (224, 224, 3),
        num_classes: int = 1000,
        *,
        stages: Sequence[Sequence[int]] = MOBILENET_V2,
        stem_filters: int = 32,
        stem_strides: int = 2,
        head_filters: int = 1280,
        width_fractions: Sequence[float] = tas.WIDTH_FRACTIONS,
        search_depth: bool = True,
        learning_rate: float = 1e-3,
        batch_norm_momentum: float = 0.9,
        name: str = "mobilenet_v2",
    ):
        input_shape = tuple(input_shape)
        validate_common(input_shape, num_classes, learning_rate)
        stages = tuple(tuple(stage) for stage in stages)
        if not stages or any(
            len(stage) != 4
            or not all(isinstance(v, int) and v >= 1 for v in stage)
            or stage[3] not in (1, 2)
            for stage in stages
        ):
            raise ValueError(
                "stages must be (expansion, filters, blocks, strides) tuples of ints >= 1, "
                f"strides 1 or 2. Received: stages={stages!r}"
            )
        check_int("stem_filters", stem_filters, 2)
        check_int("head_filters", head_filters, 2)
        if stem_strides not in (1, 2):
            raise ValueError(
                f"stem_strides must be 1 or 2. Received: stem_strides={stem_strides!r}"
            )
        tas.width_choices(stem_filters, width_fractions)  # Checks the fractions.
        super().__init__(name=name)
        self.input_shape, self.num_classes = input_shape, int(num_classes)
        self.stages = stages
        self.stem_filters, self.stem_strides = int(stem_filters), int(stem_strides)
        self.head_filters = int(head_filters)
        self.width_fractions = tuple(float(f) for f in width_fractions)
        self.search_depth = bool(search_depth)
        self.learning_rate = float(learning_rate)
        self.batch_norm_momentum = float(batch_norm_momentum)

    def widths(self, channels: int) -> list[int]:
        """The candidate widths of a convolution of `channels` channels."""
        return tas.width_choices(channels, self.width_fractions)

    def _conv(self, hp, name, x, filters, kernel_size, **kwargs):
        return width_conv(hp, name, x, filters, kernel_size, self.widths(filters),
                          batch_norm_momentum=self.batch_norm_momentum, **kwargs)  # fmt: skip

    def build(self, hp):
        supernet = mixing_rule_of(hp) is not None
        inputs = keras.Input(self.input_shape)
        x = self._conv(hp, "stem", inputs, self.stem_filters, 3, strides=self.stem_strides,
                       activation="relu6")  # fmt: skip
        previous, channels = "stem", self.stem_filters
        for index, (expansion, filters, blocks, strides) in enumerate(self.stages):
            depth_name = f"stage{index}/depth"
            searched_depth = self.search_depth and blocks > 1

            def block(b, x, stage=index, expansion=expansion, filters=filters, strides=strides,
                      first_input=previous, first_channels=channels, depth_name=depth_name,
                      searched_depth=searched_depth):  # fmt: skip
                prefix = f"stage{stage}/block{b}"
                source = first_input if b == 0 else f"stage{stage}/block{b - 1}/project"
                in_channels = first_channels if b == 0 else filters
                depth = (depth_name, b + 1) if searched_depth else None
                y, expanded = x, source
                if expansion != 1:
                    expanded = f"{prefix}/expand"
                    y = self._conv(hp, expanded, y, in_channels * expansion, 1,
                                   activation="relu6", input_choice=source,
                                   depth=depth)  # fmt: skip
                # The depthwise convolution keeps (and shares) its input's width choice.
                y = self._conv(hp, expanded, y, in_channels * expansion, 3,
                               strides=strides if b == 0 else 1, depthwise=True,
                               activation="relu6", input_choice=expanded,
                               depth=depth)  # fmt: skip
                y = self._conv(hp, f"{prefix}/project", y, filters, 1, activation=None,
                               input_choice=expanded, depth=depth)  # fmt: skip
                if (strides == 1 or b > 0) and in_channels == filters:
                    y = residual_sum(supernet, x, y, self.batch_norm_momentum)
                return y

            if searched_depth:
                x = repeat(hp, depth_name, tas.depth_choices(blocks), block, x)
            else:
                for b in range(blocks):
                    x = block(b, x)
            previous, channels = f"stage{index}/block{blocks - 1}/project", filters
        x = self._conv(hp, "head", x, self.head_filters, 1, activation="relu6",
                       input_choice=previous)  # fmt: skip
        x = keras.layers.GlobalAveragePooling2D(name="logits_pool")(x)
        head = PaddedDense if supernet else keras.layers.Dense
        model = keras.Model(inputs, head(self.num_classes, name="logits")(x), name=self.name)
        model.compile(
            keras.optimizers.Adam(self.learning_rate),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    def uniform_values(self, fraction: float = 1.0) -> dict:
        """Every convolution's width scaled by `fraction` (the largest candidate at most
        `fraction` of its channels, at least the smallest), every block kept: 1.0 is
        MobileNetV2 itself; TAS's uniform baseline at FLOPs ratio r is about sqrt(r)."""
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"fraction must be in (0, 1]. Received: fraction={fraction!r}")

        def width(channels):
            widths = self.widths(channels)
            kept = [w for w in widths if w <= fraction * channels + 1e-9]
            return max(kept) if kept else widths[0]

        values = {"stem/filters": width(self.stem_filters)}
        channels = self.stem_filters
        for index, (expansion, filters, blocks, _) in enumerate(self.stages):
            if self.search_depth and blocks > 1:
                values[f"stage{index}/depth"] = blocks
            for b in range(blocks):
                prefix = f"stage{index}/block{b}"
                in_channels = channels if b == 0 else filters
                if expansion != 1:
                    values[f"{prefix}/expand/filters"] = width(in_channels * expansion)
                values[f"{prefix}/project/filters"] = width(filters)
            channels = filters
        values["head/filters"] = width(self.head_filters)
        return values
