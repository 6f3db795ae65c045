r"""tfnas-search: architecture search on a ready space, exported to .keras and .tflite.

    tfnas-search --space=nasbench201 --oracle=random --dataset=digits \
        --max_trials=4 --epochs=4 --output_dir=runs/demo

Writes best_model.keras, best_model.tflite, architecture.json, results.json and
report.html (open it in a browser) to --output_dir, TensorBoard logs to
--output_dir/tensorboard, and prints the best architecture's accuracy, size and TFLite
latency. --max_flops / --max_params bound the found architecture's cost, and
--latency_target_ms its latency as a latency table predicts it (--latency_table, from
tfnas-latency-table; built here first when not given). Run it again with
the same --output_dir to resume an interrupted search (--overwrite to restart).
"""

from absl import app, flags, logging

from tfnas.bin import console

with console.quiet_tensorflow(__name__):  # These imports load TensorFlow.
    from tfnas import data, oracles, spaces, validation

_SPACE = flags.DEFINE_enum(
    "space",
    None,
    list(spaces.SPACES),
    "Search space (default nasbench201, resnet for --oracle=tas; not with --quantization).",
)
_ORACLE = flags.DEFINE_enum(
    "oracle", "random", sorted(oracles.ORACLES), "Search strategy (snake_case oracle name)."
)
_DATASET = flags.DEFINE_enum("dataset", "digits", sorted(data.DATASETS), "Data set.")
_MAX_TRIALS = flags.DEFINE_integer(
    "max_trials", 4, "Architectures to evaluate.", lower_bound=1, upper_bound=100_000
)
_EPOCHS = flags.DEFINE_integer(
    "epochs", 4, "Training epochs per trial.", lower_bound=1, upper_bound=10_000
)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 64, "Training batch size.", lower_bound=1, upper_bound=65_536
)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/search", "Where results are written.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0, upper_bound=2**31 - 1)
_QUANTIZE = flags.DEFINE_enum(
    "quantize", "none", ["none", "float16", "int8"], "TFLite export precision."
)
_QUANTIZATION = flags.DEFINE_enum(
    "quantization",
    "none",
    ["none", "int8", "mixed"],
    "Quantized search of tfnas's small CNN: int8 (uniform 8-bit QAT, full-integer .tflite) or "
    "mixed (per-layer weight/activation bits, e.g. --oracle=mixed_precision_dnas).",
)
_LATENCY_RUNS = flags.DEFINE_integer(
    "latency_runs", 50, "Timed TFLite invocations.", lower_bound=1, upper_bound=100_000
)
_NUM_THREADS = flags.DEFINE_integer(
    "num_threads", 1, "LiteRT threads for timing.", lower_bound=1, upper_bound=256
)
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Start over instead of resuming.")
_THEN_TRAIN_EPOCHS = flags.DEFINE_integer(
    "then_train_epochs",
    0,
    "Then train the best architecture from scratch for this many epochs with tfnas-train's "
    "recipe, into <output_dir>/train (0: no retraining).",
    lower_bound=0,
    upper_bound=10_000,
)
_MAX_FLOPS = flags.DEFINE_float(
    "max_flops",
    None,
    "Most multiply-adds of one forward pass the found architecture may have: a multi-trial "
    "search rejects (untrained, with a penalized score) every architecture above it, a "
    "weight-sharing one never proposes them. Unset: no limit.",
    lower_bound=1,
)
_MAX_PARAMS = flags.DEFINE_float(
    "max_params",
    None,
    "Most parameters the found architecture may have (enforced as --max_flops). Unset: no limit.",
    lower_bound=1,
)
_LATENCY_TARGET_MS = flags.DEFINE_float(
    "latency_target_ms",
    None,
    "Most milliseconds the found architecture may take, as the latency table predicts "
    "(enforced as --max_flops; FBNet and ProxylessNAS also search for it). Refused before "
    "training when even the fastest architecture is slower. Unset: no target.",
)
_LATENCY_TABLE = flags.DEFINE_string(
    "latency_table",
    None,
    "A latency table of this space and dataset from tfnas-latency-table (the device to "
    "search for). Unset with --latency_target_ms: one is built on this machine into "
    "--output_dir first.",
)
_PRETRAINED = flags.DEFINE_string(
    "pretrained",
    None,
    "With --oracle=transfer_nas: an agent file written by "
    "tfnas.tuners.transfer_nas.pretrain, fine-tuned on this search. Unset: an untrained agent.",
)
_TENSORBOARD = flags.DEFINE_boolean(
    "tensorboard",
    True,
    "Write TensorBoard logs to <output_dir>/tensorboard: curves, and every trial's "
    "hyperparameters and costs for the HParams dashboard.",
)
_VERBOSE = flags.DEFINE_integer(
    "verbose",
    1,
    "0 silent, 1 a line per trial (and per supernet epoch), 2 KerasTuner's and Keras's "
    "per-epoch output and TensorFlow's C++ logs.",
    lower_bound=0,
    upper_bound=2,
)


@flags.validator("output_dir", message="--output_dir must be a non-empty path.")
def _check_output_dir(value):
    return bool(value and value.strip())


@flags.validator("output_dir")
def _check_output_dir_writable(value):
    # At parsing, before any work; an empty value is left to the check above.
    if value and value.strip():
        try:
            validation.check_writable_dir("output_dir", value)
        except ValueError as e:
            raise flags.ValidationError(str(e)) from None
    return True


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from tfnas import pipeline  # Imported after flag parsing: --help stays fast.

    if _VERBOSE.value < 2:
        # TensorFlow's SavedModel export (used by the TFLite converter) logs at INFO.
        logging.set_verbosity(logging.WARNING)

    pipeline.run_search(
        space=_SPACE.value,
        oracle=_ORACLE.value,
        dataset=_DATASET.value,
        max_trials=_MAX_TRIALS.value,
        epochs=_EPOCHS.value,
        batch_size=_BATCH_SIZE.value,
        output_dir=_OUTPUT_DIR.value,
        seed=_SEED.value,
        quantize=None if _QUANTIZE.value == "none" else _QUANTIZE.value,
        latency_runs=_LATENCY_RUNS.value,
        num_threads=_NUM_THREADS.value,
        overwrite=_OVERWRITE.value,
        verbose=_VERBOSE.value,
        then_train_epochs=_THEN_TRAIN_EPOCHS.value,
        max_flops=_MAX_FLOPS.value,
        max_params=_MAX_PARAMS.value,
        latency_target_ms=_LATENCY_TARGET_MS.value,
        latency_table=_LATENCY_TABLE.value,
        tensorboard=_TENSORBOARD.value,
        quantization=_QUANTIZATION.value,
        pretrained=_PRETRAINED.value,
    )


def console_main():
    """Entry point of the `tfnas-search` console script."""
    console.run(main, __name__)


if __name__ == "__main__":
    console_main()
