"""Memory over a long multi-trial search: `tfnas.Tuner` against plain `keras_tuner.RandomSearch`.

What is measured: the resident set size (RSS: psutil when installed, else VmRSS of
/proc/self/status) after every trial of a multi-trial search of `--trials` one-epoch
trials on digits, and its growth per trial: the least-squares slope of RSS over trials
`--from_trial` to `--trials` (MiB per trial). The space is `tfnas-search`'s default
(`tfnas.spaces.make("nasbench201", ...)`, the tiny NAS-Bench-201 cell space; the README's
Python snippet has only 27 architectures, too few for 50 distinct trials), searched with
KerasTuner's random oracle and the same seed on every side:

- `keras_tuner`: `keras_tuner.RandomSearch` on the same `HyperModel` (fixed mode builds
  standard Keras layers only);
- `tfnas`: `tfnas.Tuner` with `keras_tuner.oracles.RandomSearchOracle`;
- `tfnas+release`: `tfnas.Tuner` that also clears Keras's session, collects garbage and
  returns freed heap to the system (`malloc_trim`) at each trial's end;
- `tfnas+registry`: `tfnas.Tuner` with the fix proposed for tfnas/engine/tuner.py (a
  subclass here, `RegistryRelease`): at each trial's end, the entries the trial added to
  TensorFlow's gradient registry are dropped. Graph-mode `tf.custom_gradient` traces (Keras's
  train step holds one) register a gradient function there that is never removed, and its
  closure keeps the trial's whole traced train step alive.

Every side runs in a fresh child process (`--child`), so no side inherits another's memory;
repetitions alternate the order of the sides (A B C, C B A, ...) so that drift of the
machine's load spreads over all (`--parallel` runs all children at once instead: RSS is per
process, only the times then mix). Printed: RSS after every trial side by side (first
repetition), then per side the slope's median [min, max] over repetitions, the RSS at
`--from_trial` and at the end.

`--diagnose=SIDE` runs one side in this process instead and prints what grows between
trial `--from_trial` and the end: live Python objects by type (`gc.get_objects()`), the
functions registered in TensorFlow's eager context, Keras's global state, and the largest
Python allocation growth by line (`tracemalloc`, started at `--from_trial`).

    nice -n 19 .venv/bin/python benchmarks/memory.py
    nice -n 19 .venv/bin/python benchmarks/memory.py --repetitions=3 --trials=50
    nice -n 19 .venv/bin/python benchmarks/memory.py --diagnose=tfnas --trials=30
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

import common  # Sets TF_CPP_MIN_LOG_LEVEL, imports keras and tfnas.
import keras
import keras_tuner
import numpy as np

import tfnas

SIDES = ("keras_tuner", "tfnas", "tfnas+release", "tfnas+registry")
OBJECTIVE = "val_accuracy"


def rss_mib() -> float:
    """This process's resident set size in MiB (psutil if installed, else /proc VmRSS)."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")
    return psutil.Process().memory_info().rss / 2**20


def slope(values, start: int) -> float:
    """Least-squares slope (per trial) of `values[start - 1:]` (trials are numbered from 1)."""
    ys = np.asarray(values[start - 1 :], dtype=float)
    if len(ys) < 2:
        return float("nan")
    xs = np.arange(start, start + len(ys), dtype=float)
    return float(np.polyfit(xs, ys, 1)[0])


def release_memory() -> None:
    """The proposed end-of-trial release: drop Keras's global state, collect the cycles that
    hold the trained model (model <-> History <-> callbacks), and return freed heap to the
    system (glibc keeps freed arenas otherwise)."""
    keras.backend.clear_session()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # Not glibc.


def recording(base, release: bool = False, on_trial=None, log_path: str | None = None):
    """`base` (a Tuner class) recording RSS after each trial's end (and releasing first).

    With `log_path`, each trial's RSS is also appended there as a JSON line at once (a run
    stopped early keeps what it measured).
    """

    class Recording(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.rss: list[float] = []

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            if release:
                release_memory()
            self.rss.append(rss_mib())
            if log_path:
                with open(log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"trial": len(self.rss), "rss": self.rss[-1]}) + "\n")
            if on_trial is not None:
                on_trial(len(self.rss))

    return Recording


def _gradient_registry() -> dict:
    """TensorFlow's gradient-function registry (a private structure; {} if it moved)."""
    try:
        from tensorflow.python.framework import ops

        return ops._gradient_registry._registry
    except (ImportError, AttributeError):
        return {}


class RegistryRelease(tfnas.Tuner):
    """`tfnas.Tuner` dropping the custom-gradient registrations of each finished trial."""

    def on_trial_begin(self, trial):
        self._custom_gradients_before = set(_gradient_registry())
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        registry = _gradient_registry()
        before = getattr(self, "_custom_gradients_before", None)
        if before is not None:
            for name in set(registry) - before:
                if name.startswith("CustomGradient-"):
                    del registry[name]
        gc.collect()


def make_tuner(side: str, directory: str, trials: int, seed: int, on_trial=None, log_path=None):
    data_shape, classes = (8, 8, 1), 10
    space = tfnas.spaces.make("nasbench201", data_shape, classes)
    common_args = {"directory": directory, "project_name": side, "overwrite": True}
    if side == "keras_tuner":
        cls = recording(keras_tuner.RandomSearch, on_trial=on_trial, log_path=log_path)
        return cls(
            hypermodel=space, objective=OBJECTIVE, max_trials=trials, seed=seed, **common_args
        )
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=OBJECTIVE, max_trials=trials, seed=seed
    )
    base = RegistryRelease if side == "tfnas+registry" else tfnas.Tuner
    cls = recording(base, release=side == "tfnas+release", on_trial=on_trial, log_path=log_path)
    return cls(space, oracle=oracle, **common_args)


def run_side(
    side: str, trials: int, seed: int, on_trial=None, log_path=None, census_at: int = 0
) -> dict:
    """Runs one search in this process; returns `{"rss": [MiB after each trial], ...}`.

    With `census_at`, also `"grown"`: the 15 types whose live objects grew most between
    trial `census_at` and the end (`gc.get_objects()`), and `"eager_functions"`: the
    functions registered in TensorFlow's eager context at those two moments.
    """
    data = tfnas.data.load("digits", seed=seed)
    keras.utils.set_random_seed(seed)
    census = {}

    def on_trial_census(number):
        if on_trial is not None:
            on_trial(number)
        if number == census_at:
            census["types"], census["functions"] = _counts_by_type(), _eager_functions()

    with tempfile.TemporaryDirectory() as directory:
        tuner = make_tuner(
            side, directory, trials, seed, on_trial=on_trial_census, log_path=log_path
        )
        begun = time.monotonic()
        tuner.search(
            data.x_train,
            data.y_train,
            validation_data=(data.x_val, data.y_val),
            epochs=1,
            verbose=0,
        )
        seconds = time.monotonic() - begun
        values = [
            json.dumps(t.hyperparameters.values, sort_keys=True)
            for t in tuner.oracle.trials.values()
        ]
        result = {"rss": tuner.rss, "seconds": seconds, "distinct": len(set(values))}
        if census:
            result["grown"] = (_counts_by_type() - census["types"]).most_common(15)
            result["eager_functions"] = [census["functions"], _eager_functions()]
        return result


# --- Diagnosis ------------------------------------------------------------------------------


def _counts_by_type() -> collections.Counter:
    gc.collect()
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def _eager_functions() -> int:
    from tensorflow.python.eager import context

    return len(context.context().list_function_names())


def diagnose(side: str, trials: int, seed: int, start: int) -> None:
    """Prints what grows between trial `start` and the last trial of one search."""
    import tracemalloc

    marks = {}

    def on_trial(number):
        if number == start:
            marks["types"], marks["functions"] = _counts_by_type(), _eager_functions()
            marks["rss"] = rss_mib()
            tracemalloc.start(8)
            marks["snapshot"] = tracemalloc.take_snapshot()

    result = run_side(side, trials, seed, on_trial=on_trial)
    end_snapshot = tracemalloc.take_snapshot()
    types, functions = _counts_by_type(), _eager_functions()
    span = trials - start
    print(f"\n== {side}: growth between trial {start} and trial {trials} ({span} trials)")
    print(f"RSS {marks['rss']:.1f} -> {rss_mib():.1f} MiB; slope {slope(result['rss'], start):.2f}")
    print(f"eager-context functions {marks['functions']} -> {functions}")
    grown = (types - marks["types"]).most_common(25)
    common.print_table(
        "live objects grown, by type (count at the end minus at the start)",
        ("type", "grown", "per trial"),
        [(name, count, f"{count / span:.1f}") for name, count in grown],
    )
    stats = end_snapshot.filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    ).compare_to(marks["snapshot"], "traceback")
    rows = []
    for stat in stats[:12]:
        frames = [f"{os.path.relpath(f.filename, sys.prefix)}:{f.lineno}" for f in stat.traceback]
        rows.append((f"{stat.size_diff / 2**10:.0f}", stat.count_diff, " <- ".join(frames[:4])))
    common.print_table("Python allocations grown (tracemalloc)", ("KiB", "blocks", "where"), rows)


# --- Main -----------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--from_trial", type=int, default=10, help="Slope from this trial on.")
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="Run all children at once (RSS per process is unaffected; times are).",
    )
    parser.add_argument("--diagnose", choices=SIDES, default=None)
    parser.add_argument("--child", choices=SIDES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rss_log", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--log_dir", default=None, help="Also write each child's RSS per trial there (JSON lines)."
    )
    args = parser.parse_args(argv)
    if not 1 <= args.from_trial < args.trials:
        parser.error(
            f"need 1 <= --from_trial < --trials. Received: --from_trial={args.from_trial}, "
            f"--trials={args.trials}"
        )
    if args.child:
        result = run_side(
            args.child, args.trials, args.seed, log_path=args.rss_log, census_at=args.from_trial
        )
        print(json.dumps(result))
        return
    if args.diagnose:
        diagnose(args.diagnose, args.trials, args.seed, args.from_trial)
        return
    sides = common.check_only(parser, args.sides, SIDES)
    results = {side: [] for side in sides}
    runs = []
    for repetition in range(args.repetitions):
        order = sides if repetition % 2 == 0 else sides[::-1]
        runs += [(repetition, side) for side in order]

    def start(repetition, side):
        command = [sys.executable, os.path.abspath(__file__), f"--child={side}",
                   f"--trials={args.trials}", f"--seed={args.seed}",
                   f"--from_trial={args.from_trial}"]  # fmt: skip
        if args.log_dir:
            os.makedirs(args.log_dir, exist_ok=True)
            command.append(f"--rss_log={os.path.join(args.log_dir, f'{repetition}_{side}.jsonl')}")
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(repetition, side, process):
        stdout, stderr = process.communicate()
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if process.returncode or not lines:
            print(f"{side} failed ({process.returncode}):\n{stderr[-3000:]}")
            return
        result = json.loads(lines[-1])
        results[side].append(result)
        print(
            f"repetition {repetition} {side}: slope "
            f"{slope(result['rss'], args.from_trial):.2f} MiB/trial, "
            f"{result['distinct']} distinct architectures, {result['seconds']:.0f} s; "
            f"eager-context functions {result.get('eager_functions')}; objects grown since "
            f"trial {args.from_trial}: {result.get('grown')}",
            flush=True,
        )

    if args.parallel:
        started = [(repetition, side, start(repetition, side)) for repetition, side in runs]
        for repetition, side, process in started:
            finish(repetition, side, process)
    else:
        for repetition, side in runs:
            finish(repetition, side, start(repetition, side))
    first = {side: runs[0]["rss"] for side, runs in results.items() if runs}
    length = max((len(v) for v in first.values()), default=0)
    common.print_table(
        "RSS (MiB) after each trial, first repetition",
        ("trial", *first),
        [
            (i + 1, *(f"{v[i]:.1f}" if i < len(v) else "-" for v in first.values()))
            for i in range(length)
        ],
    )
    rows = []
    for side, runs in results.items():
        slopes = [slope(r["rss"], args.from_trial) for r in runs]
        rows.append(
            (
                side,
                common.spread(slopes),
                common.spread([r["rss"][args.from_trial - 1] for r in runs]),
                common.spread([r["rss"][-1] for r in runs]),
                len(runs),
            )
        )
    common.print_table(
        f"RSS growth, trials {args.from_trial}-{args.trials}: median [min, max] of repetitions",
        ("side", "MiB/trial", f"RSS at {args.from_trial}", "RSS at end", "reps"),
        rows,
    )


if __name__ == "__main__":
    main()
