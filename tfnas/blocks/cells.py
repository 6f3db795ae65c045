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

A DARTS cell can be built with only its first b intermediate nodes (blocks), as
progressive search (PNAS, `tfnas.search.pnas`) trains them: the `Fixed` hyperparameter
`NUM_BLOCKS` holds the number of nodes built (the cell's `num_nodes` unless a trial's
values set it lower), node j's choices exist only under `NUM_BLOCKS` > j (a conditional
scope, so a b-block architecture holds no values for the absent nodes), and the cell
output concatenates the present nodes only. Every other strategy leaves the value alone,
so it sees the full cell.
"""

from __future__ import annotations

import contextlib

import keras
import keras_tuner

from tfnas.blocks import ops
from tfnas.blocks.choices import input_choice, layer_choice
from tfnas.blocks.supernet import candidate_channels, partial_channel_divisor

# The hyperparameter holding how many intermediate nodes (blocks) the DARTS cells build;
# `tfnas.search.pnas.NUM_BLOCKS` names the same one (the search cores import no Keras).
NUM_BLOCKS = "cells/num_blocks"


def num_blocks(hp: keras_tuner.HyperParameters, max_blocks: int, name: str = NUM_BLOCKS) -> int:
    """Registers the number of blocks a cell builds and returns this build's value.

    The hyperparameter is `Fixed` at `max_blocks`, so searches that do not grow cells never
    change it; a search that does (PNAS) puts a smaller value in the trial's values, which
    `hp.Fixed` returns. A container that meets the name for the first time with a value
    already set (a `tfnas.Architecture` of a b-block cell) registers it with that value;
    an architecture without the value (e.g. `genotype_to_values`) gets `max_blocks`.

    Args:
        hp: the trial's hyperparameters or `SupernetHyperParameters`.
        max_blocks: the cell's number of intermediate nodes.
        name: the hyperparameter name.

    Returns:
        The number of nodes to build, an int in [1, max_blocks].

    Raises:
        ValueError: when the value is not an int in [1, max_blocks].
    """
    if name not in hp.values:
        # A `Fixed` value is always known; strict containers (`tfnas.Architecture`)
        # would otherwise ask the architecture for it.
        hp.values[name] = max_blocks
    value = hp.Fixed(name, hp.values[name])
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= max_blocks:
        raise ValueError(
            f"{name} is the number of blocks (intermediate nodes) the cells build and must be "
            f"an int in [1, {max_blocks}]. Received: {name}={value!r}"
        )
    return value


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
    blocks_name: str | None = NUM_BLOCKS,
):
    """Builds one DARTS/NASNet cell on the outputs of the two previous cells.

    Hyperparameters (with `prefix`, e.g. "normal"): `{prefix}/node{j}/inputs` chooses 2
    of the `j + 2` earlier states ("0,1" ... ), `{prefix}/node{j}/edge{i}` the operation on
    the edge from state i (only when state i is chosen).

    With `blocks_name`, the `Fixed` hyperparameter of that name (see `num_blocks`) says how
    many nodes b are built: node j's choices live in the conditional scope
    `blocks_name in [j + 1, ..., num_nodes]`, nodes j >= b are not built, and the output
    concatenates the b present nodes. All cells that share `blocks_name` grow together.
    `blocks_name=None` always builds `num_nodes` nodes, with no such hyperparameter.

    Returns:
        The cell output, `b * channels` channels (`num_nodes * channels` unless a search
        sets fewer blocks).
    """
    built = num_nodes if blocks_name is None else num_blocks(hp, num_nodes, blocks_name)
    if reduction_prev:
        s0 = ops.factorized_reduce(s0.shape[1:], channels, affine)(s0)
    else:
        s0 = ops.relu_conv_bn(channels, 1, affine=affine)(s0)
    s1 = ops.relu_conv_bn(channels, 1, affine=affine)(s1)
    states = [s0, s1]
    for node in range(built):

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

        present = (
            contextlib.nullcontext()
            if blocks_name is None
            else hp.conditional_scope(blocks_name, list(range(node + 1, num_nodes + 1)))
        )
        with present:
            states.append(
                input_choice(
                    hp,
                    f"{prefix}/node{node}/inputs",
                    [lambda i=i: edge(i) for i in range(len(states))],
                    n_chosen=2,
                    reduction="sum",
                )
            )
    if len(states) == 3:  # One block: nothing to concatenate.
        return states[2]
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
