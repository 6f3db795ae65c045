"""Auto-DeepLab on the generated shapes task: searched network vs a DeepLab-like baseline.

For every seed: `tfnas.oracles.AutoDeepLab` searches `AutoDeepLabSpace` on the shapes
training split (architecture steps on the validation split); the decoded network (DARTS
cell + Viterbi path) and a fixed DeepLab-like baseline in the same space (output stride 8
then 16, every edge a 3x3 separable convolution, as DeepLab's atrous backbone keeps /16)
are trained from scratch with the same budget, and the test mean IoU of both, their FLOPs
(multiply-adds), the search time and the baseline's training time are printed as median
[min, max] over the seeds.

Usage: `python benchmarks/auto_deeplab.py --seeds 0,1,2 --search-epochs 4 --epochs 6`.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import common

from tfnas.cost import count_flops
from tfnas.data.datasets import load_shapes
from tfnas.spaces.auto_deeplab import AutoDeepLabSpace
from tfnas.tuners.auto_deeplab import AutoDeepLab


def baseline_values(space: AutoDeepLabSpace) -> dict:
    """The DeepLab-like baseline: /8, then /16 for every further layer, sep 3x3 edges."""
    path = [min(layer + 1, 2, space.num_levels - 1) for layer in range(space.num_layers)]
    cell = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * space.num_nodes
    return space.architecture_values(cell, path)


def evaluate_network(space, values, data, *, epochs: int, batch_size: int, seed: int):
    """Trains the fixed network of `values` from scratch: (test mean IoU, FLOPs, seconds)."""
    start = time.perf_counter()
    history = common.fit_fixed(
        space, values, data.x_train, data.y_train, epochs=epochs, batch_size=batch_size,
        seed=seed,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    model = history.model
    result = model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
    return float(result["mean_iou"]), count_flops(model), seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--num-images", type=int, default=240)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--search-epochs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = {key: [] for key in ("searched", "baseline", "flops_s", "flops_b", "search", "train")}
    paths = []
    for seed in seeds:
        data = load_shapes(seed=seed, num_images=args.num_images, size=args.size)
        space = AutoDeepLabSpace.from_dataset(
            data, num_layers=args.num_layers, num_nodes=2, filter_multiplier=8
        )
        oracle = AutoDeepLab(seed=seed, bn_recalibration_batches=0)
        with tempfile.TemporaryDirectory() as directory:
            tuner = common.tuner(space, oracle, directory, f"adl{seed}")
            start = time.perf_counter()
            tuner.search(
                data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                epochs=args.search_epochs, batch_size=args.batch_size, verbose=0,
            )  # fmt: skip
            rows["search"].append(time.perf_counter() - start)
        values = oracle.derive()
        paths.append(oracle.derived_architecture(values)["rates"])
        train = dict(epochs=args.epochs, batch_size=args.batch_size, seed=seed)
        iou, flops, _ = evaluate_network(space, values, data, **train)
        rows["searched"].append(iou)
        rows["flops_s"].append(flops / 1e6)
        iou, flops, seconds = evaluate_network(space, baseline_values(space), data, **train)
        rows["baseline"].append(iou)
        rows["flops_b"].append(flops / 1e6)
        rows["train"].append(seconds)
        print(f"seed {seed}: " + ", ".join(f"{k}={v[-1]:.3g}" for k, v in rows.items()), flush=True)
    common.print_table(
        f"Auto-DeepLab on shapes ({args.num_images} images {args.size}x{args.size}, "
        f"{args.num_layers} layers, search {args.search_epochs} epochs, retrain "
        f"{args.epochs} epochs, seeds {seeds}): median [min, max]",
        ["network", "test mean IoU", "MFLOPs (MACs)", "seconds"],
        [
            ["Auto-DeepLab (searched)", common.spread(rows["searched"]),
             common.spread(rows["flops_s"]), "search " + common.spread(rows["search"])],
            ["DeepLab-like baseline", common.spread(rows["baseline"]),
             common.spread(rows["flops_b"]), "train " + common.spread(rows["train"])],
        ],
    )  # fmt: skip
    print("searched paths (rates):", paths)
    print(
        "search cost / baseline training:",
        common.spread(common.ratios(rows["search"], rows["train"])),
    )


if __name__ == "__main__":
    main()
