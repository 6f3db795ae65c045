"""Shows users what a differentiable NAS search (DARTS, SNAS, GDAS, ...) is learning.

A differentiable oracle keeps one probability distribution over candidate operations per
choice (the softmax of its architecture parameters, "alphas"). This module turns those into:

- TensorBoard scalars, one per candidate plus the entropy of each choice, next to the
  curves of Keras' own `TensorBoard` callback (`write_tensorboard`, once per epoch);
- a PNG of heatmaps of the distributions over the epochs (`plot_alpha_history`);
- a PNG diagram of a derived cell, DARTS / NASNet or NAS-Bench-201 (`plot_cell`).

```python
write_tensorboard(callbacks, epoch, {"normal/node0/edge0": [0.7, 0.3]},
                  {"normal/node0/edge0": ["sep_conv_3x3", "skip_connect"]})
plot_alpha_history(history, "runs/alphas.png", labels)
plot_cell(tfnas.spaces.darts.genotype_to_values(DARTS_V2), "runs/normal.png")
```
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfnas.results import plotting

# One writer per log directory: each epoch appends to the same events file.
_WRITERS: dict[str, tf.summary.SummaryWriter] = {}

_NODE_COLORS = {"input": "palegreen", "node": "lightskyblue", "output": "khaki"}
_NODE_RADIUS = 0.3
# How far edges bend: an edge spanning d positions peaks d * bend / 2 off the line. Edges into
# the output have no label to make room for.
_BEND, _OUTPUT_BEND = 0.6, 0.3
_INCH_PER_UNIT = 1.3


def write_tensorboard(
    callbacks: Iterable[keras.callbacks.Callback] | None,
    epoch: int,
    distributions: Mapping[str, Sequence[float]],
    labels: Mapping[str, Sequence[str]],
) -> int:
    """Writes the distributions as scalars to the log directory of each TensorBoard callback.

    Each choice gets the scalar `"{choice}/{label}"` per candidate and `"{choice}/entropy"`
    (natural log), at step `epoch`, in the run `architecture` under the callback's `log_dir`.

    Args:
        callbacks: The callbacks passed to `fit`, or None; only `keras.callbacks.TensorBoard`
            instances are used.
        epoch: The step of the scalars.
        distributions: Choice name to the probability of each candidate.
        labels: Choice name to a readable name of each candidate (e.g. "sep_conv_3x3");
            choices missing here are labelled "0", "1", ...

    Returns:
        The number of TensorBoard callbacks written to (0 when there is none).
    """
    boards = [c for c in callbacks or () if isinstance(c, keras.callbacks.TensorBoard)]
    for board in boards:
        log_dir = os.path.join(board.log_dir, "architecture")
        if log_dir not in _WRITERS:
            _WRITERS[log_dir] = tf.summary.create_file_writer(log_dir)
        writer = _WRITERS[log_dir]
        with writer.as_default(step=epoch):
            for choice, probs in distributions.items():
                for label, p in zip(_candidate_labels(labels, choice, len(probs)), probs):
                    tf.summary.scalar(f"{choice}/{label}", float(p))
                entropy = -sum(float(p) * math.log(p) for p in probs if p > 0)
                tf.summary.scalar(f"{choice}/entropy", entropy)
        writer.flush()
    return len(boards)


def plot_alpha_history(
    history: Sequence[Mapping],
    path: str | os.PathLike,
    labels: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """Writes a PNG with one heatmap per choice: candidates by epochs, coloured by probability.

    Args:
        history: One entry per epoch, `{"epoch": int, "distributions": {choice: [p_0, ...]}}`.
            A choice missing from an epoch leaves that column blank.
        path: Where to write the PNG; missing parent directories are created.
        labels: Choice name to a readable name of each candidate; choices missing here are
            labelled "0", "1", ...

    Returns:
        `path`, as a string.

    Raises:
        ValueError: if `history` is empty or a choice's number of candidates changes across
            epochs.
    """
    if not history:
        raise ValueError(
            "`history` needs at least one entry {'epoch': int, 'distributions': {...}}. "
            f"Received: history={history!r}"
        )
    sizes: dict[str, int] = {}
    for entry in history:
        for choice, probs in entry["distributions"].items():
            if sizes.setdefault(choice, len(probs)) != len(probs):
                raise ValueError(
                    f"Choice {choice!r} has {sizes[choice]} candidates in an earlier epoch of "
                    f"`history` but {len(probs)} at epoch {entry['epoch']}. Received: "
                    f"{choice}={list(probs)}"
                )
    if not sizes:
        raise ValueError(f"No entry of `history` has distributions. Received: history={history!r}")

    epochs = [entry["epoch"] for entry in history]
    cols = min(4, len(sizes))
    rows = math.ceil(len(sizes) / cols)
    height = rows * (0.25 * max(sizes.values()) + 1.2)
    figure = plotting.new_figure(cols * 3.4 + 0.8, height)
    all_axes = []
    for index, (choice, size) in enumerate(sizes.items()):
        matrix = np.full((size, len(history)), np.nan)
        for column, entry in enumerate(history):
            if choice in entry["distributions"]:
                matrix[:, column] = entry["distributions"][choice]
        axes = figure.add_subplot(rows, cols, index + 1)
        image = axes.imshow(matrix, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
        axes.set_yticks(range(size), _candidate_labels(labels or {}, choice, size), fontsize=7)
        ticks = range(0, len(epochs), math.ceil(len(epochs) / 8))
        axes.set_xticks(ticks, [str(epochs[t]) for t in ticks], fontsize=7)
        axes.set_xlabel("epoch", fontsize=8)
        axes.set_title(choice, fontsize=9)
        all_axes.append(axes)
    figure.colorbar(image, ax=all_axes, label="probability")
    return plotting.save_png(figure, path)


def plot_cell(values: Mapping[str, Any], path: str | os.PathLike, prefix: str = "normal") -> str:
    """Writes a PNG diagram of a derived cell, its states left to right.

    Two kinds of cells, told apart by their hyperparameter names:

    - DARTS / NASNet: `"{prefix}/node{j}/inputs"` names the two states (e.g. "0,2") node j
      reads, `"{prefix}/node{j}/edge{i}"` the operation on the edge from state i. States 0
      and 1 are the cell inputs c_{k-2}, c_{k-1}; state i >= 2 is node i - 2. The output c_{k}
      concatenates every node.
    - NAS-Bench-201: `"{prefix}/node{j}/edge{i}"` for every i < j; node 0 is the input, the
      last node the output. Edges with the operation "none" are dashed and grey.

    Args:
        values: The hyperparameter values of an architecture (e.g. `genotype_to_values` of
            `tfnas.spaces.darts` or `arch_str_to_values` of `tfnas.spaces.nasbench201`).
        path: Where to write the PNG; missing parent directories are created.
        prefix: The cell's name in the hyperparameters: "normal" or "reduce" for DARTS,
            "cell" for NAS-Bench-201.

    Returns:
        `path`, as a string.

    Raises:
        ValueError: if no hyperparameter starts with `"{prefix}/node"`, or a chosen input of a
            DARTS node has no operation.
    """
    pattern = re.compile(rf"{re.escape(prefix)}/node(\d+)/(inputs|edge(\d+))")
    keys = [m for m in map(pattern.fullmatch, values) if m]
    if not keys:
        prefixes = sorted({k.split("/node")[0] for k in values if "/node" in k})
        raise ValueError(
            f"No key of `values` starts with {prefix + '/node'!r}; pass the cell's `prefix`"
            f"{f' (one of {prefixes})' if prefixes else ''}. Received: prefix={prefix!r}, "
            f"keys of values={sorted(values)[:6]}"
        )
    num_nodes = max(int(m.group(1)) for m in keys) + 1
    if any(m.group(2) == "inputs" for m in keys):
        names = ["$c_{k-2}$", "$c_{k-1}$", *map(str, range(num_nodes)), "$c_{k}$"]
        kinds = ["input"] * 2 + ["node"] * num_nodes + ["output"]
        edges = []
        for j in range(num_nodes):
            for i in map(int, values[f"{prefix}/node{j}/inputs"].split(",")):
                key = f"{prefix}/node{j}/edge{i}"
                if key not in values:
                    raise ValueError(
                        f"Node {j} reads state {i} but `values` has no {key!r}. Received: "
                        f"{prefix}/node{j}/inputs={values[f'{prefix}/node{j}/inputs']!r}"
                    )
                edges.append((i, j + 2, values[key]))
            edges.append((j + 2, num_nodes + 2, None))
    else:
        names = [str(j) for j in range(num_nodes)]
        kinds = ["input"] + ["node"] * (num_nodes - 2) + ["output"]
        edges = [
            (int(m.group(3)), int(m.group(1)), values[m.group(0)])
            for m in sorted(keys, key=lambda m: (int(m.group(1)), int(m.group(3))))
        ]

    from matplotlib.patches import Circle, FancyArrowPatch
    from matplotlib.path import Path

    # Nodes sit on a line; edges arc above (operations) or below (into the output),
    # higher the more positions they span, so edges sharing an end never cross.
    above, below = (
        bend / 2 * max((dst - src for src, dst, op in edges if (op is None) == out), default=0)
        for bend, out in ((_BEND, False), (_OUTPUT_BEND, True))
    )
    figure = plotting.new_figure(
        len(names) * _INCH_PER_UNIT, (above + below + 1.4) * _INCH_PER_UNIT
    )
    axes = figure.add_subplot()
    for src, dst, op in edges:
        start, end = np.array([src, 0.0]), np.array([dst, 0.0])
        bend = -_BEND if op is not None else _OUTPUT_BEND
        control = (start + end) / 2 + bend * np.array([0.0, -(dst - src)])
        # Ends on the circles, along the curve's tangents there.
        start += _NODE_RADIUS * (control - start) / np.linalg.norm(control - start)
        end += _NODE_RADIUS * (control - end) / np.linalg.norm(control - end)
        color, style = ("0.6", "--") if op == "none" else ("0.2", "-")
        curve = Path([start, control, end], [Path.MOVETO, Path.CURVE3, Path.CURVE3])
        axes.add_patch(
            FancyArrowPatch(
                path=curve, arrowstyle="-|>", mutation_scale=12, color=color, linestyle=style
            )
        )
        if op is not None:
            x, y = (start + 2 * control + end) / 4
            bbox = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"}
            axes.text(x, y, op, ha="center", va="center", fontsize=7, color=color, bbox=bbox)
    for x, (name, kind) in enumerate(zip(names, kinds)):
        axes.add_patch(Circle((x, 0), _NODE_RADIUS, facecolor=_NODE_COLORS[kind], zorder=3))
        axes.text(x, 0, name, ha="center", va="center", fontsize=9, zorder=4)
    axes.set_xlim(-0.6, len(names) - 0.4)
    axes.set_ylim(-below - 0.5, above + 0.5)
    axes.set_aspect("equal")
    axes.axis("off")
    axes.set_title(prefix)
    return plotting.save_png(figure, path)


def _candidate_labels(labels: Mapping[str, Sequence[str]], choice: str, size: int) -> list[str]:
    names = [str(label) for label in labels.get(choice, range(size))]
    if len(names) != size:
        raise ValueError(
            f"Choice {choice!r} has {size} candidates but `labels` names {len(names)}. "
            f"Received: labels[{choice!r}]={names}"
        )
    return names
