"""A latency target on this machine: a latency table, a hardware-aware search, a `.tflite`.

The latency table is built here (every candidate block of a small mobile space converted
to `.tflite` on its own and timed with LiteRT, plus a few whole networks to fit the rest),
then FBNet (Wu et al. 2018: Gumbel-softmax DNAS with the loss `CE x alpha (log LAT)^beta`)
or Single-Path NAS (Stamoulis et al. 2019: one super-kernel per block, thresholds on weight
norms, the loss `CE + 1000 lambda log R`) searches the space by gradient, never proposing
a candidate the table predicts slower than the target, and the best candidate is exported
and timed end to end: the predicted and the measured latency are printed side by side.

Run (about a minute on 2 CPU cores; no network):

    python examples/latency_target.py --oracle=fbnet --target_fraction=0.5 --output_dir=runs/fbnet
    python examples/latency_target.py --oracle=single_path_nas --output_dir=runs/spnas
"""

import argparse
import os

import tfnas


def main(argv=None):
    """Builds the table, searches, exports; returns `(tuner, table, target, report)`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target_fraction",
        type=float,
        default=0.5,
        help="the target, as a fraction of the way from the fastest to the slowest "
        "architecture's predicted latency",
    )
    parser.add_argument("--oracle", choices=("fbnet", "single_path_nas"), default="fbnet")
    parser.add_argument("--kernel_sizes", default="3,5")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max_trials", type=int, default=4)
    parser.add_argument("--timing_runs", type=int, default=20)
    parser.add_argument("--fit_networks", type=int, default=6)
    parser.add_argument("--output_dir", default="runs/latency_target")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = tfnas.data.load("digits", seed=args.seed)
    space = tfnas.spaces.MobileSpace(
        data.input_shape, data.num_classes, stem_filters=8, stem_strides=1, head_filters=32,
        stages=[tfnas.spaces.Stage(16, (1, 2)), tfnas.spaces.Stage(24, (1, 2), 2)],
        kernel_sizes=[int(k) for k in args.kernel_sizes.split(",")], expansions=(3, 6),
        se_ratios=(0.0,), joint_ops=True,
    )  # fmt: skip
    runner = tfnas.latency.LocalRunner(warmup=2, runs=args.timing_runs)
    os.makedirs(args.output_dir, exist_ok=True)
    table = tfnas.latency.build_table(
        space, runner, os.path.join(args.output_dir, "latency_table.json"),
        fit_networks=args.fit_networks, seed=args.seed,
    )  # fmt: skip
    fastest, _ = table.fastest_architecture()
    slowest = table.fit["fixed_ms"] + sum(
        max(table.candidate_latencies(name)) for name in {c["name"] for c in table.choices}
    )
    target = fastest + args.target_fraction * (slowest - fastest)
    print(f"predicted latency: fastest {fastest:.4f} ms, slowest {slowest:.4f} ms")
    print(f"latency target: {target:.4f} ms")

    if args.oracle == "fbnet":
        # log(LAT) of these sub-millisecond networks is taken in microseconds.
        options = {"latency_unit": "us"}
    else:
        # lambda for a tiny network on digits (the authors' 0.020 is for ImageNet).
        options = {"runtime_lambda": 0.002, "threshold_learning_rate": 0.05}
    oracle = tfnas.oracles.get(args.oracle)(
        max_trials=args.max_trials, latency_table=table, latency_target_ms=target,
        seed=args.seed, **options,
    )  # fmt: skip
    tuner = tfnas.Tuner(
        space, oracle=oracle, directory=args.output_dir, project_name="search",
        overwrite=True, latency_table=table,
    )  # fmt: skip
    tuner.search(
        data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
        epochs=args.epochs, batch_size=64, verbose=0,
    )  # fmt: skip

    best_trial = tuner.oracle.get_best_trials(1)[0]
    best = tuner.get_best_models(1)[0]
    path = tfnas.latency.save_tflite(best, os.path.join(args.output_dir, "best_model.tflite"))
    report = tfnas.latency.measure(path, runs=args.timing_runs)
    predicted = table.predict(best_trial.hyperparameters.values)
    print(f"derived: {oracle.derive()}")
    print(
        f"best: val_accuracy {best_trial.score:.3f}, latency predicted {predicted:.4f} ms, "
        f"measured {report.median_ms:.4f} ms (target {target:.4f} ms)"
    )
    return tuner, table, target, report


if __name__ == "__main__":
    main()
