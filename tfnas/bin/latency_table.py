r"""tfnas-latency-table: the latency lookup table of a search space, measured on this device.

    tfnas-latency-table --space=mobile --output=table.json
    tfnas-latency-table --space=mobile --runner=adb --output=pixel7.json

Every candidate operation of the space's supernet is converted to .tflite on its own, at the
input shape it sees in the network, and timed (--runner=local: LiteRT on this machine, with
--runtime=interpreter or compiled_model; --runner=adb: pushed to an Android device and run by
LiteRT's benchmark_model there). A few whole random networks (--fit_networks) then fit the
part of the latency the operations do not cover. One line is printed per measurement. The
table is rewritten after each one: the same command after a kill resumes where it stopped. A
table of another device or runtime at --output is refused (--overwrite starts over).
"""

import shutil
import sys

from absl import app, flags, logging

from tfnas.bin import console

with console.quiet_tensorflow(__name__):  # These imports load TensorFlow.
    from tfnas import data, spaces
    from tfnas.latency import runners, tflite, timing

_SPACE = flags.DEFINE_enum("space", "mobile", list(spaces.CLASSIFICATION_SPACES), "Search space.")
_OUTPUT = flags.DEFINE_string("output", None, "The table's .json file (resumed if it exists).")
_DATASET = flags.DEFINE_enum(
    "dataset",
    None,
    sorted(data.DATASETS),
    "Size the space for this data set, as tfnas-search --dataset does (default: "
    "--input_shape and --num_classes).",
)
_INPUT_SHAPE = flags.DEFINE_list(
    "input_shape", None, "Image shape height,width,channels (default 224,224,3)."
)
_NUM_CLASSES = flags.DEFINE_integer(
    "num_classes", None, "Classifier outputs (default 1000).", lower_bound=1
)
_RUNNER = flags.DEFINE_enum("runner", "local", list(runners.RUNNERS), "Where models are timed.")
_RUNTIME = flags.DEFINE_enum(
    "runtime", "interpreter", list(timing.RUNTIMES), "LiteRT runtime of --runner=local."
)
_NUM_THREADS = flags.DEFINE_integer(
    "num_threads", 1, "CPU threads.", lower_bound=1, upper_bound=256
)
_XNNPACK = flags.DEFINE_boolean("xnnpack", True, "Use the XNNPACK CPU kernels.")
_QUANTIZE = flags.DEFINE_enum(
    "quantize", "none", ["none", *(q for q in tflite.QUANTIZE_MODES if q)], "TFLite precision."
)
_WARMUP = flags.DEFINE_integer(
    "warmup_runs", 5, "Untimed runs per model.", lower_bound=0, upper_bound=100_000
)
_RUNS = flags.DEFINE_integer(
    "runs", 30, "Timed runs per model.", lower_bound=1, upper_bound=100_000
)
_FIT_NETWORKS = flags.DEFINE_integer(
    "fit_networks",
    8,
    "Whole random networks measured to fit the fixed term (stem, head, overhead).",
    lower_bound=0,
    upper_bound=10_000,
)
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seed of those networks.", lower_bound=0, upper_bound=2**31 - 1
)
_OVERWRITE = flags.DEFINE_boolean(
    "overwrite", False, "Replace a table of another device or runtime at --output."
)
_ADB = flags.DEFINE_string("adb", "adb", "adb executable (--runner=adb).")
_SERIAL = flags.DEFINE_string("serial", None, "Device serial, adb -s (--runner=adb).")
_BENCHMARK_MODEL = flags.DEFINE_string(
    "benchmark_model",
    "/data/local/tmp/benchmark_model",
    "Path of LiteRT's benchmark_model on the device (--runner=adb).",
)
_DEVICE_DIR = flags.DEFINE_string(
    "device_dir", "/data/local/tmp/tfnas", "Device folder for the pushed models (--runner=adb)."
)
_WORK_DIR = flags.DEFINE_string(
    "work_dir", None, "Keep the .tflite files here (default: a temporary folder)."
)


@flags.validator("output", message="--output must be a path ending in .json.")
def _check_output(value):
    return value is None or value.endswith(".json")


@flags.validator("input_shape")
def _check_input_shape(value):
    if value is None:
        return True
    try:
        shape = [int(v) for v in value]
    except ValueError:
        shape = []
    if len(shape) != 3 or min(shape) < 1:
        raise flags.ValidationError(
            f"--input_shape must be three positive integers height,width,channels. "
            f"Received: --input_shape={','.join(value)}"
        )
    return True


@flags.multi_flags_validator(
    ["dataset", "input_shape", "num_classes"],
    message="--dataset sizes the space itself: give either --dataset or "
    "--input_shape/--num_classes.",
)
def _check_data(values):
    return values["dataset"] is None or (
        values["input_shape"] is None and values["num_classes"] is None
    )


@flags.multi_flags_validator(
    ["runner", "runtime"],
    message="--runtime applies to --runner=local; --runner=adb times with the device's "
    "benchmark_model.",
)
def _check_runtime(values):
    return values["runner"] == "local" or values["runtime"] == "interpreter"


@flags.multi_flags_validator(["runner", "adb"])
def _check_adb(values):
    # At parsing, before the space is built and anything is converted.
    if values["runner"] == "adb" and shutil.which(values["adb"] or "") is None:
        raise flags.ValidationError(
            "--adb: the adb executable was not found (not on PATH and not an executable "
            "file). Install the Android platform tools or pass its path. Received: "
            f"--adb={values['adb']}"
        )
    return True


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from tfnas.latency import lookup_table

    logging.set_verbosity(logging.WARNING)
    shape = None if _INPUT_SHAPE.value is None else [int(v) for v in _INPUT_SHAPE.value]
    try:
        table = _run(lookup_table, shape)
    except (ValueError, RuntimeError) as error:
        # A refused table, a failing adb or benchmark_model: the message says what to do.
        sys.exit(f"tfnas-latency-table: error: {error}")
    print(f"Wrote {table.path}: {len(table.operations)} operations, {len(table.choices)} choices.")


def _run(lookup_table, shape):
    return lookup_table.run(
        space=_SPACE.value,
        output=_OUTPUT.value,
        input_shape=shape,
        num_classes=_NUM_CLASSES.value,
        dataset=_DATASET.value,
        runner=_RUNNER.value,
        runtime=_RUNTIME.value,
        num_threads=_NUM_THREADS.value,
        xnnpack=_XNNPACK.value,
        quantize=None if _QUANTIZE.value == "none" else _QUANTIZE.value,
        warmup=_WARMUP.value,
        runs=_RUNS.value,
        fit_networks=_FIT_NETWORKS.value,
        seed=_SEED.value,
        overwrite=_OVERWRITE.value,
        adb=_ADB.value,
        serial=_SERIAL.value,
        benchmark_model=_BENCHMARK_MODEL.value,
        device_dir=_DEVICE_DIR.value,
        work_dir=_WORK_DIR.value,
        progress=lambda line: print(line, flush=True),
    )


def console_main():
    """Entry point of the `tfnas-latency-table` console script."""
    flags.mark_flags_as_required(["output"])
    console.run(main, __name__)


if __name__ == "__main__":
    console_main()
