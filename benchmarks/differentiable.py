"""Differentiable NAS in tfnas (DARTS, DARTS+, P-DARTS, SNAS, GDAS, PC-DARTS): cost, memory,
quality.

Run from the repository root (each sub-benchmark prints one table of medians and
`[min, max]` spreads; nothing is asserted, the targets are only reported):

    nice -n 19 .venv/bin/python benchmarks/differentiable.py            # all three
    nice -n 19 .venv/bin/python benchmarks/differentiable.py --only=quality --seeds=10

Sub-benchmarks (`--only=`), on the bundled digits data (`tfnas.data.load("digits")`: the
training split trains weights, the validation split the alphas of the bilevel methods),
batch 64:

1. `cost`: first-order DARTS search against training the derived network from scratch,
   in the tabular benchmark's space (`TabularBenchmark.load().space()`: NAS-Bench-201,
   8x8x1, 4 channels, ops none/skip_connect/nor_conv_3x3). The search is building and
   training the supernet for E epochs (`SupernetTrainer.train`, one alpha step before
   every weight step) plus `tuner.search(...)` (the derived architecture evaluated with
   inherited weights, batch norm recalibrated); the derived network is built by
   `tfnas.Architecture(space, oracle.derive()).build()` and fit for the same E epochs on
   the same batches (no validation pass, as the supernet has none). Both totals include
   graph tracing; the steady-state seconds per epoch (epochs 2..E) are reported apart.
   Target: search / derived <= 2.5x. The second-order (`order=2`, unrolled) supernet
   epoch against the first-order one, epochs 2..E (epoch 1 traces and is shown apart):
   target <= 2.7x (the paper's 4 vs 1.5 GPU-days).
2. `memory`: peak RSS (VmHWM, read by a separate child process per method) of one epoch
   of `--memory_steps` supernet steps of DARTS (first order), PC-DARTS (K =
   `--memory_k`, 4) and GDAS on the same larger supernet (NAS-Bench-201, 32x32x1 digits
   upsampled with np.kron, 16 channels, 1 cell per stage, its 5 operations), and of a
   fixed single network of that space (every edge nor_conv_3x3), in MB above the child's
   RSS after imports and data (graph tracing included, as in weight_sharing.py), with
   ratios to DARTS. Targets: PC-DARTS <= 50% of DARTS;
   GDAS close to the single network.
3. `quality`: on the tabular benchmark (`TabularBenchmark.load()`), for each method
   (`--methods`, default DARTS, DARTSPlus, PDARTS, GDAS, SNAS; PCDARTS costs ~45 s more
   per seed and is opt-in: `--methods=DARTS,DARTSPlus,PDARTS,GDAS,SNAS,PCDARTS`; so are
   the distribution methods on the same shared weights, ASNGNAS, MANAS (EXP3) and
   MANAS_LS, each derived by its own `oracle.derive()`) and
   `--seeds` seeds (default 5): train the supernet for `--epochs` epochs (default 4, the
   table's own training length), derive the cell (`oracle.derive()`) and look up its
   stand-alone test accuracy in the table (the mean of the table's seeds; never the
   inherited-weight accuracy). Also per method: the search seconds (supernet build +
   training + derivation, tracing included, no candidate evaluation), the derived cell's
   `skip_connect` and `none` edges (of 6), and for DARTS+ the epochs it ran and its
   `supernet_stop_reason`. Random search with the same wall-clock: one random cell
   trained from scratch as the table was (`bench.metadata["training"]`: 4 epochs, batch
   64, Adam 0.01, drop_remainder) is timed here (median of 3 cells, build and tracing
   included); for a method's median search seconds S, random search draws N = max(1,
   floor(S / cell seconds)) distinct random cells per seed, keeps the best by table
   val_acc and reports its table test_acc. Settings: DARTS first order; DARTS+ with
   `max_skip_connections=2`; P-DARTS with `keep=(3, 2)` (3 stages, each starting with its
   alpha-frozen warm-up; `none` competes like the other operations between stages and is
   left out by the final derivation) and `max_skip_connections=2`, so it needs >= 3
   epochs; DARTS+ and
   P-DARTS get `normal_scope="cell/"`, the NAS-Bench-201 cell's prefix (the default
   "normal/", which no choice here has, counts every choice: the same edges); SNAS with its
   default temperature (1.0 -> 0.03) and no resource term; GDAS with tau 10 -> 0.1;
   PC-DARTS with K = `--quality_k` (2; the table's space has only 4 channels).
   The output says whether DARTS collapses toward skip connections (derived cells with
   >= 3 skip edges) and whether DARTS+ / P-DARTS avoid it.

The defaults run in about 27 minutes on 2 CPU cores (measured: cost 1.3 per rep, memory
2.4, quality 21 before the tracing was halved; graph tracing dominates at this scale: 12 s
for a first-order supernet, 30 s second order, three supernets per P-DARTS search); the
flags make larger runs (more `--seeds`, `--epochs`, `--cost_reps`,
`--memory_reps`) or smaller ones (`--only=...`, `--methods=...`, `--seeds=2`).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import keras  # noqa: E402
from common import (  # noqa: E402
    EDGE_NAMES,
    EpochTimer,
    fit_fixed,
    print_table,
    random_architectures,
    ratios,
    spread,
)

import tfnas  # noqa: E402
from tfnas.spaces.nasbench201 import CELL_PREFIX, values_to_arch_str  # noqa: E402

BENCHMARKS = ("cost", "memory", "quality")
# ASNG-NAS and MANAS (EXP3 and least squares) are distribution methods on the same shared
# weights: opt-in with --methods, compared under the same protocol (issue 16).
METHODS = (
    "DARTS", "DARTSPlus", "PDARTS", "GDAS", "SNAS", "PCDARTS", "ASNGNAS", "MANAS", "MANAS_LS",
)  # fmt: skip
# PC-DARTS is left out of `quality` by default: about 45 s per seed here (its tracing), which
# would push the default run past ~30 minutes. Add it with --methods.
DEFAULT_METHODS = ("DARTS", "DARTSPlus", "PDARTS", "GDAS", "SNAS")
MEMORY_METHODS = ("fixed", "DARTS", "PCDARTS", "GDAS")
SKIP, NONE = "skip_connect", "none"
# A derived cell with this many skip_connect edges (of 6) counts as collapsed.
COLLAPSE_SKIPS = 3


def make_oracle(method: str, seed: int, partial_channels: int = 4, **kwargs):
    """The oracle of `method` (one of METHODS, or "DARTS2" for the second order)."""
    oracles = tfnas.oracles
    scope = f"{CELL_PREFIX}/"
    if method == "DARTS":
        return oracles.DARTS(order=1, seed=seed, **kwargs)
    if method == "DARTS2":
        return oracles.DARTS(order=2, seed=seed, **kwargs)
    if method == "DARTSPlus":
        return oracles.DARTSPlus(seed=seed, max_skip_connections=2, normal_scope=scope, **kwargs)
    if method == "PDARTS":
        return oracles.PDARTS(
            seed=seed, keep=(3, 2), max_skip_connections=2, normal_scope=scope, **kwargs
        )
    if method == "GDAS":
        return oracles.GDAS(seed=seed, **kwargs)
    if method == "SNAS":
        return oracles.SNAS(seed=seed, **kwargs)
    if method == "PCDARTS":
        return oracles.PCDARTS(partial_channels=partial_channels, seed=seed, **kwargs)
    if method == "ASNGNAS":
        return oracles.ASNGNAS(seed=seed, **kwargs)
    if method in ("MANAS", "MANAS_LS"):
        variant = "exp3" if method == "MANAS" else "least_squares"
        return oracles.MANAS(variant=variant, seed=seed, **kwargs)
    raise ValueError(f"unknown method {method!r}")


def count(values, op: str) -> int:
    """Edges of a NAS-Bench-201 cell `values` whose operation is `op`."""
    return sum(1 for name in EDGE_NAMES if values.get(name) == op)


# --- 1. Cost --------------------------------------------------------------------------------


def bench_cost(args, data) -> None:
    """DARTS (1st order) search vs the derived network's training; 2nd vs 1st order."""
    bench = common.tabular_benchmark()
    space = bench.space()
    epochs = args.cost_epochs
    fit = dict(
        epochs=epochs,
        batch_size=args.batch_size,
        validation_data=(data.x_val, data.y_val),
        verbose=0,
    )
    keys = ("train1", "search1", "total1", "fixed", "train2", "first1", "first2")
    seconds: dict[str, list[float]] = {k: [] for k in keys}
    epoch_s: dict[str, list[float]] = {"darts1": [], "darts2": [], "fixed": []}
    per_rep: dict[str, list[float]] = {"darts1": [], "darts2": [], "fixed": []}
    derived = []
    with tempfile.TemporaryDirectory() as directory:
        for rep in range(args.cost_reps):
            oracle = make_oracle("DARTS", rep)
            tuner = common.tuner(space, oracle, directory, f"darts1_{rep}")
            timer = EpochTimer()
            start = time.perf_counter()
            tuner.supernet_trainer().train(data.x_train, data.y_train, callbacks=[timer], **fit)
            trained = time.perf_counter()
            tuner.search(data.x_train, data.y_train, **fit)
            searched = time.perf_counter()
            values = oracle.derive()
            derived.append(values)
            seconds["train1"].append(trained - start)
            seconds["search1"].append(searched - trained)
            seconds["total1"].append(searched - start)
            seconds["first1"].append(timer.seconds[0])
            epoch_s["darts1"] += timer.seconds[1:]
            per_rep["darts1"].append(_median(timer.seconds[1:]))
            keras.backend.clear_session()

            timer = EpochTimer()
            start = time.perf_counter()
            fit_fixed(space, values, data.x_train, data.y_train, epochs=epochs,
                      batch_size=args.batch_size, seed=rep, callbacks=[timer])  # fmt: skip
            seconds["fixed"].append(time.perf_counter() - start)
            epoch_s["fixed"] += timer.seconds[1:]
            per_rep["fixed"].append(_median(timer.seconds[1:]))
            keras.backend.clear_session()

            oracle = make_oracle("DARTS2", rep)
            tuner = common.tuner(space, oracle, directory, f"darts2_{rep}")
            timer = EpochTimer()
            start = time.perf_counter()
            tuner.supernet_trainer().train(data.x_train, data.y_train, callbacks=[timer], **fit)
            seconds["train2"].append(time.perf_counter() - start)
            seconds["first2"].append(timer.seconds[0])
            epoch_s["darts2"] += timer.seconds[1:]
            per_rep["darts2"].append(_median(timer.seconds[1:]))
            keras.backend.clear_session()

    fixed = seconds["fixed"]
    steady = epochs >= 2
    rows = [
        ["DARTS 1st order search: build + supernet + search()", spread(seconds["total1"]),
         spread(ratios(seconds["total1"], fixed)), "search / derived <= 2.5x"],
        ["  of which build + supernet train()", spread(seconds["train1"]),
         spread(ratios(seconds["train1"], fixed)), ""],
        ["  of which search() (evaluate derived, BN recal.)", spread(seconds["search1"]), "", ""],
        ["derived net from scratch: build + fit", spread(fixed), "1", ""],
        ["DARTS 1st order supernet s/epoch, epochs 2..E", spread(epoch_s["darts1"]),
         spread(ratios(per_rep["darts1"], per_rep["fixed"])) if steady else "",
         "vs derived s/epoch (steady state)"],
        ["derived net s/epoch, epochs 2..E", spread(epoch_s["fixed"]), "", ""],
        ["DARTS 2nd order supernet s/epoch, epochs 2..E", spread(epoch_s["darts2"]),
         spread(ratios(per_rep["darts2"], per_rep["darts1"])) if steady else "",
         "2nd / 1st order <= 2.7x"],
        ["DARTS 1st order epoch 1 (tracing)", spread(seconds["first1"]), "", ""],
        ["DARTS 2nd order epoch 1 (tracing)", spread(seconds["first2"]),
         spread(ratios(seconds["first2"], seconds["first1"])), "vs 1st order epoch 1"],
        ["DARTS 2nd order build + supernet train()", spread(seconds["train2"]),
         spread(ratios(seconds["train2"], seconds["train1"])), "vs 1st order train()"],
    ]  # fmt: skip
    steps = -(-len(data.x_train) // args.batch_size)
    print_table(
        f"1. cost: DARTS search vs derived network, E={epochs} epochs of {steps} steps of "
        f"{args.batch_size} (tabular space 8x8x1), seconds, median [min, max] over "
        f"{args.cost_reps} rep(s) (s/epoch rows: over every timed epoch; epoch 1 is tracing "
        "and excluded from them, ratios are per rep)",
        ["what", "seconds", "ratio", "target / ratio of"],
        rows,
    )
    for values in derived:
        print(f"derived (DARTS 1st order): {values_to_arch_str(values)}")


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- 2. Memory ------------------------------------------------------------------------------


def memory_child(args) -> None:
    """Runs in the child: trains one supernet (or the fixed network), prints its peak RSS."""
    common.train_memory_child(
        args, lambda method: make_oracle(method, 0, args.memory_k, bn_recalibration_batches=0)
    )


def bench_memory(args) -> None:
    """Peak RSS of a child process per method."""
    results = {m: {"peak": [], "delta": []} for m in MEMORY_METHODS}
    for rep in range(args.memory_reps):
        for method in MEMORY_METHODS:
            command = [
                sys.executable, os.path.abspath(__file__), f"--child_memory={method}",
                f"--memory_size={args.memory_size}", f"--memory_channels={args.memory_channels}",
                f"--memory_cells={args.memory_cells}", f"--memory_steps={args.memory_steps}",
                f"--memory_k={args.memory_k}", f"--batch_size={args.batch_size}",
            ]  # fmt: skip
            report = common.run_child(command)
            if isinstance(report, str):
                print(f"memory child {method} (rep {rep}) failed: {report}")
                continue
            results[method]["peak"].append(report["peak_mb"])
            results[method]["delta"].append(report["peak_mb"] - report["baseline_mb"])
    darts, fixed = results["DARTS"]["delta"], results["fixed"]["delta"]
    labels = {
        "fixed": "fixed single network (all nor_conv_3x3)",
        "DARTS": "DARTS (1st order)",
        "PCDARTS": f"PC-DARTS (K={args.memory_k})",
        "GDAS": "GDAS",
    }
    rows = []
    for method in MEMORY_METHODS:
        delta = results[method]["delta"]
        rows.append([
            labels[method],
            spread(results[method]["peak"]),
            spread(delta),
            spread(ratios(delta, darts)) if darts else "-",
            spread(ratios(delta, fixed)) if fixed else "-",
        ])  # fmt: skip
    print_table(
        f"2. memory: peak RSS of a child training 1 epoch of {args.memory_steps} steps of "
        f"{args.batch_size}, NAS-Bench-201 {args.memory_size}x{args.memory_size}x1, "
        f"{args.memory_channels} channels, {args.memory_cells} cell(s)/stage, 5 ops, MB, "
        f"median [min, max] over {args.memory_reps} rep(s); targets: PC-DARTS <= 0.5x "
        "DARTS, GDAS close to the single network",
        ["method", "peak RSS MB", "above imports+data MB", "/ DARTS", "/ fixed net"],
        rows,
    )


# --- 3. Quality -----------------------------------------------------------------------------


def _cell_seconds(bench, space, data, count: int = 3) -> list[float]:
    """Seconds to train `count` random cells as the table did (build and tracing included)."""
    training = bench.metadata["training"]
    found = []
    for index, values in enumerate(random_architectures(count, 777, space.operations)):
        start = time.perf_counter()
        fit_fixed(space, values, data.x_train, data.y_train, epochs=int(training["epochs"]),
                  batch_size=int(training["batch_size"]), seed=index,
                  drop_remainder=bool(training.get("drop_remainder", False)))  # fmt: skip
        found.append(time.perf_counter() - start)
        keras.backend.clear_session()
    return found


def _random_search(bench, operations, budget: int, seed: int) -> float:
    """Table test accuracy of the best-by-val_acc of `budget` distinct random cells."""
    archs = random_architectures(min(budget, len(bench)), 10_000 + seed, operations)
    best = max(archs, key=lambda values: bench.query(values, "val_acc"))
    return bench.query(best, "test_acc")


def _search_once(method: str, seed: int, space, data, args, directory: str) -> dict:
    """Trains one supernet, derives its cell; its table accuracy and what it took."""
    oracle = make_oracle(method, seed, args.quality_k)
    tuner = common.tuner(space, oracle, directory, f"{method}_{seed}")
    start = time.perf_counter()
    tuner.supernet_trainer().train(data.x_train, data.y_train, epochs=args.epochs,
                                   batch_size=args.batch_size,
                                   validation_data=(data.x_val, data.y_val),
                                   verbose=0)  # fmt: skip
    values = oracle.derive()
    seconds = time.perf_counter() - start
    keras.backend.clear_session()
    return {
        "values": values,
        "seconds": seconds,
        "epochs": oracle.supernet_epochs_done,
        "stop": oracle.supernet_stop_reason,
    }


def bench_quality(args, data) -> None:
    """Derived cells' stand-alone (table) test accuracy per method vs random search."""
    bench = common.tabular_benchmark()
    space = bench.space()
    operations = space.operations
    seeds = list(range(args.seeds))
    cell_s = _cell_seconds(bench, space, data)
    cell = statistics.median(cell_s)
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as directory:
        for method in args.methods:
            if method == "PDARTS" and args.epochs < 3:
                print(f"PDARTS skipped: it needs >= 3 epochs (one per stage), not {args.epochs}")
                continue
            runs[method] = []
            for seed in seeds:
                try:
                    run = _search_once(method, seed, space, data, args, directory)
                    runs[method].append(run)
                    print(f"  ({method} seed {seed}: {run['seconds']:.0f} s)", flush=True)
                except Exception:  # noqa: BLE001  One failing run must not hide the others.
                    print(f"{method} seed {seed} failed:")
                    traceback.print_exc()
                    sys.stderr.flush()

    rows, notes = [], []
    collapsed: dict[str, tuple[int, int]] = {}
    for method, found in runs.items():
        if not found:
            rows.append([method] + ["failed"] + [""] * 7)
            continue
        test = [bench.query(r["values"], "test_acc") for r in found]
        search_s = [r["seconds"] for r in found]
        skips = [count(r["values"], SKIP) for r in found]
        nones = [count(r["values"], NONE) for r in found]
        budget = max(1, math.floor(statistics.median(search_s) / cell))
        random_test = [_random_search(bench, operations, budget, seed) for seed in seeds]
        collapsed[method] = (sum(s >= COLLAPSE_SKIPS for s in skips), len(skips))
        epochs = spread([r["epochs"] for r in found])
        rows.append([
            method, spread(test), spread(search_s), spread(skips), spread(nones),
            f"{collapsed[method][0]}/{len(found)}", epochs, spread(random_test), budget,
        ])  # fmt: skip
        for seed, r in zip(seeds, found):
            arch = values_to_arch_str(r["values"])
            stop = f"; stop: {r['stop']}" if r["stop"] else ""
            notes.append(
                f"  {method:9s} seed {seed}: {arch} test {bench.query(r['values'], 'test_acc'):.3f}"
                f", {r['epochs']} epochs{stop}"
            )
    records = list(bench)
    test_all = [r.test_acc for r in records]
    skip_heavy = [r.test_acc for r in records if r.arch.count("skip_connect") >= COLLAPSE_SKIPS]
    print_table(
        f"3. quality on {bench.name} ({len(bench)} cells, mean of its seeds): derived "
        "cell's table test acc, supernet "
        f"{args.epochs} epochs, median [min, max] over {len(seeds)} seeds; random search "
        f"with the same wall-clock (1 cell = {cell:.1f} s, median of "
        f"{', '.join(f'{s:.1f}' for s in cell_s)})",
        [
            "method",
            "test acc (table)",
            "search s",
            "skip edges",
            "none edges",
            f">= {COLLAPSE_SKIPS} skips",
            "epochs run",
            "random, same s: test acc",
            "random N",
        ],
        rows,
    )
    print(
        f"table: test optimum {bench.optimum('test_acc'):.3f} "
        f"({bench.best_arch('test_acc')}), median cell {statistics.median(test_all):.3f}; "
        f"cells with >= {COLLAPSE_SKIPS} skip edges: median {statistics.median(skip_heavy):.3f} "
        f"({len(skip_heavy)} cells)"
    )
    print("derived cells:")
    print("\n".join(notes))
    _print_collapse(collapsed)


def _print_collapse(collapsed: dict[str, tuple[int, int]]) -> None:
    """Says whether DARTS collapses toward skip connections and DARTS+ / P-DARTS avoid it."""
    if "DARTS" not in collapsed:
        return
    hits, total = collapsed["DARTS"]
    verdict = "collapses" if hits * 2 > total else "does not collapse"
    print(
        f"skip collapse: DARTS {verdict} toward skip connections here ({hits}/{total} derived "
        f"cells with >= {COLLAPSE_SKIPS} of 6 skip edges)."
    )
    for method in ("DARTSPlus", "PDARTS"):
        if method in collapsed:
            own, runs = collapsed[method]
            avoided = "avoids it" if own == 0 else f"does not always avoid it ({own}/{runs})"
            print(f"  {method} {avoided}: {own}/{runs} cells with >= {COLLAPSE_SKIPS} skip edges.")


# --- Main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command-line flags (defaults: ~28 minutes on 2 loaded cores)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(BENCHMARKS), help="comma list of " + str(BENCHMARKS))
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--cost_reps", type=int, default=1)
    p.add_argument("--cost_epochs", type=int, default=4, help="E; epochs 2..E are the steady state")
    common.add_memory_flags(p, MEMORY_METHODS)
    p.add_argument("--memory_k", type=int, default=4, help="PC-DARTS K in `memory`")
    p.add_argument("--seeds", type=int, default=5, help="search seeds per method in `quality`")
    p.add_argument("--epochs", type=int, default=4, help="supernet epochs in `quality`")
    p.add_argument("--quality_k", type=int, default=2, help="PC-DARTS K in `quality`")
    p.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS), help="`quality` methods of " + str(METHODS)
    )
    args = p.parse_args(argv)
    args.only = common.check_only(p, args.only, BENCHMARKS)
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        p.error(f"unknown --methods entries {sorted(unknown)}; choose from {METHODS}")
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
            "memory": lambda: bench_memory(args),
            "quality": lambda: bench_quality(args, data),
        },
        args.only,
    )


if __name__ == "__main__":
    main()
