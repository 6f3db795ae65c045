r"""tfnas-export: a .keras model to .tflite, checked in LiteRT against Keras, and timed.

    tfnas-export --model=runs/train/model.keras --quantize=int8 \
        --representative_data=digits --output=runs/train/model.tflite

Writes --output, prints how far the LiteRT outputs are from the Keras model's on a batch
(float32 and float16 must be close; for int8 the top-1 agreement is reported) and the
LiteRT latency report. TensorFlow's C++ logs are hidden (TF_CPP_MIN_LOG_LEVEL, when set,
chooses their level).
"""

from absl import app, flags, logging

from tfnas.bin import console

with console.quiet_tensorflow(__name__):  # These imports load TensorFlow.
    from tfnas import data, export

_MODEL = flags.DEFINE_string("model", None, "The .keras model, e.g. tfnas-train's model.keras.")
_OUTPUT = flags.DEFINE_string("output", None, "The .tflite file to write.")
_QUANTIZE = flags.DEFINE_enum("quantize", "none", list(export.QUANTIZE_MODES), "TFLite precision.")
_REPRESENTATIVE_DATA = flags.DEFINE_enum(
    "representative_data",
    None,
    sorted(data.DATASETS),
    "Data set calibrating int8 and giving the verification batch (default: random inputs).",
)
_LATENCY_RUNS = flags.DEFINE_integer(
    "latency_runs", 50, "Timed TFLite invocations.", lower_bound=1, upper_bound=100_000
)
_NUM_THREADS = flags.DEFINE_integer(
    "num_threads", 1, "LiteRT threads.", lower_bound=1, upper_bound=256
)
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0, upper_bound=2**31 - 1)


@flags.validator("model")
def _check_model(value):
    # The cheap file checks at parse time; the library names --model's value if Keras then
    # cannot load it.
    if value is not None:
        try:
            export.check_keras_file(value)
        except ValueError as error:
            raise flags.ValidationError(f"--model: {error}") from None
    return True


@flags.validator("output", message="--output must be a path ending in .tflite.")
def _check_output(value):
    return value is None or value.endswith(".tflite")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # TensorFlow's SavedModel export (used by the TFLite converter) logs at INFO.
    logging.set_verbosity(logging.WARNING)
    export.run(
        model=_MODEL.value,
        output=_OUTPUT.value,
        quantize=_QUANTIZE.value,
        representative_data=_REPRESENTATIVE_DATA.value,
        latency_runs=_LATENCY_RUNS.value,
        num_threads=_NUM_THREADS.value,
        seed=_SEED.value,
    )


def console_main():
    """Entry point of the `tfnas-export` console script."""
    flags.mark_flags_as_required(["model", "output"])
    console.run(main, __name__)


if __name__ == "__main__":
    console_main()
