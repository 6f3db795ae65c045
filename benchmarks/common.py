"""Helpers shared by the benchmark scripts in this directory (tables, timing, data, memory).

The scripts run as `python benchmarks/<name>.py`, so this directory is `sys.path[0]` and
they `import common`. Nothing here asserts: the benchmarks only print tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfnas  # noqa: E402
from tfnas.engine.fit import build_for_fit  # noqa: E402
from tfnas.spaces.nasbench201 import CELL_PREFIX, NUM_NODES, values_to_arch_str  # noqa: E402

# The six edges of a NAS-Bench-201 cell, as `NasBench201Space` names their hyperparameters.
EDGE_NAMES = tuple(f"{CELL_PREFIX}/node{j}/edge{i}" for j in range(1, NUM_NODES) for i in range(j))


# --- Tables ---------------------------------------------------------------------------------


def spread(values: Sequence[float]) -> str:
    """`median [min, max]` of repetitions, or the single value ("-" when empty)."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.median(values):.3g} [{min(values):.3g}, {max(values):.3g}]"


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Element-wise `numerator / denominator` of paired repetitions."""
    return [n / d for n, d in zip(numerators, denominators)]


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Prints a plain-text table with aligned columns."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n== {title}")
    for index, row in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    sys.stdout.flush()


# --- Architectures and data -----------------------------------------------------------------


def random_architectures(count: int, seed: int, operations: Sequence[str]) -> list[dict]:
    """`count` distinct random NAS-Bench-201 cells (all 6 edges are always active)."""
    rng = np.random.default_rng(seed)
    found: dict[str, dict] = {}
    while len(found) < count:
        values = {name: str(rng.choice(list(operations))) for name in EDGE_NAMES}
        found.setdefault(values_to_arch_str(values), values)
    return list(found.values())


def dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, drop_remainder=False):
    """The shuffled batches `SupernetTrainer` uses (shuffle order fixed per epoch)."""
    import tensorflow as tf

    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=False)
        .batch(batch_size, drop_remainder=drop_remainder)
    )


def fit_fixed(space, values: Mapping[str, Any], x, y, *, epochs: int, batch_size: int, seed: int,
              callbacks=None, validation_data=None, drop_remainder=False):  # fmt: skip
    """Builds the fixed-mode network of `values` (seeded) and fits it on `dataset(...)`.

    Returns:
        The `keras.callbacks.History`.
    """
    keras.utils.set_random_seed(seed)
    model = tfnas.Architecture(space, values).build()
    batches = dataset(x, y, batch_size, seed, drop_remainder=drop_remainder)
    build_for_fit(model, batches)  # As the supernet trainer does: one trace, not two.
    return model.fit(
        batches,
        epochs=epochs,
        validation_data=validation_data,
        callbacks=callbacks,
        shuffle=False,
        verbose=0,
    )


def upsampled_digits(size: int, steps: int, batch_size: int):
    """Digits upsampled to `size`x`size`x1 (np.kron), resized to `steps` full batches.

    Returns:
        `(x, y, validation)`, where `validation` is the first batch of `(x, y)`.
    """
    data = tfnas.data.load("digits")
    x = np.kron(data.x_train, np.ones((1, size // 8, size // 8, 1), dtype=data.x_train.dtype))
    count = steps * batch_size
    x, y = np.resize(x, (count, *x.shape[1:])), np.resize(data.y_train, (count,))
    return x, y, (x[:batch_size], y[:batch_size])


def add_memory_flags(parser, children: Sequence[str]) -> None:
    """The flags of `train_memory_child` (and the hidden `--child_memory` it runs as)."""
    parser.add_argument("--memory_reps", type=int, default=1)
    parser.add_argument("--memory_size", type=int, default=32)
    parser.add_argument("--memory_channels", type=int, default=16)
    parser.add_argument("--memory_cells", type=int, default=1)
    parser.add_argument("--memory_steps", type=int, default=3)
    parser.add_argument("--child_memory", choices=children, default=None, help=argparse.SUPPRESS)


def train_memory_child(args, make_oracle: Callable[[str], Any]) -> None:
    """Runs in a memory child: trains `args.child_memory` once and prints its peak RSS.

    "fixed" fits the single network with every NAS-Bench-201 edge nor_conv_3x3; any other
    name trains one supernet epoch with the oracle `make_oracle(name)`, on digits upsampled
    to `args.memory_size` (`args.memory_channels` channels, `args.memory_cells` cells per
    stage, `args.memory_steps` steps of `args.batch_size`).
    """
    import tempfile

    size = args.memory_size
    x, y, validation = upsampled_digits(size, args.memory_steps, args.batch_size)
    space = tfnas.spaces.NasBench201Space(
        (size, size, 1), 10, channels=args.memory_channels, cells_per_stage=args.memory_cells
    )
    baseline = vm_hwm_mb()
    name = args.child_memory
    if name == "fixed":
        values = {edge: "nor_conv_3x3" for edge in EDGE_NAMES}
        model = tfnas.Architecture(space, values).build()
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
    else:
        with tempfile.TemporaryDirectory() as directory:
            trainer = tuner(space, make_oracle(name), directory, name).supernet_trainer()
            trainer.train(x, y, epochs=1, batch_size=args.batch_size,
                          validation_data=validation, verbose=0)  # fmt: skip
    print_child_report(baseline)


def tabular_benchmark():
    """The committed tabular benchmark; RuntimeError when it cannot be loaded."""
    benchmark, note = find_tabular()
    if benchmark is None:
        raise RuntimeError(note)
    return benchmark


def find_tabular():
    """The committed digits tabular benchmark, or None (then architectures are trained here).

    Returns:
        `(benchmark, note)`.
    """
    try:
        from tfnas.nasbench import TabularBenchmark

        benchmark = TabularBenchmark.load()
    except (ImportError, ValueError, OSError) as error:
        return None, f"no tabular benchmark ({error})"
    return benchmark, f"tabular benchmark ({len(benchmark)} cells, mean of its seeds)"


# --- Searching and timing -------------------------------------------------------------------


def tuner(space, oracle, directory: str, name: str) -> tfnas.Tuner:
    """A `tfnas.Tuner` for `oracle` in a fresh project `directory/name`."""
    return tfnas.Tuner(space, oracle=oracle, directory=directory, project_name=name, overwrite=True)


class EpochTimer(keras.callbacks.Callback):
    """Seconds of every `fit` epoch (appends across several `fit` calls)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


# --- Memory ---------------------------------------------------------------------------------


def vm_hwm_mb() -> float:
    """This process's peak resident set size (VmHWM), in MB."""
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def print_child_report(baseline_mb: float) -> None:
    """Called last in a memory child: prints its JSON line (baseline and peak RSS, MB)."""
    print(json.dumps({"baseline_mb": baseline_mb, "peak_mb": vm_hwm_mb()}))


def run_child(command: Sequence[str]) -> dict | str:
    """Runs a memory child and parses its last JSON line.

    Returns:
        The report `{"baseline_mb", "peak_mb"}`, or the end of its stderr when it failed.
    """
    done = subprocess.run(list(command), capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return f"exit code {done.returncode}:\n{done.stderr[-3000:]}"
    return json.loads(lines[-1])


# --- Running --------------------------------------------------------------------------------


def check_only(parser, only: str, names: Sequence[str]) -> list[str]:
    """The `--only=a,b` list, or a parser error naming the unknown entries."""
    chosen = [name for name in only.split(",") if name]
    unknown = set(chosen) - set(names)
    if unknown:
        parser.error(f"unknown --only entries {sorted(unknown)}; choose from {tuple(names)}")
    return chosen


def run_benchmarks(benchmarks: Mapping[str, Callable[[], None]], chosen: Sequence[str]) -> None:
    """Runs the chosen sub-benchmarks in `benchmarks` order, each timed; a failing one prints
    its traceback and does not stop the others."""
    started = time.perf_counter()
    for name, run in benchmarks.items():
        if name not in chosen:
            continue
        begun = time.perf_counter()
        try:
            run()
        except Exception:  # noqa: BLE001  A failed sub-benchmark must not hide the others.
            traceback.print_exc()
            sys.stderr.flush()
        print(f"({name}: {time.perf_counter() - begun:.0f} s)")
        sys.stdout.flush()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
