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
   callback around `fit`'s epochs; the per-epoch time `train` spends outside `fit`'s
   epochs (checkpoint, epoch hook) is reported apart, and so is its one-time setup before
   the first fit (data, symbolic build), which the fixed network's timing leaves out too.
   Each timed run starts after `gc.collect()`. Target: ratio <= 1.3x.
2. `e2e`: SPOS search (supernet training for E epochs + evolutionary search of N
   candidates, `tfnas.Tuner(space, oracle=tfnas.oracles.SPOS(max_trials=N))`) against
   training the best found network once from scratch (`tuner.retrain`) for the same E
   epochs. Target: ratio <= 3x.
3. `ranking`: Kendall tau between the inherited-weight validation accuracy
   (`tuner.supernet_trainer().evaluate(values)` after supernet training, batch-norm
   statistics recalibrated) of the same K random architectures and their stand-alone
   accuracy, for SPOS, FairNAS and RandomWeightSharing. Stand-alone accuracy comes from
   a tabular benchmark in `tfnas/nasbench/data/*.json` when one exists and records the
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
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import (  # noqa: E402
    EDGE_NAMES,
    EpochTimer,
    find_tabular,
    fit_fixed,
    print_table,
    random_architectures,
    spread,
)

import tfnas  # noqa: E402
from tfnas.spaces.nasbench201 import values_to_arch_str  # noqa: E402

BENCHMARKS = ("cost", "e2e", "ranking", "memory")


# --- 1. Supernet cost -----------------------------------------------------------------------


def bench_cost(args, data) -> None:
    """SPOS supernet epoch vs one fixed single-path network epoch (epochs 2..k)."""
    space = tfnas.spaces.make("nasbench201", (8, 8, 1), 10)
    rows: dict[str, list[float]] = {
        "spos_fit": [],
        "spos_outside_fit": [],
        "spos_setup": [],
        "spos_wall": [],
        "fixed_random": [],
        "fixed_all_conv3x3": [],
    }
    largest = {name: "nor_conv_3x3" for name in EDGE_NAMES}
    with tempfile.TemporaryDirectory() as directory:
        for rep in range(args.reps):
            oracle = tfnas.oracles.SPOS(max_trials=1, seed=rep)
            tuner = common.tuner(space, oracle, directory, f"cost{rep}")
            trainer = tuner.supernet_trainer()
            timer = EpochTimer()
            fit_starts: list[float] = []
            began = keras.callbacks.LambdaCallback(
                on_train_begin=lambda logs, starts=fit_starts: starts.append(time.perf_counter())
            )
            trainer.build()  # Not timed: building the supernet is once per search.
            # Every timed run starts from a collected heap, so that a gen-2 collection over
            # the previous reps' objects (0.3-1 s) does not land in one side only.
            gc.collect()
            start = time.perf_counter()
            trainer.train(data.x_train, data.y_train, epochs=args.cost_epochs,
                          batch_size=args.batch_size, validation_data=(data.x_val, data.y_val),
                          callbacks=[began, timer], verbose=0)  # fmt: skip
            end = time.perf_counter()
            # Before the first fit: data, symbolic build of the optimizer and metrics, as a
            # fixed network's fit does before its (untimed) first epoch.
            setup = fit_starts[0] - start
            outside = end - fit_starts[0] - sum(timer.seconds)
            rows["spos_fit"].append(statistics.median(timer.seconds[1:]))
            rows["spos_outside_fit"].append(outside / args.cost_epochs)
            rows["spos_setup"].append(setup)
            rows["spos_wall"].append((end - start) / args.cost_epochs)

            arch = random_architectures(1, 1000 + rep, space.operations)[0]
            for key, values in (("fixed_random", arch), ("fixed_all_conv3x3", largest)):
                timer = EpochTimer()
                gc.collect()
                fit_fixed(space, values, data.x_train, data.y_train, epochs=args.cost_epochs,
                          batch_size=args.batch_size, seed=rep, callbacks=[timer])  # fmt: skip
                rows[key].append(statistics.median(timer.seconds[1:]))
            keras.backend.clear_session()
    spos = rows["spos_fit"]
    table = []
    for key, label in (
        ("spos_fit", "SPOS supernet epoch (fit)"),
        ("spos_outside_fit", "  + SPOS per epoch outside fit (ckpt, hook)"),
        ("spos_setup", "  SPOS once per train(), s (not per epoch)"),
        ("spos_wall", "  SPOS train() wall / epochs (all included)"),
        ("fixed_random", "fixed net, random cell"),
        ("fixed_all_conv3x3", "fixed net, all nor_conv_3x3"),
    ):
        ratios = [s / f for s, f in zip(spos, rows[key])] if key.startswith("fixed") else []
        table.append([label, spread(rows[key]), spread(ratios) if ratios else ""])
    total = [s + o for s, o in zip(spos, rows["spos_outside_fit"])]
    table.append([
        "SPOS full train() epoch / fixed random",
        spread(total),
        spread([t / f for t, f in zip(total, rows["fixed_random"])]),
    ])  # fmt: skip
    steps = -(-len(data.x_train) // args.batch_size)
    print_table(
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
            )
            tuner = common.tuner(space, oracle, directory, f"e2e{rep}")
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
    print_table(
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
        [[spread(columns[k]) for k in columns]],
    )


# --- 3. Ranking quality ---------------------------------------------------------------------


def _standalone_accuracy(space, archs: list[dict], data, args) -> list[float]:
    """Final-epoch validation accuracy of each architecture trained from scratch."""
    accuracies = []
    for index, values in enumerate(archs):
        history = fit_fixed(
            space,
            values,
            data.x_train,
            data.y_train,
            epochs=args.standalone_epochs,
            batch_size=args.batch_size,
            seed=index,
            validation_data=(data.x_val, data.y_val),
        )
        accuracies.append(float(history.history["val_accuracy"][-1]))
        keras.backend.clear_session()
    return accuracies


def bench_ranking(args, data) -> None:
    """Kendall tau of inherited-weight vs stand-alone accuracy for three one-shot methods."""
    from scipy.stats import kendalltau

    benchmark, note = find_tabular()
    if benchmark is not None:
        space = benchmark.space()
    else:
        space = tfnas.spaces.NasBench201Space((8, 8, 1), 10, channels=8, cells_per_stage=1)
    archs = random_architectures(args.archs, 12345, space.operations)
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
                tuner = common.tuner(space, make_oracle(rep), directory, f"{method}{rep}")
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
            rows.append([method, spread(taus), spread(means), spread(train_s),
                         spread(eval_s)])  # fmt: skip
    print(f"\nstand-alone accuracy: {source}; mean {np.mean(truth):.3f}, "
          f"range [{min(truth):.3f}, {max(truth):.3f}]")  # fmt: skip
    print_table(
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


def memory_child(args) -> None:
    """Runs in the child: trains one supernet (or fixed network) and prints its peak RSS."""

    def make_oracle(rule: str):
        if rule == "single_path":
            return tfnas.oracles.SPOS(max_trials=1, seed=0, bn_recalibration_batches=0)
        if rule == "path_dropout_all":
            return tfnas.oracles.OneShot(max_trials=1, seed=0, max_drop_rate=0.0)
        return _UniformMixtureOracle(max_trials=1, seed=0)

    common.train_memory_child(args, make_oracle)


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
            report = common.run_child(command)
            if isinstance(report, str):
                print(f"memory child {rule} (rep {rep}) failed: {report}")
                continue
            results[rule]["peak"].append(report["peak_mb"])
            results[rule]["delta"].append(report["peak_mb"] - report["baseline_mb"])
    single = results["single_path"]["delta"]
    rows = []
    for rule in MEMORY_RULES:
        delta = results[rule]["delta"]
        ratio = [d / s for d, s in zip(delta, single)] if single else []
        rows.append([rule, spread(results[rule]["peak"]), spread(delta), spread(ratio)])
    print_table(
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
    common.add_memory_flags(p, MEMORY_RULES)
    args = p.parse_args(argv)
    args.only = common.check_only(p, args.only, BENCHMARKS)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the selected sub-benchmarks and prints their tables."""
    args = parse_args(argv)
    if args.child_memory:
        memory_child(args)
        return
    data = tfnas.data.load("digits")
    common.run_benchmarks(
        {
            "cost": lambda: bench_cost(args, data),
            "e2e": lambda: bench_e2e(args, data),
            "ranking": lambda: bench_ranking(args, data),
            "memory": lambda: bench_memory(args),
        },
        args.only,
    )


if __name__ == "__main__":
    main()
