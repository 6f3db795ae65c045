"""SPOS under a FLOPs budget, then the best network as a `.tflite` file, timed with LiteRT.

Single Path One-Shot (Guo et al. 2019) trains one NAS-Bench-201 supernet with a uniformly
sampled path per step, then evolves candidates scored with the inherited weights.
`constraints={"flops": ...}` keeps every candidate at or under the budget of multiply-adds
(counted on the fixed network before it is proposed). The best one is exported as a plain
Keras model, converted to TFLite and timed with the LiteRT interpreter.

Run (about a minute on 2 CPU cores; no network):

    python examples/spos_flops_budget.py --max_flops=300000 --output_dir=runs/spos_flops
"""

import argparse
import os

import tfnas
from tfnas.spaces.nasbench201 import values_to_arch_str


def main(argv=None):
    """Runs the search and the export; returns `(tuner, .tflite path, LatencyReport)`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max_flops", type=float, default=3e5, help="multiply-adds budget")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument(
        "--operations",
        default=",".join(tfnas.blocks.ops.NASBENCH201_OPS),
        help="comma-separated candidate operations of every edge",
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max_trials", type=int, default=20)
    parser.add_argument("--population_size", type=int, default=8)
    parser.add_argument("--quantize", choices=["float16", "int8"], default=None)
    parser.add_argument("--output_dir", default="runs/spos_flops")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = tfnas.data.load("digits", seed=args.seed)
    space = tfnas.spaces.NasBench201Space(
        data.input_shape,
        data.num_classes,
        channels=args.channels,
        cells_per_stage=1,
        operations=args.operations.split(","),
    )
    oracle = tfnas.oracles.SPOS(
        max_trials=args.max_trials,
        constraints={"flops": args.max_flops},
        population_size=args.population_size,
        seed=args.seed,
    )
    tuner = tfnas.Tuner(
        space, oracle=oracle, directory=args.output_dir, project_name="search", overwrite=True
    )
    tuner.search(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=args.epochs,
        batch_size=64,
        verbose=0,
    )

    print(f"candidates (budget {args.max_flops:.0f} multiply-adds), best first:")
    for trial in tuner.oracle.get_best_trials(args.max_trials):
        flops = trial.metrics.get_best_value("flops")
        cell = values_to_arch_str(trial.hyperparameters.values)
        print(f"  val_accuracy {trial.score:.3f}  flops {flops:9.0f}  {cell}")

    best = tuner.get_best_models(1)[0]  # standard Keras layers, weights from the supernet
    path = tfnas.latency.save_tflite(
        best, os.path.join(args.output_dir, "best_model.tflite"), quantize=args.quantize
    )
    report = tfnas.latency.measure(path)
    print(f"{path}:\n{report}")
    return tuner, path, report


if __name__ == "__main__":
    main()
