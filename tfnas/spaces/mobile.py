"""The mobile search space of MnasNet / ProxylessNAS / FBNet: stacked MBConv blocks.

A stem convolution, stages of inverted-residual (MBConv) blocks, a 1x1 head convolution,
global pooling and a classifier. Per block the search chooses the depthwise kernel size,
the expansion ratio, squeeze-and-excitation (an SE ratio of 0 means none) and, if several
are given, the activation. Per stage it chooses the depth among `Stage.depths`: dropping
the trailing blocks of a stage is the zero/skip option of ProxylessNAS and FBNet and the
per-stage depth of MnasNet's factorized hierarchical space.

With `joint_ops=True` the space takes the papers' form (ProxylessNAS, FBNet, SPOS, FairNAS,
SCARLET-NAS): one choice per block over its joint operations, e.g. `k3_e3`, `k3_e6`, ...,
`k7_e6` (every kernel size with every expansion, and SE ratio / activation where several
are given), each with its own weights, plus `skip` for every block that a variable-depth
stage can drop. Strict fairness (FairNAS) then holds over each block's operations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import keras_tuner

from tfnas.blocks import ops, shared
from tfnas.blocks.choices import attribute_choice, layer_choice, repeat
from tfnas.spaces.common import classification_head, compile_classifier, validate_common
from tfnas.validation import check_float


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of MBConv blocks: output width, candidate depths, stride of its first block."""

    filters: int
    depths: tuple[int, ...]
    strides: int = 1

    def __post_init__(self):
        depths = (self.depths,) if isinstance(self.depths, int) else tuple(self.depths)
        object.__setattr__(self, "depths", depths)
        if not isinstance(self.filters, int) or self.filters < 1:
            raise ValueError(
                f"Stage filters must be an int >= 1. Received: filters={self.filters!r}"
            )
        if not depths or min(depths) < 1:
            raise ValueError(f"Stage depths must be ints >= 1. Received: depths={self.depths!r}")
        if self.strides not in (1, 2):
            raise ValueError(f"Stage strides must be 1 or 2. Received: strides={self.strides!r}")


# Widths and strides of the MobileNetV2 / MnasNet-A1 macro structures (ImageNet).
MOBILENET_V2_STAGES = tuple(
    Stage(f, d, s)
    for f, d, s in [
        (16, 1, 1),
        (24, 2, 2),
        (32, 3, 2),
        (64, 4, 2),
        (96, 3, 1),
        (160, 3, 2),
        (320, 1, 1),
    ]
)
MNASNET_STAGES = tuple(
    Stage(f, d, s)
    for f, d, s in [
        (16, 1, 1),
        (24, 2, 2),
        (40, 3, 2),
        (80, 4, 2),
        (112, 2, 1),
        (160, 3, 2),
        (320, 1, 1),
    ]
)

SKIP = "skip"

# Per stage: (depth, expansion, kernel_size, se_ratio), as in the papers' released models.
_MOBILENET_V2_BLOCKS = [(1, 1, 3, 0.0)] + [(d, 6, 3, 0.0) for d in (2, 3, 4, 3, 3, 1)]
_MNASNET_A1_BLOCKS = [
    (1, 1, 3, 0.0), (2, 6, 3, 0.0), (3, 3, 5, 0.25), (4, 6, 3, 0.0),
    (2, 6, 3, 0.25), (3, 6, 5, 0.25), (1, 6, 3, 0.0),
]  # fmt: skip


def _published_values(blocks, space: MobileSpace) -> dict:
    if space.joint_ops:
        return _published_joint_values(blocks, space)
    values = {}
    for stage, (depth, expansion, kernel_size, se_ratio) in enumerate(blocks):
        if len(space.stages[stage].depths) > 1:
            values[f"stage{stage}/depth"] = depth
        for block in range(depth):
            prefix = f"stage{stage}/block{block}"
            for attribute, value in (
                ("kernel_size", kernel_size),
                ("expansion", expansion),
                ("se_ratio", se_ratio),
            ):
                if len(getattr(space, attribute + "s")) > 1:
                    values[f"{prefix}/{attribute}"] = value
    return values


def _published_joint_values(blocks, space: MobileSpace) -> dict:
    values = {}
    for stage, (depth, expansion, kernel_size, se_ratio) in enumerate(blocks):
        for block in range(max(space.stages[stage].depths)):
            if block >= depth:
                op = SKIP
            else:
                op = space.op_name(kernel_size, expansion, se_ratio, space.activations[0])
            values[f"stage{stage}/block{block}/op"] = op
    return values


def mobilenet_v2_values(space: MobileSpace) -> dict:
    """MobileNetV2 as hyperparameter values of a space with `MOBILENET_V2_STAGES`."""
    return _published_values(_MOBILENET_V2_BLOCKS, space)


def mnasnet_a1_values(space: MobileSpace) -> dict:
    """MnasNet-A1 as hyperparameter values of a space with `MNASNET_STAGES`."""
    return _published_values(_MNASNET_A1_BLOCKS, space)


class MobileSpace(keras_tuner.HyperModel):
    """MBConv mobile space (MnasNet / ProxylessNAS / FBNet) as a KerasTuner hypermodel.

    Args:
        input_shape: image shape ((224, 224, 3) for ImageNet, (8, 8, 1) for digits).
        num_classes: classifier outputs.
        stages: `Stage`s (widths, candidate depths, strides). Default: the MobileNetV2
            widths with depths searched in 1..4 (1 for the first and last stage).
        stem_filters, stem_strides: the first 3x3 convolution.
        head_filters: the final 1x1 convolution (0 for none).
        kernel_sizes, expansions, se_ratios, activations: the per-block candidates; a
            single value is fixed and not searched.
        dropout: dropout before the classifier.
        learning_rate: Adam learning rate of the compiled model.
        batch_norm_momentum: the batch norms' momentum: 0.999, Keras applications'
            MobileNet setting, by default; trials of a few dozen steps need less (the CLI's
            tiny form uses 0.9), or their moving statistics stay near their initial
            values and the validation accuracy near chance.
        joint_ops: the papers' form: one choice `stage{s}/block{b}/op` per block over
            every (kernel size, expansion[, SE ratio][, activation]) operation, named
            `k{k}_e{e}[_se{r}][_{activation}]`, plus `skip` for blocks `b >= min(depths)`
            of a stage whose depth varies (any of them may skip, so the depth is any
            number in `[min(depths), max(depths)]`: the depths must be consecutive).
            Default False: per-attribute choices with shared weights and a `repeat` depth.

    Example:

    ```python
    space = tfnas.spaces.MobileSpace(
        (8, 8, 1), 10, stem_filters=8, stem_strides=1, head_filters=32,
        stages=[tfnas.spaces.Stage(8, (1, 2)), tfnas.spaces.Stage(16, (1, 2), 2)])
    # FairNAS's form: 6 operations and skip per block.
    paper = tfnas.spaces.MobileSpace(
        (8, 8, 1), 10, stages=[tfnas.spaces.Stage(8, (1, 2))], kernel_sizes=(3, 5, 7),
        expansions=(3, 6), se_ratios=(0.0,), joint_ops=True)
    ```
    """

    def __init__(
        self,
        input_shape=(224, 224, 3),
        num_classes: int = 1000,
        *,
        stages: Sequence[Stage] | None = None,
        stem_filters: int = 32,
        stem_strides: int = 2,
        head_filters: int = 1280,
        kernel_sizes: Sequence[int] = (3, 5, 7),
        expansions: Sequence[int] = (1, 3, 6),
        se_ratios: Sequence[float] = (0.0, 0.25),
        activations: Sequence[str] = ("relu6",),
        dropout: float = 0.0,
        learning_rate: float = 1e-3,
        batch_norm_momentum: float = 0.999,
        joint_ops: bool = False,
        name: str = "mobile",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        validate_common(input_shape, num_classes, learning_rate)
        if stages is None:
            stages = [
                Stage(s.filters, (1,) if i in (0, 6) else (1, 2, 3, 4), s.strides)
                for i, s in enumerate(MOBILENET_V2_STAGES)
            ]
        stages = tuple(stages)
        if not stages or not all(isinstance(s, Stage) for s in stages):
            raise ValueError(
                "stages must be a non-empty list of tfnas.spaces.Stage. "
                f"Received: stages={stages!r}"
            )
        for arg, values in (
            ("kernel_sizes", kernel_sizes),
            ("expansions", expansions),
            ("se_ratios", se_ratios),
            ("activations", activations),
        ):
            if isinstance(values, (str, int, float)) or not values:
                raise ValueError(f"{arg} must be a non-empty list. Received: {arg}={values!r}")
        if any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(
                f"kernel_sizes must be odd ints. Received: kernel_sizes={kernel_sizes!r}"
            )
        if any(e < 1 for e in expansions):
            raise ValueError(f"expansions must be >= 1. Received: expansions={expansions!r}")
        if any(not 0 <= r <= 1 for r in se_ratios):
            raise ValueError(f"se_ratios must be in [0, 1]. Received: se_ratios={se_ratios!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.stages = stages
        self.stem_filters = stem_filters
        self.stem_strides = stem_strides
        self.head_filters = head_filters
        self.kernel_sizes = tuple(kernel_sizes)
        self.expansions = tuple(expansions)
        self.se_ratios = tuple(float(r) for r in se_ratios)
        self.activations = tuple(activations)
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_norm_momentum = check_float(
            "batch_norm_momentum", batch_norm_momentum, 0, 1, high_inclusive=False
        )
        if not isinstance(joint_ops, bool):
            raise ValueError(f"joint_ops must be True or False. Received: joint_ops={joint_ops!r}")
        self.joint_ops = joint_ops
        if joint_ops:
            for stage in stages:
                low, high = min(stage.depths), max(stage.depths)
                if sorted(stage.depths) != list(range(low, high + 1)):
                    raise ValueError(
                        "With joint_ops=True every block from min(depths) on may skip, so a "
                        "stage's depths must be consecutive. Received: "
                        f"depths={stage.depths!r}"
                    )

    def op_name(self, kernel_size: int, expansion: int, se_ratio: float, activation: str) -> str:
        """The name of a joint operation (`joint_ops=True`), e.g. "k3_e6"."""
        name = f"k{kernel_size}_e{expansion}"
        if len(self.se_ratios) > 1:
            name += f"_se{se_ratio:g}"
        if len(self.activations) > 1:
            name += f"_{activation}"
        return name

    def _joint_block(self, hp, stage_index: int, block_index: int, x):
        stage = self.stages[stage_index]
        strides = stage.strides if block_index == 0 else 1
        input_shape = tuple(x.shape[1:])
        # Plain values only in the factories' closures: `layer_choice` recognises them
        # and checks the candidates' shapes once, not at every build.
        filters, momentum = stage.filters, self.batch_norm_momentum

        def make(kernel_size, expansion, se_ratio, activation):
            return lambda: ops.mbconv(
                input_shape,
                filters,
                kernel_size=kernel_size,
                expansion=expansion,
                strides=strides,
                se_ratio=se_ratio,
                activation=activation,
                batch_norm_momentum=momentum,
            )

        combos = {
            self.op_name(k, e, r, a): dict(kernel_size=k, expansion=e, se_ratio=r, activation=a)
            for k in self.kernel_sizes
            for e in self.expansions
            for r in self.se_ratios
            for a in self.activations
        }
        candidates = {op: make(**combo) for op, combo in combos.items()}
        if len(stage.depths) > 1 and block_index >= min(stage.depths):
            candidates[SKIP] = keras.layers.Identity

        def super_kernel(names):
            # For a rule computing the block as one super-kernel (Single-Path NAS): the
            # operations share one set of weights and batch norms.
            views = iter(
                shared.mbconv_views(
                    input_shape, filters, strides, [combos[n] for n in names if n in combos],
                    switchable_batch_norm=False, batch_norm_momentum=momentum,
                )
            )  # fmt: skip
            return [next(views) if n in combos else keras.layers.Identity() for n in names]

        return layer_choice(
            hp, f"stage{stage_index}/block{block_index}/op", candidates,
            shared_factory=super_kernel,
        )(x)  # fmt: skip

    def _searched(self, values: tuple):
        return list(values) if len(values) > 1 else values[0]

    def _block(self, hp, stage_index: int, block_index: int, x):
        stage = self.stages[stage_index]
        prefix = f"stage{stage_index}/block{block_index}"
        strides = stage.strides if block_index == 0 else 1
        input_shape = x.shape[1:]

        def make(kernel_size, expansion, se_ratio, activation):
            return ops.mbconv(
                input_shape,
                stage.filters,
                kernel_size=kernel_size,
                expansion=expansion,
                strides=strides,
                se_ratio=se_ratio,
                activation=activation,
                batch_norm_momentum=self.batch_norm_momentum,
            )

        layer = attribute_choice(
            hp,
            prefix,
            make,
            # In a supernet the candidates share one set of convolution weights.
            shared_factory=lambda combos: shared.mbconv_views(
                input_shape,
                stage.filters,
                strides,
                combos,
                batch_norm_momentum=self.batch_norm_momentum,
            ),  # fmt: skip
            kernel_size=self._searched(self.kernel_sizes),
            expansion=self._searched(self.expansions),
            se_ratio=self._searched(self.se_ratios),
            activation=self._searched(self.activations),
        )
        return layer(x)

    def build(self, hp):
        layers = keras.layers
        stem_activation = self.activations[0]
        inputs = keras.Input(self.input_shape)
        x = layers.Conv2D(
            self.stem_filters,
            3,
            self.stem_strides,
            padding="same",
            use_bias=False,
            name="stem_conv",
        )(inputs)
        x = layers.BatchNormalization(
            epsilon=1e-3, momentum=self.batch_norm_momentum, name="stem_bn"
        )(x)
        x = layers.Activation(stem_activation, name="stem_act")(x)
        for index, stage in enumerate(self.stages):
            block = lambda b, t, index=index: self._block(hp, index, b, t)
            if self.joint_ops:
                for b in range(max(stage.depths)):
                    x = self._joint_block(hp, index, b, x)
            elif len(stage.depths) == 1:
                for b in range(stage.depths[0]):
                    x = block(b, x)
            else:
                x = repeat(hp, f"stage{index}/depth", list(stage.depths), block, x)
        if self.head_filters:
            x = layers.Conv2D(self.head_filters, 1, use_bias=False, name="head_conv")(x)
            x = layers.BatchNormalization(
                epsilon=1e-3, momentum=self.batch_norm_momentum, name="head_bn"
            )(x)
            x = layers.Activation(stem_activation, name="head_act")(x)
        logits = classification_head(x, self.num_classes, dropout=self.dropout)
        model = keras.Model(inputs, logits, name=self.name)
        return compile_classifier(model, self.learning_rate)
