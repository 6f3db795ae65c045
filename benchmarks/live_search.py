"""A live search on digits at an equal wall-clock budget: tfnas oracles against KerasTuner's.

What is measured: for each oracle (by default KerasTuner's random and Bayesian oracles and
tfnas's regularized evolution, REINFORCE, PNAS and NAO, by their `tfnas.oracles.ORACLES`
names) and each seed, `tfnas.Tuner` searches a ready space (`tfnas.spaces.make`, tiny
NAS-Bench-201 cells by default) on the bundled digits with real training (same data split,
same epochs and batch size for every oracle) until a wall-clock budget is spent. The budget
clock starts before the oracle is constructed, so it covers everything a search spends: the
tuner's set-up, the oracle's own compute (proposals, controller and surrogate updates) and
the training of the trials. Once the budget is spent no new trial starts; the trial running
at that moment finishes but is not counted, so every oracle is judged only on trials that
ended within the same budget. The best of those (by validation accuracy) is then rebuilt
from its checkpoint (`tuner.load_model`) and evaluated on the test split, outside the budget.

How to read the table: one row per oracle, medians over seeds with the range (min-max) in
brackets. "trials" counts trials completed within the budget (an oracle that spends more
time thinking completes fewer), "val acc" is the best validation accuracy among them (what
the search optimizes) and "test acc" that architecture's accuracy on the held-out test split
(what a user gets). "wall s" is the search's elapsed time including the trial that was cut
off. With the small defaults (a minute per run, a dozen trials or so) most model-based
oracles are still in their random warm-up phase (Bayesian: 3 x number of choices, NAO: 10
initial, PNAS: its first beam), so differences of a percent or two between oracles are
within seed noise; raise `--budget_s` and add seeds before concluding anything. The machine
load of other processes enters every run equally only on average: compare the trials column
to see whether one run was starved.

    nice -n 19 .venv/bin/python benchmarks/live_search.py
    nice -n 19 .venv/bin/python benchmarks/live_search.py --oracles=random,pnas \\
        --seeds=1,2,3 --budget_s=300 --epochs=4
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
from absl import app, flags, logging  # noqa: E402

import tfnas  # noqa: E402
from tfnas import oracles as oracles_lib  # noqa: E402

_DEFAULT_ORACLES = ["random", "bayesian", "regularized_evolution", "reinforce", "pnas", "nao"]
OBJECTIVE = "val_accuracy"
# Large enough never to stop a search before its budget does.
_UNBOUNDED_TRIALS = 100_000

_ORACLES = flags.DEFINE_list(
    "oracles", _DEFAULT_ORACLES, f"Oracle names, of {sorted(oracles_lib.ORACLES)}."
)
_SEEDS = flags.DEFINE_list(
    "seeds",
    ["1", "2"],
    "Oracle and weight-initialization seeds, integers >= 1 (KerasTuner's oracles replace "
    "seed 0 with a random one).",
)
_SPACE = flags.DEFINE_enum("space", "nasbench201", list(tfnas.spaces.SPACES), "Search space.")
_DATASET = flags.DEFINE_enum("dataset", "digits", sorted(tfnas.data.DATASETS), "Data set.")
_DATA_SEED = flags.DEFINE_integer(
    "data_seed", 0, "Seed of the train/val/test split, the same for every run.", lower_bound=0
)
_EPOCHS = flags.DEFINE_integer("epochs", 2, "Training epochs per trial.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Training batch size.", lower_bound=1)
_BUDGET_S = flags.DEFINE_float(
    "budget_s", 60.0, "Wall-clock budget of one search (one oracle, one seed).", lower_bound=1.0
)


@flags.validator("oracles", message=f"--oracles must be names of {sorted(oracles_lib.ORACLES)}.")
def _check_oracles(value: list[str]) -> bool:
    return bool(value) and all(name in oracles_lib.ORACLES for name in value)


@flags.validator("seeds", message="--seeds must be a list of integers >= 1.")
def _check_seeds(value: list[str]) -> bool:
    return bool(value) and all(s.isdigit() and int(s) >= 1 for s in value)


class BudgetTuner(tfnas.Tuner):
    """A `tfnas.Tuner` that starts no trial once a wall-clock deadline has passed.

    Args:
        *args: the arguments of `tfnas.Tuner`.
        deadline: a `time.perf_counter()` value; no trial starts after it.
        **kwargs: the keyword arguments of `tfnas.Tuner`.
    """

    def __init__(self, *args, deadline: float, **kwargs):
        self.deadline = deadline
        # Trial id -> `time.perf_counter()` when the oracle had ended the trial.
        self.end_times: dict[str, float] = {}
        super().__init__(*args, **kwargs)

    def pre_create_trial(self):
        super().pre_create_trial()
        if time.perf_counter() >= self.deadline:
            # `Oracle.create_trial` answers STOPPED once it holds `max_trials` trials, the
            # way KerasTuner ends any search. 0 would mean "unbounded", hence at least 1.
            self.oracle.max_trials = max(1, len(self.oracle.trials))

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.end_times[trial.trial_id] = time.perf_counter()


@dataclasses.dataclass(frozen=True)
class RunResult:
    """The outcome of one budgeted search.

    Attributes:
        oracle: the oracle's name.
        seed: the oracle and initialization seed.
        trials: trials completed (not failed) within the budget.
        failed: trials that failed within the budget.
        val_accuracy: best validation accuracy among the completed trials (NaN if none).
        test_accuracy: test accuracy of that trial's model (NaN if none).
        wall_s: seconds from the oracle's construction to the end of the search.
    """

    oracle: str
    seed: int
    trials: int
    failed: int
    val_accuracy: float
    test_accuracy: float
    wall_s: float


def run_one(
    oracle_name: str,
    seed: int,
    data: tfnas.data.Dataset,
    *,
    space: str,
    epochs: int,
    batch_size: int,
    budget_s: float,
    directory: str,
) -> RunResult:
    """Runs one search of `oracle_name` for `budget_s` seconds and evaluates its best model.

    Args:
        oracle_name: a key of `tfnas.oracles.ORACLES`.
        seed: seeds the oracle and Keras (weight initialization, shuffling).
        data: the dataset, the same for every run.
        space: a name of `tfnas.spaces.SPACES`.
        epochs: training epochs per trial.
        batch_size: training batch size.
        budget_s: wall-clock budget in seconds.
        directory: where the tuner's project is written (overwritten).

    Returns:
        The run's result.
    """
    keras.utils.set_random_seed(seed)
    hypermodel = tfnas.spaces.make(space, data.input_shape, data.num_classes)
    start = time.perf_counter()
    deadline = start + budget_s
    oracle = oracles_lib.get(oracle_name)(
        objective=OBJECTIVE, max_trials=_UNBOUNDED_TRIALS, seed=seed
    )
    tuner = BudgetTuner(
        hypermodel,
        oracle=oracle,
        deadline=deadline,
        directory=directory,
        project_name=f"{oracle_name}_{seed}",
        overwrite=True,
    )
    tuner.search(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
    )
    wall_s = time.perf_counter() - start

    in_budget = [
        trial
        for trial_id, trial in tuner.oracle.trials.items()
        if tuner.end_times.get(trial_id, float("inf")) <= deadline
    ]
    completed = [t for t in in_budget if t.status == "COMPLETED" and t.score is not None]
    val_accuracy = test_accuracy = float("nan")
    if completed:
        best = max(completed, key=lambda t: t.score)
        val_accuracy = float(best.score)
        model = tuner.load_model(best)
        test_accuracy = float(
            model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)["accuracy"]
        )
    return RunResult(
        oracle=oracle_name,
        seed=seed,
        trials=len(completed),
        failed=len(in_budget) - len(completed),
        val_accuracy=val_accuracy,
        test_accuracy=test_accuracy,
        wall_s=wall_s,
    )


def run(
    oracles: Sequence[str] = tuple(_DEFAULT_ORACLES),
    seeds: Sequence[int] = (1, 2),
    *,
    space: str = "nasbench201",
    dataset: str = "digits",
    data_seed: int = 0,
    epochs: int = 2,
    batch_size: int = 64,
    budget_s: float = 60.0,
) -> list[RunResult]:
    """Runs every oracle with every seed, printing one line per run.

    Seeds are the outer loop, so the oracles take turns and slow drift of the machine's load
    spreads over all of them.

    Returns:
        One result per (seed, oracle).
    """
    data = tfnas.data.load(dataset, seed=data_seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="tfnas_live_search_") as directory:
        for seed in seeds:
            for name in oracles:
                result = run_one(
                    name,
                    seed,
                    data,
                    space=space,
                    epochs=epochs,
                    batch_size=batch_size,
                    budget_s=budget_s,
                    directory=directory,
                )
                print(
                    f"{name:<22} seed {seed}: {result.trials:3d} trials "
                    f"({result.failed} failed), val {result.val_accuracy:.4f}, "
                    f"test {result.test_accuracy:.4f}, {result.wall_s:.1f} s",
                    flush=True,
                )
                results.append(result)
    return results


def _median_range(values: Sequence[float], fmt: str) -> str:
    values = [v for v in values if v == v]  # NaN: a run without a completed trial.
    if not values:
        return "n/a"
    return (
        f"{format(statistics.median(values), fmt)} "
        f"[{format(min(values), fmt)}-{format(max(values), fmt)}]"
    )


def format_table(results: Sequence[RunResult]) -> str:
    """One row per oracle: medians over seeds, [min-max] in brackets."""
    header = ("oracle", "runs", "trials", "val acc", "test acc", "wall s")
    rows = [header]
    for name in dict.fromkeys(r.oracle for r in results):
        runs = [r for r in results if r.oracle == name]
        rows.append(
            (
                name,
                str(len(runs)),
                _median_range([r.trials for r in runs], "g"),
                _median_range([r.val_accuracy for r in runs], ".4f"),
                _median_range([r.test_accuracy for r in runs], ".4f"),
                _median_range([r.wall_s for r in runs], ".0f"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    rule = "-" * max(len(line) for line in lines)
    return "\n".join([rule, lines[0], rule, *lines[1:], rule])


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    seeds = [int(s) for s in _SEEDS.value]
    print(
        f"space={_SPACE.value} dataset={_DATASET.value} epochs={_EPOCHS.value} "
        f"batch_size={_BATCH_SIZE.value} budget={_BUDGET_S.value:g} s per run, "
        f"seeds={seeds}",
        flush=True,
    )
    results = run(
        _ORACLES.value,
        seeds,
        space=_SPACE.value,
        dataset=_DATASET.value,
        data_seed=_DATA_SEED.value,
        epochs=_EPOCHS.value,
        batch_size=_BATCH_SIZE.value,
        budget_s=_BUDGET_S.value,
    )
    print(format_table(results))


if __name__ == "__main__":
    app.run(main)
