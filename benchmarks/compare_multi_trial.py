"""Compares the multi-trial oracles on the tabular digits benchmark (no training).

For each oracle of `tfnas.oracles.ORACLES` that searches by trials, runs `--seeds` searches
of the largest budget against `tfnas.nasbench.TabularBenchmark` and prints, at each
budget, the median and interquartile range of the test accuracy of the architecture
selected by validation accuracy, and of its regret to the table's optimum. The value at a
smaller budget is read from the same run's trajectory (the incumbent after that many
trials). Prints; asserts nothing.

    nice -n 19 .venv/bin/python benchmarks/compare_multi_trial.py --seeds=20

`--synthetic` searches instead a synthetic 15,625-cell table of the full 5-operation
NAS-Bench-201 space (`benchmarks/synthetic_tabular.py`, generated into a temporary
directory), whose accuracies are on NAS-Bench-201's CIFAR-10 scale:

    nice -n 19 .venv/bin/python benchmarks/compare_multi_trial.py --synthetic --seeds=30
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERASTUNER_VERBOSE", "0")

import numpy as np  # noqa: E402

from tfnas import oracles  # noqa: E402
from tfnas.nasbench import TabularBenchmark, run_oracle  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synthetic_tabular  # noqa: E402

# Bayesian last: its Gaussian-process refit makes it by far the slowest.
MULTI_TRIAL = ("random", "regularized_evolution", "reinforce", "pnas", "nao", "bayesian")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", default=None, help="table name or path (default: shipped)")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="search a synthetic 15,625-cell 5-operation NAS-Bench-201 table instead",
    )
    parser.add_argument(
        "--synthetic_seed", type=int, default=201, help="seed of the synthetic table's model"
    )
    parser.add_argument("--budgets", default="25,50,100,200")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--oracles", default=",".join(MULTI_TRIAL))
    parser.add_argument(
        "--slow",
        default="bayesian",
        help="oracles run with only --slow_seeds seeds (a GP refit per trial: seconds per trial)",
    )
    parser.add_argument("--slow_seeds", type=int, default=1)
    parser.add_argument(
        "--sample_seed",
        action="store_true",
        help="each trial sees one training seed's validation accuracy (noisy) instead of the mean",
    )
    args = parser.parse_args(argv)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    slow = set(args.slow.split(","))
    # The GP of the Bayesian oracle warns about length scales on categorical encodings.
    warnings.filterwarnings("ignore", module="sklearn")
    if args.synthetic:
        if args.benchmark:
            parser.error("pass either --synthetic or --benchmark, not both")
        with tempfile.TemporaryDirectory(prefix="tfnas_synthetic_") as directory:
            path = os.path.join(directory, "synthetic_nb201_ops5.json")
            synthetic_tabular.write(path, seed=args.synthetic_seed)
            bench = TabularBenchmark.load(path)
    elif args.benchmark:
        bench = TabularBenchmark.load(args.benchmark)
    else:
        bench = TabularBenchmark.load()
    optimum = bench.optimum("test_acc")
    val_best_test = bench.query(bench.best_arch("val_acc"), "test_acc")
    print(
        f"{bench!r}: test-acc optimum {optimum:.4f} ({bench.best_arch('test_acc')}); "
        f"the best-val arch scores {val_best_test:.4f} on test; "
        f"{args.seeds} seeds per oracle; values are median [q25, q75]"
    )
    header = f"{'oracle':<24}{'budget':>7}{'test acc':>26}{'regret':>26}{'s/run':>8}"
    print(header)
    print("-" * len(header))
    for name in args.oracles.split(","):
        if name not in oracles.ORACLES:
            print(f"{name:<24} skipped: not registered in tfnas.oracles.ORACLES")
            continue
        try:
            runs = []
            start = time.time()
            num_seeds = args.slow_seeds if name in slow else args.seeds
            for seed in range(num_seeds):
                runs.append(
                    run_oracle(
                        oracles.ORACLES[name],
                        bench,
                        budget=budgets[-1],
                        seed=seed,
                        sample_seed=args.sample_seed,
                    )
                )
            per_run = (time.time() - start) / num_seeds
        except Exception as error:  # noqa: BLE001 - report and go on to the next oracle
            print(f"{name:<24} skipped: {type(error).__name__}: {error}")
            continue
        for budget in budgets:
            test = np.array([r.best_test[min(budget, len(r.best_test)) - 1] for r in runs])
            regret = optimum - test
            short = sum(len(r.best_test) < budget for r in runs)
            note = f"  ({short} runs stopped early)" if short else ""
            if name in slow:
                note += f"  ({num_seeds} seeds)"
            print(f"{name:<24}{budget:>7}{_iqr(test):>26}{_iqr(regret):>26}{per_run:>8.1f}{note}")


def _iqr(values: np.ndarray) -> str:
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return f"{q50:.4f} [{q25:.4f}, {q75:.4f}]"


if __name__ == "__main__":
    main()
