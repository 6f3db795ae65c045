"""SMASH against random-path weight sharing: how well each one's score ranks architectures.

Run from the repository root (prints one table; nothing is asserted):

    nice -n 19 .venv/bin/python benchmarks/smash_correlation.py
    nice -n 19 .venv/bin/python benchmarks/smash_correlation.py --epochs=8 --archs=50 --seeds=3

On the bundled tabular benchmark (`tfnas.nasbench.TabularBenchmark.load()`: NAS-Bench-201
cells on 8x8x1 digits, each trained stand-alone; the table's value is the mean over its
seeds) and the bundled digits data (training split trains the supernets, validation split
scores), for each supernet seed (`--seeds`):

- SMASH (`tfnas.tuners.smash.SMASH`, `generate="all"`: the table's cell has no 1x1
  candidate, so the paper's default would generate nothing and SMASH would be random
  weight sharing; here every candidate `Conv2D` kernel comes from the hypernetwork) and
  RandomWeightSharing (Li & Talwalkar 2019, the same uniform random path per step on a
  SinglePath supernet, i.e. SPOS's supernet training) each train a supernet for the same
  `--epochs` (batch `--batch_size`) with the space's own optimizer;
- the same `--archs` random cells (fixed seed 12345, `common.random_architectures`) are
  scored with each supernet (`SupernetTrainer.evaluate`: validation accuracy with
  generated / inherited weights, batch norm recalibrated on `--bn_batches` batches);
- each method's scores are correlated (Spearman rho, Kendall tau, `scipy.stats`) with the
  table's stand-alone `val_acc` and `test_acc`.

Disconnected cells (no path from input to output) score chance in the table and near
chance with shared weights; they are part of the random sample as they are of the space.
The defaults (4 epochs, 30 cells, 2 seeds) run in about 5 minutes on 2 loaded CPU cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import print_table, random_architectures, spread, tabular_benchmark  # noqa: E402

import tfnas  # noqa: E402
from tfnas.tuners.smash import SMASH  # noqa: E402

METHODS = ("SMASH", "RandomWeightSharing")


def make_oracle(method: str, seed: int, args):
    """The oracle of `method` (supernet training only: candidates are scored here)."""
    if method == "SMASH":
        return SMASH(
            max_trials=1,
            generate="all",
            hidden_units=args.hidden_units,
            seed=seed,
            bn_recalibration_batches=args.bn_batches,
        )
    return tfnas.oracles.RandomWeightSharing(
        max_trials=1, seed=seed, bn_recalibration_batches=args.bn_batches
    )


def correlations(scores: Sequence[float], truth: Sequence[float]) -> tuple[float, float]:
    """(Spearman rho, Kendall tau) of `scores` against `truth`."""
    from scipy.stats import kendalltau, spearmanr

    return float(spearmanr(scores, truth).statistic), float(kendalltau(scores, truth).statistic)


def score_architectures(method: str, seed: int, space, archs, data, args, directory: str):
    """Trains `method`'s supernet and scores `archs` on it.

    Returns:
        `(scores, train_seconds, seconds_per_candidate)`.
    """
    tuner = common.tuner(space, make_oracle(method, seed, args), directory, f"{method}{seed}")
    trainer = tuner.supernet_trainer()
    started = time.perf_counter()
    trainer.train(data.x_train, data.y_train, epochs=args.epochs, batch_size=args.batch_size,
                  validation_data=(data.x_val, data.y_val), verbose=0)  # fmt: skip
    trained = time.perf_counter()
    scores = [trainer.evaluate(values)["val_accuracy"] for values in archs]
    per_candidate = (time.perf_counter() - trained) / len(archs)
    keras.backend.clear_session()
    return scores, trained - started, per_candidate


def run(args) -> None:
    """Trains, scores and prints the correlation table."""
    benchmark = tabular_benchmark()
    space = benchmark.space()
    data = tfnas.data.load("digits")
    archs = random_architectures(args.archs, 12345, space.operations)
    truth = {
        metric: [benchmark.query(values, metric) for values in archs]
        for metric in ("val_acc", "test_acc")
    }
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for method in METHODS:
            stats: dict[str, list[float]] = {
                k: [] for k in ("rho_val", "tau_val", "rho_test", "tau_test", "mean", "s", "c")
            }
            for seed in range(args.seeds):
                scores, seconds, per_candidate = score_architectures(
                    method, seed, space, archs, data, args, directory
                )
                for metric in ("val", "test"):
                    rho, tau = correlations(scores, truth[f"{metric}_acc"])
                    stats[f"rho_{metric}"].append(rho)
                    stats[f"tau_{metric}"].append(tau)
                stats["mean"].append(float(np.mean(scores)))
                stats["s"].append(seconds)
                stats["c"].append(per_candidate)
                print(f"{method} seed {seed}: Spearman {stats['rho_val'][-1]:.3f}, Kendall "
                      f"{stats['tau_val'][-1]:.3f} (vs table val_acc); train {seconds:.1f} s",
                      flush=True)  # fmt: skip
            rows.append([method, *(spread(stats[k]) for k in stats)])
    values = truth["val_acc"]
    print(f"\ntable ({benchmark.name}, {len(benchmark)} cells, mean of its seeds) val_acc of the "
          f"{len(archs)} cells: mean {statistics.mean(values):.3f}, range "
          f"[{min(values):.3f}, {max(values):.3f}]")  # fmt: skip
    print_table(
        f"SMASH vs random-path weight sharing: correlation of the shared-weight score with "
        f"stand-alone accuracy over the same {len(archs)} random cells, {args.epochs} supernet "
        f"epochs, batch {args.batch_size}, median [min, max] over {args.seeds} supernet seeds",
        [
            "method",
            "Spearman (val)",
            "Kendall (val)",
            "Spearman (test)",
            "Kendall (test)",
            "mean score",
            "train s",
            "s per candidate",
        ],  # fmt: skip
        rows,
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command-line flags (defaults sized for ~5 minutes on 2 loaded cores)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=4, help="supernet epochs of each method")
    p.add_argument("--archs", type=int, default=30, help="random cells scored")
    p.add_argument("--seeds", type=int, default=2, help="supernet seeds per method")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--bn_batches", type=int, default=10, help="batch-norm recalibration")
    p.add_argument("--hidden_units", type=int, default=64, help="SMASH hypernetwork width")
    args = p.parse_args(argv)
    for name in ("epochs", "archs", "seeds", "batch_size", "hidden_units"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1. Received: {getattr(args, name)}")
    if args.archs < 3:
        p.error(f"--archs must be >= 3 for a correlation. Received: {args.archs}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
