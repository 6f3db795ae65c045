"""Per-trial overhead of `tfnas.Tuner` over `keras_tuner.Tuner` on the same trials.

What is measured: the same sequence of architectures (KerasTuner's `RandomSearchOracle` with
the same seed; the script checks that both tuners ran exactly the same hyperparameter values,
trial by trial, and stops with an error otherwise) is trained by `keras_tuner.Tuner` and by
`tfnas.Tuner(measure_latency=False)`, which adds the cost metrics (parameters, multiply-adds,
weight bytes) to every trial. Each repetition uses a new oracle seed and runs both tuners on
it, alternating which goes first (A B, B A, A B, ...) so that slow drift of the machine's
load cancels. A warm-up search of each kind runs first and is discarded. Keras is reseeded
before every search, so both tuners also start from the same weights.

Timed per trial: from `on_trial_begin` to the end of `on_trial_end` (build, cost metrics,
`fit`, checkpointing, the oracle's bookkeeping and the tuner's save). Timed per search: the
whole `tuner.search(...)` call; and separately the tuner's construction ("init s"), where
both tuners build the hypermodel to discover the search space.

How to read the table: per-trial and search times are medians with [p10-p90] over all trials
(per-trial) or [min-max] over repetitions (search). "ratio" columns divide the tfnas time by
the keras_tuner time of the same trial (same architecture, same repetition) or of the same
repetition's search, then take the median with [min-max]. The target is a per-trial ratio
under 1.05 without latency measurement; `tfnas+latency` (`measure_latency=True`, LiteRT
timing of every trial, run for `--latency_repetitions` repetitions only) is there for
information. The trials are short (a tiny network, `--epochs` on digits), which makes any
fixed per-trial cost look as large as it can; on a shared machine, trust the median ratio
more than single trials.

    nice -n 19 .venv/bin/python benchmarks/tuner_overhead.py
    nice -n 19 .venv/bin/python benchmarks/tuner_overhead.py --repetitions=8 --epochs=2
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

import tfnas  # noqa: E402

OBJECTIVE = "val_accuracy"
BASELINE = "keras_tuner"
ARMS = (BASELINE, "tfnas", "tfnas+latency")

_TRIALS = flags.DEFINE_integer("trials", 4, "Trials per search.", lower_bound=1)
_REPETITIONS = flags.DEFINE_integer(
    "repetitions", 4, "Searches of each tuner (each with a new oracle seed).", lower_bound=1
)
_LATENCY_REPETITIONS = flags.DEFINE_integer(
    "latency_repetitions",
    1,
    "Repetitions that also run tfnas.Tuner(measure_latency=True) (0: never).",
    lower_bound=0,
)
_EPOCHS = flags.DEFINE_integer("epochs", 1, "Training epochs per trial.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Training batch size.", lower_bound=1)
_SPACE = flags.DEFINE_enum("space", "nasbench201", list(tfnas.spaces.SPACES), "Search space.")
_DATASET = flags.DEFINE_enum("dataset", "digits", sorted(tfnas.data.DATASETS), "Data set.")


class _TrialTimer:
    """Mixin for a tuner: records each trial's seconds from `on_trial_begin` to the end of
    `on_trial_end`, and the seconds of its construction."""

    def __init__(self, *args, **kwargs):
        self.trial_seconds: dict[str, float] = {}
        self._trial_start: dict[str, float] = {}
        start = time.perf_counter()
        super().__init__(*args, **kwargs)
        self.init_seconds = time.perf_counter() - start

    def on_trial_begin(self, trial):
        self._trial_start[trial.trial_id] = time.perf_counter()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        start = self._trial_start.pop(trial.trial_id)
        self.trial_seconds[trial.trial_id] = time.perf_counter() - start


class TimedKerasTuner(_TrialTimer, keras_tuner.Tuner):
    """`keras_tuner.Tuner` with trial timing."""


class TimedTfnasTuner(_TrialTimer, tfnas.Tuner):
    """`tfnas.Tuner` with trial timing."""


@dataclasses.dataclass(frozen=True)
class SearchTiming:
    """One timed search.

    Attributes:
        arm: one of `ARMS`.
        repetition: the repetition index (its oracle seed is `repetition + 1`).
        values: each trial's hyperparameter values, in start order.
        scores: each trial's objective value, in start order.
        trial_seconds: each trial's seconds, in start order.
        search_seconds: seconds of `tuner.search(...)`.
        init_seconds: seconds of the tuner's construction.
    """

    arm: str
    repetition: int
    values: list[dict]
    scores: list[float]
    trial_seconds: list[float]
    search_seconds: float
    init_seconds: float


def time_search(
    arm: str,
    repetition: int,
    hypermodel: keras_tuner.HyperModel,
    data: tfnas.data.Dataset,
    *,
    trials: int,
    epochs: int,
    batch_size: int,
    directory: str,
) -> SearchTiming:
    """Runs and times one search of `arm` with oracle seed `repetition + 1`.

    Raises:
        RuntimeError: if a trial did not complete (the timings would compare unequal work).
    """
    seed = repetition + 1  # KerasTuner's oracles replace seed 0 with a random one.
    keras.utils.set_random_seed(seed)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=OBJECTIVE, max_trials=trials, seed=seed
    )
    common = {"directory": directory, "project_name": f"{arm}_{repetition}", "overwrite": True}
    if arm == BASELINE:
        # By keyword: `keras_tuner.Tuner` takes the oracle first, `tfnas.Tuner` the hypermodel.
        tuner = TimedKerasTuner(hypermodel=hypermodel, oracle=oracle, **common)
    else:
        tuner = TimedTfnasTuner(
            hypermodel=hypermodel,
            oracle=oracle,
            measure_latency=arm == "tfnas+latency",
            **common,
        )
    start = time.perf_counter()
    tuner.search(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
    )
    search_seconds = time.perf_counter() - start
    ordered = [tuner.oracle.trials[trial_id] for trial_id in tuner.oracle.start_order]
    for trial in ordered:
        if trial.status != "COMPLETED":
            raise RuntimeError(
                f"{arm}, repetition {repetition}: trial {trial.trial_id} ended "
                f"{trial.status}: {trial.message}"
            )
    return SearchTiming(
        arm=arm,
        repetition=repetition,
        values=[dict(t.hyperparameters.values) for t in ordered],
        scores=[float(t.score) for t in ordered],
        trial_seconds=[tuner.trial_seconds[t.trial_id] for t in ordered],
        search_seconds=search_seconds,
        init_seconds=tuner.init_seconds,
    )


def run(
    *,
    trials: int = 4,
    repetitions: int = 4,
    latency_repetitions: int = 1,
    epochs: int = 1,
    batch_size: int = 64,
    space: str = "nasbench201",
    dataset: str = "digits",
) -> list[SearchTiming]:
    """Runs the interleaved searches (see the module docstring).

    Returns:
        One `SearchTiming` per search, warm-up excluded.

    Raises:
        RuntimeError: if the tuners of one repetition did not run identical trials.
    """
    data = tfnas.data.load(dataset, seed=0)
    hypermodel = tfnas.spaces.make(space, data.input_shape, data.num_classes)
    common = {"trials": trials, "epochs": epochs, "batch_size": batch_size}
    timings = []
    with tempfile.TemporaryDirectory(prefix="tfnas_tuner_overhead_") as directory:
        for arm in ARMS[:2] if latency_repetitions == 0 else ARMS:
            # Warm-up: TensorFlow's first model, the LiteRT interpreter, imports.
            time_search(arm, -1, hypermodel, data, directory=directory, **{**common, "trials": 1})
        for repetition in range(repetitions):
            arms = list(ARMS if repetition < latency_repetitions else ARMS[:2])
            if repetition % 2:
                arms.reverse()
            this_repetition = [
                time_search(arm, repetition, hypermodel, data, directory=directory, **common)
                for arm in arms
            ]
            reference = this_repetition[0].values
            for timing in this_repetition[1:]:
                if timing.values != reference:
                    raise RuntimeError(
                        f"Repetition {repetition}: {timing.arm} ran other trials than "
                        f"{this_repetition[0].arm}: {timing.values} != {reference}"
                    )
            for timing in this_repetition:
                print(
                    f"repetition {repetition} {timing.arm:<14} init {timing.init_seconds:5.2f} s"
                    f"  search {timing.search_seconds:6.2f} s  trials "
                    + " ".join(f"{s:5.2f}" for s in timing.trial_seconds),
                    flush=True,
                )
            timings.extend(this_repetition)
    return timings


def _spread(values: Sequence[float], fmt: str, percentiles: bool) -> str:
    if not values:
        return "n/a"
    if percentiles:
        low, high = np.percentile(values, [10, 90])
    else:
        low, high = min(values), max(values)
    return f"{format(statistics.median(values), fmt)} [{format(low, fmt)}-{format(high, fmt)}]"


def format_table(timings: Sequence[SearchTiming]) -> str:
    """One row per tuner; see the module docstring."""
    by_key = {(t.arm, t.repetition): t for t in timings}
    header = (
        "tuner",
        "trials",
        "per-trial s",
        "ratio per-trial",
        "search s",
        "ratio search",
        "init s",
    )
    rows = [header]
    for arm in dict.fromkeys(t.arm for t in timings):
        runs = [t for t in timings if t.arm == arm]
        trial_seconds = [s for t in runs for s in t.trial_seconds]
        trial_ratios, search_ratios = [], []
        for t in runs:
            base = by_key[(BASELINE, t.repetition)]
            trial_ratios += [s / b for s, b in zip(t.trial_seconds, base.trial_seconds)]
            search_ratios.append(t.search_seconds / base.search_seconds)
        rows.append(
            (
                arm,
                str(len(trial_seconds)),
                _spread(trial_seconds, ".3f", percentiles=True),
                _spread(trial_ratios, ".3f", percentiles=False),
                _spread([t.search_seconds for t in runs], ".2f", percentiles=False),
                _spread(search_ratios, ".3f", percentiles=False),
                _spread([t.init_seconds for t in runs], ".2f", percentiles=False),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    rule = "-" * max(len(line) for line in lines)
    return "\n".join([rule, lines[0], rule, *lines[1:], rule])


def _same_scores(timings: Sequence[SearchTiming]) -> tuple[int, int]:
    by_key = {(t.arm, t.repetition): t for t in timings}
    same = total = 0
    for t in timings:
        if t.arm == BASELINE:
            continue
        base = by_key[(BASELINE, t.repetition)]
        same += sum(a == b for a, b in zip(t.scores, base.scores))
        total += len(t.scores)
    return same, total


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    print(
        f"space={_SPACE.value} dataset={_DATASET.value} epochs={_EPOCHS.value} "
        f"batch_size={_BATCH_SIZE.value} trials={_TRIALS.value} "
        f"repetitions={_REPETITIONS.value} latency_repetitions={_LATENCY_REPETITIONS.value}",
        flush=True,
    )
    timings = run(
        trials=_TRIALS.value,
        repetitions=_REPETITIONS.value,
        latency_repetitions=_LATENCY_REPETITIONS.value,
        epochs=_EPOCHS.value,
        batch_size=_BATCH_SIZE.value,
        space=_SPACE.value,
        dataset=_DATASET.value,
    )
    print("Trials identical in every repetition (hyperparameter values checked).")
    same, total = _same_scores(timings)
    print(f"Objective values equal to keras_tuner's for the same trial: {same}/{total}.")
    print(format_table(timings))


if __name__ == "__main__":
    app.run(main)
