r"""tfnas-train: trains a found architecture from scratch (the DARTS evaluation recipe).

    tfnas-train --space=nasbench201 --architecture=runs/demo/architecture.json \
        --dataset=digits --epochs=20 --output_dir=runs/train

Writes model.keras, history.json, metrics.json (test accuracy) and TensorBoard logs (logs/)
to --output_dir, with a checkpoint every epoch: run the same command again after a kill and
it resumes from the last finished epoch (--overwrite to restart).
"""

import os

from absl import app, flags, logging

from tfnas.bin import console

with console.quiet_tensorflow(__name__):  # These imports load TensorFlow.
    from tfnas import data, spaces, training, validation

_SPACE = flags.DEFINE_enum(
    "space",
    "nasbench201",
    list(spaces.CLASSIFICATION_SPACES),
    "The space the architecture was searched in.",
)
_ARCHITECTURE = flags.DEFINE_string(
    "architecture", None, "Architecture JSON, e.g. the architecture.json of tfnas-search."
)
_DATASET = flags.DEFINE_enum("dataset", "digits", sorted(data.DATASETS), "Data set.")
_EPOCHS = flags.DEFINE_integer("epochs", 10, "Training epochs.", lower_bound=1, upper_bound=10_000)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 64, "Global training batch size.", lower_bound=1, upper_bound=65_536
)
_LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", 0.025, "Initial SGD learning rate (> 0).", lower_bound=0, upper_bound=10
)
_SCHEDULE = flags.DEFINE_enum(
    "schedule",
    "cosine",
    list(training.SCHEDULES),
    "Learning-rate schedule: cosine, or step (/10 per third).",
)
_MOMENTUM = flags.DEFINE_float(
    "momentum", 0.9, "SGD momentum, in [0, 1).", lower_bound=0, upper_bound=1
)
_WEIGHT_DECAY = flags.DEFINE_float(
    "weight_decay", 3e-4, "Decoupled weight decay.", lower_bound=0, upper_bound=1
)
_AUXILIARY_WEIGHT = flags.DEFINE_float(
    "auxiliary_weight",
    0.0,
    "Loss weight of the auxiliary head (DARTS: 0.4); 0 trains without it. darts space only.",
    lower_bound=0,
    upper_bound=10,
)
_DROP_PATH_PROB = flags.DEFINE_float(
    "drop_path_prob",
    0.0,
    "Drop-path probability; only for a space with drop-path (no ready space has it yet).",
    lower_bound=0,
    upper_bound=1,
)
_DISTRIBUTION_STRATEGY = flags.DEFINE_enum(
    "distribution_strategy",
    "none",
    list(training.DISTRIBUTION_STRATEGIES),
    "tf.distribute strategy.",
)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/train", "Where results are written.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0, upper_bound=2**31 - 1)
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Start over instead of resuming.")
_VERBOSE = flags.DEFINE_integer(
    "verbose",
    1,
    "0 silent, 1 a line per epoch, 2 progress bars and TensorFlow's C++ logs.",
    lower_bound=0,
    upper_bound=2,
)


@flags.validator("architecture", message="--architecture must be an existing JSON file.")
def _check_architecture(value):
    return value is None or os.path.isfile(value)


@flags.validator("output_dir")
def _check_output_dir(value):
    # At parsing, before any work.
    try:
        validation.check_writable_dir("--output_dir", value)
    except ValueError as error:
        raise flags.ValidationError(str(error)) from None
    return True


@flags.validator("learning_rate", message="--learning_rate must be > 0.")
def _check_learning_rate(value):
    return value > 0


@flags.validator("momentum", message="--momentum must be < 1.")
def _check_momentum(value):
    return value < 1


@flags.validator("drop_path_prob", message="--drop_path_prob must be < 1.")
def _check_drop_path_prob(value):
    return value < 1


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _VERBOSE.value < 2:
        logging.set_verbosity(logging.WARNING)

    training.run(
        space=_SPACE.value,
        architecture=_ARCHITECTURE.value,
        dataset=_DATASET.value,
        epochs=_EPOCHS.value,
        batch_size=_BATCH_SIZE.value,
        learning_rate=_LEARNING_RATE.value,
        schedule=_SCHEDULE.value,
        momentum=_MOMENTUM.value,
        weight_decay=_WEIGHT_DECAY.value,
        auxiliary_weight=_AUXILIARY_WEIGHT.value,
        drop_path_prob=_DROP_PATH_PROB.value,
        distribution_strategy=_DISTRIBUTION_STRATEGY.value,
        output_dir=_OUTPUT_DIR.value,
        seed=_SEED.value,
        overwrite=_OVERWRITE.value,
        verbose=_VERBOSE.value,
    )


def console_main():
    """Entry point of the `tfnas-train` console script."""
    flags.mark_flag_as_required("architecture")
    console.run(main, __name__)


if __name__ == "__main__":
    console_main()
