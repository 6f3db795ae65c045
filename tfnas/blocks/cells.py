"""The cells of the surveyed cell spaces, built from choice points.

`darts_cell` is the NASNet/DARTS cell (two inputs, `num_nodes` intermediate nodes, each the
sum of two operations on two earlier states, output the concatenation of the intermediate
nodes). `nasbench201_cell` is the NAS-Bench-201 cell (4 nodes, an operation on each of the
6 edges, each node the sum of its incoming edges).

Choice names carry a `prefix`, so all cells with the same prefix share one genotype, as
in the papers (all normal cells of a DARTS network share one architecture).

Edge operations are built for `candidate_channels(hp, channels, name)` channels: all of
them in fixed mode, 1/K of them in a PC-DARTS supernet, whose rule feeds the operations
that share of the edge's input and passes the rest around them.
"""

from __future__ import annotations

import keras
import keras_tuner

from tfnas.blocks import ops
from tfnas.blocks.choices import input_choice, layer_choice
from tfnas.blocks.supernet import candidate_channels, partial_channel_divisor


def _default_op(operations, preferred: str) -> str:
    """A trainable default for cell edges (`none` first would zero unsearched cells)."""
    if preferred in operations:
        return preferred
    return next((op for op in operations if op != "none"), operations[0])


def darts_cell(
    hp: keras_tuner.HyperParameters,
    prefix: str,
    s0,
    s1,
    channels: int,
    *,
    reduction: bool,
    reduction_prev: bool,
    num_nodes: int = 4,
    operations=ops.DARTS_OPS,
    affine: bool = True,
):
    """Builds one DARTS/NASNet cell on the outputs of the two previous cells.

    Hyperparameters (with `prefix`, e.g. "normal"): `{prefix}/node{j}/inputs` chooses 2
    of the `j + 2` earlier states ("0,1" ... ), `{prefix}/node{j}/edge{i}` the operation on
    the edge from state i (only when state i is chosen).

    Returns:
        The cell output, `num_nodes * channels` channels.
    """
    if reduction_prev:
        s0 = ops.factorized_reduce(s0.shape[1:], channels, affine)(s0)
    else:
        s0 = ops.relu_conv_bn(channels, 1, affine=affine)(s0)
    s1 = ops.relu_conv_bn(channels, 1, affine=affine)(s1)
    states = [s0, s1]
    for node in range(num_nodes):

        def edge(i, node=node):
            source = states[i]
            strides = 2 if reduction and i < 2 else 1
            name = f"{prefix}/node{node}/edge{i}"
            width = candidate_channels(hp, channels, name)
            shape = (*source.shape[1:-1], source.shape[-1] // partial_channel_divisor(hp))
            make = lambda op: ops.darts_op(op, shape, width, strides, affine)
            choice = layer_choice(
                hp,
                name,
                ops.op_factories(operations, make),
                default=_default_op(operations, "sep_conv_3x3"),
            )
            return choice(source)

        states.append(
            input_choice(
                hp,
                f"{prefix}/node{node}/inputs",
                [lambda i=i: edge(i) for i in range(len(states))],
                n_chosen=2,
                reduction="sum",
            )
        )
    return keras.layers.Concatenate()(states[2:])


def nasbench201_cell(
    hp: keras_tuner.HyperParameters,
    prefix: str,
    inputs,
    channels: int,
    *,
    num_nodes: int = 4,
    operations=ops.NASBENCH201_OPS,
    affine: bool = True,
):
    """Builds one NAS-Bench-201 cell: node j = sum over i < j of op_{i->j}(node i).

    Hyperparameters: `{prefix}/node{j}/edge{i}` for 0 <= i < j < num_nodes.

    Returns:
        The last node, `channels` channels, same resolution as `inputs`.
    """
    width = candidate_channels(hp, channels, f"{prefix}/node1/edge0")
    make = lambda name: ops.nasbench201_op(name, width, affine)
    nodes = [inputs]
    for j in range(1, num_nodes):
        edges = [
            layer_choice(
                hp,
                f"{prefix}/node{j}/edge{i}",
                ops.op_factories(operations, make),
                default=_default_op(operations, "nor_conv_3x3"),
            )(nodes[i])
            for i in range(j)
        ]
        nodes.append(edges[0] if len(edges) == 1 else keras.layers.Add()(edges))
    return nodes[-1]
