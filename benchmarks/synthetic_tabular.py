"""Generates a synthetic 15,625-cell table of the full NAS-Bench-201 space (no training).

The shipped table (`digits_nb201_ops3_c4_e4`) holds 729 cells of a 3-operation space:
too small to tell multi-trial strategies apart at 100 queries. This script writes a table
of all 5**6 cells of the 5-operation NAS-Bench-201 space ({none, skip_connect,
nor_conv_1x1, nor_conv_3x3, avg_pool_3x3} on 6 edges) in the format
`tfnas.nasbench.TabularBenchmark.load` reads, with accuracies drawn from a seeded model with
NAS-Bench-201-like structure:

* a latent score per cell: the sum of a per-edge effect of each edge's operation (on average
  conv 3x3 > conv 1x1 > skip > pool > none, each edge with its own random offsets) plus a
  random pairwise interaction between the operations of every pair of edges;
* a disconnected cell (no path of non-`none` edges from the input node to the output node)
  scores chance accuracy, 0.1, as in NAS-Bench-201;
* the latent score's rank among the connected cells is mapped to an accuracy so that the
  good region is small, as in NAS-Bench-201 on CIFAR-10: the optimum is near 94.4%, the
  top 1% of cells lie within about 0.6 points of it, the median is about 5 points below, and
  a tail of poor cells reaches 30 points below;
* each cell has a small validation-vs-test offset (what a search selects on is not exactly
  what it is scored on), and each of the `--seeds` training seeds adds its own noise (what
  `run_oracle(..., sample_seed=True)` reports).

Parameters and FLOPs are the analytic cost of one cell's operations at 16 channels (a
simple count for the table's columns, not a built model's).

    .venv/bin/python benchmarks/synthetic_tabular.py --output=/tmp/synthetic_nb201.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os

import numpy as np

FORMAT = "tfnas.tabular_benchmark"
VERSION = 1
OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# The 6 edges (to_node, from_node) of a 4-node NAS-Bench-201 cell, in arch-string order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
CHANCE = 0.1
# Mean effect of each operation on the latent score, in the order of OPERATIONS.
_OP_EFFECT = np.array([-1.0, 0.0, 0.5, 1.0, -0.3])
COLUMNS = [
    "arch",
    "val_acc",
    "val_acc_std",
    "test_acc",
    "test_acc_std",
    "num_params",
    "flops",
    "val_acc_per_seed",
    "test_acc_per_seed",
]


def arch_string(ops: tuple[int, ...]) -> str:
    """The NAS-Bench-201 string of a cell given as one operation index per edge."""
    nodes = []
    for j in (1, 2, 3):
        edges = [f"{OPERATIONS[ops[e]]}~{src}" for e, (dst, src) in enumerate(EDGES) if dst == j]
        nodes.append("|" + "|".join(edges) + "|")
    return "+".join(nodes)


def connected(ops: np.ndarray) -> np.ndarray:
    """Whether the output node is reachable from the input through non-`none` edges.

    Args:
        ops: `(n, 6)` operation indices.
    """
    live = ops != 0
    reach1 = live[:, 0]
    reach2 = live[:, 1] | (reach1 & live[:, 2])
    return live[:, 3] | (reach1 & live[:, 4]) | (reach2 & live[:, 5])


def _rank_to_regret(q: np.ndarray) -> np.ndarray:
    """Accuracy points below the optimum of the cell at rank quantile `q` (0 = best)."""
    return 7.3 * q**0.54 + 20.0 * q**8


def generate(
    seed: int = 201,
    num_seeds: int = 3,
    optimum: float = 0.944,
    interaction_scale: float = 0.25,
    edge_scale: float = 0.4,
    seed_noise: float = 0.001,
    split_noise: float = 0.0005,
    channels: int = 16,
) -> dict:
    """Returns the table (a JSON-able dict) of every cell; see the module docstring.

    Args:
        seed: seed of the model (the same seed gives the same table).
        num_seeds: training seeds per cell.
        optimum: accuracy of the best connected cell before noise.
        interaction_scale: standard deviation of the pairwise edge interactions.
        edge_scale: standard deviation of each edge's offsets to the mean operation effect.
        seed_noise: standard deviation of one seed's accuracy around the cell's mean.
        split_noise: standard deviation of a cell's validation and of its test offset.
        channels: channels for the analytic parameter and FLOP counts.
    """
    rng = np.random.default_rng(seed)
    num_ops, num_edges = len(OPERATIONS), len(EDGES)
    ops = np.array(list(itertools.product(range(num_ops), repeat=num_edges)))
    edge_effect = _OP_EFFECT[None, :] + edge_scale * rng.standard_normal((num_edges, num_ops))
    score = edge_effect[np.arange(num_edges)[None, :], ops].sum(axis=1)
    for a, b in itertools.combinations(range(num_edges), 2):
        table = interaction_scale * rng.standard_normal((num_ops, num_ops))
        score += table[ops[:, a], ops[:, b]]
    alive = connected(ops)
    order = np.argsort(-np.where(alive, score, -np.inf), kind="stable")
    rank = np.empty(len(ops), dtype=np.int64)
    rank[order] = np.arange(len(ops))
    quantile = rank / max(1, int(alive.sum()) - 1)
    true_acc = np.where(alive, optimum - _rank_to_regret(quantile) / 100.0, CHANCE)

    def noisy(offset_scale: float) -> np.ndarray:
        offset = offset_scale * rng.standard_normal(len(ops))
        per_seed = true_acc[:, None] + offset[:, None]
        per_seed = per_seed + seed_noise * rng.standard_normal((len(ops), num_seeds))
        # A disconnected cell predicts a constant: chance on every seed, as in NAS-Bench-201.
        return np.where(alive[:, None], np.clip(per_seed, 0.0, 1.0), CHANCE)

    val, test = noisy(split_noise), noisy(split_noise)
    c = channels
    op_params = np.array([0, 0, c * c + 2 * c, 9 * c * c + 2 * c, 0])
    num_params = op_params[ops].sum(axis=1) + 2000
    flops = (op_params[ops].sum(axis=1) * 32 * 32).astype(np.int64) + 100_000
    rows = []
    for i in range(len(ops)):
        rows.append(
            [
                arch_string(tuple(ops[i])),
                round(float(val[i].mean()), 6),
                round(float(val[i].std()), 6),
                round(float(test[i].mean()), 6),
                round(float(test[i].std()), 6),
                int(num_params[i]),
                int(flops[i]),
                [round(float(v), 6) for v in val[i]],
                [round(float(v), 6) for v in test[i]],
            ]
        )
    return {
        "format": FORMAT,
        "version": VERSION,
        "metadata": {
            "dataset": "synthetic",
            "synthetic": {
                "seed": seed,
                "optimum": optimum,
                "interaction_scale": interaction_scale,
                "edge_scale": edge_scale,
                "seed_noise": seed_noise,
                "split_noise": split_noise,
                "op_effect": dict(zip(OPERATIONS, _OP_EFFECT.tolist())),
            },
            "space": {
                "class": "tfnas.spaces.NasBench201Space",
                "input_shape": [32, 32, 3],
                "num_classes": 10,
                "channels": channels,
                "cells_per_stage": 5,
                "operations": list(OPERATIONS),
                "learning_rate": 0.001,
            },
            "seeds": list(range(num_seeds)),
            "generator": "benchmarks/synthetic_tabular.py",
        },
        "columns": COLUMNS,
        "rows": rows,
    }


def write(path: str, **kwargs) -> str:
    """Writes `generate(**kwargs)` to `path` (directories created); returns `path`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(generate(**kwargs), f, separators=(",", ":"))
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="path of the JSON table to write")
    parser.add_argument("--seed", type=int, default=201, help="seed of the model")
    parser.add_argument("--num_seeds", type=int, default=3, help="training seeds per cell")
    args = parser.parse_args(argv)
    print(write(args.output, seed=args.seed, num_seeds=args.num_seeds))


if __name__ == "__main__":
    main()
