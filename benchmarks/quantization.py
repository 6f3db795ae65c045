"""Mixed-precision quantization on digits: float32, uniform int8, DNAS, QAT random search.

One small CNN (three convolutions and a dense head), side by side:

- float32: the plain network, trained; exported to float32 TFLite;
- int8: uniform 8-bit QAT (weights per channel, activations 8 bits), exported to
  full-integer int8 TFLite;
- dnas: `MixedPrecisionDNAS` over per-layer weight bits {2, 3, 4, 8} and activation
  bits {4, 8} (bit-operations cost), the derived bits retrained from scratch with QAT;
- random: QAT random search over the same per-layer bits for the DNAS search's wall
  clock, each trial trained as long as one QAT training; the best validation accuracy
  among trials with average weight bits <= 4.

Per row: test accuracy (Keras QAT model, and the TFLite model), packed weight size,
compression against float32 weights, bit-operations, TFLite size and median latency
(LiteRT, 1 thread). 2-4-bit layers run at 8 bits in TFLite: the TFLite size of a mixed
model is that of its int8 export; its packed size is what the bits would take.
Also: the DNAS search's time against one QAT training of one precision configuration.
Prints medians [min, max] over `--repeats` seeds; asserts nothing.

    nice -n 19 python benchmarks/quantization.py --epochs 10 --search_epochs 10 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402

import tfnas  # noqa: E402
from tfnas import blocks  # noqa: E402
from tfnas.data import datasets  # noqa: E402
from tfnas.export import tflite_predict  # noqa: E402
from tfnas.latency import measure  # noqa: E402
from tfnas.quantization import export, report  # noqa: E402

LAYERS = ("conv1", "conv2", "conv3", "head")
WEIGHT_BITS = [2, 3, 4, 8]
ACTIVATION_BITS = [4, 8]


def build(hp, quantized=True):
    """The CNN; each layer a bit-width choice (or a plain float layer)."""
    specs = {
        "conv1": lambda: keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        "conv2": lambda: keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        "conv3": lambda: keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        "head": lambda: keras.layers.Dense(10),
    }
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for name in LAYERS:
        if name == "head":
            x = keras.layers.GlobalAveragePooling2D()(x)
        if quantized:
            # The first layer's input is the image: 8 bits, as an int8 model's input.
            x = blocks.bit_width_choice(hp, name, specs[name], weight_bits=WEIGHT_BITS,
                                        activation_bits=8 if name == "conv1" else ACTIVATION_BITS,
                                        per_channel=True)(x)  # fmt: skip
        else:
            x = specs[name]()(x)
    model = keras.Model(inputs, x)
    model.compile(keras.optimizers.Adam(0.005),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])  # fmt: skip
    return model


def fixed(values, quantized=True):
    hp = keras_tuner.HyperParameters()
    hp.values.update(values)
    return build(hp, quantized)


def uniform(bits):
    values = {f"{n}/weight_bits": bits for n in LAYERS}
    values.update({f"{n}/activation_bits": bits for n in LAYERS if n != "conv1"})
    return values


def train(model, data, epochs, seed):
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    return time.perf_counter() - start


def evaluate(name, model, data, quantize):
    accuracy = float(model.evaluate(data.x_test, data.y_test, verbose=0)[1])
    rows = report.layer_bits(model)
    totals = report.summarize(rows)
    if quantize == "int8":
        flatbuffer = export.export_tflite(model, "int8", data.x_train[:200])
    else:
        flatbuffer = export.export_tflite(model, "float")
    tflite_accuracy = float(
        (tflite_predict(flatbuffer, data.x_test).argmax(-1) == data.y_test).mean()
    )
    latency = measure(flatbuffer, runs=50).median_ms
    return {
        "name": name,
        "accuracy": accuracy,
        "tflite_accuracy": tflite_accuracy,
        "packed_bytes": totals["packed_weight_bytes"],
        "compression": totals["compression"],
        "avg_weight_bits": totals["average_weight_bits"],
        "bitops": totals["bitops"],
        "tflite_bytes": len(flatbuffer),
        "latency_ms": latency,
        "rows": rows,
    }


def dnas(data, args, seed, directory):
    oracle = tfnas.oracles.MixedPrecisionDNAS(seed=seed, cost="bitops", gamma=args.gamma,
                                              warmup_epochs=args.warmup_epochs)  # fmt: skip
    tuner = tfnas.Tuner(build, oracle=oracle, directory=directory, project_name=f"dnas{seed}",
                        overwrite=True)  # fmt: skip
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                 epochs=args.search_epochs, batch_size=32, verbose=0)  # fmt: skip
    return oracle.derive(), time.perf_counter() - start, oracle


def random_search(data, args, seed, budget):
    rng = np.random.default_rng(seed)
    best, start, trials = None, time.perf_counter(), 0
    while time.perf_counter() - start < budget:
        values = {f"{n}/weight_bits": int(rng.choice(WEIGHT_BITS)) for n in LAYERS}
        values.update({f"{n}/activation_bits": int(rng.choice(ACTIVATION_BITS))
                       for n in LAYERS if n != "conv1"})  # fmt: skip
        model = fixed(values)
        train(model, data, args.epochs, seed + trials)
        trials += 1
        if report.summarize(report.layer_bits(model))["average_weight_bits"] > 4:
            continue
        accuracy = float(model.evaluate(data.x_val, data.y_val, verbose=0)[1])
        if best is None or accuracy > best[0]:
            best = (accuracy, model, values)
    return best, trials


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--search_epochs", type=int, default=10)
    parser.add_argument("--warmup_epochs", type=int, default=2)
    parser.add_argument("--gamma", type=float, default=0.6)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    search_ratio, trial_counts = [], []
    for seed in range(args.repeats):
        data = datasets.load("digits", seed=seed)
        model = fixed({}, quantized=False)
        train(model, data, args.epochs, seed)
        results.setdefault("float32", []).append(evaluate("float32", model, data, None))
        model = fixed(uniform(8))
        qat_seconds = train(model, data, args.epochs, seed)
        results.setdefault("int8 QAT", []).append(evaluate("int8", model, data, "int8"))
        with tempfile.TemporaryDirectory() as tmp:
            values, search_seconds, oracle = dnas(data, args, seed, tmp)
        search_ratio.append(search_seconds / qat_seconds)
        print("DNAS derived bits:", oracle.derived_bits(values))
        model = fixed(values)
        train(model, data, args.epochs, seed)
        results.setdefault("DNAS", []).append(evaluate("dnas", model, data, "int8"))
        best, trials = random_search(data, args, seed, search_seconds)
        trial_counts.append(trials)
        if best is not None:
            results.setdefault("QAT random", []).append(evaluate("random", best[1], data, "int8"))
        if seed == 0:
            rows = results["DNAS"][0]["rows"]
            print(report.bits_markdown(rows))
            print("PNG:", report.plot_bits(rows, "/tmp/tfnas_quantization_bits.png"))

    def spread(values):
        if len(values) == 1:
            return f"{values[0]:.4g}"
        return f"{statistics.median(values):.4g} [{min(values):.4g}, {max(values):.4g}]"

    keys = ("accuracy", "tflite_accuracy", "avg_weight_bits", "packed_bytes", "compression",
            "bitops", "tflite_bytes", "latency_ms")  # fmt: skip
    print("\n" + " | ".join(("model",) + keys))
    for name, runs in results.items():
        print(" | ".join([name] + [spread([r[k] for r in runs]) for k in keys]))
    print(f"\nDNAS search / one QAT training (same epochs): {spread(search_ratio)}")
    print(f"QAT random search trials in the DNAS wall clock: {spread(trial_counts)}")
    print(f"float32 weights: {results['float32'][0]['packed_bytes']:.0f} bytes")


if __name__ == "__main__":
    main()
