"""Does Path-level EAS's cell growth pay for itself? Grown cells vs the start cell (digits).

For each of `--seeds` seeds, runs `tfnas.tuners.path_level.PathLevelEAS` on
`tfnas.spaces.path_level.PathLevelSpace` (digits, 8x8x1) for `--trials` trials of `--epochs`
epochs each: the start cell (one 3x3 convolution) is trained from scratch, every child from
its parent's transformed weights. The best trial by validation accuracy has been trained,
along its chain of ancestors, for `(generation + 1) * epochs` epochs in all; it is compared
on the test split with

* the start cell trained from scratch for the same total number of epochs (does the
  growth beat just training longer?);
* the grown cell retrained from scratch for the same total number of epochs (does the
  inheritance help, compared with the architecture alone?).

Prints the median [min, max] over seeds of the test accuracies, the best cell's size
(operations, parameters) and generation, and the search cost (seconds, epochs trained).
Asserts nothing.

    nice -n 19 .venv/bin/python benchmarks/path_level.py --seeds=3 --trials=20 --epochs=3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERASTUNER_VERBOSE", "0")

import common  # noqa: E402
import keras  # noqa: E402

import tfnas  # noqa: E402
from tfnas.search import path_level as pl  # noqa: E402
from tfnas.spaces.path_level import PathLevelSpace  # noqa: E402
from tfnas.tuners.path_level import PathLevelEAS  # noqa: E402


def generation(oracle, trial) -> int:
    """How many ancestors a trial's network inherited its weights through."""
    count = 0
    while trial.hyperparameters.values.get(pl.PARENT):
        trial = oracle.trials[trial.hyperparameters.values[pl.PARENT]]
        count += 1
    return count


def test_accuracy(model: keras.Model, data) -> float:
    return float(model.evaluate(data.x_test, data.y_test, verbose=0)[1])


def train_from_scratch(space, cell, data, epochs: int, batch_size: int, seed: int) -> float:
    keras.utils.set_random_seed(seed)
    model = space.build_cell_model(cell)
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=batch_size, verbose=0)
    return test_accuracy(model, data)


def run_seed(args, seed: int, directory: str) -> dict:
    data = tfnas.data.load("digits", seed=seed, limit=args.limit)
    space = PathLevelSpace(data.input_shape, data.num_classes, channels=args.channels,
                           num_cells=args.num_cells)  # fmt: skip
    oracle = PathLevelEAS(max_trials=args.trials, seed=seed, batch_size=args.controller_batch)
    tuner = common.tuner(space, oracle, directory, f"seed{seed}")
    start = time.perf_counter()
    tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                 epochs=args.epochs, batch_size=args.batch_size, verbose=0)  # fmt: skip
    seconds = time.perf_counter() - start
    best = oracle.get_best_trials(1)[0]
    cell = pl.parse_cell(best.hyperparameters.values[pl.CELL])
    total_epochs = (generation(oracle, best) + 1) * args.epochs
    model = tuner.load_model(best)
    return {
        "grown": test_accuracy(model, data),
        "start": train_from_scratch(
            space, pl.start_cell(), data, total_epochs, args.batch_size, seed
        ),  # fmt: skip
        "scratch": train_from_scratch(space, cell, data, total_epochs, args.batch_size, seed),
        "ops": len(pl.operations(cell)),
        "params": model.count_params(),
        "generation": generation(oracle, best),
        "start_val": oracle.trials[oracle.start_order[0]].score,
        "best_val": best.score,
        "seconds": seconds,
        "epochs": args.trials * args.epochs,
        "cell": pl.describe(cell),
    }


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--num_cells", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--controller_batch", type=int, default=4,
                        help="networks per controller update (the paper's 10 is more than a "
                             "small budget updates with)")  # fmt: skip
    parser.add_argument("--limit", type=int, default=None, help="training examples kept")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as directory:
        for seed in range(args.seeds):
            results.append(run_seed(args, seed, directory))
            print(f"seed {seed}: best cell {results[-1]['cell']}")
            sys.stdout.flush()

    def column(key):
        return common.spread([r[key] for r in results])

    common.print_table(
        f"Path-level EAS on digits: {args.trials} trials x {args.epochs} epochs, "
        f"{args.seeds} seeds, median [min, max]",
        ["network", "test acc", "epochs"],
        [
            ["best grown cell (inherited weights)", column("grown"),
             "(generation + 1) x epochs"],
            ["start cell, same total epochs", column("start"), "same"],
            ["best grown cell from scratch, same epochs", column("scratch"), "same"],
        ],
    )  # fmt: skip
    common.print_table(
        "Best cell and search cost",
        ["start trial val acc", "best trial val acc", "operations", "parameters",
         "generation", "search s", "epochs trained"],
        [[column("start_val"), column("best_val"), column("ops"), column("params"),
          column("generation"), column("seconds"), column("epochs")]],
    )  # fmt: skip
    return results


if __name__ == "__main__":
    main()
