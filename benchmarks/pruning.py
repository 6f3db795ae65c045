"""TAS against the unpruned network and uniform width scaling, with and without KD.

Run from the repository root (prints one table; nothing is asserted):

    nice -n 19 .venv/bin/python benchmarks/pruning.py
    nice -n 19 .venv/bin/python benchmarks/pruning.py --search_epochs=10 --seeds=3

On the bundled digits (training split trains, validation split searches, test split
scores) and the CIFAR ResNet of TAS at the tiny size (`tfnas.spaces.ResNetSpace`, depth
`--depth`, `--base_filters` filters), in one run:

1. the unpruned network (every width and depth at its maximum) is trained for `--epochs`
   per seed: the teacher, and the reference accuracy and multiply-adds;
2. a TAS search (`tfnas.oracles.TAS`, `--flops_ratio`, `--search_epochs`) derives a shape;
3. that shape is trained from scratch for `--epochs` without and with knowledge
   distillation from the seed's teacher (alpha 0.9, T 4, TAS's);
4. the uniform baseline, every width scaled by sqrt(ratio) (TAS's "fix" mode, the
   nearest candidate width at or below), is trained the same two ways.

Every trained row is `--seeds` trainings (median [min, max] of test accuracy); the
multiply-adds are the exported network's (`tfnas.cost.count_flops`).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import keras  # noqa: E402
from common import print_table, spread  # noqa: E402

import tfnas  # noqa: E402
from tfnas.cost import count_flops  # noqa: E402
from tfnas.engine.distillation import distill  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=14)
    parser.add_argument("--base_filters", type=int, default=8)
    parser.add_argument("--flops_ratio", type=float, default=0.5)
    parser.add_argument("--search_epochs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args(argv)
    if not 0 < args.flops_ratio <= 1 or min(args.seeds, args.epochs, args.search_epochs) < 1:
        parser.error("--flops_ratio must be in (0, 1]; --seeds and the epochs >= 1")
    return args


def train(space, values, data, args, seed: int, teacher=None):
    """`values` trained from scratch (seeded); returns (model, test accuracy)."""
    keras.utils.set_random_seed(seed)
    model = tfnas.Architecture(space, values).build()
    fit = {"epochs": args.epochs, "batch_size": args.batch_size, "verbose": 0}
    if teacher is None:
        model.fit(data.x_train, data.y_train, **fit)
    else:
        distill(model, teacher, data.x_train, data.y_train, **fit)
    accuracy = model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)["accuracy"]
    return model, float(accuracy)


def main(argv=None) -> None:
    args = parse_args(argv)
    data = tfnas.data.load("digits", seed=0)
    space = tfnas.spaces.ResNetSpace(data.x_train.shape[1:], 10, depth=args.depth,
                                     base_filters=args.base_filters,
                                     learning_rate=args.learning_rate)  # fmt: skip
    full = space.uniform_values(1.0)
    uniform = space.uniform_values(math.sqrt(args.flops_ratio))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        oracle = tfnas.oracles.TAS(flops_ratio=args.flops_ratio, seed=0)
        tuner = common.tuner(space, oracle, directory, "tas")
        tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                     epochs=args.search_epochs, batch_size=args.batch_size, verbose=0)  # fmt: skip
        searched = oracle.derive()
    search_seconds = time.perf_counter() - start
    shapes = {"unpruned": full, "TAS": searched, "uniform": uniform}
    macs = {name: count_flops(tfnas.Architecture(space, v).build()) for name, v in shapes.items()}
    accuracies: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        teacher, accuracy = train(space, full, data, args, seed)
        accuracies.setdefault("unpruned", []).append(accuracy)
        for name in ("TAS", "uniform"):
            for kd in (False, True):
                _, accuracy = train(space, shapes[name], data, args, seed, teacher if kd else None)
                accuracies.setdefault(f"{name}{' + KD' if kd else ''}", []).append(accuracy)
    rows = []
    for row, values in accuracies.items():
        shape = row.split(" + ")[0]
        share = macs[shape] / macs["unpruned"]
        rows.append([row, spread(values), f"{macs[shape]:,}", f"{share:.3f}"])
    print_table(
        f"TAS on digits, ResNet-{args.depth} x{args.base_filters} filters, flops_ratio "
        f"{args.flops_ratio}: search {args.search_epochs} epochs ({search_seconds:.0f} s), "
        f"every network {args.epochs} epochs, {args.seeds} seeds",
        ["network", "test accuracy", "multiply-adds", "of unpruned"],
        rows,
    )
    kept = [v / full[k] for k, v in searched.items() if k.endswith("/filters")]
    depths = {k: v for k, v in searched.items() if k.endswith("/depth")}
    print(f"TAS shape: depths {depths}, median width kept {statistics.median(kept):.2f}")


if __name__ == "__main__":
    main()
