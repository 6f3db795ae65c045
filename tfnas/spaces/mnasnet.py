"""MnasNet's factorized hierarchical search space (Tan et al. 2018, arXiv 1807.11626, sec. 4.1).

The network is a stem, a sequence of blocks at decreasing resolution, a 1x1 head
convolution and the classifier. Each block has its own sub-space, searched once for all
the block's layers (which are identical): the convolution (`conv` regular, `dconv`
depthwise separable, `mbconv3` / `mbconv6` inverted bottlenecks with expansion 3 or 6), the
kernel size {3, 5}, the squeeze-and-excitation ratio {0, 0.25}, the skip (`identity`
residual or `none`), the output filters (a multiplier {0.75, 1.0, 1.25} of the block's base
width) and the number of layers (the base number {-1, 0, +1}, at least 1). The first layer
of a block has the block's stride; with the `identity` skip, every layer that keeps the
shape adds its input (the MnasNet code's `id_skip`). The base
widths, layer counts and strides default to MobileNetV2's, as in the paper. The hyperparameters
of block i are `block{i}/conv_op`, `/kernel_size`, `/se_ratio`, `/skip`, `/filters` and
`/layers`.

Deviations: the paper also lists pooling as a skip operation without defining it, and the
authors' released MnasNet code has the identity skip only (`id_skip`); tfnas offers
`identity` and `none`. Widths are rounded to multiples of 8 (the MnasNet code's
`round_filters`). MnasNet-A1's widths (40 = 32 x 1.25 but 112 = 96 x 1.17) are not all
multiples of MobileNetV2's, so `mnasnet_a1_values` needs a space with A1's widths as the
base (`MNASNET_A1_BLOCKS`); its layer counts are MobileNetV2's with block 5 at -1.

Each block's filters and depth change the shapes of everything after it, so this space has
no supernet form: search it with multi-trial oracles (MnasNet's RL controller, evolution,
...); a weight-sharing strategy is refused with a clear error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import keras_tuner

from tfnas.blocks import mixing_rule_of, ops
from tfnas.spaces.common import classification_head, compile_classifier, validate_common
from tfnas.validation import check_float

CONV_OPS = ("conv", "dconv", "mbconv3", "mbconv6")
SKIP_OPS = ("identity", "none")


@dataclasses.dataclass(frozen=True)
class MnasBlock:
    """One block's base: output width, number of layers, stride of its first layer."""

    filters: int
    layers: int
    strides: int = 1

    def __post_init__(self):
        if not isinstance(self.filters, int) or self.filters < 1:
            raise ValueError(f"MnasBlock filters must be an int >= 1. Received: {self.filters!r}")
        if not isinstance(self.layers, int) or self.layers < 1:
            raise ValueError(f"MnasBlock layers must be an int >= 1. Received: {self.layers!r}")
        if self.strides not in (1, 2):
            raise ValueError(f"MnasBlock strides must be 1 or 2. Received: {self.strides!r}")


# MobileNetV2's blocks, the paper's reference for the filter and layer searches.
MOBILENET_V2_BLOCKS = tuple(
    MnasBlock(f, n, s)
    for f, n, s in [(16, 1, 1), (24, 2, 2), (32, 3, 2), (64, 4, 2), (96, 3, 1), (160, 3, 2),
                    (320, 1, 1)]
)  # fmt: skip
# MnasNet-A1's widths (with MobileNetV2's layer counts and strides).
MNASNET_A1_BLOCKS = tuple(
    MnasBlock(f, b.layers, b.strides)
    for f, b in zip((16, 24, 40, 80, 112, 160, 320), MOBILENET_V2_BLOCKS)
)
# MnasNet-A1 (the paper's Figure 7), block by block: op, kernel, SE, layers relative to base.
_MNASNET_A1 = [
    ("dconv", 3, 0.0, 0), ("mbconv6", 3, 0.0, 0), ("mbconv3", 5, 0.25, 0),
    ("mbconv6", 3, 0.0, 0), ("mbconv6", 3, 0.25, -1), ("mbconv6", 5, 0.25, 0),
    ("mbconv6", 3, 0.0, 0),
]  # fmt: skip


def _round_filters(filters: float, divisor: int = 8) -> int:
    """The MnasNet code's `round_filters`: to a multiple of 8, never 10% below."""
    rounded = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * filters else rounded)


def _layer(input_shape, filters, conv_op, kernel_size, strides, se_ratio, residual, momentum):
    """One layer of the factorized space as a nested functional model (standard layers)."""
    if conv_op.startswith("mbconv") or conv_op == "dconv":
        expansion = 1 if conv_op == "dconv" else int(conv_op[len("mbconv") :])
        block = ops.mbconv(
            input_shape, filters, kernel_size=kernel_size, expansion=expansion,
            strides=strides, se_ratio=se_ratio, activation="relu", residual=residual,
            batch_norm_momentum=momentum,
        )  # fmt: skip
        return block
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(filters, kernel_size, strides, padding="same", use_bias=False)(inputs)
    x = keras.layers.Activation("relu")(ops.mobile_bn(momentum)(x))
    if se_ratio > 0:
        x = ops.squeeze_excite(x, input_shape[-1], se_ratio)
    if residual and strides == 1 and input_shape[-1] == filters:
        x = keras.layers.Add()([inputs, x])
    return keras.Model(inputs, x, name=f"conv_{keras.backend.get_uid('mnas_conv')}")


def mnasnet_a1_values(space: MnasNetSpace) -> dict:
    """MnasNet-A1 as hyperparameter values of a `MnasNetSpace` built with
    `MNASNET_A1_BLOCKS` (widths at multiplier 1.0)."""
    if len(space.blocks) != len(_MNASNET_A1):
        raise ValueError(
            f"MnasNet-A1 has 7 blocks. Received: a space with {len(space.blocks)} blocks."
        )
    values = {}
    for i, (op, kernel, se, layers) in enumerate(_MNASNET_A1):
        values.update({
            f"block{i}/conv_op": op, f"block{i}/kernel_size": kernel,
            f"block{i}/se_ratio": se, f"block{i}/skip": "identity", f"block{i}/filters": 1.0,
            f"block{i}/layers": layers,
        })  # fmt: skip
    return values


class MnasNetSpace(keras_tuner.HyperModel):
    """MnasNet's factorized hierarchical space as a KerasTuner hypermodel (multi-trial).

    Args:
        input_shape: image shape ((224, 224, 3) for ImageNet, (8, 8, 1) for digits).
        num_classes: classifier outputs.
        blocks: the `MnasBlock`s (base widths, layers, strides); default MobileNetV2's.
        stem_filters, stem_strides, head_filters: 32, 2 and 1280 as in the paper.
        conv_ops, kernel_sizes, se_ratios, skip_ops, filter_multipliers, layer_deltas:
            each block's sub-space (a single value is fixed, not searched).
        batch_norm_momentum: the batch norms' momentum (the MnasNet code's 0.99; a few
            hundred steps need less for usable moving statistics, e.g. 0.9).
        dropout, learning_rate, name: the classifier's dropout, Adam's rate, the name.

    Raises:
        ValueError: for bad arguments, naming the argument and the value received; when
            built as a supernet (a weight-sharing strategy).
    """

    # Its filter and depth choices change shapes: no supernet, no per-operation latency
    # table (`tfnas.pipeline` times its trials instead).
    supernet_form = False

    def __init__(
        self,
        input_shape=(224, 224, 3),
        num_classes: int = 1000,
        *,
        blocks: Sequence[MnasBlock] | None = None,
        stem_filters: int = 32,
        stem_strides: int = 2,
        head_filters: int = 1280,
        conv_ops: Sequence[str] = CONV_OPS,
        kernel_sizes: Sequence[int] = (3, 5),
        se_ratios: Sequence[float] = (0.0, 0.25),
        skip_ops: Sequence[str] = SKIP_OPS,
        filter_multipliers: Sequence[float] = (0.75, 1.0, 1.25),
        layer_deltas: Sequence[int] = (-1, 0, 1),
        batch_norm_momentum: float = 0.99,
        dropout: float = 0.0,
        learning_rate: float = 1e-3,
        name: str = "mnasnet",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        validate_common(input_shape, num_classes, learning_rate)
        blocks = tuple(MOBILENET_V2_BLOCKS if blocks is None else blocks)
        if not blocks or not all(isinstance(b, MnasBlock) for b in blocks):
            raise ValueError(
                f"blocks must be a non-empty list of MnasBlock. Received: blocks={blocks!r}"
            )
        options = {
            "conv_ops": (conv_ops, lambda v: v in CONV_OPS),
            "kernel_sizes": (kernel_sizes, lambda v: isinstance(v, int) and v % 2 == 1),
            "se_ratios": (se_ratios, lambda v: 0 <= v <= 1),
            "skip_ops": (skip_ops, lambda v: v in SKIP_OPS),
            "filter_multipliers": (filter_multipliers, lambda v: v > 0),
            "layer_deltas": (layer_deltas, lambda v: isinstance(v, int)),
        }
        for arg, (values, valid) in options.items():
            if isinstance(values, (str, int, float)) or not values or not all(map(valid, values)):
                raise ValueError(
                    f"{arg} must be a non-empty list of valid values. Received: {arg}={values!r}"
                )
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
        self.batch_norm_momentum = check_float(
            "batch_norm_momentum", batch_norm_momentum, 0, 1, high_inclusive=False
        )
        self.input_shape, self.num_classes, self.blocks = tuple(input_shape), num_classes, blocks
        self.stem_filters, self.stem_strides = stem_filters, stem_strides
        self.head_filters = head_filters
        self.conv_ops, self.kernel_sizes = tuple(conv_ops), tuple(kernel_sizes)
        self.se_ratios = tuple(float(r) for r in se_ratios)
        self.skip_ops = tuple(skip_ops)
        self.filter_multipliers = tuple(float(m) for m in filter_multipliers)
        self.layer_deltas = tuple(layer_deltas)
        self.dropout, self.learning_rate = dropout, learning_rate

    def _choice(self, hp, name, values):
        return hp.Choice(name, list(values)) if len(values) > 1 else values[0]

    def build(self, hp):
        if mixing_rule_of(hp) is not None:
            raise ValueError(
                "MnasNetSpace searches each block's filters and depth, which change the "
                "shapes of what follows, so it has no supernet: search it with a multi-trial "
                "oracle (mnasnet, reinforce, regularized_evolution, ...)."
            )
        layers, bn = keras.layers, lambda: ops.mobile_bn(self.batch_norm_momentum)
        inputs = keras.Input(self.input_shape)
        x = layers.Conv2D(self.stem_filters, 3, self.stem_strides, padding="same",
                          use_bias=False, name="stem_conv")(inputs)  # fmt: skip
        x = layers.Activation("relu", name="stem_act")(bn()(x))
        for i, block in enumerate(self.blocks):
            conv_op = self._choice(hp, f"block{i}/conv_op", self.conv_ops)
            kernel = self._choice(hp, f"block{i}/kernel_size", self.kernel_sizes)
            se_ratio = self._choice(hp, f"block{i}/se_ratio", self.se_ratios)
            skip = self._choice(hp, f"block{i}/skip", self.skip_ops)
            multiplier = self._choice(hp, f"block{i}/filters", self.filter_multipliers)
            delta = self._choice(hp, f"block{i}/layers", self.layer_deltas)
            filters = _round_filters(block.filters * multiplier)
            for j in range(max(1, block.layers + delta)):
                x = _layer(
                    tuple(x.shape[1:]), filters, conv_op, kernel,
                    block.strides if j == 0 else 1, se_ratio, skip == "identity",
                    self.batch_norm_momentum,
                )(x)  # fmt: skip
        if self.head_filters:
            x = layers.Conv2D(self.head_filters, 1, use_bias=False, name="head_conv")(x)
            x = layers.Activation("relu", name="head_act")(bn()(x))
        logits = classification_head(x, self.num_classes, dropout=self.dropout)
        return compile_classifier(keras.Model(inputs, logits, name=self.name), self.learning_rate)
