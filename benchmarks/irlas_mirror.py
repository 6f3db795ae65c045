"""Does IRLAS's mirror term pull the search towards the expert's topology? (tabular, no training)

On the committed digits NAS-Bench-201 table (3 operations, 729 cells), runs the IRLAS
oracle (`tfnas.tuners.irlas.IRLAS`) with the NAS-Bench-201 ResNet cell as the expert

    |nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|

at each `--mirror_weights` lambda, lambda 0 being plain REINFORCE (the same controller and
seed: IRLAS with lambda 0 proposes exactly the `Reinforce` oracle's trials). For each budget
(the first B trials of each run of the largest budget) it prints, over `--seeds` runs, the
median [min, max] of: the mean topological distance of the B searched cells to the
expert (edges whose operation differs, 0..6), their mean feature similarity
`phi(a) . phi(expert)` (`tfnas.search.irlas.FeatureMap`, in [0, 1]), the fraction of runs
that evaluated the expert itself, and the table's test accuracy of the cell selected by validation
accuracy; and after the largest budget, the mean distance to the expert of the
controller's last 16 on-policy samples (where the policy has converged to; most are
answers from its record, not new trials). Prints; asserts nothing.

    nice -n 19 .venv/bin/python benchmarks/irlas_mirror.py --seeds=10
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections.abc import Mapping, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERASTUNER_VERBOSE", "0")

from tfnas.search import encoding, irlas  # noqa: E402

# The NAS-Bench-201 ResNet cell (`tfnas.spaces.nasbench201` edge names).
RESNET_CELL = {
    "cell/node1/edge0": "nor_conv_3x3",
    "cell/node2/edge0": "none",
    "cell/node2/edge1": "nor_conv_3x3",
    "cell/node3/edge0": "skip_connect",
    "cell/node3/edge1": "none",
    "cell/node3/edge2": "none",
}


def topology_summary(
    space: encoding.SpaceEncoding,
    architectures: Sequence[Mapping],
    expert: Mapping,
) -> dict[str, float]:
    """The searched architectures' closeness to the expert.

    Returns:
        `{"distance": mean topological distance, "similarity": mean phi(a) . phi(expert),
        "found": 1.0 if the expert is among them else 0.0}`.
    """
    phi = irlas.FeatureMap(space)
    target = phi(dict(expert))
    distances = [irlas.topological_distance(space, dict(a), dict(expert)) for a in architectures]
    similarities = [float(phi(dict(a)) @ target) for a in architectures]
    return {
        "distance": statistics.fmean(distances),
        "similarity": statistics.fmean(similarities),
        "found": float(min(distances) == 0),
    }


def policy_distance(
    space: encoding.SpaceEncoding, controller: irlas.IRLASController, expert: Mapping
) -> float:
    """Mean topological distance to `expert` of the controller's latest on-policy samples
    (its last two IRL windows, answers from the record included): where the policy is."""
    recent = [v for window in controller.windows[-2:] for v in window] + controller.window
    return statistics.fmean(irlas.topological_distance(space, v, dict(expert)) for v in recent)


def spread(values: Sequence[float], digits: int = 3) -> str:
    """`median [min, max]`."""
    return (
        f"{statistics.median(values):.{digits}f} "
        f"[{min(values):.{digits}f}, {max(values):.{digits}f}]"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", default="25,50,100")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--mirror_weights", default="0,0.1,0.3")
    args = parser.parse_args(argv)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    weights = [float(w) for w in args.mirror_weights.split(",")]

    import keras_tuner

    from tfnas.nasbench import TabularBenchmark, run_oracle
    from tfnas.spaces.nasbench201 import arch_str_to_values, values_to_arch_str
    from tfnas.tuners.irlas import IRLAS

    bench = TabularBenchmark.load()
    objective = keras_tuner.Objective("val_accuracy", direction="max")
    space = encoding.SpaceEncoding(bench.hyperparameters())
    expert_str = values_to_arch_str(RESNET_CELL)
    print(
        f"{bench!r}; expert {expert_str}: test acc {bench.query(expert_str, 'test_acc'):.4f} "
        f"(table optimum {bench.optimum('test_acc'):.4f}, mean over cells "
        f"{statistics.fmean(r.test_acc for r in bench):.4f}); {args.seeds} seeds; "
        "median [min, max] over seeds"
    )
    header = (
        f"{'oracle':<14}{'budget':>7}{'distance to expert':>24}{'similarity':>24}"
        f"{'found':>7}{'best test acc':>26}{'s/run':>7}"
    )
    print(header)
    print("-" * len(header))
    for weight in weights:
        name = "reinforce" if weight == 0 else f"irlas l={weight:g}"
        factory = functools.partial(IRLAS, expert=RESNET_CELL, mirror_weight=weight)
        start = time.time()
        runs, policy = [], []
        for seed in range(args.seeds):
            # As `run_oracle` makes it from a factory (seed + 1), kept to read its policy.
            oracle = factory(objective=objective, max_trials=budgets[-1], seed=seed + 1)
            runs.append(run_oracle(oracle, bench, budget=budgets[-1], seed=seed))
            policy.append(policy_distance(space, oracle.algorithm, RESNET_CELL))
        per_run = (time.time() - start) / args.seeds
        for budget in budgets:
            summaries = [
                topology_summary(
                    space, [arch_str_to_values(a) for a in r.archs[:budget]], RESNET_CELL
                )  # fmt: skip
                for r in runs
            ]
            best = [r.best_test[min(budget, len(r.best_test)) - 1] for r in runs]
            found = statistics.fmean(s["found"] for s in summaries)
            print(
                f"{name:<14}{budget:>7}{spread([s['distance'] for s in summaries]):>24}"
                f"{spread([s['similarity'] for s in summaries]):>24}{found:>7.2f}"
                f"{spread(best, 4):>26}{per_run:>7.1f}"
            )
        print(f"{name:<14}{'end':>7}{spread(policy):>24}  (the policy's last 16 samples)")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
