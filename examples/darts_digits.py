"""DARTS on the bundled digits: search a cell, print the derived architecture, draw it.

DARTS (Liu et al. 2018) trains one supernet whose every cell edge is a softmax mixture of
the candidate operations, alternating weight steps on the training split with
architecture (alpha) steps on the validation split. The derived architecture keeps each
node's two strongest incoming edges; `tfnas.Tuner` then evaluates it with the inherited
weights, and `get_best_models` returns it as a plain Keras model.

Run (about 4 minutes on 2 CPU cores, most of it tracing the supernet; no network):

    python examples/darts_digits.py --epochs=10 --output_dir=runs/darts_digits

`--num_nodes=4 --num_cells=8 --init_channels=16` is the paper's search network (slow on
CPUs).
"""

import argparse
import os

import tfnas


def main(argv=None):
    """Runs the search; returns `(tuner, derived values, {cell: png path})`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--init_channels", type=int, default=8)
    parser.add_argument("--num_cells", type=int, default=3)
    parser.add_argument("--num_nodes", type=int, default=3)
    parser.add_argument(
        "--operations",
        default=",".join(tfnas.blocks.ops.DARTS_OPS),
        help="comma-separated candidate operations of every edge",
    )
    parser.add_argument("--output_dir", default="runs/darts_digits")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = tfnas.data.load("digits", seed=args.seed)
    space = tfnas.spaces.DartsSpace(
        data.input_shape,
        data.num_classes,
        init_channels=args.init_channels,
        num_cells=args.num_cells,
        num_nodes=args.num_nodes,
        operations=args.operations.split(","),
    )
    oracle = tfnas.oracles.DARTS(objective="val_accuracy", seed=args.seed)
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

    values = oracle.derive()
    print("derived cells (op, input node) per node:")
    for cell, nodes in tfnas.spaces.darts.values_to_genotype(values, args.num_nodes).items():
        print(f"  {cell}: {nodes}")
    pngs = {
        cell: oracle.plot_cell(os.path.join(args.output_dir, f"{cell}.png"), cell)
        for cell in ("normal", "reduce")
    }
    print("cell diagrams:", ", ".join(pngs.values()))

    best = tuner.get_best_models(1)[0]  # standard Keras layers, weights from the supernet
    _, test_accuracy = best.evaluate(data.x_test, data.y_test, verbose=0)
    print(f"derived network: {best.count_params()} parameters, test accuracy {test_accuracy:.3f}")
    return tuner, values, pngs


if __name__ == "__main__":
    main()
