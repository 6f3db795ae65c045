"""The NAS-Bench-201 cell search space (Dong & Yang, ICLR 2020).

Macro skeleton of the benchmark: a 3x3 conv stem, three stages of `cells_per_stage` cells
(C, 2C, 4C channels) separated by residual reduction blocks, BN + ReLU, global pooling, a
linear classifier. One cell (4 nodes, 6 edges, 5 operations: 5**6 = 15,625 cells) is shared
by every cell of the network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import keras
import keras_tuner

from tfnas.blocks import ops
from tfnas.blocks.cells import nasbench201_cell
from tfnas.spaces.common import (
    check_operations,
    classification_head,
    compile_classifier,
    validate_common,
)
from tfnas.validation import check_int

CELL_PREFIX = "cell"
NUM_NODES = 4


def arch_str_to_values(arch_str: str) -> dict[str, str]:
    """Parses the benchmark's string, e.g. "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|".

    Raises:
        ValueError: when the string is not a 4-node NAS-Bench-201 cell.
    """
    nodes = arch_str.split("+")
    values = {}
    if len(nodes) != NUM_NODES - 1:
        raise ValueError(
            f"A NAS-Bench-201 arch string has {NUM_NODES - 1} nodes separated by '+'. "
            f"Received: {arch_str!r}"
        )
    for j, node in enumerate(nodes, start=1):
        edges = [e for e in node.strip().strip("|").split("|") if e]
        for edge in edges:
            match = re.fullmatch(r"(\w+)~(\d+)", edge)
            if not match or match.group(1) not in ops.NASBENCH201_OPS or int(match.group(2)) >= j:
                raise ValueError(f"Bad edge {edge!r} of node {j} in {arch_str!r}")
            values[f"{CELL_PREFIX}/node{j}/edge{match.group(2)}"] = match.group(1)
        if len(edges) != j:
            raise ValueError(f"Node {j} needs {j} edges. Received: {node!r} in {arch_str!r}")
    return values


def values_to_arch_str(values: Mapping[str, str]) -> str:
    """The benchmark's string for a cell given as hyperparameter values."""
    nodes = []
    for j in range(1, NUM_NODES):
        edges = [f"{values[f'{CELL_PREFIX}/node{j}/edge{i}']}~{i}" for i in range(j)]
        nodes.append("|" + "|".join(edges) + "|")
    return "+".join(nodes)


# NAS-Bench-201's ResNet cell (Dong & Yang 2020): two 3x3 convolutions and a skip.
RESNET_CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"


class NasBench201Space(keras_tuner.HyperModel):
    """The NAS-Bench-201 space as a KerasTuner hypermodel.

    Args:
        input_shape: image shape ((32, 32, 3) in the benchmark, (8, 8, 1) for digits).
        num_classes: classifier outputs.
        channels: channels of the first stage (16 in the benchmark).
        cells_per_stage: cells per stage (5 in the benchmark).
        operations: candidate operations (default: the benchmark's 5).
        learning_rate: Adam learning rate of the compiled model.

    Example:

    ```python
    space = tfnas.spaces.NasBench201Space((8, 8, 1), 10, channels=8, cells_per_stage=1)
    arch = tfnas.Architecture(space, tfnas.spaces.nasbench201.arch_str_to_values(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|"
        "nor_conv_3x3~1|nor_conv_3x3~2|"))
    ```
    """

    def __init__(
        self,
        input_shape=(32, 32, 3),
        num_classes: int = 10,
        *,
        channels: int = 16,
        cells_per_stage: int = 5,
        operations=ops.NASBENCH201_OPS,
        learning_rate: float = 1e-3,
        name: str = "nasbench201",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        validate_common(input_shape, num_classes, learning_rate)
        check_int("channels", channels, 1)
        check_int("cells_per_stage", cells_per_stage, 1)
        check_operations(operations, ops.NASBENCH201_OPS)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.channels = channels
        self.cells_per_stage = cells_per_stage
        self.operations = tuple(operations)
        self.learning_rate = learning_rate

    def expert_values(self) -> dict[str, str]:
        """The expert architecture of an imitation-guided search (IRLAS): the ResNet cell.

        Raises:
            ValueError: when the space's operations cannot express it.
        """
        values = arch_str_to_values(RESNET_CELL)
        missing = sorted(set(values.values()) - set(self.operations))
        if missing:
            raise ValueError(
                f"The ResNet cell needs operations {missing}, which this space lacks. "
                f"Received: operations={list(self.operations)!r}"
            )
        return values

    def build(self, hp):
        layers = keras.layers
        inputs = keras.Input(self.input_shape)
        x = layers.Conv2D(self.channels, 3, padding="same", use_bias=False, name="stem_conv")(
            inputs
        )
        x = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="stem_bn")(x)
        channels = self.channels
        for stage in range(3):
            if stage:
                x = _residual_reduction(x, channels * 2)
                channels *= 2
            for _ in range(self.cells_per_stage):
                x = nasbench201_cell(hp, CELL_PREFIX, x, channels, operations=self.operations)
        x = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="last_bn")(x)
        x = layers.ReLU(name="last_relu")(x)
        model = keras.Model(inputs, classification_head(x, self.num_classes), name=self.name)
        return compile_classifier(model, self.learning_rate)


def _residual_reduction(x, channels: int):
    """NAS-Bench-201 `ResNetBasicblock` with stride 2 (avg-pool + 1x1 conv shortcut)."""
    y = ops.relu_conv_bn(channels, 3, strides=2)(x)
    y = ops.relu_conv_bn(channels, 3)(y)
    shortcut = keras.layers.AveragePooling2D(2, 2, padding="same")(x)
    shortcut = keras.layers.Conv2D(channels, 1, use_bias=False)(shortcut)
    return keras.layers.Add()([y, shortcut])
