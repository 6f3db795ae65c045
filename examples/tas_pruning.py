"""TAS: prune a ResNet to a FLOPs target, train the found shape with distillation, export.

Transformable Architecture Search (Dong & Yang 2019) searches every convolution's width
and every stage's depth of a given network at a target share of its multiply-adds
(`flops_ratio`), then trains the found (smaller) shape from scratch with knowledge
distillation from the unpruned network. The result is a plain Keras model, converted to
TFLite and timed with LiteRT.

`--model=resnet` prunes TAS's CIFAR ResNet (`tfnas.spaces.ResNetSpace`, widths and
depths); `--model=custom` prunes the widths of your own Keras model, here `my_cnn`
below, through `tfnas.spaces.TransformableModel`.

Run (a few minutes on 2 CPU cores; no network):

    python examples/tas_pruning.py --flops_ratio=0.5 --output_dir=runs/tas
"""

import argparse
import os

import keras

import tfnas
from tfnas.cost import count_flops


def my_cnn(input_shape, num_classes, filters=16):
    """A plain Keras CNN with a residual block, as a user would write it."""
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    y = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    y = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same")(y))
    x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.Conv2D(2 * filters, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes)(x), name="my_cnn")


def main(argv=None):
    """Runs search, teacher, distillation and export; returns a dict of the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flops_ratio", type=float, default=0.5)
    parser.add_argument("--model", choices=("resnet", "custom"), default="resnet")
    parser.add_argument("--depth", type=int, default=14, help="6n + 2 (n blocks per stage)")
    parser.add_argument("--base_filters", type=int, default=8)
    parser.add_argument("--search_epochs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=6, help="teacher and student training")
    parser.add_argument("--output_dir", default="runs/tas")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = tfnas.data.load("digits", seed=args.seed)
    if args.model == "custom":
        model = my_cnn(data.input_shape, data.num_classes, filters=2 * args.base_filters)
        space = tfnas.spaces.TransformableModel(model, learning_rate=3e-3)
    else:
        space = tfnas.spaces.ResNetSpace(
            data.input_shape,
            data.num_classes,
            depth=args.depth,
            base_filters=args.base_filters,
            learning_rate=3e-3,
        )
    oracle = tfnas.oracles.TAS(flops_ratio=args.flops_ratio, seed=args.seed)
    tuner = tfnas.Tuner(space, oracle=oracle, directory=args.output_dir, project_name="search",
                        overwrite=True)  # fmt: skip
    fit = {"batch_size": 64, "verbose": 0}
    tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                 epochs=args.search_epochs, **fit)  # fmt: skip
    # The unpruned network is the teacher; the found shape is trained with distillation.
    teacher, _ = tuner.retrain(space.uniform_values(1.0), data.x_train, data.y_train,
                               epochs=args.epochs, **fit)  # fmt: skip
    student, _ = tuner.retrain(None, data.x_train, data.y_train, epochs=args.epochs,
                               teacher=teacher, **fit)  # fmt: skip
    results = {
        "shape": oracle.derive(),
        "teacher_macs": count_flops(teacher),
        "student_macs": count_flops(student),
        "teacher_accuracy": teacher.evaluate(data.x_test, data.y_test, verbose=0)[1],
        "student_accuracy": student.evaluate(data.x_test, data.y_test, verbose=0)[1],
    }
    path = tfnas.latency.save_tflite(student, os.path.join(args.output_dir, "pruned.tflite"))
    results["tflite"], results["latency"] = path, tfnas.latency.measure(path)
    for name in ("teacher", "student"):
        print(f"{name}: test accuracy {results[f'{name}_accuracy']:.3f}, "
              f"{results[f'{name}_macs']:,} multiply-adds")  # fmt: skip
    print(f"pruned to {results['student_macs'] / results['teacher_macs']:.2f} of the "
          f"multiply-adds; {results['latency'].median_ms:.4f} ms median (LiteRT)")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
