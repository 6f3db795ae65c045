"""The DARTS / NASNet cell search space (Liu et al. 2018, Zoph et al. 2017).

A stem, `num_cells` cells with reduction cells at 1/3 and 2/3 of the depth (channels
doubled there), global pooling and a classifier; optionally the auxiliary head of the
DARTS CIFAR network at 2/3 of the depth. All normal cells share one genotype and all
reduction cells another, as in the papers. The cells' number of intermediate nodes is the
`Fixed` hyperparameter `cells/num_blocks` (`num_nodes`), which progressive search
(`tfnas.oracles.PNAS`) lowers to train cells of its first b blocks only.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import keras_tuner

from tfnas.blocks import ops
from tfnas.blocks.cells import NUM_BLOCKS, darts_cell
from tfnas.blocks.supernet import mixing_rule_of
from tfnas.spaces.common import (
    check_operations,
    classification_head,
    compile_classifier,
    validate_common,
)
from tfnas.validation import check_int

# Genotypes as in the DARTS repository (`genotypes.py`): (operation, input state) pairs,
# two per intermediate node.
DARTS_V1 = {
    "normal": [
        ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
        ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2),
    ],
    "reduce": [
        ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
        ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0),
    ],
}  # fmt: skip
DARTS_V2 = {
    "normal": [
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2),
    ],
    "reduce": [
        ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
        ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1),
    ],
}  # fmt: skip


def genotype_to_values(genotype: dict[str, Sequence[tuple[str, int]]]) -> dict[str, str]:
    """Converts a DARTS genotype into the hyperparameter values of `DartsSpace`."""
    values = {}
    for cell, pairs in genotype.items():
        if len(pairs) % 2:
            raise ValueError(
                f"A genotype lists two (operation, input) pairs per node. Received {len(pairs)} "
                f"pairs for cell {cell!r}."
            )
        for node in range(len(pairs) // 2):
            (op_a, in_a), (op_b, in_b) = pairs[2 * node], pairs[2 * node + 1]
            if in_a == in_b:
                raise ValueError(
                    f"Node {node} of cell {cell!r} takes input {in_a} twice; the DARTS space "
                    "chooses two distinct inputs per node."
                )
            (first, op_first), (second, op_second) = sorted([(in_a, op_a), (in_b, op_b)])
            values[f"{cell}/node{node}/inputs"] = f"{first},{second}"
            values[f"{cell}/node{node}/edge{first}"] = op_first
            values[f"{cell}/node{node}/edge{second}"] = op_second
    return values


def values_to_genotype(values: dict, num_nodes: int = 4) -> dict[str, list[tuple[str, int]]]:
    """The inverse of `genotype_to_values`, for printing a found cell the DARTS way.

    A cell grown to fewer blocks (`values["cells/num_blocks"]`) lists only its nodes.
    """
    genotype = {}
    for cell in ("normal", "reduce"):
        pairs = []
        for node in range(values.get(NUM_BLOCKS, num_nodes)):
            for i in (int(s) for s in values[f"{cell}/node{node}/inputs"].split(",")):
                pairs.append((values[f"{cell}/node{node}/edge{i}"], i))
        genotype[cell] = pairs
    return genotype


class DartsSpace(keras_tuner.HyperModel):
    """The DARTS / NASNet cell space as a KerasTuner hypermodel.

    Args:
        input_shape: image shape, e.g. (8, 8, 1) for digits or (32, 32, 3) for CIFAR-10.
        num_classes: classifier outputs.
        init_channels: channels of the first cells (C; 16 in the DARTS search, 36 in eval).
        num_cells: number of cells (8 in the DARTS search, 20 in eval).
        num_nodes: intermediate nodes per cell.
        stem_multiplier: stem channels = stem_multiplier * init_channels.
        operations: candidate operations (default: the 8 DARTS operations).
        auxiliary: add the DARTS auxiliary head at 2/3 depth (needs >= 5x5 features there).
        auxiliary_weight: its loss weight.
        affine: learnable BN scale/offset in the cells. None (the default): False when
            the space builds a supernet (the DARTS, P-DARTS and PC-DARTS search networks:
            `affine=False`, and pooling candidates followed by `BatchNormalization`
            without scale/offset, see `tfnas.blocks.ops.darts_op`) and True in fixed
            mode (the papers' evaluation networks, e.g. `tfnas.Architecture(...).build()`
            and `tuner.retrain`). Models exported with inherited weights keep the
            supernet's batch norms. True or False forces one setting in both modes.
        learning_rate: Adam learning rate of the compiled model.

    Example:

    ```python
    space = tfnas.spaces.DartsSpace(input_shape=(8, 8, 1), num_classes=10,
                                    init_channels=8, num_cells=5)
    model = tfnas.Architecture(space, tfnas.spaces.darts.genotype_to_values(
        tfnas.spaces.darts.DARTS_V2)).build()
    ```
    """

    def __init__(
        self,
        input_shape=(32, 32, 3),
        num_classes: int = 10,
        *,
        init_channels: int = 16,
        num_cells: int = 8,
        num_nodes: int = 4,
        stem_multiplier: int = 3,
        operations: Sequence[str] = ops.DARTS_OPS,
        auxiliary: bool = False,
        auxiliary_weight: float = 0.4,
        affine: bool | None = None,
        learning_rate: float = 1e-3,
        name: str = "darts",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        validate_common(input_shape, num_classes, learning_rate)
        for arg, value, low in (
            ("init_channels", init_channels, 2),
            ("num_cells", num_cells, 3),
            ("num_nodes", num_nodes, 1),
            ("stem_multiplier", stem_multiplier, 1),
        ):
            check_int(arg, value, low)
        if init_channels % 2:
            raise ValueError(
                f"init_channels must be even (reduction cells halve it twice). "
                f"Received: init_channels={init_channels}"
            )
        check_operations(operations, ops.DARTS_OPS)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.init_channels = init_channels
        self.num_cells = num_cells
        self.num_nodes = num_nodes
        self.stem_multiplier = stem_multiplier
        self.operations = tuple(operations)
        self.auxiliary = auxiliary
        self.auxiliary_weight = auxiliary_weight
        self.affine = affine
        self.learning_rate = learning_rate

    def _cell_affine(self, hp) -> bool:
        """The cells' BN `affine`: `self.affine`, or by mode when it is None."""
        if self.affine is not None:
            return bool(self.affine)
        return mixing_rule_of(hp) is None

    def progressive_depths(self, num_stages: int) -> list[int]:
        """P-DARTS's growing depths (`num_cells` per stage) for this space.

        P-DARTS (Chen et al. 2019) searches with 5, 11 and 17 cells: 1, 3 and 5 normal
        cells between the reductions. Scaled to this space, stage s has `1 + 2 s` times
        the space's normal cells per group, `g = max(1, round((num_cells - 2) / 3))`:
        `num_cells + 6 g s` cells (5 -> 11 -> 17 for `num_cells=5`, 8 -> 20 -> 32 for 8).
        `tfnas.oracles.PDARTS` uses it unless given `depths`.
        """
        check_int("num_stages", num_stages, 1)
        per_group = max(1, round((self.num_cells - 2) / 3))
        return [self.num_cells + 6 * per_group * s for s in range(num_stages)]

    def expert_values(self) -> dict[str, str]:
        """The expert architecture of an imitation-guided search (IRLAS): DARTS-V2.

        Raises:
            ValueError: when the space's operations cannot express it.
        """
        values = genotype_to_values(DARTS_V2)
        used = {op for name, op in values.items() if "/edge" in name}
        missing = sorted(used - set(self.operations))
        if missing:
            raise ValueError(
                f"DARTS-V2 needs operations {missing}, which this space lacks. "
                f"Received: operations={list(self.operations)!r}"
            )
        return values

    def build(self, hp):
        inputs = keras.Input(self.input_shape)
        c_stem = self.stem_multiplier * self.init_channels
        x = keras.layers.Conv2D(c_stem, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
        x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="stem_bn")(x)
        s0 = s1 = x
        channels = self.init_channels
        reduction_prev = False
        reductions = (self.num_cells // 3, 2 * self.num_cells // 3)
        aux_input = None
        for index in range(self.num_cells):
            reduction = index in reductions
            if reduction:
                channels *= 2
            cell = darts_cell(
                hp,
                "reduce" if reduction else "normal",
                s0,
                s1,
                channels,
                reduction=reduction,
                reduction_prev=reduction_prev,
                num_nodes=self.num_nodes,
                operations=self.operations,
                affine=self._cell_affine(hp),
            )
            s0, s1 = s1, cell
            reduction_prev = reduction
            if index == reductions[1]:
                aux_input = s1
        logits = classification_head(s1, self.num_classes, name="logits")
        if not self.auxiliary:
            model = keras.Model(inputs, logits, name=self.name)
            return compile_classifier(model, self.learning_rate)
        aux_logits = _auxiliary_head_cifar(aux_input, self.num_classes)
        model = keras.Model(inputs, {"logits": logits, "aux_logits": aux_logits}, name=self.name)
        return compile_classifier(
            model,
            self.learning_rate,
            auxiliary_output="aux_logits",
            auxiliary_weight=self.auxiliary_weight,
        )


def _auxiliary_head_cifar(x, num_classes: int):
    """DARTS `AuxiliaryHeadCIFAR`: expects about 8x8 features (5x5 pooling, stride 3)."""
    height, width = x.shape[1:3]
    if height < 5 or width < 5:
        raise ValueError(
            "The auxiliary head pools 5x5 windows and needs features of at least 5x5 at 2/3 "
            f"depth. Received: {height}x{width}; use a larger input or auxiliary=False."
        )
    layers = keras.layers
    x = layers.ReLU(name="aux_relu0")(x)
    x = layers.AveragePooling2D(5, 3, padding="valid", name="aux_pool")(x)
    x = layers.Conv2D(128, 1, use_bias=False, name="aux_conv1")(x)
    x = layers.ReLU(name="aux_relu1")(
        layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="aux_bn1")(x)
    )
    x = layers.Conv2D(768, x.shape[1:3], use_bias=False, name="aux_conv2")(x)
    x = layers.ReLU(name="aux_relu2")(
        layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="aux_bn2")(x)
    )
    x = layers.Flatten(name="aux_flatten")(x)
    return layers.Dense(num_classes, name="aux_logits")(x)
