"""A tabular NAS benchmark (NAS-Bench-201 style, digits scale) and a way to search it.

Every cell of a small `NasBench201Space` was trained with several seeds by
`benchmarks/make_tabular_benchmark.py`; the table stores the mean and spread of the
validation and test accuracy and the parameters and FLOPs of each fixed-mode model. A
search strategy is then compared in seconds: `run_oracle` runs any KerasTuner oracle on the
benchmark's real hyperparameters and answers each trial from the table instead of training.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import keras_tuner
import numpy as np
from keras_tuner.src.engine import base_tuner

from tfnas import validation
from tfnas.spaces import nasbench201

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")
DEFAULT = "digits_nb201_ops3_c4_e4"
FORMAT = "tfnas.tabular_benchmark"
METRICS = ("val_acc", "test_acc", "num_params", "flops")
_PER_SEED = {"val_acc": "val_acc_per_seed", "test_acc": "test_acc_per_seed"}
OBJECTIVE = "val_accuracy"


def available() -> list[str]:
    """Names of the benchmarks shipped with tfnas (files in `tfnas/nasbench/data`)."""
    return sorted(
        os.path.splitext(os.path.basename(p))[0]
        for p in glob.glob(os.path.join(DATA_DIR, "*.json"))
    )


@dataclasses.dataclass(frozen=True)
class Record:
    """One row of the table.

    Attributes:
        arch: the NAS-Bench-201 arch string.
        val_acc: mean validation accuracy over seeds.
        val_acc_std: its standard deviation over seeds.
        test_acc: mean test accuracy over seeds.
        test_acc_std: its standard deviation over seeds.
        num_params: parameters of the fixed-mode model.
        flops: multiply-adds of one forward pass of the fixed-mode model.
        val_acc_per_seed: validation accuracy of each seed (order of `metadata["seeds"]`).
        test_acc_per_seed: test accuracy of each seed.
    """

    arch: str
    val_acc: float
    val_acc_std: float
    test_acc: float
    test_acc_std: float
    num_params: int
    flops: int
    val_acc_per_seed: tuple[float, ...]
    test_acc_per_seed: tuple[float, ...]

    @property
    def values(self) -> dict[str, str]:
        """The architecture as hyperparameter values of the benchmark's space."""
        return nasbench201.arch_str_to_values(self.arch)


class TabularBenchmark:
    """The trained results of every architecture of a small NAS-Bench-201 space.

    Load one with `TabularBenchmark.load()`; see `available()` for the shipped tables.

    Example:

    ```python
    bench = tfnas.nasbench.TabularBenchmark.load()
    space = bench.space()                       # the NasBench201Space that was trained
    best = bench.optimum("test_acc")
    acc = bench.query("|nor_conv_3x3~0|+|...", metric="val_acc")
    run = tfnas.nasbench.run_oracle(keras_tuner.oracles.RandomSearchOracle, bench,
                                      budget=50, seed=0)
    run.regret[-1]
    ```

    Attributes:
        name: the table's name (its file name without `.json`).
        metadata: how it was generated (space, training settings, seeds, versions).
    """

    def __init__(self, table: Mapping[str, Any], name: str = "custom"):
        if not isinstance(table, Mapping) or table.get("format") != FORMAT:
            raise ValueError(
                f"Not a tabular benchmark (expected format {FORMAT!r}). Received: "
                f"format={table.get('format') if isinstance(table, Mapping) else table!r}"
            )
        self.name = name
        self.metadata = dict(table["metadata"])
        columns = table["columns"]
        self._records: dict[str, Record] = {}
        for row in table["rows"]:
            fields = dict(zip(columns, row))
            for key in _PER_SEED.values():
                fields[key] = tuple(fields[key])
            record = Record(**fields)
            self._records[record.arch] = record
        self._seeds = list(self.metadata["seeds"])
        self._space_config = dict(self.metadata["space"])
        self._hyperparameters: keras_tuner.HyperParameters | None = None

    @classmethod
    def load(cls, name_or_path: str = DEFAULT) -> TabularBenchmark:
        """Loads a shipped table by name (see `available()`) or a JSON file by path.

        Raises:
            ValueError: when no such benchmark or file exists, or the file is not a table.
        """
        if os.path.exists(name_or_path):
            path = name_or_path
        else:
            path = os.path.join(DATA_DIR, f"{name_or_path}.json")
            if not os.path.exists(path):
                raise ValueError(
                    f"Unknown benchmark: {name_or_path!r} is neither a file nor one of "
                    f"{available()}. Received: name_or_path={name_or_path!r}"
                )
        try:
            with open(path, encoding="utf-8") as f:
                table = json.load(f)
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(
                f"Cannot read a benchmark from {path!r} ({error}). "
                f"Received: name_or_path={name_or_path!r}"
            ) from None
        name = os.path.splitext(os.path.basename(path))[0]
        return cls(table, name=name)

    def space(self, **kwargs) -> nasbench201.NasBench201Space:
        """The `NasBench201Space` hypermodel whose cells the table holds.

        Keyword arguments override its constructor arguments (e.g. `name`).
        """
        config = {key: value for key, value in self._space_config.items() if key != "class"}
        input_shape = tuple(config.pop("input_shape"))
        num_classes = config.pop("num_classes")
        config["operations"] = tuple(config["operations"])
        return nasbench201.NasBench201Space(input_shape, num_classes, **{**config, **kwargs})

    def hyperparameters(self) -> keras_tuner.HyperParameters:
        """The space's hyperparameters (one `hp.Choice` per edge), built once and cached."""
        if self._hyperparameters is None:
            hp = keras_tuner.HyperParameters()
            self.space().build(hp)
            self._hyperparameters = hp
        return self._hyperparameters.copy()

    @property
    def seeds(self) -> list[int]:
        """The training seeds of the table."""
        return list(self._seeds)

    def record(self, arch) -> Record:
        """The row of `arch`: an arch string, `{name: value}` dict or `tfnas.Architecture`.

        Raises:
            ValueError: when `arch` is not an architecture of the table's space.
        """
        key = self._arch_str(arch)
        if key not in self._records:
            raise ValueError(
                f"Unknown architecture for benchmark {self.name!r} (operations "
                f"{self._space_config['operations']}). Received: {arch!r}"
            )
        return self._records[key]

    def query(self, arch, metric: str = "val_acc", seed: int | None = None) -> float:
        """A metric of `arch`: the mean over seeds, or one seed's value.

        Args:
            arch: an arch string, a `{name: value}` dict or a `tfnas.Architecture`.
            metric: one of "val_acc", "test_acc", "num_params", "flops".
            seed: a training seed of the table (see `seeds`) for that seed's accuracy;
                `None` for the mean over seeds.

        Raises:
            ValueError: for an unknown architecture, metric or seed.
        """
        _check_metric(metric)
        record = self.record(arch)
        if seed is None:
            return getattr(record, metric)
        if metric not in _PER_SEED:
            raise ValueError(
                f"seed is only meaningful for {sorted(_PER_SEED)}. "
                f"Received: metric={metric!r}, seed={seed!r}"
            )
        if seed not in self._seeds:
            raise ValueError(f"Unknown seed; the table has {self._seeds}. Received: seed={seed!r}")
        return getattr(record, _PER_SEED[metric])[self._seeds.index(seed)]

    def optimum(self, metric: str = "test_acc") -> float:
        """The best (largest) mean value of an accuracy metric over the whole table."""
        _check_accuracy(metric)
        return max(getattr(record, metric) for record in self._records.values())

    def best_arch(self, metric: str = "test_acc") -> str:
        """The arch string with the best mean value of `metric` (first in table order)."""
        _check_accuracy(metric)
        return max(self._records.values(), key=lambda r: getattr(r, metric)).arch

    def regret(self, arch, metric: str = "test_acc") -> float:
        """`optimum(metric) - query(arch, metric)`: >= 0, and 0 for the best architecture."""
        return self.optimum(metric) - self.query(arch, metric)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records.values())

    def __contains__(self, arch) -> bool:
        try:
            return self._arch_str(arch) in self._records
        except ValueError:
            return False

    def __repr__(self) -> str:
        return f"TabularBenchmark({self.name!r}, {len(self)} architectures)"

    def _arch_str(self, arch) -> str:
        if isinstance(arch, str):
            # Round trip to normalize, and to reject malformed strings with a clear message.
            return nasbench201.values_to_arch_str(nasbench201.arch_str_to_values(arch))
        values = arch if isinstance(arch, Mapping) else getattr(arch, "values", None)
        if not isinstance(values, Mapping):
            raise ValueError(
                "An architecture is an arch string, a {name: value} dict or a "
                f"tfnas.Architecture. Received: {arch!r}"
            )
        try:
            return nasbench201.values_to_arch_str(values)
        except KeyError as missing:
            raise ValueError(
                f"The architecture has no value for {missing}. Received: {dict(values)!r}"
            ) from None


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"Unknown metric. Received: metric={metric!r}; expected one of {METRICS}.")


def _check_accuracy(metric: str) -> None:
    if metric not in _PER_SEED:
        raise ValueError(
            f"Unknown accuracy metric. Received: metric={metric!r}; "
            f"expected one of {sorted(_PER_SEED)}."
        )


@dataclasses.dataclass
class OracleRun:
    """What `run_oracle` returns: one entry per finished trial, in trial order.

    Attributes:
        archs: the arch string of each trial.
        observed: the objective each trial reported to the oracle.
        best_val: best validation accuracy seen so far (what selects the incumbent).
        best_test: mean test accuracy of that incumbent.
        regret: `optimum("test_acc") - best_test`.
        elapsed_s: wall time of the whole run.
    """

    archs: list[str]
    observed: list[float]
    best_val: list[float]
    best_test: list[float]
    regret: list[float]
    elapsed_s: float

    @property
    def final_test(self) -> float:
        """Test accuracy of the architecture the search ends with."""
        return self.best_test[-1]

    @property
    def final_regret(self) -> float:
        """Regret of the architecture the search ends with."""
        return self.regret[-1]


class _TableTuner(base_tuner.BaseTuner):
    """A tuner whose trials look their objective up in a `TabularBenchmark`.

    Writing the oracle's and tuner's JSON after every trial is what a resumable search
    needs, and costs most of a table lookup's time; a table run is never resumed, so only
    the trial bookkeeping in memory is kept.
    """

    def __init__(self, oracle, benchmark, metric, seed_rng, **kwargs):
        self._benchmark = benchmark
        self._metric = metric
        self._seed_rng = seed_rng
        super().__init__(oracle, hypermodel=benchmark.space(), **kwargs)

    def _populate_initial_space(self):
        self.oracle.update_space(self._benchmark.hyperparameters())

    def run_trial(self, trial, *args, **kwargs):
        values = {
            name: value
            for name, value in trial.hyperparameters.values.items()
            if trial.hyperparameters.is_active(name)
        }
        seed = None
        if self._seed_rng is not None:
            seed = self._benchmark.seeds[self._seed_rng.integers(len(self._benchmark.seeds))]
        try:
            return {OBJECTIVE: self._benchmark.query(values, self._metric, seed=seed)}
        except ValueError as error:
            # Not a failed trial to retry: the oracle searches another space than the table.
            raise keras_tuner.errors.FatalError(str(error)) from None

    def on_trial_end(self, trial):
        self.oracle.end_trial(trial)

    def save(self):
        pass


def _make_oracle(oracle_factory_or_oracle, budget: int, seed: int):
    objective = keras_tuner.Objective(OBJECTIVE, direction="max")
    if isinstance(oracle_factory_or_oracle, keras_tuner.Oracle):
        oracle = oracle_factory_or_oracle
        if oracle.objective.name != OBJECTIVE or oracle.objective.direction != "max":
            raise ValueError(
                f"The oracle must maximize {OBJECTIVE!r}. Received: objective={oracle.objective}"
            )
        oracle.max_trials = budget
        return oracle
    if not callable(oracle_factory_or_oracle):
        raise ValueError(
            "oracle must be a keras_tuner.Oracle or a callable taking (objective=, "
            f"max_trials=, seed=). Received: {oracle_factory_or_oracle!r}"
        )
    # KerasTuner oracles read seed 0 as "no seed" (`seed or random.randint(...)`).
    return oracle_factory_or_oracle(objective=objective, max_trials=budget, seed=seed + 1)


def run_oracle(
    oracle_factory_or_oracle: keras_tuner.Oracle | Callable[..., keras_tuner.Oracle],
    benchmark: TabularBenchmark,
    budget: int,
    seed: int = 0,
    metric: str = "val_acc",
    *,
    sample_seed: bool = False,
) -> OracleRun:
    """Runs a KerasTuner oracle against the table (no training) and tracks its regret.

    The oracle searches the benchmark's real hyperparameters (`benchmark.space()`); each
    trial reports `val_accuracy` (direction "max") looked up in the table. The incumbent
    after each trial is the architecture with the best reported value so far; its mean test
    accuracy and regret are recorded.

    Args:
        oracle_factory_or_oracle: a `keras_tuner.Oracle` with objective `val_accuracy`
            (max), or a callable (an oracle class, or e.g. `functools.partial` of one) called
            as `factory(objective=..., max_trials=budget, seed=seed + 1)` (KerasTuner
            oracles take seed 0 for "no seed", so runs with seed 0 would not repeat).
        benchmark: the table.
        budget: number of trials (architectures evaluated). An oracle may stop earlier,
            e.g. when it cannot propose new architectures; the trajectory is then shorter.
        seed: the run's seed, >= 0 (the oracle's is `seed + 1`; it also seeds the
            per-trial draw of `sample_seed`). The same seed gives the same run.
        metric: the accuracy the oracle sees: "val_acc" (default) or "test_acc".
        sample_seed: report one training seed's accuracy, drawn at random per trial (a
            noisy evaluation, as a real training would give), instead of the mean.

    Returns:
        An `OracleRun`.

    Raises:
        ValueError: for a bad budget, metric or oracle.
    """
    validation.check_int("budget", budget, low=1)
    validation.check_int("seed", seed, low=0)
    _check_accuracy(metric)
    if not isinstance(benchmark, TabularBenchmark):
        raise ValueError(f"benchmark must be a TabularBenchmark. Received: {benchmark!r}")
    start = time.time()
    oracle = _make_oracle(oracle_factory_or_oracle, budget, seed)
    directory = tempfile.mkdtemp(prefix="tfnas_tabular_")
    try:
        tuner = _TableTuner(
            oracle,
            benchmark,
            metric,
            np.random.default_rng(seed) if sample_seed else None,
            directory=directory,
            project_name="run",
            overwrite=True,
        )
        # KerasTuner writes each trial's JSON as it ends; a table run never resumes.
        oracle._save_trial = lambda trial: None
        oracle.save = lambda: None
        tuner.search(verbose=0)
        trials = [
            t
            for t in sorted(oracle.trials.values(), key=lambda t: int(t.trial_id))
            if t.status == keras_tuner.engine.trial.TrialStatus.COMPLETED
        ]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    optimum = benchmark.optimum("test_acc")
    run = OracleRun([], [], [], [], [], 0.0)
    best = -np.inf
    best_test = float("nan")
    for trial in trials:
        values = {
            name: value
            for name, value in trial.hyperparameters.values.items()
            if trial.hyperparameters.is_active(name)
        }
        observed = trial.metrics.get_last_value(OBJECTIVE)
        if observed > best:
            best = observed
            best_test = benchmark.query(values, "test_acc")
        run.archs.append(nasbench201.values_to_arch_str(values))
        run.observed.append(float(observed))
        run.best_val.append(float(best))
        run.best_test.append(float(best_test))
        run.regret.append(float(optimum - best_test))
    run.elapsed_s = time.time() - start
    return run
