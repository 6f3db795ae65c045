"""The FBNet search space (Wu et al. 2018, arXiv 1812.03443): 22 layers, 9 blocks each.

Table 1's macro architecture: a 3x3 stem convolution (16, stride 2), 22 searched layers
(TBS) in stages of widths 16, 24, 32, 64, 112, 184, 352 (1, 4, 4, 4, 4, 4, 1 layers, first
strides 1, 2, 2, 2, 1, 2, 1), a 1x1 convolution (1984), pooling and the classifier. Every
layer is one choice `stage{s}/block{b}/op` over Table 2's candidate blocks: `k3_e1`,
`k3_e1_g2`, `k3_e3`, `k3_e6`, `k5_e1`, `k5_e1_g2`, `k5_e3`, `k5_e6`, `skip` (see
`tfnas.blocks.ops.fbnet_block`: 1x1 group convolution, channel shuffle, depthwise, 1x1
group convolution). As in the authors' builder, `skip` is in every layer, including the
first of a stage, where it is a 1x1 convolution changing the width / stride.

`fbnet_a_values`, `fbnet_b_values`, `fbnet_c_values` are the published FBNets, from the
authors' released definitions (facebookresearch/mobile-vision,
`mobile_cv/arch/fbnet_v2/fbnet_modeldef_cls_fbnet.py`). FBNet-A was trained with a 1504-wide
last convolution (`FBNetSpace(head_filters=1504)`); B and C with 1984.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import keras
import keras_tuner

from tfnas.blocks import ops
from tfnas.blocks.choices import layer_choice
from tfnas.spaces.common import classification_head, compile_classifier, validate_common
from tfnas.spaces.mobile import SKIP, Stage
from tfnas.validation import check_float

FBNET_OPS = (
    "k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", SKIP,
)  # fmt: skip

# Table 1: (width, layers, first stride) of the TBS stages.
FBNET_STAGES = tuple(
    Stage(f, n, s)
    for f, n, s in [
        (16, 1, 1), (24, 4, 2), (32, 4, 2), (64, 4, 2), (112, 4, 1), (184, 4, 2), (352, 1, 1),
    ]
)  # fmt: skip

_OP = re.compile(r"k(\d+)_e(\d+)(?:_g(\d+))?$")

# The released FBNets, layer by layer (mobile-vision `fbnet_modeldef_cls_fbnet.py`).
_FBNET_A = [
    ["skip"],
    ["k3_e3", "k3_e1", "skip", "skip"],
    ["k5_e6", "k3_e3", "k5_e1", "k3_e3"],
    ["k5_e6", "k5_e3", "k5_e1_g2", "k5_e6"],
    ["k3_e6", "k5_e1_g2", "k5_e3", "k3_e1_g2"],
    ["k5_e6", "k5_e6", "k5_e3", "k5_e6"],
    ["k5_e6"],
]
_FBNET_B = [
    ["k3_e1"],
    ["k3_e6", "k5_e1", "k3_e1", "k3_e1"],
    ["k5_e6", "k5_e3", "k3_e6", "k5_e6"],
    ["k5_e6", "k5_e6", "skip", "k5_e3"],
    ["k5_e6", "k3_e1", "k5_e1", "k5_e3"],
    ["k5_e6", "k5_e1", "k5_e6", "k5_e6"],
    ["k3_e6"],
]
_FBNET_C = [
    ["k3_e1"],
    ["k3_e6", "skip", "k3_e1", "k3_e1"],
    ["k5_e6", "k5_e3", "k5_e6", "k3_e6"],
    ["k5_e6", "k5_e3", "k5_e6", "k5_e6"],
    ["k5_e6", "k5_e6", "k5_e6", "k5_e3"],
    ["k5_e6", "k5_e6", "k5_e6", "k5_e6"],
    ["k3_e6"],
]


def _values(layers, space: FBNetSpace) -> dict:
    if [len(stage) for stage in layers] != [s.depths[0] for s in space.stages]:
        raise ValueError(
            "The published FBNets need a space with FBNET_STAGES' layer counts (1, 4, 4, 4, "
            f"4, 4, 1). Received: stages={space.stages!r}"
        )
    values = {}
    for s, stage in enumerate(layers):
        for b, op in enumerate(stage):
            if op not in space.operations:
                raise ValueError(
                    f"The published FBNet uses {op!r}, which the space does not offer. "
                    f"Received: operations={list(space.operations)!r}"
                )
            values[f"stage{s}/block{b}/op"] = op
    return values


def fbnet_a_values(space: FBNetSpace) -> dict:
    """FBNet-A as hyperparameter values of an `FBNetSpace` (train it with head 1504)."""
    return _values(_FBNET_A, space)


def fbnet_b_values(space: FBNetSpace) -> dict:
    """FBNet-B as hyperparameter values of an `FBNetSpace`."""
    return _values(_FBNET_B, space)


def fbnet_c_values(space: FBNetSpace) -> dict:
    """FBNet-C as hyperparameter values of an `FBNetSpace`."""
    return _values(_FBNET_C, space)


class FBNetSpace(keras_tuner.HyperModel):
    """FBNet's layer-wise space as a KerasTuner hypermodel: one choice per layer.

    Args:
        input_shape: image shape ((224, 224, 3) for ImageNet, (8, 8, 1) for digits).
        num_classes: classifier outputs.
        stages: `Stage`s of searched layers; each has a single depth (the number of
            layers: FBNet searches depth through `skip`). Default: `FBNET_STAGES`.
        stem_filters, stem_strides: the first 3x3 convolution (16, 2).
        head_filters: the last 1x1 convolution (1984; 0 for none).
        operations: the candidates of every layer, named `k{k}_e{e}[_g{g}]` or `skip`.
            Default: Table 2's nine, `FBNET_OPS`.
        e1_pointwise: keep the first 1x1 convolution of the `e1` blocks (the paper's
            block, the default); False: without it, as mobile-vision's `fbnet_v2` code
            behind the released model-zoo figures (see `tfnas.blocks.ops.fbnet_block`).
        dropout: dropout before the classifier.
        learning_rate: Adam learning rate of the compiled model.
        batch_norm_momentum: as in `MobileSpace` (0.999; the CLI's tiny form uses 0.9).

    Raises:
        ValueError: for bad arguments, naming the argument and the value received.

    Example:

    ```python
    space = tfnas.spaces.FBNetSpace(
        (8, 8, 1), 10, stem_filters=8, stem_strides=1, head_filters=32,
        stages=[tfnas.spaces.Stage(8, 1), tfnas.spaces.Stage(16, 2, 2)])
    ```
    """

    def __init__(
        self,
        input_shape=(224, 224, 3),
        num_classes: int = 1000,
        *,
        stages: Sequence[Stage] | None = None,
        stem_filters: int = 16,
        stem_strides: int = 2,
        head_filters: int = 1984,
        operations: Sequence[str] = FBNET_OPS,
        e1_pointwise: bool = True,
        dropout: float = 0.0,
        learning_rate: float = 1e-3,
        batch_norm_momentum: float = 0.999,
        name: str = "fbnet",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        validate_common(input_shape, num_classes, learning_rate)
        stages = tuple(FBNET_STAGES if stages is None else stages)
        if not stages or not all(isinstance(s, Stage) and len(s.depths) == 1 for s in stages):
            raise ValueError(
                "stages must be a non-empty list of tfnas.spaces.Stage with one depth each "
                f"(FBNet searches depth through skip). Received: stages={stages!r}"
            )
        operations = tuple(operations) if not isinstance(operations, str) else (operations,)
        if (
            not operations
            or len(set(operations)) != len(operations)
            or any(op != SKIP and not _OP.match(op) for op in operations)
        ):
            raise ValueError(
                "operations must be distinct names 'k{k}_e{e}', 'k{k}_e{e}_g{g}' or 'skip'. "
                f"Received: operations={list(operations)!r}"
            )
        for arg, value in (("stem_filters", stem_filters), ("head_filters", head_filters)):
            if not isinstance(value, int) or value < (1 if arg == "stem_filters" else 0):
                raise ValueError(
                    f"{arg} must be an int >= 1 (head: >= 0). Received: {arg}={value!r}"
                )
        if stem_strides not in (1, 2):
            raise ValueError(
                f"stem_strides must be 1 or 2. Received: stem_strides={stem_strides!r}"
            )
        if not isinstance(e1_pointwise, bool):
            raise ValueError(
                f"e1_pointwise must be True or False. Received: e1_pointwise={e1_pointwise!r}"
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.stages = stages
        self.stem_filters = stem_filters
        self.stem_strides = stem_strides
        self.head_filters = head_filters
        self.operations = operations
        self.e1_pointwise = e1_pointwise
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_norm_momentum = check_float(
            "batch_norm_momentum", batch_norm_momentum, 0, 1, high_inclusive=False
        )

    def _layer(self, hp, stage_index: int, block_index: int, x):
        stage = self.stages[stage_index]
        strides = stage.strides if block_index == 0 else 1
        # Plain values in the factories' closures (see MobileSpace._joint_block).
        input_shape = tuple(x.shape[1:])
        filters, momentum = stage.filters, self.batch_norm_momentum

        def make(op):
            if op == SKIP:
                return lambda: ops.fbnet_skip(input_shape, filters, strides, momentum)
            kernel_size, expansion, groups = (int(v) if v else 1 for v in _OP.match(op).groups())
            e1_pointwise = self.e1_pointwise
            return lambda: ops.fbnet_block(
                input_shape, filters, kernel_size, expansion, strides, groups,
                e1_pointwise=e1_pointwise, batch_norm_momentum=momentum,
            )  # fmt: skip

        candidates = {op: make(op) for op in self.operations}
        return layer_choice(hp, f"stage{stage_index}/block{block_index}/op", candidates)(x)

    def build(self, hp):
        layers = keras.layers
        inputs = keras.Input(self.input_shape)
        x = layers.Conv2D(
            self.stem_filters, 3, self.stem_strides, padding="same", use_bias=False,
            name="stem_conv",
        )(inputs)  # fmt: skip
        x = layers.BatchNormalization(
            epsilon=1e-3, momentum=self.batch_norm_momentum, name="stem_bn"
        )(x)
        x = layers.ReLU(name="stem_act")(x)
        for s, stage in enumerate(self.stages):
            for b in range(stage.depths[0]):
                x = self._layer(hp, s, b, x)
        if self.head_filters:
            x = layers.Conv2D(self.head_filters, 1, use_bias=False, name="head_conv")(x)
            x = layers.BatchNormalization(
                epsilon=1e-3, momentum=self.batch_norm_momentum, name="head_bn"
            )(x)
            x = layers.ReLU(name="head_act")(x)
        logits = classification_head(x, self.num_classes, dropout=self.dropout)
        model = keras.Model(inputs, logits, name=self.name)
        return compile_classifier(model, self.learning_rate)
