"""Does a pre-trained Transfer NAS agent find good cells in fewer queries? (tabular, no training)

Transfer NAS (Borsos et al. 2019, arXiv 1906.08102; `tfnas.tuners.transfer_nas`) trains
one Transformer agent on several search spaces and tasks, then transfers it to a new one.
Here every task is a synthetic NAS-Bench-201-like table (`synthetic_tabular.generate`;
another seed is another task: other per-edge effects and interactions, the same mean
operation effects) and the spaces differ too: a task may keep only a subset of the five
operations (its table is the rows whose edges all use them), so its decisions have 3, 4
or 5 candidates. The agent is pre-trained on `--pretrain_tasks` (seed:operations, with
`all` for the five) and searches the held-out `--target` task:

* transfer: `TransferNAS(pretrained=...)`, a fresh task embedding, fine-tuned by REINFORCE;
* scratch: the same agent and settings, randomly initialized;
* random: KerasTuner's random search.

Over `--seeds` runs each, it prints the median [25%, 75%] of the queries until the incumbent
(the trial with the best validation accuracy so far) is within `--tolerance` of the table's
optimum validation accuracy (what the search optimizes) and of its optimum test accuracy
(the incumbent's test accuracy; the validation/test offsets of the table put a floor under
this one), shown as "inf" when not reached within the largest budget; then the incumbent's
test regret (points below the optimum) at each of `--budgets`, and its validation regret
at the largest. Prints; asserts nothing.

    nice -n 19 .venv/bin/python benchmarks/transfer_nas.py --seeds=10
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERASTUNER_VERBOSE", "0")

import numpy as np  # noqa: E402
import synthetic_tabular  # noqa: E402

OPERATION_SETS = {
    "all": synthetic_tabular.OPERATIONS,
    "nopool": ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3"),
    "no1x1": ("none", "skip_connect", "nor_conv_3x3", "avg_pool_3x3"),
    "convs": ("none", "nor_conv_1x1", "nor_conv_3x3"),
}


def task_table(seed: int, operations: Sequence[str]):
    """The synthetic table of `seed`, restricted to the cells whose edges use `operations`.

    Returns:
        A `tfnas.nasbench.TabularBenchmark` whose space has only those operations.
    """
    from tfnas.nasbench import TabularBenchmark

    table = synthetic_tabular.generate(seed=seed, num_seeds=1)
    allowed = set(operations)
    rows = []
    for row in table["rows"]:
        ops = {
            edge.split("~")[0] for node in row[0].split("+") for edge in node.strip("|").split("|")
        }
        if ops <= allowed:
            rows.append(row)
    table["rows"] = rows
    table["metadata"]["space"]["operations"] = [
        o for o in synthetic_tabular.OPERATIONS if o in allowed
    ]
    name = f"synthetic{seed}_{'-'.join(table['metadata']['space']['operations'])}"
    return TabularBenchmark(table, name=name)


def parse_task(spec: str) -> tuple[int, str]:
    """`"seed:operations"` (operations a key of `OPERATION_SETS`) as `(seed, key)`."""
    seed, _, ops = spec.partition(":")
    ops = ops or "all"
    if ops not in OPERATION_SETS:
        raise ValueError(
            f"Unknown operation set {ops!r} in {spec!r}; choose from {sorted(OPERATION_SETS)}"
        )
    return int(seed), ops


def queries_to_target(regret: Sequence[float], tolerance: float) -> float:
    """Trials until the incumbent's regret is <= `tolerance` (inf if never)."""
    for index, value in enumerate(regret):
        if value <= tolerance + 1e-12:
            return float(index + 1)
    return math.inf


def quartiles(values: Sequence[float], digits: int = 2, scale: float = 1.0) -> str:
    """`median [25%, 75%]` (an infinite value, a censored run, prints as ">B")."""
    data = sorted(v * scale for v in values)
    if len(data) == 1:
        q1 = med = q3 = data[0]
    else:
        q1, med, q3 = (float(np.quantile(data, q, method="lower")) for q in (0.25, 0.5, 0.75))
        med = statistics.median(data)

    def show(v):
        return "inf" if math.isinf(v) else f"{v:.{digits}f}"

    return f"{show(med)} [{show(q1)}, {show(q3)}]"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrain_tasks", default="1:all,2:nopool,3:no1x1,4:all")
    parser.add_argument("--target", default="0:all", help="held-out task, seed:operations")
    parser.add_argument("--budgets", default="25,50,100")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--tolerance", type=float, default=0.005, help="accuracy (0.005 = 0.5 points)"
    )
    parser.add_argument("--pretrain_steps", type=int, default=150)
    parser.add_argument("--pretrain_batch", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--pretrain_entropy", type=float, default=1.0)
    parser.add_argument("--entropy_weight", type=float, default=0.0, help="while searching")
    parser.add_argument("--pretrained", default=None, help="reuse (or write) the agent here")
    parser.add_argument("--oracles", default="transfer,scratch,random")
    args = parser.parse_args(argv)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    chosen = [name for name in args.oracles.split(",") if name]

    import keras_tuner

    from tfnas.nasbench import run_oracle
    from tfnas.tuners import transfer_nas

    target_seed, target_ops = parse_task(args.target)
    target = task_table(target_seed, OPERATION_SETS[target_ops])
    path = args.pretrained or os.path.join(tempfile.mkdtemp(prefix="tfnas_transfer_"), "agent.json")
    start = time.time()
    if "transfer" in chosen and not os.path.exists(path):
        tasks = {}
        for spec in args.pretrain_tasks.split(","):
            seed, ops = parse_task(spec)
            if (seed, ops) == (target_seed, target_ops):
                raise ValueError(f"The target {args.target!r} must not be a pre-training task.")
            bench = task_table(seed, OPERATION_SETS[ops])
            hp = bench.hyperparameters()
            tasks[f"{seed}:{ops}"] = (hp, functools.partial(bench.query, metric="val_acc"))
        history = transfer_nas.pretrain(
            tasks,
            path,
            steps=args.pretrain_steps,
            batch_size=args.pretrain_batch,
            learning_rate=args.learning_rate,
            entropy_weight=args.pretrain_entropy,
            seed=0,
        )
        print(
            f"pre-trained on {list(tasks)} in {time.time() - start:.0f} s "
            f"({args.pretrain_steps} steps)"
        )
        for name, rewards in history.items():
            early, late = (
                np.mean(rewards[: max(1, len(rewards) // 10)]),
                np.mean(rewards[-max(1, len(rewards) // 10) :]),
            )
            print(f"  {name}: mean sampled val acc {early:.4f} -> {late:.4f}")
    factories = {
        "transfer": functools.partial(
            transfer_nas.TransferNAS,
            pretrained=path,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
            entropy_weight=args.entropy_weight,
        ),
        "scratch": functools.partial(
            transfer_nas.TransferNAS,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
            entropy_weight=args.entropy_weight,
        ),
        "random": keras_tuner.oracles.RandomSearchOracle,
    }
    print(
        f"target {args.target} ({len(target)} cells); {args.seeds} seeds; median [25%, 75%] "
        f"over seeds; queries until the incumbent is within {args.tolerance * 100:g} points"
    )
    val_optimum = target.optimum("val_acc")
    header = (
        ["oracle", "queries to val target", "queries to test target"]
        + [f"test regret@{b}" for b in budgets]
        + [f"val regret@{budgets[-1]}", "s/run"]
    )
    rows = []
    for name in chosen:
        begun = time.time()
        runs = [
            run_oracle(factories[name], target, budget=budgets[-1], seed=s)
            for s in range(args.seeds)
        ]
        per_run = (time.time() - begun) / args.seeds
        val_regret = [[val_optimum - v for v in r.best_val] for r in runs]
        row = [
            name,
            quartiles([queries_to_target(v, args.tolerance) for v in val_regret], 0),
            quartiles([queries_to_target(r.regret, args.tolerance) for r in runs], 0),
        ]
        for budget in budgets:
            row.append(quartiles([r.regret[min(budget, len(r.regret)) - 1] for r in runs], 2, 100))
        row.append(quartiles([v[-1] for v in val_regret], 2, 100))
        row.append(f"{per_run:.1f}")
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    print(
        f"(regrets in accuracy points below the table's optimum test / validation accuracy "
        f"({target.optimum('test_acc'):.4f} / {val_optimum:.4f}); the test regret is that of "
        f"the incumbent chosen by validation accuracy; inf: not within tolerance after "
        f"{budgets[-1]} queries)"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
