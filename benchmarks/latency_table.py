"""Lookup-table latency against end-to-end measured latency on this machine.

For each input size (`--sizes`) the mobile space (`tfnas.spaces.MobileSpace`, the class
`tfnas.spaces.make("mobile", ...)` returns, with its default MobileNetV2 stages, stem and
head) is tabled with `tfnas.latency.build_table` for both LiteRT runtimes (`interpreter`,
`compiled_model`; 1 thread, XNNPACK on, float32): every candidate operation at its input
shape, plus the fixed term fitted on `--fit_networks` whole random networks. Then
`--architectures` other random architectures (another seed) are converted and measured end
to end with both runtimes and compared with the tables' predictions:

- Spearman rank correlation of predicted against measured (target >= 0.95);
- mean absolute percentage error, |predicted - measured| / measured (target <= 10%);
- latencies are the `--statistic` (default: the minimum; this machine is shared) of
  `--runs` timed runs;
- also the same two numbers for the raw table sum (FBNet's sum of isolated operator
  latencies, no fitted term), to show what the fit adds.

Each `.tflite` is converted once and timed by both runtimes right after each other, so both
see the same load. Files are kept under `--work_dir`, and the tables are built resumably, so
a rerun after a kill continues. The candidate set defaults to ProxylessNAS's (kernel
{3, 5, 7} x expansion {3, 6}, no SE; `--kernel_sizes` / `--expansions` / `--se_ratios`):
the space's default 18 candidates per block need three times the conversions.

    nice -n 19 .venv/bin/python benchmarks/latency_table.py --sizes=32,64 --architectures=100
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from tfnas import latency  # noqa: E402
from tfnas.latency import lookup_table  # noqa: E402
from tfnas.spaces import MobileSpace  # noqa: E402

RUNTIMES = ("interpreter", "compiled_model")


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t]


def _floats(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_ints, default=[32, 64], help="input sizes (square)")
    parser.add_argument("--architectures", type=int, default=100)
    parser.add_argument("--fit_networks", type=int, default=8)
    parser.add_argument("--kernel_sizes", type=_ints, default=[3, 5, 7])
    parser.add_argument("--expansions", type=_ints, default=[3, 6])
    parser.add_argument("--se_ratios", type=_floats, default=[0.0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per measurement")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--statistic", choices=["median", "min"], default="min")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", default="/tmp/tfnas_latency_table_benchmark")
    parser.add_argument("--repeat_calls", type=int, default=10, help="for the CV table")
    args = parser.parse_args()

    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} CPUs", flush=True)
    runners = {
        rt: latency.LocalRunner(
            rt, args.num_threads, warmup=args.warmup, runs=args.runs, statistic=args.statistic
        )
        for rt in RUNTIMES
    }
    results = {}
    for size in args.sizes:
        space = MobileSpace(
            (size, size, 3),
            10,
            kernel_sizes=args.kernel_sizes,
            expansions=args.expansions,
            se_ratios=args.se_ratios,
        )
        work = os.path.join(args.work_dir, f"size{size}")
        os.makedirs(work, exist_ok=True)
        tables = {}
        for rt in RUNTIMES:
            start = time.perf_counter()
            tables[rt] = latency.build_table(
                space,
                runners[rt],
                os.path.join(work, f"table_{rt}.json"),
                fit_networks=args.fit_networks,
                seed=args.seed,
                work_dir=work,
                progress=lambda line, rt=rt, size=size: print(f"{size} {rt} {line}", flush=True),
            )
            print(f"size {size} {rt}: table ready in {time.perf_counter() - start:.0f} s")
        _, _, hyperparameters = lookup_table.space_operations(space)
        rng = np.random.default_rng(args.seed + 1000)
        measured_path = os.path.join(work, "measured.json")
        measured = json.load(open(measured_path)) if os.path.exists(measured_path) else []
        for i in range(args.architectures):
            values = lookup_table.random_architecture(hyperparameters, rng)
            if i < len(measured):
                continue
            path = os.path.join(work, f"eval_{i}.tflite")
            model = lookup_table.build_network(space, values)
            row = {"values": values}
            for rt in RUNTIMES:
                row[rt] = lookup_table.measure_model(model, runners[rt], path)
            measured.append(row)
            with open(measured_path, "w") as f:
                json.dump(measured, f)
            print(
                f"size {size} eval [{i + 1}/{args.architectures}] "
                + " ".join(
                    f"{rt}: measured {row[rt]:.3f} ms, predicted "
                    f"{tables[rt].predict(values):.3f} ms"
                    for rt in RUNTIMES
                ),
                flush=True,
            )
        measured = measured[: args.architectures]
        for rt in RUNTIMES:
            truth = np.array([row[rt] for row in measured])
            predicted = np.array([tables[rt].predict(row["values"]) for row in measured])
            raw = np.array([tables[rt].network_terms(row["values"])[0] for row in measured])
            results[(size, rt)] = {
                "n": len(truth),
                "spearman": stats.spearmanr(predicted, truth).statistic,
                "mape": float(np.mean(np.abs(predicted - truth) / truth)),
                "raw_spearman": stats.spearmanr(raw, truth).statistic,
                "raw_mape": float(np.mean(np.abs(raw - truth) / truth)),
                "median_ms": float(np.median(truth)),
                "range_ms": (float(truth.min()), float(truth.max())),
                "fit": tables[rt].fit,
                "ops": len(tables[rt].operations),
            }

    # Repeatability: coefficient of variation of the median over repeated measure() calls.
    cv_rows = []
    for size in args.sizes:
        path = os.path.join(args.work_dir, f"size{size}", "eval_0.tflite")
        if not os.path.exists(path):
            continue
        for rt in RUNTIMES:
            medians = [runners[rt].measure(path) for _ in range(args.repeat_calls)]
            cv_rows.append((size, rt, np.mean(medians), np.std(medians) / np.mean(medians)))

    print(f"\nload average at end: {os.getloadavg()}")
    print(
        f"\nLookup table vs end-to-end LiteRT latency ({args.num_threads} thread(s), XNNPACK, "
        f"float32, {args.statistic} of {args.runs} runs)"
    )
    header = (
        f"{'size':>5} {'runtime':<15} {'n':>4} {'ops':>4} {'median ms':>10} {'range ms':>15} "
        f"{'spearman':>9} {'MAPE':>7} {'raw sp.':>8} {'raw MAPE':>9}  fit"
    )
    print(header)
    for (size, rt), r in results.items():
        fit = r["fit"]
        print(
            f"{size:>5} {rt:<15} {r['n']:>4} {r['ops']:>4} {r['median_ms']:>10.3f} "
            f"{r['range_ms'][0]:>7.3f}-{r['range_ms'][1]:<7.3f} {r['spearman']:>9.3f} "
            f"{100 * r['mape']:>6.1f}% {r['raw_spearman']:>8.3f} {100 * r['raw_mape']:>8.1f}%  "
            f"scale {fit['scale']:.3f}, {fit['per_op_ms']:+.4f} ms/op, "
            f"{fit['fixed_ms']:+.3f} ms"
        )
    if cv_rows:
        print(f"\nRepeatability: {args.repeat_calls} calls ({args.statistic} of {args.runs} runs)")
        print(f"{'size':>5} {'runtime':<15} {'mean ms':>9} {'CV':>7}")
        for size, rt, mean, cv in cv_rows:
            print(f"{size:>5} {rt:<15} {mean:>9.3f} {100 * cv:>6.2f}%")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
