"""The NASNet search space (Zoph et al. 2017, arXiv 1707.07012), for multi-trial search.

The network (the paper's CIFAR layout, TF-slim `nasnet.py` `build_nasnet_cifar`): a 3x3
convolution stem with `stem_multiplier * filters` channels, then `num_stacks` stacks of
`num_cells_per_stack` (N) normal cells with a reduction cell between consecutive stacks
(filters doubled there), ReLU, global average pooling and a linear classifier. All normal
cells share one architecture and all reduction cells another, as in the paper.

A cell takes the outputs of the two previous cells, h_{i-1} and h_{i-2}, and has
`num_blocks` (B = 5) blocks. Block j chooses two inputs among the cell's hidden states
(the same one may be chosen twice), applies one operation to each and combines the two
results (addition, NASNet-A's choice, or concatenation). State numbering follows
`tfnas.blocks.cells.darts_cell`: 0 is h_{i-2}, 1 is h_{i-1} and 2 + b is block b's output
(the released code numbers h_{i-1} first). The cell output concatenates the hidden states
no block uses (the paper's rule). In a reduction cell the operations on states 0 and 1 have
stride 2.

Hyperparameters (all `hp.Choice`, prefix `normal` or `reduce`): `{cell}/block{j}/input0`
and `/input1` (ints in `0 .. j + 1`), `/op0` and `/op1` (see `NASNET_OPS`, registered only
when `operations` has more than one), `/combine` (only when `combine` offers more than one),
and the `Fixed` `{cell}/extra_outputs` (see below).

Operation details follow the released TF-slim code (`nasnet_utils.py`): ReLU-conv-BN order,
convolutions without bias, batch norm with momentum 0.9 and epsilon 1e-5 (its CIFAR
arg scope); each depthwise-separable convolution is applied twice (the first strided); the
identity is a ReLU, 1x1 convolution (strided), BN where stride or width differ; pooling is
followed by a 1x1 convolution and BN where the input width differs; h_{i-1} always goes
through ReLU-1x1-BN; h_{i-2} is factorized-reduced (ReLU, two offset 1x1 stride-2
convolutions) when its resolution differs from h_{i-1}'s, put through ReLU-1x1-BN when
only its width differs, and used as it is otherwise (the first cell after the stem uses
the stem output as h_{i-2} unchanged, as the code does with `prev_layer=None`); unused
states whose shape differs from the last block's are brought to it by a factorized
reduction (stride 2) or a 1x1 convolution and BN (stride 1), without a ReLU.

The released NASNet-A cells concatenate one state that a block does use (their
`used_hiddenstates` lists it as unused): h_{i-2} in the normal cell and block 1 in the
reduction cell, as do the published Figure 4 and Keras' NASNet. The paper's rule would
drop them (NASNet-A 6 @ 768 would end with 640 channels, not 768). The `Fixed`
hyperparameter `{cell}/extra_outputs` ("" by default: exactly the paper's rule; "0,3":
also states 0 and 3) holds such states, so that `nasnet_a_values` reproduces the
published network; searches leave it at "".

Deviations, all deliberate: no drop path (the code's scheduled `drop_path`, keep
probability 0.6 on CIFAR), no auxiliary head, no weight decay, Keras' default
initializers; the model is compiled with Adam like the other spaces (`compile_classifier`),
not the paper's SGD with cosine decay. The operations the released code lacks (it
implements only NASNet-A's) are built in the same style: `conv_1x1` and `conv_3x3` are
ReLU-conv-BN; `conv_1x3_3x1` and `conv_1x7_7x1` are ReLU, the 1xk convolution (strided),
the kx1 convolution, BN; `dil_conv_3x3` is ReLU, a regular 3x3 convolution with dilation
rate 2, BN (TF refuses strides with dilation: it is computed at stride 1 and subsampled,
as `tfnas.blocks.ops.dil_conv` does, so its stride-2 windows are centred one pixel off the
strided convolutions').

Each block's inputs decide which states are concatenated, and so the shapes of what
follows: the space has no supernet form. Search it with multi-trial oracles (random,
regularized evolution, a REINFORCE or PPO controller); a weight-sharing build is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import keras_tuner

from tfnas.blocks import mixing_rule_of, ops
from tfnas.spaces.common import (
    check_operations,
    classification_head,
    compile_classifier,
    validate_common,
)
from tfnas.validation import check_float, check_int

layers = keras.layers

# The paper's 13 operations, in its order.
NASNET_OPS = (
    "identity",
    "conv_1x3_3x1",
    "conv_1x7_7x1",
    "dil_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "max_pool_5x5",
    "max_pool_7x7",
    "conv_1x1",
    "conv_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
)
COMBINE_OPS = ("add", "concat")
CELLS = ("normal", "reduce")

# NASNet-A as in TF-slim `nasnet_utils.py` (`NasNetANormalCell`, `NasNetAReductionCell`):
# per block (input, operation) for the left and right inputs, in this module's state
# numbering (0 = h_{i-2}, 1 = h_{i-1}; the code's 0 and 1 swapped), and the used states the
# released cells concatenate anyway.
NASNET_A = {
    "normal": [
        ((1, "sep_conv_5x5"), (0, "sep_conv_3x3")),
        ((0, "sep_conv_5x5"), (0, "sep_conv_3x3")),
        ((1, "avg_pool_3x3"), (0, "identity")),
        ((0, "avg_pool_3x3"), (0, "avg_pool_3x3")),
        ((0, "sep_conv_3x3"), (1, "identity")),
    ],
    "reduce": [
        ((1, "sep_conv_5x5"), (0, "sep_conv_7x7")),
        ((1, "max_pool_3x3"), (0, "sep_conv_7x7")),
        ((1, "avg_pool_3x3"), (0, "sep_conv_5x5")),
        ((3, "identity"), (2, "avg_pool_3x3")),
        ((2, "sep_conv_3x3"), (1, "max_pool_3x3")),
    ],
}
NASNET_A_EXTRA_OUTPUTS = {"normal": "0", "reduce": "3"}


def _bn() -> layers.Layer:
    # The released CIFAR arg scope: decay 0.9, epsilon 1e-5 (as `ops.relu_conv_bn`).
    return layers.BatchNormalization(epsilon=1e-5, momentum=0.9)


def _conv(filters, kernel_size, strides=1, dilation_rate=1) -> layers.Layer:
    return layers.Conv2D(
        filters,
        kernel_size,
        strides,
        padding="same",
        dilation_rate=dilation_rate,
        use_bias=False,
    )


def nasnet_op(name: str, input_shape, filters: int, strides: int = 1) -> layers.Layer:
    """One of the NASNet operations (see `NASNET_OPS`) producing `filters` channels.

    Args:
        name: the operation.
        input_shape: the input's (height, width, channels).
        filters: the output channels.
        strides: 1, or 2 on a reduction cell's inputs.

    Returns:
        A fresh layer of standard Keras layers.

    Raises:
        ValueError: for an unknown operation or a stride other than 1 or 2.
    """
    if strides not in (1, 2):
        raise ValueError(f"strides must be 1 or 2. Received: strides={strides!r}")
    same_width = input_shape[-1] == filters
    if name == "identity":
        if strides == 1 and same_width:
            return layers.Identity()
        return ops.relu_conv_bn(filters, 1, strides)
    if name in ("avg_pool_3x3", "max_pool_3x3", "max_pool_5x5", "max_pool_7x7"):
        pool_class = layers.AveragePooling2D if name.startswith("avg") else layers.MaxPooling2D
        pool = pool_class(int(name[-1]), strides, padding="same")
        if same_width:
            return pool
        return keras.Sequential([pool, _conv(filters, 1), _bn()])
    if name in ("conv_1x1", "conv_3x3"):
        return ops.relu_conv_bn(filters, int(name[-1]), strides)
    if name in ("conv_1x3_3x1", "conv_1x7_7x1"):
        k = int(name[-1])
        return keras.Sequential(
            [layers.ReLU(), _conv(filters, (1, k), strides), _conv(filters, (k, 1)), _bn()]
        )
    if name == "dil_conv_3x3":
        subsample = [layers.MaxPooling2D(1, strides)] if strides > 1 else []
        return keras.Sequential(
            [layers.ReLU(), _conv(filters, 3, dilation_rate=2), *subsample, _bn()]
        )
    if name in ("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7"):
        # The released `separable_kxk_2`, identical to the DARTS SepConv of `tfnas.blocks.ops`.
        return ops.sep_conv(filters, int(name[-1]), strides)
    raise ValueError(f"Unknown NASNet operation. Received: {name!r}; expected one of {NASNET_OPS}")


def _factorized_reduction(input_shape, filters: int, strides: int) -> keras.Model:
    """The code's `factorized_reduction` (no ReLU): a 1x1 convolution and BN at stride 1,
    two offset 1x1 stride-2 convolutions concatenated and BN at stride 2."""
    inputs = keras.Input(tuple(input_shape))
    if strides == 1:
        outputs = _bn()(_conv(filters, 1)(inputs))
    else:
        path1 = layers.Conv2D(filters // 2, 1, 2, use_bias=False)(inputs)
        shifted = layers.Cropping2D(((1, 0), (1, 0)))(
            layers.ZeroPadding2D(((0, 1), (0, 1)))(inputs)
        )
        path2 = layers.Conv2D(filters // 2, 1, 2, use_bias=False)(shifted)
        outputs = _bn()(layers.Concatenate()([path1, path2]))
    return keras.Model(inputs, outputs, name=f"nasnet_reduce_{keras.backend.get_uid('nasnet_fr')}")


def _choice(hp, name, values, default=None):
    """A searched `hp.Choice`, or the single value itself (nothing to search)."""
    if len(values) == 1:
        return values[0]
    return hp.Choice(name, list(values), default=default)


def _extra_outputs(hp, prefix: str, num_states: int) -> set[int]:
    """The `Fixed` `{prefix}/extra_outputs`: used states concatenated anyway."""
    name = f"{prefix}/extra_outputs"
    if name not in hp.values:
        # As `tfnas.blocks.cells.num_blocks`: strict containers would ask for the value.
        hp.values[name] = ""
    text = hp.Fixed(name, hp.values[name])
    try:
        states = {int(s) for s in text.split(",")} if text else set()
    except (AttributeError, ValueError):
        states = None
    if states is None or not all(0 <= s < num_states for s in states):
        raise ValueError(
            f"{name} lists states (ints in [0, {num_states - 1}], comma-separated) to "
            f"concatenate besides the unused ones. Received: {name}={text!r}"
        )
    return states


def nasnet_cell(
    hp: keras_tuner.HyperParameters,
    prefix: str,
    prev,
    current,
    filters: int,
    *,
    reduction: bool,
    num_blocks: int = 5,
    operations: Sequence[str] = NASNET_OPS,
    combine: Sequence[str] = ("add",),
):
    """Builds one NASNet cell on h_{i-1} (`current`) and h_{i-2} (`prev`).

    Args:
        hp: the trial's hyperparameters.
        prefix: the choices' prefix, e.g. "normal"; cells with one prefix share choices.
        prev: h_{i-2}, or None for the first cell (then `current` itself, unchanged).
        current: h_{i-1}.
        filters: the channels of each operation's output.
        reduction: a reduction cell (stride 2 on the cell inputs).
        num_blocks: B.
        operations: the candidate operations.
        combine: the candidate combinations ("add", "concat").

    Returns:
        The concatenation of the unused states (and the `extra_outputs`), each at the last
        block's shape: `filters * (number of such states)` channels when combining by
        addition, at half the input resolution in a reduction cell.
    """
    s1 = ops.relu_conv_bn(filters, 1)(current)
    if prev is None:
        s0 = current
    elif tuple(prev.shape[1:3]) != tuple(current.shape[1:3]):
        s0 = ops.factorized_reduce(tuple(prev.shape[1:]), filters)(prev)
    elif prev.shape[-1] != filters:
        s0 = ops.relu_conv_bn(filters, 1)(prev)
    else:
        s0 = prev
    states = [s0, s1]
    used = set()
    default_op = "sep_conv_3x3" if "sep_conv_3x3" in operations else operations[0]
    for j in range(num_blocks):
        name = f"{prefix}/block{j}"
        branches = []
        for side, default in ((0, 1), (1, 0)):
            index = hp.Choice(f"{name}/input{side}", list(range(j + 2)), default=default)
            op = _choice(hp, f"{name}/op{side}", operations, default_op)
            source = states[index]
            strides = 2 if reduction and index < 2 else 1
            branches.append(nasnet_op(op, tuple(source.shape[1:]), filters, strides)(source))
            used.add(index)
        how = _choice(hp, f"{name}/combine", combine)
        merge = layers.Add() if how == "add" else layers.Concatenate()
        states.append(merge(branches))
    extra = _extra_outputs(hp, prefix, len(states))
    last = states[-1]
    outputs = []
    for index, state in enumerate(states):
        if index in used and index not in extra:
            continue
        if tuple(state.shape[1:]) != tuple(last.shape[1:]):
            strides = 2 if state.shape[1] != last.shape[1] else 1
            state = _factorized_reduction(tuple(state.shape[1:]), last.shape[-1], strides)(state)
        outputs.append(state)
    # The last block is never used, so there is always an output.
    return outputs[0] if len(outputs) == 1 else layers.Concatenate()(outputs)


def nasnet_a_values(space: NASNetSpace) -> dict:
    """NASNet-A's published normal and reduction cells as values of `space`.

    Raises:
        ValueError: unless the space has 5 blocks, NASNet-A's operations and "add".
    """
    needed = {op for cell in NASNET_A.values() for block in cell for _, op in block}
    if space.num_blocks != 5 or not needed <= set(space.operations) or "add" not in space.combine:
        raise ValueError(
            "NASNet-A needs a space with num_blocks=5, the operations "
            f"{sorted(needed)} and combine 'add'. Received: num_blocks={space.num_blocks}, "
            f"operations={list(space.operations)}, combine={list(space.combine)}"
        )
    values = {}
    for cell, blocks in NASNET_A.items():
        for j, block in enumerate(blocks):
            for side, (index, op) in enumerate(block):
                values[f"{cell}/block{j}/input{side}"] = index
                if len(space.operations) > 1:
                    values[f"{cell}/block{j}/op{side}"] = op
            if len(space.combine) > 1:
                values[f"{cell}/block{j}/combine"] = "add"
        values[f"{cell}/extra_outputs"] = NASNET_A_EXTRA_OUTPUTS[cell]
    return values


class NASNetSpace(keras_tuner.HyperModel):
    """The NASNet cell space as a KerasTuner hypermodel (multi-trial search only).

    Args:
        input_shape: image shape, e.g. (32, 32, 3) for CIFAR-10, (8, 8, 1) for digits.
        num_classes: classifier outputs.
        num_blocks: blocks per cell (B; 5 in the paper).
        num_cells_per_stack: normal cells per stack (N; 6 for NASNet-A 6 @ 768).
        num_stacks: stacks of normal cells, a reduction cell between consecutive ones (3
            on CIFAR).
        filters: the first stack's operation width (32 for 6 @ 768: the last stack's
            normal cells concatenate 6 states of 4 x 32 channels); doubled at each
            reduction. Even (factorized reductions halve it).
        stem_multiplier: stem channels = int(stem_multiplier * filters) (3 on CIFAR).
        operations: the candidate operations, a subset of `NASNET_OPS` (default all 13).
        combine: how a block combines its two results: "add", "concat", or both to search.
        dropout: dropout before the classifier (the CIFAR configuration's 0).
        learning_rate: Adam learning rate of the compiled model.
        name: the model name.

    Raises:
        ValueError: for bad arguments, naming the argument and the value received; when
            built as a supernet (a weight-sharing strategy).

    Example:

    ```python
    space = tfnas.spaces.nasnet.NASNetSpace((32, 32, 3), 10, num_cells_per_stack=6)
    model = tfnas.Architecture(space, tfnas.spaces.nasnet.nasnet_a_values(space)).build()
    ```
    """

    # A block's inputs decide what a cell concatenates: no supernet, no per-operation
    # latency table (`tfnas.pipeline` times its trials instead).
    supernet_form = False

    def __init__(
        self,
        input_shape=(32, 32, 3),
        num_classes: int = 10,
        *,
        num_blocks: int = 5,
        num_cells_per_stack: int = 6,
        num_stacks: int = 3,
        filters: int = 32,
        stem_multiplier: float = 3.0,
        operations: Sequence[str] = NASNET_OPS,
        combine: str | Sequence[str] = ("add",),
        dropout: float = 0.0,
        learning_rate: float = 1e-3,
        name: str = "nasnet",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        validate_common(input_shape, num_classes, learning_rate)
        for arg, value in (
            ("num_blocks", num_blocks),
            ("num_cells_per_stack", num_cells_per_stack),
            ("num_stacks", num_stacks),
        ):
            check_int(arg, value, 1)
        check_int("filters", filters, 2)
        if filters % 2:
            raise ValueError(
                "filters must be even (factorized reductions split it in two halves). "
                f"Received: filters={filters}"
            )
        stem_multiplier = check_float("stem_multiplier", stem_multiplier, 0, low_inclusive=False)
        if int(stem_multiplier * filters) < 1:
            raise ValueError(
                "stem_multiplier * filters must give at least 1 stem channel. Received: "
                f"stem_multiplier={stem_multiplier}, filters={filters}"
            )
        if isinstance(operations, str):
            operations = [operations]
        check_operations(operations, NASNET_OPS)
        if isinstance(combine, str):
            combine = [combine]
        if not combine or any(c not in COMBINE_OPS for c in combine):
            raise ValueError(
                f"combine must be 'add', 'concat' or a non-empty list of them. Received: "
                f"combine={combine!r}"
            )
        self.dropout = check_float("dropout", dropout, 0, 1, high_inclusive=False)
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.num_blocks, self.num_cells_per_stack = num_blocks, num_cells_per_stack
        self.num_stacks, self.filters, self.stem_multiplier = num_stacks, filters, stem_multiplier
        self.operations = tuple(dict.fromkeys(operations))
        self.combine = tuple(dict.fromkeys(combine))
        self.learning_rate = learning_rate

    def build(self, hp):
        if mixing_rule_of(hp) is not None:
            raise ValueError(
                "NASNetSpace chooses each block's inputs, which decide the states a cell "
                "concatenates and so the shapes of what follows; it has no supernet: search "
                "it with a multi-trial oracle (nasnet, reinforce, regularized_evolution, ...)."
            )
        inputs = keras.Input(self.input_shape)
        stem = int(self.stem_multiplier * self.filters)
        x = layers.Conv2D(stem, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
        x = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="stem_bn")(x)
        prev, current, filters = None, x, self.filters
        cell = lambda prefix, reduction: nasnet_cell(
            hp, prefix, prev, current, filters, reduction=reduction,
            num_blocks=self.num_blocks, operations=self.operations, combine=self.combine,
        )  # fmt: skip
        for stack in range(self.num_stacks):
            if stack:
                filters *= 2
                prev, current = current, cell("reduce", True)
            for _ in range(self.num_cells_per_stack):
                prev, current = current, cell("normal", False)
        x = layers.ReLU(name="final_relu")(current)
        logits = classification_head(x, self.num_classes, dropout=self.dropout)
        return compile_classifier(keras.Model(inputs, logits, name=self.name), self.learning_rate)
