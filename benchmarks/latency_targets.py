"""Hardware-aware strategies at two latency targets on this CPU, against random search.

One latency table of a small ProxylessNAS-form space (`ProxylessSpace`, kernel {3, 5} x
expansion {3, 6} plus skip; digits, 8x8) is built on this machine. For each target (a
fraction of the way from the fastest to the slowest architecture the table predicts) each
strategy searches with that target, and its best trial's network is exported, timed end
to end with LiteRT (`tfnas.latency.measure`, median of `--runs`) and scored on the digits
test split:

- `fbnet`, `single_path_nas`, `proxylessnas`: weight sharing, `--epochs` supernet epochs,
  candidates with inherited weights (none proposed above the target);
- `mnasnet`: `--mnasnet_trials` trials of `--trial_epochs` epochs, each timed (reward
  ACC x (LAT/T)^-0.07);
- `random`: random architectures the table predicts within the target, each trained for
  `--trial_epochs` epochs, for the wall clock of the slowest strategy at that target.

Printed: measured latency / target (target: <= 1.10), test accuracy, wall clock, and the
accuracy of random search at the same wall clock. One run, one seed: rank statistics are
not claimed. A Pareto plot of every evaluated trial (predicted latency, validation
accuracy) is written to `--output_dir/pareto.png`.

    nice -n 19 .venv/bin/python benchmarks/latency_targets.py --output_dir=runs/latency_targets
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # noqa: E402
import numpy as np  # noqa: E402

import tfnas  # noqa: E402
from tfnas.spaces.mobile import Stage  # noqa: E402

STRATEGIES = ("fbnet", "single_path_nas", "proxylessnas", "mnasnet")


def _space(data):
    return tfnas.spaces.ProxylessSpace(
        data.input_shape, data.num_classes, stem_filters=8, stem_strides=1, head_filters=32,
        stages=[Stage(8, 1), Stage(16, (1, 2), 2), Stage(24, (1, 2), 2)], kernel_sizes=(3, 5),
        batch_norm_momentum=0.9,  # Trials of a few dozen steps (see tfnas.spaces.make).
    )  # fmt: skip


def _oracle(name, table, target, args):
    options = {"seed": args.seed, "latency_target_ms": target}
    if name == "fbnet":
        return tfnas.oracles.FBNet(max_trials=4, latency_table=table, latency_unit="us",
                                   **options)  # fmt: skip
    if name == "single_path_nas":
        return tfnas.oracles.SinglePathNAS(max_trials=4, latency_table=table,
                                           runtime_lambda=args.runtime_lambda,
                                           threshold_learning_rate=0.05, **options)  # fmt: skip
    if name == "proxylessnas":
        return tfnas.oracles.ProxylessNAS(max_trials=4, latency_table=table,
                                          regularization="add#linear", **options)  # fmt: skip
    return tfnas.oracles.MnasNet(max_trials=args.mnasnet_trials, **options)


def _finish(tuner, data, args):
    """(measured ms of the best trial's exported network, its test accuracy)."""
    model = tuner.get_best_models(1)[0]
    report = tfnas.latency.measure(model, runs=args.runs)
    _, accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
    return report.median_ms, accuracy


def _random_search(space, table, target, budget_s, data, args):
    """Random architectures within the target (by the table), trained until `budget_s`."""
    rng = np.random.default_rng(args.seed)
    best, start, points = None, time.perf_counter(), []
    while time.perf_counter() - start < budget_s:
        values = {}  # One candidate per choice of the table (the space's choices).
        for row in table.choices:
            values.update(row["candidates"][rng.integers(len(row["candidates"]))]["values"])
        predicted = table.predict(values)
        if predicted > target:
            continue
        model = tfnas.Architecture(space, values).build()
        model.fit(data.x_train, data.y_train, epochs=args.trial_epochs, batch_size=64,
                  verbose=0)  # fmt: skip
        _, val = model.evaluate(data.x_val, data.y_val, verbose=0)
        points.append((predicted, val))
        if best is None or val > best[0]:
            best = (val, model)
    if best is None:
        return None, None, points
    report = tfnas.latency.measure(best[1], runs=args.runs)
    _, test = best[1].evaluate(data.x_test, data.y_test, verbose=0)
    return report.median_ms, test, points


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="0.3,0.6", help="fractions fastest -> slowest")
    parser.add_argument("--epochs", type=int, default=6, help="supernet epochs")
    parser.add_argument("--trial_epochs", type=int, default=3)
    parser.add_argument("--mnasnet_trials", type=int, default=8)
    parser.add_argument("--runtime_lambda", type=float, default=0.002)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", default="runs/latency_targets")
    args = parser.parse_args()

    data = tfnas.data.load("digits", seed=args.seed)
    space = _space(data)
    os.makedirs(args.output_dir, exist_ok=True)
    table = tfnas.latency.build_table(
        space, tfnas.latency.LocalRunner(), os.path.join(args.output_dir, "table.json"),
        seed=args.seed,
    )  # fmt: skip
    fastest, _ = table.fastest_architecture()
    slowest = table.fit["fixed_ms"] + sum(
        max(table.candidate_latencies(n)) for n in {c["name"] for c in table.choices}
    )
    print(f"table: fastest {fastest:.4f} ms, slowest {slowest:.4f} ms (predicted)")
    rows, pareto = [], {}
    for fraction in (float(f) for f in args.targets.split(",")):
        target = fastest + fraction * (slowest - fastest)
        walls = []
        for name in STRATEGIES:
            start = time.perf_counter()
            oracle = _oracle(name, table, target, args)
            tuner = tfnas.Tuner(
                space, oracle=oracle, directory=args.output_dir,
                project_name=f"{name}_{fraction}", overwrite=True, latency_table=table,
                measure_latency=name == "mnasnet", latency_options={"runs": args.runs},
            )  # fmt: skip
            epochs = args.trial_epochs if name == "mnasnet" else args.epochs
            tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                         epochs=epochs, batch_size=64, verbose=0)  # fmt: skip
            wall = time.perf_counter() - start
            walls.append(wall)
            measured, test = _finish(tuner, data, args)
            best = tuner.oracle.get_best_trials(1)[0]
            predicted = table.predict(best.hyperparameters.values)
            rows.append([name, f"{target:.4f}", f"{predicted:.4f}", f"{measured:.4f}",
                         f"{measured / target:.2f}", f"{test:.3f}", f"{wall:.0f}"])  # fmt: skip
            for trial in tuner.oracle.trials.values():
                if trial.status == "COMPLETED" and trial.metrics.exists("val_accuracy"):
                    pareto.setdefault(name, []).append((
                        table.predict(trial.hyperparameters.values),
                        trial.metrics.get_last_value("val_accuracy"),
                    ))  # fmt: skip
        budget = max(walls)
        measured, test, points = _random_search(space, table, target, budget, data, args)
        pareto.setdefault("random", []).extend(points)
        rows.append(["random (same wall clock)", f"{target:.4f}", "-",
                     "-" if measured is None else f"{measured:.4f}",
                     "-" if measured is None else f"{measured / target:.2f}",
                     "-" if test is None else f"{test:.3f}", f"{budget:.0f}"])  # fmt: skip
        common.print_table(
            "latency targets (one run)",
            ["strategy", "target ms", "predicted ms", "measured ms", "measured / target",
             "test acc", "wall s"],
            rows,
        )  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for name, points in pareto.items():
        if points:
            xs, ys = zip(*points)
            axes.scatter(xs, ys, label=name, s=12)
    axes.set_xlabel("predicted latency (ms)")
    axes.set_ylabel("validation accuracy")
    axes.legend()
    path = os.path.join(args.output_dir, "pareto.png")
    figure.savefig(path, dpi=120, bbox_inches="tight")
    print(f"pareto plot: {path}")


if __name__ == "__main__":
    main()
