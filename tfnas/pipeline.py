"""The end-to-end search job behind `tfnas-search`, callable without flags.

search -> best architecture -> `best_model.keras` + `best_model.tflite` +
`architecture.json` + `results.json` in `output_dir`, and a printed report with the
measured TFLite latency and size.
"""

from __future__ import annotations

import json
import math
import os

import keras
import keras_tuner

from tfnas import data as data_lib
from tfnas import latency, oracles, spaces, training, validation
from tfnas.architecture import Architecture
from tfnas.cost import COST_METRICS
from tfnas.engine.tuner import Tuner
from tfnas.results import pareto

OUTPUT_FILES = ("best_model.keras", "best_model.tflite", "architecture.json", "results.json")
PARETO_METRICS = ("val_accuracy", "flops")
OBJECTIVE = "val_accuracy"


def _json_number(value):
    value = float(value)
    return value if math.isfinite(value) else None


def trial_records(tuner: keras_tuner.Tuner) -> list[dict]:
    """Every trial as plain JSON: id, status, architecture values, score and metrics."""
    records = []
    for trial in tuner.oracle.trials.values():
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


def _format_report(summary: dict) -> str:
    rows = [
        ("space", summary["space"]),
        ("oracle", summary["oracle"]),
        ("trials", str(summary["num_trials"])),
        ("best trial", str(summary["best_trial_id"])),
        ("val accuracy", f"{summary['val_accuracy']:.4f}"),
        ("test accuracy", f"{summary['test_accuracy']:.4f}"),
        ("parameters", f"{summary['num_params']:,}"),
        ("multiply-adds", f"{summary['flops']:,}"),
        ("tflite", f"{summary['tflite_quantize'] or 'float32'}"),
        ("tflite size", f"{summary['latency']['size_bytes'] / 1024:.1f} KiB"),
        ("latency median", f"{summary['latency']['median_ms']:.4f} ms"),
        (
            "latency p10-p90",
            f"{summary['latency']['p10_ms']:.4f} - {summary['latency']['p90_ms']:.4f} ms",
        ),
        ("threads / runs", f"{summary['latency']['num_threads']} / {summary['latency']['runs']}"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
    rule = "-" * max(len(line) for line in lines)
    return "\n".join([rule, *lines, rule])


def run_search(
    *,
    space: str = "nasbench201",
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
) -> dict:
    """Runs a search on a ready space and exports the best architecture.

    A search interrupted before it finished resumes when run again with the same
    `output_dir` (`overwrite=False`): finished trials are kept, the oracle continues.

    Args:
        space: a name of `tfnas.spaces.SPACES`.
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
        verbose: 0 silent, 1 trial progress, 2 also per-epoch lines.
        then_train_epochs: if > 0, then train the best architecture from scratch for this
            many epochs with `tfnas.training.run` (its defaults otherwise) into
            `output_dir/train`; its summary is the returned summary's "train" entry.

    Returns:
        The summary written to `results.json` (without the per-trial list).
    """
    if space not in spaces.SPACES:
        raise ValueError(
            f"Unknown space. Received: space={space!r}; expected one of {list(spaces.SPACES)}."
        )
    oracle_class = oracles.get(oracle)
    for name, value in (
        ("max_trials", max_trials),
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("latency_runs", latency_runs),
        ("num_threads", num_threads),
    ):
        validation.check_int(name, value, low=1)
    validation.check_int("then_train_epochs", then_train_epochs, low=0)
    latency.tflite.check_quantize(quantize)
    validation.check_writable_dir("output_dir", output_dir)

    keras.utils.set_random_seed(seed)
    data = data_lib.load(dataset, seed=seed)
    hypermodel = spaces.make(space, data.input_shape, data.num_classes)
    oracle_instance = oracle_class(objective=OBJECTIVE, max_trials=max_trials, seed=seed)
    # KerasTuner's Oracle replaces seed=0 with a random seed (`seed or random...`).
    oracle_instance.seed = oracle_instance._seed_state = seed
    tuner = Tuner(
        hypermodel,
        oracle=oracle_instance,
        directory=output_dir,
        project_name="search",
        overwrite=overwrite,
    )
    tuner.search(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=epochs,
        batch_size=batch_size,
        verbose=verbose,
    )

    # `Tuner.search` raises when no trial completed.
    best_trial = tuner.oracle.get_best_trials(1)[0]
    architecture = Architecture.from_hyperparameters(
        hypermodel, best_trial.hyperparameters, validate=False
    )
    best_model = tuner.load_model(best_trial)
    _, test_accuracy = best_model.evaluate(data.x_test, data.y_test, verbose=0)

    os.makedirs(output_dir, exist_ok=True)
    paths = {name: os.path.join(output_dir, name) for name in OUTPUT_FILES}
    best_model.save(paths["best_model.keras"])
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
        "num_trials": len(tuner.oracle.trials),
        "best_trial_id": best_trial.trial_id,
        "architecture": architecture.values,
        "val_accuracy": float(best_trial.metrics.get_best_value(OBJECTIVE)),
        "test_accuracy": float(test_accuracy),
        "num_params": int(best_metrics["num_params"]),
        "flops": int(best_metrics["flops"]),
        "model_bytes": int(best_metrics["model_bytes"]),
        "tflite_quantize": quantize,
        "latency": report.to_dict(),
        "files": paths,
    }
    front = tuner.pareto_front(PARETO_METRICS)
    summary["pareto_plot"] = tuner.plot_pareto(
        os.path.join(output_dir, "pareto.png"), PARETO_METRICS
    )
    with open(paths["results.json"], "w", encoding="utf-8") as f:
        json.dump(
            {
                **summary,
                "pareto_front": {"metrics": PARETO_METRICS, "points": pareto.pareto_to_json(front)},
                "trials": trial_records(tuner),
            },
            f,
            indent=2,
        )
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
