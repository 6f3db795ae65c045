"""Generates a tabular NAS benchmark: every NAS-Bench-201 cell of a small space, trained.

The digits-scale counterpart of NAS-Bench-201: each cell of a (reduced) NAS-Bench-201
space is trained from scratch with every seed on scikit-learn's digits, and the mean and
spread of its validation and test accuracy are stored with the parameters and FLOPs of its
fixed-mode `tfnas.spaces.NasBench201Space` model, as JSON in `tfnas/nasbench/data/`.
`tfnas.nasbench.TabularBenchmark` reads it.

Training is exact but batched (see `benchmarks/batched.py`): `--group_size`
architectures train side by side in one TensorFlow graph, and cells whose training is
provably identical (dead edges) are trained once and share the result.

    nice -n 19 .venv/bin/python benchmarks/make_tabular_benchmark.py            # full run
    .venv/bin/python benchmarks/make_tabular_benchmark.py --limit=8 --epochs=1 \
        --output=/tmp/quick.json                                                  # smoke run
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import batched  # noqa: E402
import keras  # noqa: E402
import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from cell_costs import CellCosts  # noqa: E402

import tfnas  # noqa: E402
from tfnas.spaces import nasbench201  # noqa: E402

DATA_DIR = os.path.join(os.path.dirname(tfnas.__file__), "nasbench", "data")
FORMAT = "tfnas.tabular_benchmark"
VERSION = 1


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--operations",
        default="none,skip_connect,nor_conv_3x3",
        help="comma-separated subset of the NAS-Bench-201 operations",
    )
    parser.add_argument("--channels", type=int, default=4, help="channels of the first stage")
    parser.add_argument("--cells_per_stage", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=0.01, help="Adam learning rate")
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    parser.add_argument("--split_seed", type=int, default=0, help="seed of the digits splits")
    parser.add_argument("--group_size", type=int, default=180, help="archs trained at once")
    parser.add_argument("--limit", type=int, default=None, help="train only this many cells")
    parser.add_argument("--tag", default=None, help="file name tag (default from settings)")
    parser.add_argument("--output", default=None, help="output path (default: package data)")
    args = parser.parse_args(argv)
    args.operations = tuple(op for op in args.operations.split(",") if op)
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    if args.epochs < 1 or args.batch_size < 1 or args.group_size < 1 or not args.seeds:
        parser.error("epochs, batch_size and group_size must be >= 1 and seeds non-empty")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be >= 1. Received: {args.limit}")
    if args.tag is None:
        args.tag = f"ops{len(args.operations)}_c{args.channels}_e{args.epochs}"
    if args.output is None:
        args.output = os.path.join(DATA_DIR, f"digits_nb201_{args.tag}.json")
    return args


def train_cells(args, cells, data) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """Trains every cell with every seed; `{cell: (val_acc[seeds], test_acc[seeds])}`."""
    group_size = min(args.group_size, len(cells))
    net = batched.BatchedNasBench201(
        group_size,
        args.channels,
        args.cells_per_stage,
        args.operations,
        data.input_shape,
        data.num_classes,
        args.learning_rate,
    )
    op_index = {op: i for i, op in enumerate(args.operations)}
    x_train = tf.constant(data.x_train)
    y_train = tf.constant(data.y_train)
    steps = len(data.y_train) // args.batch_size
    val = np.zeros((len(cells), len(args.seeds)))
    test = np.zeros((len(cells), len(args.seeds)))
    start = time.time()
    done = 0
    for s, seed in enumerate(args.seeds):
        initial = net.initial_weights(seed)
        order = np.random.default_rng([seed, 1]).permuted(
            np.tile(np.arange(len(data.y_train)), (args.epochs, 1)), axis=1
        )
        for first in range(0, len(cells), group_size):
            group = cells[first : first + group_size]
            # Pad the last group with copies of its first cell (their results are dropped).
            padded = group + [group[0]] * (group_size - len(group))
            masks = np.zeros((group_size, batched.NUM_EDGES, len(args.operations)))
            for k, cell in enumerate(padded):
                masks[k, np.arange(batched.NUM_EDGES), [op_index[op] for op in cell]] = 1.0
            net.reset(initial, masks)
            for epoch in range(args.epochs):
                for step in range(steps):
                    batch = order[epoch, step * args.batch_size : (step + 1) * args.batch_size]
                    net.train_step(tf.gather(x_train, batch), tf.gather(y_train, batch))
            rows = slice(first, first + len(group))
            val[rows, s] = net.accuracy(data.x_val, data.y_val)[: len(group)]
            test[rows, s] = net.accuracy(data.x_test, data.y_test)[: len(group)]
            done += len(group)
            elapsed = time.time() - start
            print(
                f"seed {seed}: {first + len(group)}/{len(cells)} cells, "
                f"{elapsed / done:.3f} s per cell and seed, {elapsed:.0f} s elapsed, "
                f"group val acc median {np.median(val[rows, s]):.3f} "
                f"max {val[rows, s].max():.3f}",
                flush=True,
            )
    return {cell: (val[i], test[i]) for i, cell in enumerate(cells)}


def run(args) -> dict:
    """Generates the table and writes it to `args.output`; returns the JSON object."""
    start = time.time()
    data = tfnas.data.load("digits", seed=args.split_seed)
    space_config = {
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        "channels": args.channels,
        "cells_per_stage": args.cells_per_stage,
        "operations": list(args.operations),
        "learning_rate": args.learning_rate,
    }
    space = nasbench201.NasBench201Space(
        tuple(data.input_shape),
        data.num_classes,
        channels=args.channels,
        cells_per_stage=args.cells_per_stage,
        operations=args.operations,
        learning_rate=args.learning_rate,
    )
    all_cells = list(itertools.product(args.operations, repeat=batched.NUM_EDGES))
    representative = {cell: batched.training_equivalent(cell) for cell in all_cells}
    trained = sorted(set(representative.values()))
    if args.limit is not None:
        trained = trained[: args.limit]
        all_cells = [c for c in all_cells if representative[c] in set(trained)]
    print(
        f"{len(all_cells)} cells, {len(trained)} to train (the others train identically), "
        f"{len(args.seeds)} seeds, {args.epochs} epochs",
        flush=True,
    )
    costs = CellCosts(space)
    results = train_cells(args, trained, data)
    edge_names = costs.edge_names
    rows = []
    for cell in all_cells:
        values = dict(zip(edge_names, cell))
        val, test = results[representative[cell]]
        params, flops = costs(values)
        rows.append(
            [
                nasbench201.values_to_arch_str(values),
                round(float(val.mean()), 6),
                round(float(val.std()), 6),
                round(float(test.mean()), 6),
                round(float(test.std()), 6),
                params,
                flops,
                [round(float(v), 6) for v in val],
                [round(float(v), 6) for v in test],
            ]
        )
    generation_time = time.time() - start
    table = {
        "format": FORMAT,
        "version": VERSION,
        "metadata": {
            "dataset": "digits",
            "split_seed": args.split_seed,
            "split_sizes": {
                "train": len(data.y_train),
                "val": len(data.y_val),
                "test": len(data.y_test),
            },
            "space": {"class": "tfnas.spaces.NasBench201Space", **space_config},
            "seeds": args.seeds,
            "training": {
                "optimizer": "adam",
                "learning_rate": args.learning_rate,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "drop_remainder": True,
                "loss": "sparse categorical cross-entropy on logits",
                "init": "Keras initializers, one draw per seed shared by all cells",
                "data_order": "one shuffle per epoch and seed, shared by all cells",
                "std": "population standard deviation over seeds (numpy ddof=0)",
            },
            "num_trained": len(trained),
            "generation_time_s": round(generation_time, 1),
            "generator": "benchmarks/make_tabular_benchmark.py",
            "command": " ".join(sys.argv),
            "versions": {
                "tfnas": tfnas.__version__,
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "keras_tuner": keras_tuner.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
        },
        "columns": [
            "arch",
            "val_acc",
            "val_acc_std",
            "test_acc",
            "test_acc_std",
            "num_params",
            "flops",
            "val_acc_per_seed",
            "test_acc_per_seed",
        ],
        "rows": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(table, f, separators=(",", ":"))
        f.write("\n")
    val_means = np.array([r[1] for r in rows])
    test_means = np.array([r[3] for r in rows])
    print(
        f"wrote {args.output}: {len(rows)} cells in {generation_time:.0f} s; "
        f"val acc median {np.median(val_means):.4f} max {val_means.max():.4f}; "
        f"test acc median {np.median(test_means):.4f} max {test_means.max():.4f}; "
        f"mean val std over seeds {np.mean([r[2] for r in rows]):.4f}",
        flush=True,
    )
    return table


if __name__ == "__main__":
    run(parse_args())
