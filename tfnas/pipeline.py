"""The end-to-end search job behind `tfnas-search`, callable without flags.

search -> best architecture -> `best_model.keras` + `best_model.tflite` +
`architecture.json` + `results.json` + `report.html` in `output_dir`, and a printed report
with the measured TFLite latency and size. TensorBoard logs of every trial (with the cost
metrics as HParams columns) go to `output_dir/tensorboard`.

Cost constraints (`max_flops`, `max_params`): a weight-sharing oracle never proposes an
architecture above them (its own `constraints`). For every other oracle an architecture
above a limit is rejected before training: its trial completes untrained and scores
`BudgetedAccuracy`'s penalty, below every trained architecture and lower the further it is
over, so that a strategy that learns from scores (PNAS's surrogate, evolution's selection)
steers away from it. Deliberately not an oracle-side filter: for that, PNAS's expansion
would build a model for each of up to `num_candidates` candidates per stage to cost it,
while a trial builds its model anyway. The exported best model is the best trial within
the limits.

Latency (`latency_target_ms`, `latency_table`): the latency of an architecture is the one
a `tfnas.latency.LookupTable` predicts (each trial's `latency_ms`): the table given, or,
with only a target (or an oracle that needs a table), one built on this machine first
(`output_dir/latency_table_<space>.json`, resumed if interrupted). The target is a limit
like `max_flops`, checked against the table's fastest architecture before any training
(in a space without a per-operation form, `--space=mnasnet`, each trial is timed with
LiteRT after training instead, and the best trial within the target is exported);
oracles that search for latency themselves (`FBNet`, `ProxylessNAS`) get the table and
the target as arguments. The report shows the
target, the best architecture's predicted latency and the latency measured on the
exported `.tflite`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import time

import keras
import keras_tuner
import numpy as np

from tfnas import data as data_lib
from tfnas import latency, oracles, spaces, training, validation
from tfnas.architecture import Architecture
from tfnas.cost import COST_METRICS, LATENCY_METRIC
from tfnas.engine.tuner import Tuner
from tfnas.results import pareto
from tfnas.results import report as report_lib
from tfnas.results import tensorboard as tensorboard_lib
from tfnas.results.objectives import BudgetedAccuracy

OUTPUT_FILES = (
    "best_model.keras",
    "best_model.tflite",
    "architecture.json",
    "results.json",
    report_lib.REPORT_FILE,
)
TENSORBOARD_DIR = "tensorboard"
# The metric of each task (`tfnas.spaces.task_of`): the objective is its validation value,
# the Pareto front plots it against multiply-adds.
TASK_METRICS = {"classification": "accuracy", "segmentation": "mean_iou"}
PROJECT_NAME = "search"
# What a resumed search must share with the search that started its project directory
# (the arguments of the same name, then the data's fingerprint), recorded there at the
# first run. A KerasTuner oracle reloads its recorded seed whatever seed is passed.
SEARCH_FILE = "search.json"
SEARCH_ARGUMENTS = (
    "space", "oracle", "dataset", "seed", "max_flops", "max_params", "latency_target_ms",
    "quantization", "pretrained",
)  # fmt: skip
# `quantization`: "none" searches a ready space in float; "int8" trains the quantized CNN
# of `tfnas.quantization.spaces` at 8 bits everywhere (QAT) and exports it full-integer;
# "mixed" searches its per-layer weight and activation bits (e.g. with
# `--oracle=mixed_precision_dnas`) and exports the layers TFLite can run in int8 as int8.
QUANTIZATION_MODES = ("none", "int8", "mixed")
QUANTIZED_SPACE = "quantized_cnn"
# The constraint arguments of `run_search` and the cost metric each bounds.
CONSTRAINTS = {
    "max_flops": "flops",
    "max_params": "num_params",
    "latency_target_ms": LATENCY_METRIC,
}
LATENCY_TABLE_FILE = "latency_table_{space}.json"


def _format_cost(value: float) -> str:
    """A cost for a line of text: thousands separators for counts, 4 digits for ms."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"


def _json_number(value):
    value = float(value)
    return value if math.isfinite(value) else None


def trial_records(tuner: keras_tuner.Tuner) -> list[dict]:
    """Every trial as plain JSON (id, status, architecture values, score and metrics), in
    the order the trials started, also after a resume (a reloaded oracle holds its trials
    in the order of the project's directory listing)."""
    oracle = tuner.oracle
    order = [t for t in getattr(oracle, "start_order", []) if t in oracle.trials]
    order += [t for t in oracle.trials if t not in order]
    records = []
    for trial in (oracle.trials[t] for t in order):
        metrics = {
            name: _json_number(trial.metrics.get_best_value(name))
            for name in trial.metrics.metrics
            if trial.metrics.get_best_value(name) is not None
        }
        records.append(
            {
                "trial_id": trial.trial_id,
                "status": trial.status,
                "values": dict(trial.hyperparameters.values),
                "score": None if trial.score is None else _json_number(trial.score),
                "metrics": metrics,
            }
        )
    return records


def data_fingerprint(*arrays, samples: int = 16) -> str:
    """Identifies data cheaply: every array's shape and dtype, and its first samples.

    Args:
        *arrays: numpy arrays (e.g. the training and validation inputs and targets).
        samples: how many leading samples of each array are hashed.

    Returns:
        A hex digest, the same for the same data on every run.
    """
    digest = hashlib.sha256()
    for array in arrays:
        array = np.asarray(array)
        digest.update(f"{array.shape}/{array.dtype.str};".encode())
        digest.update(np.ascontiguousarray(array[:samples]).tobytes())
    return digest.hexdigest()


def check_same_search(project_dir: str, record: dict) -> None:
    """Refuses to resume a project directory with another space, oracle, dataset or data.

    Args:
        project_dir: the tuner's project directory.
        record: this run's `SEARCH_ARGUMENTS` and its data's fingerprint ("data").

    Raises:
        ValueError: naming the first argument that differs from the recorded search (or
            the data, when only their contents differ), or when the record is unreadable.
    """
    path = os.path.join(project_dir, SEARCH_FILE)
    if not os.path.exists(path):
        return  # A new project (or one from before this file was written).
    advice = "pass overwrite=True (--overwrite) to start over, or another output_dir (--output_dir)"
    try:
        with open(path, encoding="utf-8") as f:
            recorded = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"The search record {path!r} is corrupt ({e}): {advice}.") from e
    # Records written before quantization searches were float searches.
    recorded.setdefault("quantization", "none")
    for name in SEARCH_ARGUMENTS:
        if recorded.get(name) != record[name]:
            raise ValueError(
                f"{project_dir!r} holds a search with {name}={recorded.get(name)!r}, but this "
                f"run asks for {name}={record[name]!r} (--{name}). A search resumes only with "
                f"its own {', '.join(SEARCH_ARGUMENTS)}: {advice}."
            )
    if recorded.get("data") != record["data"]:
        raise ValueError(
            f"{project_dir!r} holds a search on other data than this run's dataset="
            f"{record['dataset']!r} with seed={record['seed']} (their shapes, dtypes or first "
            f"samples differ). A search resumes only on its own data: {advice}."
        )


class _SearchTuner(Tuner):
    """The pipeline's `Tuner`: rejects architectures above the cost limits before training
    (logged to TensorBoard as sessions of their own)."""

    def __init__(self, *args, limits: dict[str, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = dict(limits or {})

    def over_limits(self, metrics) -> dict[str, tuple[float, float]]:
        """`{metric: (value, limit)}` of the limits that `metrics` exceed."""
        return {
            name: (float(metrics[name]), limit)
            for name, limit in self.limits.items()
            if name in metrics and float(metrics[name]) > limit
        }

    def run_trial(self, trial, *args, **kwargs):
        if self.limits and not self._trains_supernet:
            costs = self.architecture_costs(trial.hyperparameters.values)
            if self.over_limits(costs):
                # Not trained: scored by the objective from its costs alone, and shown in
                # TensorBoard's HParams dashboard as a session of its own.
                objective = self.oracle.objective
                metrics = {**costs, objective.name: objective.get_value(costs)}
                tensorboard_lib.log_evaluated_trial(
                    kwargs.get("callbacks"), trial, metrics, objective
                )
                return metrics
        return super().run_trial(trial, *args, **kwargs)

    def best_within_limits(self) -> keras_tuner.engine.trial.Trial | None:
        """The best completed trial whose recorded costs are within the limits, or None."""
        oracle = self.oracle
        for trial in oracle.get_best_trials(len(oracle.trials)):
            if trial.score is None:  # Ended without a score (e.g. its build failed).
                continue
            costs = {name: trial.metrics.get_last_value(name) for name in self.limits}
            if not self.over_limits({n: v for n, v in costs.items() if v is not None}):
                return trial
        return None


class _TrialLines(_SearchTuner):
    """A `Tuner` printing one line per finished trial: its objective and the best so far."""

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self._trial_start = time.monotonic()

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        oracle = self.oracle
        trial = oracle.get_trial(trial.trial_id)  # Its score and status, as recorded.
        over = self.over_limits(
            {name: trial.metrics.get_last_value(name) for name in self.limits}
            if all(trial.metrics.exists(name) for name in self.limits)
            else {}
        )
        if over:
            result = "rejected untrained: " + ", ".join(
                f"{name} {_format_cost(value)} > {_format_cost(limit)}"
                for name, (value, limit) in over.items()
            )
        elif trial.score is None:
            result = trial.status
        else:
            result = f"{oracle.objective.name} {trial.score:.4f}"
        best = self.best_within_limits()
        if best is not None:
            best_text = f"best {best.score:.4f} (trial {best.trial_id})"
        else:
            best_text = "none within limits" if self.limits else "none completed"
        print(
            f"trial {trial.trial_id} [{len(oracle.end_order)}/{oracle.max_trials}]  {result}  "
            f"{best_text}  {time.monotonic() - self._trial_start:.1f} s",
            flush=True,
        )


class _SupernetEpochLines(keras.callbacks.Callback):
    """Prints one line per supernet epoch with its logs (loss, metrics)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        metrics = "  ".join(f"{name} {float(value):.4f}" for name, value in (logs or {}).items())
        print(f"supernet epoch {epoch + 1}/{self.epochs}  {metrics}", flush=True)


def _best_trial(tuner: _SearchTuner) -> keras_tuner.engine.trial.Trial:
    """The best completed trial within the tuner's limits.

    Raises:
        RuntimeError: when no trained trial is within them, naming the flags to raise.
    """
    best = tuner.best_within_limits()
    if best is not None:
        return best
    limits = ", ".join(f"{name} <= {limit:g}" for name, limit in tuner.limits.items())
    arguments = " or ".join(
        f"{arg} (--{arg})" for arg, metric in CONSTRAINTS.items() if metric in tuner.limits
    )
    raise RuntimeError(
        f"No architecture of the {len(tuner.oracle.trials)} trials met the limits ({limits}): "
        f"all were rejected untrained. Raise {arguments}, or run more trials (--max_trials)."
    )


def _latency_rows(summary: dict) -> list[tuple[str, str]]:
    """The report's latency target and predicted-latency rows (none without a table)."""
    rows = []
    if summary.get("latency_target_ms") is not None:
        measured = summary["latency"]["median_ms"]
        verdict = "met" if measured <= summary["latency_target_ms"] else "missed"
        rows.append(
            ("latency target", f"{summary['latency_target_ms']:.4f} ms ({verdict} as measured)")
        )
    if summary.get("predicted_latency_ms") is not None:
        rows.append(("latency predicted", f"{summary['predicted_latency_ms']:.4f} ms (table)"))
    return rows


def _bits_rows(summary: dict) -> list[tuple[str, str]]:
    bits = summary.get("bits")
    if not bits:
        return []
    per_layer = " ".join(
        f"{r['weight_bits']}/{r['activation_bits']}" for r in summary["layer_bits"]
    )
    return [
        ("weight bits", f"{bits['average_weight_bits']:.2f} average"),
        ("layer bits", f"{per_layer} (weight/activation, input to output)"),
        ("packed weights", f"{bits['packed_weight_bytes'] / 1024:.1f} KiB, "
         f"{bits['compression']:.2f}x below float32 (TFLite runs 2-4 bits at 8)"),
    ]  # fmt: skip


def _metric_rows(summary: dict) -> list[tuple[str, str]]:
    """The best architecture's validation and test accuracy (or mean IoU) rows."""
    metric = summary["metric"]
    label = metric.replace("_", " ")
    return [
        (f"{split} {label}", f"{summary[split + '_' + metric]:.4f}") for split in ("val", "test")
    ]


def _format_report(summary: dict) -> str:
    rows = [
        ("space", summary["space"]),
        ("oracle", summary["oracle"]),
        *(
            [
                (
                    "constraint",
                    ", ".join(
                        f"{n} <= {_format_cost(v)}" for n, v in summary["constraints"].items()
                    ),
                )
            ]
            if summary.get("constraints")
            else []
        ),
        ("trials", str(summary["num_trials"])),
        ("best trial", str(summary["best_trial_id"])),
        *_metric_rows(summary),
        ("parameters", f"{summary['num_params']:,}"),
        ("multiply-adds", f"{summary['flops']:,}"),
        *_bits_rows(summary),
        *_latency_rows(summary),
        ("tflite", f"{summary['tflite_quantize'] or 'float32'}"),
        ("tflite size", f"{summary['latency']['size_bytes'] / 1024:.1f} KiB"),
        ("latency median", f"{summary['latency']['median_ms']:.4f} ms"),
        (
            "latency p10-p90",
            f"{summary['latency']['p10_ms']:.4f} - {summary['latency']['p90_ms']:.4f} ms",
        ),
        ("threads / runs", f"{summary['latency']['num_threads']} / {summary['latency']['runs']}"),
        ("report", summary.get("report", "")),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
    rule = "-" * max(len(line) for line in lines)
    return "\n".join([rule, *lines, rule])


def _check_quantized_search(space, quantize, then_train_epochs, latency_target_ms,
                            latency_table, quantization) -> None:  # fmt: skip
    """Refuses the arguments a quantized search does not take, naming them."""
    given = f"Received: quantization={quantization!r} and "
    if space is not None:
        raise ValueError(
            "quantization (--quantization) searches the bits of its own CNN "
            "(tfnas.quantization.spaces.bit_width_cnn), not a ready space: drop --space. "
            f"{given}space={space!r}"
        )
    if quantize is not None:
        raise ValueError(
            "quantize (--quantize) sets the TFLite export of a float search; a quantized "
            "search exports its own precisions: drop --quantize. "
            f"{given}quantize={quantize!r}"
        )
    for name, value in (
        ("then_train_epochs", then_train_epochs or None),
        ("latency_target_ms", latency_target_ms),
        ("latency_table", latency_table),
    ):
        if value is not None:
            raise ValueError(
                f"{name} (--{name}) is not available with quantization (--quantization). "
                f"{given}{name}={value!r}"
            )


def _check_segmentation_search(oracle_class, oracle, then_train_epochs, latency_table) -> None:
    """Refuses what a segmentation search does not take, before any data is made."""
    if getattr(oracle_class, "execution", "trials") == "supernet" and (
        getattr(oracle_class, "default_space", None) not in spaces.SEGMENTATION_SPACES
    ):
        raise ValueError(
            f"--oracle={oracle} trains a classification supernet; a segmentation space is "
            "searched by --oracle=auto_deeplab (differentiable) or a multi-trial oracle "
            f"(e.g. --oracle=regularized_evolution). Received: oracle={oracle!r}"
        )
    if then_train_epochs:
        raise ValueError(
            "then_train_epochs (--then_train_epochs) trains classifiers (tfnas-train); train "
            "the exported best_model.keras of a segmentation search with Keras's fit. "
            f"Received: then_train_epochs={then_train_epochs!r}"
        )
    if latency_table is not None:
        raise ValueError(
            "A segmentation space has no per-operation latency table: drop --latency_table "
            "(with --latency_target_ms each trial is timed with LiteRT instead). Received: "
            f"latency_table={latency_table!r}"
        )


def _draw_network_path(oracle, values, output_dir: str) -> list[tuple[str, str]]:
    """The decoded network-level path as `network_path.png`: on the betas of a
    differentiable search (`AutoDeepLab.plot_path`), else the best trial's path alone."""
    from tfnas.spaces.auto_deeplab import path_of, plot_network_path

    file = os.path.join(output_dir, "network_path.png")
    if hasattr(oracle, "plot_path"):
        return [("Network-level path over the betas (red: decoded)", oracle.plot_path(file))]
    return [
        ("Network-level path of the best architecture", plot_network_path(file, path_of(values)))
    ]


def _quantized_space(quantization: str, input_shape, num_classes: int):
    """The quantized CNN's `build(hp)`: 8 bits everywhere ("int8") or searched bits."""
    from tfnas.quantization.spaces import bit_width_cnn

    if quantization == "int8":
        return bit_width_cnn(input_shape, num_classes, weight_bits=8, activation_bits=8)
    return bit_width_cnn(input_shape, num_classes)


def _latency_table(path, hypermodel, space, output_dir, num_threads, quantize, verbose):
    """The search's `LookupTable`, bound to `hypermodel`: the one at `path`, or one built
    on this machine into `output_dir` (resumed if a build was interrupted).

    Raises:
        ValueError: when the table at `path` was measured on another machine, with other
            threads or another precision, or lacks operations of the space.
    """
    runner = latency.LocalRunner(num_threads=num_threads)
    if path is None:
        output = os.path.join(output_dir, LATENCY_TABLE_FILE.format(space=space))
        if verbose:
            print(f"Building the latency table of {space!r} on this machine: {output}")
        return latency.build_table(
            hypermodel, runner, output, quantize=quantize,
            progress=print if verbose else None,
        )  # fmt: skip
    table = latency.LookupTable.load(path)
    recorded = table.fingerprint
    if recorded.get("runner") == "local":
        # This machine's fingerprint with the table's own runtime settings: another
        # machine, LiteRT version, thread count or precision is refused.
        expected = latency.LocalRunner(
            runtime=recorded.get("runtime", "interpreter"), num_threads=num_threads,
            xnnpack=recorded.get("xnnpack", True), statistic=recorded.get("statistic", "median"),
        ).fingerprint()  # fmt: skip
        table.check_fingerprint({**expected, "quantize": quantize})
    elif recorded.get("quantize") != quantize:
        raise ValueError(
            f"The latency table {path!r} was measured with quantize={recorded.get('quantize')!r}"
            f", this search exports with quantize={quantize!r} (--quantize)."
        )
    return table.bind(hypermodel)


def run_search(
    *,
    space: str | None = None,
    oracle: str = "random",
    dataset: str = "digits",
    max_trials: int = 4,
    epochs: int = 4,
    output_dir: str = "runs/search",
    seed: int = 0,
    batch_size: int = 64,
    quantize: str | None = None,
    latency_runs: int = 50,
    num_threads: int = 1,
    overwrite: bool = False,
    verbose: int = 1,
    then_train_epochs: int = 0,
    max_flops: float | None = None,
    max_params: float | None = None,
    latency_target_ms: float | None = None,
    latency_table: str | None = None,
    tensorboard: bool = True,
    quantization: str = "none",
    pretrained: str | None = None,
) -> dict:
    """Runs a search on a ready space and exports the best architecture.

    A search interrupted before it finished resumes when run again with the same
    `output_dir` (`overwrite=False`): finished trials are kept, the oracle continues.

    Args:
        space: a name of `tfnas.spaces.SPACES` (default "nasbench201"); not with
            `quantization`, which searches its own CNN.
        oracle: a name of `tfnas.oracles.ORACLES`.
        dataset: a name of `tfnas.data.DATASETS` (default: the bundled digits).
        max_trials: trials to run.
        epochs: training epochs per trial.
        output_dir: where the tuner's project and the output files go: a directory this
            process can write to, or can create (checked before any work).
        seed: seeds the data split, the oracle and Keras.
        batch_size: training batch size.
        quantize: TFLite export: None (float32), "float16" or "int8".
        latency_runs: timed TFLite invocations.
        num_threads: LiteRT threads.
        overwrite: start over instead of resuming.
        verbose: 0 silent, 1 a line per finished trial (and per supernet epoch), 2
            KerasTuner's trial summaries and Keras's per-epoch lines instead.
        then_train_epochs: if > 0, then train the best architecture from scratch for this
            many epochs with `tfnas.training.run` (its defaults otherwise) into
            `output_dir/train`; its summary is the returned summary's "train" entry.
        max_flops: if given, the most multiply-adds (`tfnas.cost.count_flops`) the best
            architecture may have: see the module docstring for how limits are enforced.
        max_params: if given, the most parameters it may have.
        latency_target_ms: if given, the most milliseconds the best architecture may take
            as the latency table predicts (see the module docstring).
        latency_table: a `tfnas-latency-table` JSON file for this space and data (default
            with a target: one built on this machine in `output_dir`). A table of another
            machine (`--runner=local`), thread count or precision is refused; an adb
            device's table is used as it is (the exported model is still timed here).
        tensorboard: write TensorBoard logs (curves, and every trial's hyperparameters
            and costs for the HParams dashboard) to `output_dir/tensorboard`.
        quantization: "none" (a float search of `space`), "int8" (uniform 8-bit QAT of
            `tfnas.quantization.spaces.bit_width_cnn`, full-integer int8 export) or
            "mixed" (a search over that CNN's per-layer weight bits {2, 3, 4, 8} and
            activation bits {4, 8}: `oracle="mixed_precision_dnas"` for Wu et al.'s
            DNAS, a multi-trial oracle for a QAT search; int8 TFLite export, whose 2-4-bit
            layers run at 8 bits). `results.json` records the per-layer bits.
        pretrained: with `oracle="transfer_nas"`, an agent file written by
            `tfnas.tuners.transfer_nas.pretrain` to start the search from (default: an
            untrained agent).

    Returns:
        The summary written to `results.json` (without the per-trial list).
    """
    validation.check_one_of("quantization", quantization, QUANTIZATION_MODES)
    quantized = quantization != "none"
    if quantized:
        _check_quantized_search(space, quantize, then_train_epochs, latency_target_ms,
                                latency_table, quantization)  # fmt: skip
        space = QUANTIZED_SPACE
    elif space is None:
        # An oracle made for one kind of space names it (TAS: the width-searchable ResNet).
        space = getattr(oracles.get(oracle), "default_space", "nasbench201")
    if not quantized and space not in spaces.SPACES:
        raise ValueError(
            f"Unknown space. Received: space={space!r}; expected one of {list(spaces.SPACES)}."
        )
    oracle_class = oracles.get(oracle)
    if pretrained is not None and "pretrained" not in inspect.signature(oracle_class).parameters:
        raise ValueError(
            "pretrained (--pretrained) is an agent file for --oracle=transfer_nas; "
            f"--oracle={oracle} starts from no pre-trained agent. Received: "
            f"pretrained={pretrained!r}"
        )
    spaces.check_task(space, dataset)
    task = spaces.task_of(space)
    metric = TASK_METRICS[task]
    if task == "segmentation":
        _check_segmentation_search(oracle_class, oracle, then_train_epochs, latency_table)
    for name, value in (
        ("max_trials", max_trials),
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("latency_runs", latency_runs),
        ("num_threads", num_threads),
    ):
        validation.check_int(name, value, low=1)
    validation.check_int("then_train_epochs", then_train_epochs, low=0)
    limits = {}
    for name, value in (("max_flops", max_flops), ("max_params", max_params)):
        if value is not None:
            limits[CONSTRAINTS[name]] = validation.check_float(
                name, value, low=0, low_inclusive=False
            )
    if latency_target_ms is not None:
        limits[LATENCY_METRIC] = validation.check_float(
            "latency_target_ms", latency_target_ms, low=0, low_inclusive=False
        )
    if latency_table is not None and not os.path.isfile(os.fspath(latency_table)):
        raise ValueError(
            "latency_table (--latency_table) must be a latency table file written by "
            f"tfnas-latency-table. Received: latency_table={latency_table!r}, no such file."
        )
    latency.tflite.check_quantize(quantize)
    validation.check_writable_dir("output_dir", output_dir)

    keras.utils.set_random_seed(seed)
    data = data_lib.load(dataset, seed=seed)
    # Checked before the Tuner reloads the oracle, and before any model is built.
    project_dir = os.path.join(output_dir, PROJECT_NAME)
    record = {
        "space": space,
        "oracle": oracle,
        "oracle_class": f"{oracle_class.__module__}.{oracle_class.__qualname__}",
        "dataset": dataset,
        "seed": seed,
        "max_flops": max_flops,
        "max_params": max_params,
        "latency_target_ms": latency_target_ms,
        "quantization": quantization,
        "pretrained": pretrained,
        "data": data_fingerprint(data.x_train, data.y_train, data.x_val, data.y_val),
    }
    if not overwrite:
        check_same_search(project_dir, record)
    if quantized:
        hypermodel = _quantized_space(quantization, data.input_shape, data.num_classes)
    else:
        hypermodel = spaces.make(space, data.input_shape, data.num_classes)
    parameters = inspect.signature(oracle_class).parameters
    table = None
    searched_by = getattr(hypermodel, "searched_by", None)
    if searched_by is not None and oracle not in searched_by:
        raise ValueError(
            f"--space={space} is searched by {', '.join(f'--oracle={o}' for o in searched_by)}"
            f" only (its architecture grows trial by trial). Received: oracle={oracle!r}"
        )
    check_search = getattr(oracle_class, "check_search", None)
    if check_search is not None:  # Before a table is built for a search that cannot run.
        check_search(hypermodel, latency_target_ms)
    # MnasNet rewards every trial's measured latency: the target is in its reward (soft),
    # not a limit, and needs no table.
    rewards_latency = getattr(oracle_class, "requires_latency", False)
    if rewards_latency:
        limits.pop(LATENCY_METRIC, None)
    # A space whose choices change shapes (MnasNet's) has no per-operation table: under a
    # target each trial is timed with LiteRT after training, and the best within it wins.
    per_operation = getattr(hypermodel, "supernet_form", True) and task == "classification"
    measure_latency = rewards_latency or (
        latency_target_ms is not None and latency_table is None and not per_operation
    )
    # FBNet, ProxylessNAS and SinglePathNAS need a table: one is built if none is given.
    if latency_table is not None or (
        not rewards_latency
        and ((latency_target_ms is not None and per_operation) or "latency_table" in parameters)
    ):
        table = _latency_table(
            latency_table, hypermodel, space, output_dir, num_threads, quantize, verbose
        )
        if latency_target_ms is not None:
            table.check_target(latency_target_ms)  # Before any training.
    if getattr(oracle_class, "execution", "trials") == "supernet":
        # A weight-sharing oracle never proposes an architecture above its constraints.
        constraint_kwargs = {"constraints": limits} if limits else {}
        objective = keras_tuner.Objective(f"val_{metric}", "max")
    else:
        constraint_kwargs = {}
        objective = (
            BudgetedAccuracy(limits, accuracy=f"val_{metric}")
            if limits
            else keras_tuner.Objective(f"val_{metric}", "max")
        )
    if table is not None and "latency_table" in parameters:
        constraint_kwargs["latency_table"] = table
    if "expert" in parameters:
        # IRLAS imitates an expert network: the space's own (NAS-Bench-201's ResNet cell,
        # DARTS-V2), checked before any training.
        expert_values = getattr(hypermodel, "expert_values", None)
        if expert_values is None:
            raise ValueError(
                f"--oracle={oracle} imitates an expert architecture of the space; "
                f"--space={space} has none. Received: space={space!r}; use --space=nasbench201 "
                "or --space=darts (or pass expert= in Python)."
            )
        constraint_kwargs["expert"] = expert_values()
    if latency_target_ms is not None and "latency_target_ms" in parameters:
        constraint_kwargs["latency_target_ms"] = latency_target_ms
    if pretrained is not None:
        constraint_kwargs["pretrained"] = pretrained
    if table is not None and "latency_unit" in parameters:
        # FBNet's log(LAT) must be > 1: sub-millisecond networks take it in microseconds.
        fast = table.fastest_architecture()[0] > math.e
        constraint_kwargs["latency_unit"] = "ms" if fast else "us"
    oracle_instance = oracle_class(
        objective=objective, max_trials=max_trials, seed=seed, **constraint_kwargs
    )
    # KerasTuner's Oracle replaces seed=0 with a random seed (`seed or random...`).
    oracle_instance.seed = oracle_instance._seed_state = seed
    # At verbose=1, a line per trial (and per supernet epoch) instead of KerasTuner's and
    # Keras's output; verbose=2 keeps theirs.
    tuner = (_TrialLines if verbose == 1 else _SearchTuner)(
        hypermodel,
        oracle=oracle_instance,
        directory=output_dir,
        project_name=PROJECT_NAME,
        overwrite=overwrite,
        limits=limits,
        latency_table=table,
        measure_latency=measure_latency,
        latency_options={"num_threads": num_threads, "quantize": quantize},
    )
    # After the Tuner, which deletes the project directory when overwriting.
    os.makedirs(project_dir, exist_ok=True)
    with open(os.path.join(project_dir, SEARCH_FILE), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    callbacks = []
    if verbose == 1 and getattr(oracle_instance, "execution", "trials") == "supernet":
        callbacks.append(_SupernetEpochLines(epochs))
    if tensorboard:
        callbacks.append(
            keras.callbacks.TensorBoard(
                os.path.join(output_dir, TENSORBOARD_DIR), write_graph=False, profile_batch=0
            )
        )
    tuner.search(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=epochs,
        batch_size=batch_size,
        callbacks=callbacks,
        verbose=2 if verbose >= 2 else 0,
    )

    # `Tuner.search` raises when no trial completed.
    best_trial = _best_trial(tuner)
    architecture = Architecture.from_hyperparameters(
        hypermodel, best_trial.hyperparameters, validate=False
    )
    best_model = tuner.load_model(best_trial)
    _, test_value = best_model.evaluate(data.x_test, data.y_test, verbose=0)

    os.makedirs(output_dir, exist_ok=True)
    paths = {name: os.path.join(output_dir, name) for name in OUTPUT_FILES}
    best_model.save(paths["best_model.keras"])
    bits = {}
    if quantized:
        from tfnas.quantization import export as quantized_export
        from tfnas.quantization import report as bits_report

        flatbuffer = quantized_export.export_tflite(
            best_model, "int8" if quantization == "int8" else "mixed", data.x_train
        )
        with open(paths["best_model.tflite"], "wb") as f:
            f.write(flatbuffer)
        rows = bits_report.layer_bits(best_model)
        bits = {"layer_bits": rows, "bits": bits_report.summarize(rows)}
        bits["bits_plot"] = bits_report.plot_bits(rows, os.path.join(output_dir, "bits.png"))
    else:
        latency.save_tflite(
            best_model,
            paths["best_model.tflite"],
            quantize=quantize,
            representative_data=data.x_train if quantize == "int8" else None,
        )
    report = latency.measure(
        paths["best_model.tflite"], runs=latency_runs, num_threads=num_threads, seed=seed
    )
    with open(paths["architecture.json"], "w", encoding="utf-8") as f:
        f.write(architecture.to_json())

    best_metrics = {name: best_trial.metrics.get_best_value(name) for name in COST_METRICS}
    summary = {
        "space": space,
        "oracle": oracle,
        "dataset": dataset,
        "seed": seed,
        "constraints": limits,
        "num_trials": len(tuner.oracle.trials),
        "best_trial_id": best_trial.trial_id,
        "architecture": architecture.values,
        "task": task,
        "metric": metric,
        f"val_{metric}": float(best_trial.metrics.get_best_value(f"val_{metric}")),
        f"test_{metric}": float(test_value),
        "num_params": int(best_metrics["num_params"]),
        "flops": int(best_metrics["flops"]),
        "model_bytes": int(best_metrics["model_bytes"]),
        "tflite_quantize": quantization if quantized else quantize,
        "quantization": quantization,
        **bits,
        "latency": report.to_dict(),
        "latency_target_ms": latency_target_ms,
        "predicted_latency_ms": None if table is None else table.predict(architecture.values),
        "files": paths,
    }
    pareto_metrics = (f"val_{metric}", "flops")
    front = tuner.pareto_front(pareto_metrics)
    summary["pareto_plot"] = tuner.plot_pareto(
        os.path.join(output_dir, "pareto.png"), pareto_metrics
    )
    summary["report"] = paths[report_lib.REPORT_FILE]
    results = {
        **summary,
        "pareto_front": {"metrics": pareto_metrics, "points": pareto.pareto_to_json(front)},
        "trials": trial_records(tuner),
    }
    with open(paths["results.json"], "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    figures = [
        (
            f"Pareto front: validation {metric.replace('_', ' ')} against multiply-adds",
            summary["pareto_plot"],
        ),
        *report_lib.draw_cells(architecture.values, output_dir),
        *(
            _draw_network_path(tuner.oracle, architecture.values, output_dir)
            if task == "segmentation"
            else []
        ),  # fmt: skip
        *report_lib.draw_alpha_history(tuner.oracle, output_dir),
        *([("Per-layer weight and activation bits", bits["bits_plot"])] if bits else []),
    ]
    report_lib.write_report(output_dir, results, figures, path=paths[report_lib.REPORT_FILE])
    if verbose:
        print(_format_report(summary))
    if then_train_epochs:
        summary["train"] = training.run(
            space=space,
            architecture=paths["architecture.json"],
            dataset=dataset,
            epochs=then_train_epochs,
            batch_size=batch_size,
            output_dir=os.path.join(output_dir, "train"),
            seed=seed,
            overwrite=overwrite,
            verbose=min(verbose, 1),
        )
    return summary
