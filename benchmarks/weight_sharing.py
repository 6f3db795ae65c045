"""Weight-sharing (one-shot) NAS in tfnas: cost, end-to-end time, ranking, memory.

Run from the repository root (each sub-benchmark prints one table of medians and spreads
over repetitions; nothing is asserted):

    nice -n 19 .venv/bin/python benchmarks/weight_sharing.py            # all four
    nice -n 19 .venv/bin/python benchmarks/weight_sharing.py --only=cost,ranking

Sub-benchmarks (`--only=`), on the bundled digits data (train split for training, the
validation split for every accuracy), batch 64:

1. `cost`: seconds per epoch of one SPOS supernet epoch (SinglePath rule, the tiny
   `tfnas.spaces.make("nasbench201", (8, 8, 1), 10)` space, trained by
   `SupernetTrainer.train` with its per-step path hooks) against one epoch of a fixed
   single-path network of the same space (`tfnas.Architecture(space, values).build()`,
   the same tf.data pipeline). Epoch 1 (tracing) is excluded: epochs 2..k are timed by a
   callback around `fit`'s epochs; the per-epoch time `train` spends outside `fit`
   (checkpoint, epoch hook) is reported apart. Target: ratio <= 1.3x.
2. `e2e`: SPOS search (supernet training for E epochs + evolutionary search of N
   candidates, `tfnas.Tuner(space, oracle=tfnas.oracles.SPOS(max_trials=N))`) against
   training the best found network once from scratch (`tuner.retrain`) for the same E
   epochs. Target: ratio <= 3x.
3. `ranking`: Kendall tau between the inherited-weight validation accuracy
   (`tuner.supernet_trainer().evaluate(values)` after supernet training, batch-norm
   statistics recalibrated) of the same K random architectures and their stand-alone
   accuracy, for SPOS, FairNAS and RandomWeightSharing. Stand-alone accuracy comes from
   a tabular benchmark in `tfnas/benchmarks/data/*.json` when one exists and records the
   same space; otherwise each architecture is trained here from scratch for
   `--standalone_epochs` epochs (one seed) and the table says so. Published taus on
   NAS-Bench-201 range from about 0.2 to 0.6; FairNAS claims a higher tau than SPOS.
4. `memory`: peak RSS (VmHWM from /proc/self/status, read by the child itself) of a
   separate child process (`subprocess`) that trains a larger supernet (NAS-Bench-201 at
   32x32 input, 16 channels) for a fixed number of steps with the SinglePath rule (SPOS),
   with every path kept (PathDropout through `OneShot(max_drop_rate=0)`), with the
   UniformMixture rule, and a fixed single-path network; reported in MB above the RSS of
   the child after imports and data, and in total. Target: SinglePath well below the
   full-supernet rules (it keeps one candidate's activations per choice).

The defaults run in about 15 minutes on 2 loaded CPU cores; the flags make larger runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfnas  # noqa: E402
from tfnas.spaces.nasbench201 import CELL_PREFIX, NUM_NODES, values_to_arch_str  # noqa: E402

BENCHMARKS = ("cost", "e2e", "ranking", "memory")
EDGE_NAMES = tuple(f"{CELL_PREFIX}/node{j}/edge{i}" for j in range(1, NUM_NODES) for i in range(j))


# --- Helpers --------------------------------------------------------------------------------


def _spread(values: Sequence[float]) -> str:
    """`median [min, max]` of repetitions, or the single value."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.median(values):.3g} [{min(values):.3g}, {max(values):.3g}]"


def _print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Prints a plain-text table with aligned columns."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n== {title}")
    for index, row in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    sys.stdout.flush()


def _random_architectures(count: int, seed: int, operations: Sequence[str]) -> list[dict]:
    """`count` distinct random NAS-Bench-201 cells (all 6 edges are always active)."""
    rng = np.random.default_rng(seed)
    found: dict[str, dict] = {}
    while len(found) < count:
        values = {name: str(rng.choice(list(operations))) for name in EDGE_NAMES}
        found.setdefault(values_to_arch_str(values), values)
    return list(found.values())


def _dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """The shuffled batches `SupernetTrainer` uses (shuffle order fixed per epoch)."""
    import tensorflow as tf

    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=False)
        .batch(batch_size)
    )


class _EpochTimer(keras.callbacks.Callback):
    """Seconds of every `fit` epoch (appends across several `fit` calls)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def _tuner(space, oracle, directory: str, name: str) -> tfnas.Tuner:
    return tfnas.Tuner(space, oracle=oracle, directory=directory, project_name=name, overwrite=True)


# --- 1. Supernet cost -----------------------------------------------------------------------


def bench_cost(args, data) -> None:
    """SPOS supernet epoch vs one fixed single-path network epoch (epochs 2..k)."""
    space = tfnas.spaces.make("nasbench201", (8, 8, 1), 10)
    rows: dict[str, list[float]] = {
        "spos_fit": [],
        "spos_outside_fit": [],
        "fixed_random": [],
        "fixed_all_conv3x3": [],
    }
    largest = {name: "nor_conv_3x3" for name in EDGE_NAMES}
    with tempfile.TemporaryDirectory() as directory:
        for rep in range(args.reps):
            oracle = tfnas.oracles.SPOS(max_trials=1, seed=rep)
            tuner = _tuner(space, oracle, directory, f"cost{rep}")
            trainer = tuner.supernet_trainer()
            timer = _EpochTimer()
            trainer.build()  # Not timed: building the supernet is once per search.
            start = time.perf_counter()
            trainer.train(data.x_train, data.y_train, epochs=args.cost_epochs,
                          batch_size=args.batch_size, validation_data=(data.x_val, data.y_val),
                          callbacks=[timer], verbose=0)  # fmt: skip
            outside = time.perf_counter() - start - sum(timer.seconds)
            fit_times = timer.seconds[1:]
            rows["spos_fit"].append(statistics.median(fit_times))
            rows["spos_outside_fit"].append(outside / args.cost_epochs)

            arch = _random_architectures(1, 1000 + rep, space.operations)[0]
            for key, values in (("fixed_random", arch), ("fixed_all_conv3x3", largest)):
                keras.utils.set_random_seed(rep)
                model = tfnas.Architecture(space, values).build()
                timer = _EpochTimer()
                batches = _dataset(data.x_train, data.y_train, args.batch_size, rep)
                model.fit(batches, epochs=args.cost_epochs, callbacks=[timer], shuffle=False,
                          verbose=0)  # fmt: skip
                rows[key].append(statistics.median(timer.seconds[1:]))
            keras.backend.clear_session()
    spos = rows["spos_fit"]
    table = []
    for key, label in (
        ("spos_fit", "SPOS supernet epoch (fit)"),
        ("spos_outside_fit", "  + SPOS per epoch outside fit (ckpt, hook)"),
        ("fixed_random", "fixed net, random cell"),
        ("fixed_all_conv3x3", "fixed net, all nor_conv_3x3"),
    ):
        ratios = [s / f for s, f in zip(spos, rows[key])] if key.startswith("fixed") else []
        table.append([label, _spread(rows[key]), _spread(ratios) if ratios else ""])
    total = [s + o for s, o in zip(spos, rows["spos_outside_fit"])]
    table.append([
        "SPOS full train() epoch / fixed random",
        _spread(total),
        _spread([t / f for t, f in zip(total, rows["fixed_random"])]),
    ])  # fmt: skip
    steps = -(-len(data.x_train) // args.batch_size)
    _print_table(
        f"1. supernet cost: s/epoch (epochs 2..{args.cost_epochs}, {steps} steps of "
        f"{args.batch_size}), median [min, max] over {args.reps} reps; target ratio <= 1.3x",
        ["what", "s/epoch", "SPOS fit / this"],
        table,
    )


# --- 2. End to end --------------------------------------------------------------------------


def bench_e2e(args, data) -> None:
    """SPOS search (supernet + N candidates) vs retraining the found network once."""
    space = tfnas.spaces.make("nasbench201", (8, 8, 1), 10)
    columns: dict[str, list[float]] = {
        k: [] for k in ("supernet", "search", "total", "retrain", "ratio", "acc_ws", "acc_re")
    }
    fit = dict(batch_size=args.batch_size, validation_data=(data.x_val, data.y_val), verbose=0)
    with tempfile.TemporaryDirectory() as directory:
        for rep in range(args.e2e_reps):
            oracle = tfnas.oracles.SPOS(
                max_trials=args.candidates,
                seed=rep,
                population_size=max(2, args.candidates // 2),
                sample_size=max(2, args.candidates // 6),
            )
            tuner = _tuner(space, oracle, directory, f"e2e{rep}")
            start = time.perf_counter()
            # search() trains the supernet first; training it here times the two phases
            # apart (search() then finds the finished checkpoint and only restores it).
            tuner.supernet_trainer().train(
                data.x_train, data.y_train, epochs=args.e2e_epochs, **fit
            )
            trained = time.perf_counter()
            tuner.search(data.x_train, data.y_train, epochs=args.e2e_epochs, **fit)
            searched = time.perf_counter()
            best_trial = tuner.oracle.get_best_trials(1)[0]
            keras.utils.set_random_seed(rep)
            _, history = tuner.retrain(
                None, data.x_train, data.y_train, epochs=args.e2e_epochs, **fit
            )
            retrained = time.perf_counter()
            columns["supernet"].append(trained - start)
            columns["search"].append(searched - trained)
            columns["total"].append(searched - start)
            columns["retrain"].append(retrained - searched)
            columns["ratio"].append((searched - start) / (retrained - searched))
            columns["acc_ws"].append(best_trial.score)
            columns["acc_re"].append(history.history["val_accuracy"][-1])
            keras.backend.clear_session()
    _print_table(
        f"2. end to end: SPOS (supernet {args.e2e_epochs} epochs + {args.candidates} "
        f"candidates) vs retraining the best for {args.e2e_epochs} epochs, seconds, "
        f"median [min, max] over {args.e2e_reps} reps; target ratio <= 3x",
        [
            "supernet s",
            "search s",
            "SPOS total s",
            "retrain s",
            "SPOS / retrain",
            "best val acc (inherited)",
            "val acc (retrained)",
        ],  # fmt: skip
        [[_spread(columns[k]) for k in columns]],
    )


# --- 3. Ranking quality ---------------------------------------------------------------------


def _find_tabular():
    """The committed digits tabular benchmark, or None (then architectures are trained here).

    Returns:
        `(benchmark, note)`.
    """
    try:
        from tfnas.benchmarks import TabularBenchmark

        benchmark = TabularBenchmark.load()
    except (ImportError, ValueError, OSError) as error:
        return None, f"no tabular benchmark ({error})"
    return benchmark, f"tabular benchmark ({len(benchmark)} cells, mean of its seeds)"


def _standalone_accuracy(space, archs: list[dict], data, args) -> list[float]:
    """Final-epoch validation accuracy of each architecture trained from scratch."""
    accuracies = []
    for index, values in enumerate(archs):
        keras.utils.set_random_seed(index)
        model = tfnas.Architecture(space, values).build()
        history = model.fit(
            _dataset(data.x_train, data.y_train, args.batch_size, index),
            validation_data=(data.x_val, data.y_val),
            epochs=args.standalone_epochs,
            shuffle=False,
            verbose=0,
        )
        accuracies.append(float(history.history["val_accuracy"][-1]))
        keras.backend.clear_session()
    return accuracies


def bench_ranking(args, data) -> None:
    """Kendall tau of inherited-weight vs stand-alone accuracy for three one-shot methods."""
    from scipy.stats import kendalltau

    benchmark, note = _find_tabular()
    if benchmark is not None:
        space = benchmark.space()
    else:
        space = tfnas.spaces.NasBench201Space((8, 8, 1), 10, channels=8, cells_per_stage=1)
    archs = _random_architectures(args.archs, 12345, space.operations)
    start = time.perf_counter()
    if benchmark is not None:
        truth = [benchmark.query(values_to_arch_str(a), "val_acc") for a in archs]
        source = note
    else:
        truth = _standalone_accuracy(space, archs, data, args)
        source = (
            f"trained here ({note}): {args.standalone_epochs} epochs from scratch, 1 seed, "
            f"{time.perf_counter() - start:.0f} s for {len(archs)} architectures"
        )
    methods: dict[str, Callable[[int], Any]] = {
        "SPOS": lambda seed: tfnas.oracles.SPOS(max_trials=1, seed=seed),
        "FairNAS": lambda seed: tfnas.oracles.FairNAS(max_trials=1, seed=seed),
        "RandomWeightSharing": lambda seed: tfnas.oracles.RandomWeightSharing(
            max_trials=1, seed=seed
        ),
    }
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for method, make_oracle in methods.items():
            taus, means, train_s, eval_s = [], [], [], []
            for rep in range(args.ranking_reps):
                tuner = _tuner(space, make_oracle(rep), directory, f"{method}{rep}")
                trainer = tuner.supernet_trainer()
                started = time.perf_counter()
                trainer.train(data.x_train, data.y_train, epochs=args.supernet_epochs,
                              batch_size=args.batch_size,
                              validation_data=(data.x_val, data.y_val), verbose=0)  # fmt: skip
                trained = time.perf_counter()
                inherited = [trainer.evaluate(values)["val_accuracy"] for values in archs]
                train_s.append(trained - started)
                eval_s.append((time.perf_counter() - trained) / len(archs))
                taus.append(float(kendalltau(inherited, truth).statistic))
                means.append(float(np.mean(inherited)))
                keras.backend.clear_session()
            rows.append([method, _spread(taus), _spread(means), _spread(train_s),
                         _spread(eval_s)])  # fmt: skip
    print(f"\nstand-alone accuracy: {source}; mean {np.mean(truth):.3f}, "
          f"range [{min(truth):.3f}, {max(truth):.3f}]")  # fmt: skip
    _print_table(
        f"3. ranking: Kendall tau over the same {len(archs)} random cells, supernet "
        f"{args.supernet_epochs} epochs, median [min, max] over {args.ranking_reps} supernet "
        "seeds; published ~0.2-0.6, FairNAS > SPOS claimed",
        [
            "method",
            "Kendall tau",
            "mean inherited val acc",
            "supernet train s",
            "s per candidate eval",
        ],  # fmt: skip
        rows,
    )


# --- 4. Peak memory -------------------------------------------------------------------------

MEMORY_RULES = ("fixed", "single_path", "path_dropout_all", "uniform_mixture")


def _vm_hwm_mb() -> float:
    """This process's peak resident set size (VmHWM), in MB."""
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def memory_child(args) -> None:
    """Runs in the child: trains one supernet (or fixed network) and prints its peak RSS."""
    data = tfnas.data.load("digits")
    size = args.memory_size
    x = np.kron(data.x_train, np.ones((1, size // 8, size // 8, 1), dtype=data.x_train.dtype))
    count = args.memory_steps * args.batch_size
    x, y = np.resize(x, (count, *x.shape[1:])), np.resize(data.y_train, (count,))
    validation = (x[: args.batch_size], y[: args.batch_size])
    space = tfnas.spaces.NasBench201Space(
        (size, size, 1), 10, channels=args.memory_channels, cells_per_stage=args.memory_cells
    )
    baseline = _vm_hwm_mb()
    rule = args.child_memory
    if rule == "fixed":
        values = {name: "nor_conv_3x3" for name in EDGE_NAMES}
        model = tfnas.Architecture(space, values).build()
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
    else:
        if rule == "single_path":
            oracle = tfnas.oracles.SPOS(max_trials=1, seed=0, bn_recalibration_batches=0)
        elif rule == "path_dropout_all":
            oracle = tfnas.oracles.OneShot(max_trials=1, seed=0, max_drop_rate=0.0)
        else:
            oracle = _UniformMixtureOracle(max_trials=1, seed=0)
        with tempfile.TemporaryDirectory() as directory:
            tuner = _tuner(space, oracle, directory, rule)
            tuner.supernet_trainer().train(x, y, epochs=1, batch_size=args.batch_size,
                                           validation_data=validation, verbose=0)  # fmt: skip
    print(json.dumps({"baseline_mb": baseline, "peak_mb": _vm_hwm_mb()}))


class _UniformMixtureOracle(tfnas.oracles.RandomWeightSharing):
    """Trains the full supernet with the UniformMixture rule (every candidate, mean)."""

    def make_mixing_rule(self):
        return tfnas.blocks.UniformMixture()

    def prepare_training_step(self, rule, step, path, progress):
        pass


def bench_memory(args) -> None:
    """Peak RSS of child processes training with each rule."""
    results: dict[str, dict[str, list[float]]] = {
        r: {"peak": [], "delta": []} for r in MEMORY_RULES
    }
    for rep in range(args.memory_reps):
        for rule in MEMORY_RULES:
            command = [
                sys.executable, os.path.abspath(__file__), f"--child_memory={rule}",
                f"--memory_size={args.memory_size}", f"--memory_channels={args.memory_channels}",
                f"--memory_cells={args.memory_cells}", f"--memory_steps={args.memory_steps}",
                f"--batch_size={args.batch_size}",
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode or not lines:
                print(f"memory child {rule} (rep {rep}) failed:\n{done.stderr[-3000:]}")
                continue
            report = json.loads(lines[-1])
            results[rule]["peak"].append(report["peak_mb"])
            results[rule]["delta"].append(report["peak_mb"] - report["baseline_mb"])
    single = results["single_path"]["delta"]
    rows = []
    for rule in MEMORY_RULES:
        delta = results[rule]["delta"]
        ratio = [d / s for d, s in zip(delta, single)] if single else []
        rows.append([rule, _spread(results[rule]["peak"]), _spread(delta), _spread(ratio)])
    _print_table(
        f"4. peak RSS of a child training {args.memory_steps} steps of {args.batch_size}, "
        f"NAS-Bench-201 {args.memory_size}x{args.memory_size}x1, {args.memory_channels} "
        f"channels, {args.memory_cells} cell(s)/stage, MB, median [min, max] over "
        f"{args.memory_reps} reps",
        ["rule", "peak RSS MB", "above imports+data MB", "delta / single_path delta"],
        rows,
    )


# --- Main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command-line flags (defaults sized for ~15 minutes on 2 loaded cores)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default=",".join(BENCHMARKS), help="comma list of " + str(BENCHMARKS))
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--reps", type=int, default=2, help="cost repetitions")
    p.add_argument("--cost_epochs", type=int, default=3, help="k: epochs 2..k are timed")
    p.add_argument("--e2e_reps", type=int, default=2)
    p.add_argument("--e2e_epochs", type=int, default=3, help="E")
    p.add_argument("--candidates", type=int, default=6, help="N")
    p.add_argument("--archs", type=int, default=12, help="K")
    p.add_argument("--ranking_reps", type=int, default=1, help="supernet seeds per method")
    p.add_argument("--supernet_epochs", type=int, default=4)
    p.add_argument("--standalone_epochs", type=int, default=4)
    p.add_argument("--memory_reps", type=int, default=1)
    p.add_argument("--memory_size", type=int, default=32)
    p.add_argument("--memory_channels", type=int, default=16)
    p.add_argument("--memory_cells", type=int, default=1)
    p.add_argument("--memory_steps", type=int, default=3)
    p.add_argument("--child_memory", choices=MEMORY_RULES, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = set(args.only.split(",")) - set(BENCHMARKS)
    if unknown:
        p.error(f"unknown --only entries {sorted(unknown)}; choose from {BENCHMARKS}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the selected sub-benchmarks and prints their tables."""
    args = parse_args(argv)
    if args.child_memory:
        memory_child(args)
        return
    data = tfnas.data.load("digits")
    chosen = args.only.split(",")
    started = time.perf_counter()
    for name in BENCHMARKS:
        if name not in chosen:
            continue
        begun = time.perf_counter()
        try:
            if name == "memory":
                bench_memory(args)
            else:
                {"cost": bench_cost, "e2e": bench_e2e, "ranking": bench_ranking}[name](args, data)
        except Exception:  # noqa: BLE001  A failed sub-benchmark must not hide the others.
            traceback.print_exc()
        print(f"({name}: {time.perf_counter() - begun:.0f} s)")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
