"""The end-to-end job of tfnas-search: outputs, resume, and argument errors."""

import dataclasses
import glob
import html.parser
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import metadata as hparams_metadata

from tfnas import pipeline
from tfnas.results import objectives
from tfnas.spaces import nasbench201


def _events(run_dir):
    """Every summary value in the event files of one TensorBoard run directory."""
    return [
        value
        for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*")))
        for event in tf.compat.v1.train.summary_iterator(path)
        for value in event.summary.value
    ]


class _TrialRows(html.parser.HTMLParser):
    """Counts the rows of report.html's trial table and its embedded images."""

    def __init__(self):
        super().__init__()
        self.rows, self.images, self._in_trials = 0, [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._in_trials = attrs.get("class") == "trials"
        elif tag == "tr" and self._in_trials:
            self.rows += 1
        elif tag == "img":
            self.images.append(attrs["src"])


def test_search_writes_the_four_outputs_and_resumes(tmp_path, capsys):
    out = str(tmp_path / "run")
    summary = pipeline.run_search(
        space="nasbench201", oracle="random", max_trials=2, epochs=1,
        output_dir=out, latency_runs=3, verbose=1,
    )  # fmt: skip
    for name in pipeline.OUTPUT_FILES:
        assert os.path.getsize(os.path.join(out, name)) > 0
    assert "latency median" in capsys.readouterr().out
    results = json.load(open(os.path.join(out, "results.json")))
    assert len(results["trials"]) == 2
    assert results["best_trial_id"] == summary["best_trial_id"]
    assert 0 <= results["test_accuracy"] <= 1
    assert results["latency"]["median_ms"] > 0
    assert results["pareto_front"]["points"]
    arch = json.load(open(os.path.join(out, "architecture.json")))
    assert arch["values"] == summary["architecture"]
    assert len(arch["values"]) == 6
    # report.html: a header row and a row per trial; the Pareto plot and the found cell.
    assert summary["report"] == os.path.join(out, "report.html")
    page = _TrialRows()
    page.feed(open(summary["report"], encoding="utf-8").read())
    assert page.rows == 1 + 2
    assert len(page.images) == 2 and all(
        s.startswith("data:image/png;base64,") for s in page.images
    )
    # TensorBoard: the experiment's metric columns include the costs; every trial's
    # session holds their values.
    logs = os.path.join(out, pipeline.TENSORBOARD_DIR)
    (experiment,) = [v for v in _events(logs) if v.tag == hparams_metadata.EXPERIMENT_TAG]
    columns = hparams_metadata.parse_experiment_plugin_data(
        experiment.metadata.plugin_data.content
    ).metric_infos
    assert [c.display_name for c in columns] == [
        "val_accuracy", "num_params", "flops", "model_bytes"
    ]  # fmt: skip
    for trial in results["trials"]:
        session = os.path.join(logs, trial["trial_id"], "execution0")
        flops = [tf.make_ndarray(v.tensor) for v in _events(session) if v.tag == "flops"]
        assert flops == [trial["metrics"]["flops"]]

    # Run again with a larger budget: the two finished trials are kept, one more runs.
    resumed = pipeline.run_search(
        space="nasbench201", oracle="random", max_trials=3, epochs=1,
        output_dir=out, latency_runs=3, verbose=0,
    )  # fmt: skip
    assert resumed["num_trials"] == 3
    trials = json.load(open(os.path.join(out, "results.json")))["trials"]
    by_id = {t["trial_id"]: t["values"] for t in trials}
    assert all(by_id[t["trial_id"]] == t["values"] for t in results["trials"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"space": "amoebanet"}, "Received: space='amoebanet'"),
        ({"oracle": "genetic"}, "Unknown oracle: 'genetic'"),
        ({"max_trials": 0}, "max_trials must be >= 1. Received: max_trials=0"),
        ({"epochs": -1}, "epochs must be >= 1. Received: epochs=-1"),
        ({"quantize": "int4"}, "Received: quantize='int4'"),
        ({"output_dir": ""}, "output_dir must be a non-empty path"),
        ({"dataset": "imagenet"}, "Unknown dataset: 'imagenet'"),
        ({"max_flops": 0}, "max_flops must be > 0. Received: max_flops=0"),
        ({"max_params": "1e5"}, "max_params must be a number. Received: max_params='1e5'"),
    ],
)
def test_bad_arguments_fail_before_any_work(kwargs, message, tmp_path):
    kwargs = {"output_dir": str(tmp_path), **kwargs}
    with pytest.raises(ValueError, match=message):
        pipeline.run_search(**kwargs)


def test_output_dir_that_is_a_file_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline.data_lib, "load", lambda *a, **k: pytest.fail("did work"))
    path = tmp_path / "results.txt"
    path.write_text("")
    with pytest.raises(
        ValueError,
        match=rf"output_dir must be a directory, but it is a file\. Received: "
        rf"output_dir='{path}'\. Pass another output_dir",
    ):
        pipeline.run_search(output_dir=str(path))
    with pytest.raises(ValueError, match=rf"but '{path}', above it, is a file"):
        pipeline.run_search(output_dir=str(path / "run"))


@pytest.mark.skipif(not os.path.isdir("/proc/1"), reason="needs Linux's /proc")
def test_unwritable_output_dir_fails_before_any_work(monkeypatch):
    monkeypatch.setattr(pipeline.data_lib, "load", lambda *a, **k: pytest.fail("did work"))
    # /proc/1 refuses new entries even to root, for whom file modes do not apply.
    with pytest.raises(
        ValueError,
        match=r"output_dir must be a directory this process can write to, but '/proc/1' is "
        r"not writable\. Received: output_dir='/proc/1/run'",
    ):
        pipeline.run_search(output_dir="/proc/1/run")


# --- A resume never mixes searches -----------------------------------------------------------


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("finished") / "run")
    pipeline.run_search(max_trials=1, epochs=1, output_dir=out, latency_runs=1, verbose=0)
    return out


def _trial_dirs(out):
    project = os.path.join(out, pipeline.PROJECT_NAME)
    return sorted(name for name in os.listdir(project) if name.startswith("trial_"))


def test_search_records_what_it_searched(finished_search):
    with open(os.path.join(finished_search, pipeline.PROJECT_NAME, pipeline.SEARCH_FILE)) as f:
        record = json.load(f)
    assert {key: record[key] for key in pipeline.SEARCH_ARGUMENTS} == {
        "space": "nasbench201", "oracle": "random", "dataset": "digits", "seed": 0,
        "max_flops": None, "max_params": None, "latency_target_ms": None,
        "quantization": "none", "pretrained": None,
    }  # fmt: skip
    assert record["oracle_class"].endswith(".RandomSearchOracle")
    assert len(record["data"]) == 64


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"space": "darts"},
            r"space='nasbench201', but this run asks for space='darts' \(--space\)",
        ),
        (
            {"oracle": "regularized_evolution"},
            r"oracle='random', but this run asks for oracle='regularized_evolution' \(--oracle\)",
        ),
        ({"seed": 3}, r"seed=0, but this run asks for seed=3 \(--seed\)"),
        (
            {"max_flops": 5e5},
            r"max_flops=None, but this run asks for max_flops=500000.0 \(--max_flops\)",
        ),
    ],
)
def test_resume_with_other_arguments_fails_before_any_work(
    finished_search, monkeypatch, kwargs, message
):
    trials = _trial_dirs(finished_search)
    for tuner in ("_SearchTuner", "_TrialLines"):
        monkeypatch.setattr(pipeline, tuner, lambda *a, **k: pytest.fail("built the tuner"))
    monkeypatch.setattr(pipeline.spaces, "make", lambda *a, **k: pytest.fail("built a model"))
    with pytest.raises(ValueError, match=message) as error:
        pipeline.run_search(max_trials=2, epochs=1, output_dir=finished_search, verbose=0, **kwargs)
    assert "pass overwrite=True (--overwrite) to start over, or another output_dir" in str(
        error.value
    )
    assert _trial_dirs(finished_search) == trials


def test_resume_on_other_data_fails_before_any_work(finished_search, monkeypatch):
    load = pipeline.data_lib.load

    def other_data(*args, **kwargs):
        data = load(*args, **kwargs)
        return dataclasses.replace(data, x_train=1.0 - data.x_train)

    monkeypatch.setattr(pipeline.data_lib, "load", other_data)
    monkeypatch.setattr(pipeline.spaces, "make", lambda *a, **k: pytest.fail("built a model"))
    with pytest.raises(
        ValueError,
        match=r"holds a search on other data than this run's dataset='digits' with seed=0 "
        r"\(their shapes, dtypes or first samples differ\)\. .*--overwrite",
    ):
        pipeline.run_search(max_trials=2, epochs=1, output_dir=finished_search, verbose=0)


def test_corrupt_search_record_is_named(tmp_path, monkeypatch):
    project = tmp_path / "run" / pipeline.PROJECT_NAME
    project.mkdir(parents=True)
    (project / pipeline.SEARCH_FILE).write_text("{")
    monkeypatch.setattr(pipeline.spaces, "make", lambda *a, **k: pytest.fail("built a model"))
    with pytest.raises(
        ValueError,
        match=rf"The search record '{project / pipeline.SEARCH_FILE}' is corrupt .*--overwrite",
    ):
        pipeline.run_search(output_dir=str(tmp_path / "run"), verbose=0)


def test_data_fingerprint_sees_shapes_dtypes_and_first_samples():
    x = np.arange(64, dtype="float32").reshape(32, 2)
    y = np.arange(32)
    same = pipeline.data_fingerprint(x, y)
    assert pipeline.data_fingerprint(x.copy(), y.copy()) == same
    changed = x.copy()
    changed[0, 0] = -1
    assert pipeline.data_fingerprint(changed, y) != same
    assert pipeline.data_fingerprint(x[:-1], y) != same
    assert pipeline.data_fingerprint(x.astype("float64"), y) != same
    assert pipeline.data_fingerprint(x.reshape(32, 2, 1), y) != same
    assert pipeline.data_fingerprint(y, x) != same


def test_overwrite_starts_over_whatever_was_recorded(tmp_path):
    out = str(tmp_path / "run")
    pipeline.run_search(max_trials=1, epochs=1, output_dir=out, latency_runs=1, verbose=0)
    summary = pipeline.run_search(
        oracle="regularized_evolution", max_trials=1, epochs=1, output_dir=out,
        latency_runs=1, verbose=0, overwrite=True,
    )  # fmt: skip
    assert summary["num_trials"] == 1
    with open(os.path.join(out, pipeline.PROJECT_NAME, pipeline.SEARCH_FILE)) as f:
        assert json.load(f)["oracle"] == "regularized_evolution"


# --- Cost limits ------------------------------------------------------------------------------


def test_architectures_above_max_flops_are_rejected_untrained(tmp_path, capsys):
    # Random search, seed 0: its first two cells have 230,208 and 267,072 multiply-adds.
    limit = 250_000
    out = str(tmp_path / "run")
    summary = pipeline.run_search(
        oracle="random", max_trials=2, epochs=1, output_dir=out, latency_runs=1,
        max_flops=limit, tensorboard=False,
    )  # fmt: skip
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("trial ")]
    results = json.load(open(os.path.join(out, "results.json")))
    assert results["constraints"] == {"flops": limit}
    over = [t for t in results["trials"] if t["metrics"]["flops"] > limit]
    within = [t for t in results["trials"] if t["metrics"]["flops"] <= limit]
    assert len(over) == 1 and len(within) == 1
    for trial in over:
        # Never trained (no fit metric, no checkpoint), scored below every trained one.
        assert "val_accuracy" not in trial["metrics"]
        assert trial["score"] == pytest.approx(1 - trial["metrics"]["flops"] / limit)
        assert not glob.glob(os.path.join(out, "search", f"trial_{trial['trial_id']}", "*.h5"))
        assert any(
            f"rejected untrained: flops {trial['metrics']['flops']:,.0f} > 250,000" in line
            for line in lines
        )
    assert within[0]["score"] == within[0]["metrics"]["val_accuracy"]
    assert within[0]["metrics"]["budgeted_val_accuracy"] == within[0]["score"]
    # The exported model is the best one within the limit.
    assert summary["best_trial_id"] == within[0]["trial_id"]
    assert summary["flops"] <= limit
    assert not os.path.exists(os.path.join(out, pipeline.TENSORBOARD_DIR))


def test_no_architecture_within_the_limits_is_an_error(tmp_path):
    with pytest.raises(
        RuntimeError,
        match=r"No architecture of the 1 trials met the limits \(num_params <= 1000\): all were "
        r"rejected untrained\. Raise max_params \(--max_params\)",
    ):
        pipeline.run_search(
            max_trials=1, epochs=1, output_dir=str(tmp_path), max_params=1000, verbose=0
        )


def test_budgeted_accuracy():
    objective = objectives.BudgetedAccuracy({"flops": 100.0, "num_params": 10.0})
    assert objective.name == "budgeted_val_accuracy" and objective.direction == "max"
    within = {"val_accuracy": 0.8, "flops": 100.0, "num_params": 5.0}
    assert objective.has_value(within) and objective.get_value(within) == 0.8
    # Above a limit no accuracy is needed; the largest excess sets the penalty.
    over = {"flops": 150.0, "num_params": 30.0}
    assert objective.has_value(over) and objective.get_value(over) == pytest.approx(-2.0)
    assert objective.get_value({"flops": 120.0, "num_params": 1.0}) == pytest.approx(-0.2)
    assert not objective.has_value({"val_accuracy": 0.8, "flops": 1.0})
    with pytest.raises(ValueError, match="needs the cost metric 'num_params'"):
        objective.get_value({"val_accuracy": 0.8, "flops": 1.0})
    with pytest.raises(ValueError, match="needs the metric 'val_accuracy'"):
        objective.get_value({"flops": 1.0, "num_params": 1.0})


@pytest.mark.parametrize(
    "execution, expected",
    [
        ("supernet", {"objective": "val_accuracy", "constraints": {"flops": 5e5}}),
        ("trials", {"objective": objectives.BudgetedAccuracy({"flops": 5e5})}),
    ],
)
def test_limits_reach_the_oracle(tmp_path, monkeypatch, execution, expected):
    # A weight-sharing oracle gets them as its own constraints (it never proposes an
    # architecture above them); any other oracle is scored by BudgetedAccuracy.
    received = {}

    class Recorded(Exception):
        pass

    class Oracle:
        def __init__(self, **kwargs):
            received.update(kwargs)
            raise Recorded

    Oracle.execution = execution
    monkeypatch.setattr(pipeline.oracles, "get", lambda name: Oracle)
    with pytest.raises(Recorded):
        pipeline.run_search(output_dir=str(tmp_path), max_flops=5e5, verbose=0)
    objective = received.pop("objective")
    expected_objective = expected.pop("objective")
    if isinstance(expected_objective, str):
        assert (objective.name, objective.direction) == (expected_objective, "max")
    else:
        assert (objective.name, objective.limits) == ("budgeted_val_accuracy", {"flops": 5e5})
    assert {k: v for k, v in received.items() if k not in ("max_trials", "seed")} == expected


def test_trial_records_follow_the_start_order_after_a_resume():
    import types

    import keras_tuner
    from keras_tuner.engine import trial as trial_lib

    trials = {
        tid: trial_lib.Trial(keras_tuner.HyperParameters(), trial_id=tid) for tid in ("0", "2", "1")
    }
    oracle = types.SimpleNamespace(trials=trials, start_order=["0", "1", "2"])
    records = pipeline.trial_records(types.SimpleNamespace(oracle=oracle))
    assert [r["trial_id"] for r in records] == ["0", "1", "2"]


# --- Latency targets --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nasbench201_table(tmp_path_factory):
    """A synthetic latency table (ms = parameters / 1000, plus 0.1 ms per network) of the
    digits nasbench201 space."""
    from tfnas import data, spaces
    from tfnas.latency import testing

    info = data.DATASETS["digits"]
    space = spaces.make("nasbench201", info.input_shape, info.num_classes)
    table = testing.synthetic_table(space, fixed_ms=0.1)
    return table.save(tmp_path_factory.mktemp("table") / "table.json")


def test_latency_target_rejects_slower_architectures_and_is_reported(
    tmp_path, capsys, nasbench201_table
):
    from tfnas.latency import LookupTable

    table = LookupTable.load(nasbench201_table)  # Saved with the space's layout.
    target = 15.0  # Random architectures of the space: 1.7 to 40 ms, median about 16.
    out = str(tmp_path / "run")
    summary = pipeline.run_search(
        oracle="random", max_trials=3, epochs=1, output_dir=out, latency_runs=1,
        latency_target_ms=target, latency_table=nasbench201_table, tensorboard=False,
    )  # fmt: skip
    printed = capsys.readouterr().out
    results = json.load(open(os.path.join(out, "results.json")))
    assert results["constraints"] == {"latency_ms": target}
    trials = results["trials"]
    for trial in trials:
        # Each trial's latency_ms is the table's prediction of its architecture.
        assert trial["metrics"]["latency_ms"] == pytest.approx(table.predict(trial["values"]))
    over = [t for t in trials if t["metrics"]["latency_ms"] > target]
    within = [t for t in trials if t["metrics"]["latency_ms"] <= target]
    assert over and within, [t["metrics"]["latency_ms"] for t in trials]
    assert all("val_accuracy" not in t["metrics"] for t in over)
    assert all("val_accuracy" in t["metrics"] for t in within)
    assert summary["latency_target_ms"] == target
    assert summary["predicted_latency_ms"] <= target
    assert "latency target" in printed and "latency predicted" in printed
    assert "rejected untrained: latency_ms" in printed


def test_a_space_without_a_table_times_each_trial_under_a_latency_target(tmp_path, monkeypatch):
    # MnasNet's space has no per-operation form: no table is built, the trials are timed.
    monkeypatch.setattr(
        pipeline, "_latency_table", lambda *a, **k: pytest.fail("built a latency table")
    )
    out = str(tmp_path / "run")
    summary = pipeline.run_search(
        space="mnasnet", oracle="random", max_trials=1, epochs=1, output_dir=out,
        latency_runs=1, latency_target_ms=1000.0, tensorboard=False,
    )  # fmt: skip
    (trial,) = json.load(open(os.path.join(out, "results.json")))["trials"]
    assert 0 < trial["metrics"]["latency_ms"] <= 1000.0  # Measured with LiteRT.
    assert summary["latency_target_ms"] == 1000.0


def test_a_mixed_precision_search_exports_its_bits(tmp_path):
    out = str(tmp_path / "run")
    summary = pipeline.run_search(
        quantization="mixed", max_trials=1, epochs=1, output_dir=out, latency_runs=1,
        tensorboard=False,
    )  # fmt: skip
    results = json.load(open(os.path.join(out, "results.json")))
    assert results["space"] == "quantized_cnn" and results["tflite_quantize"] == "mixed"
    (trial,) = results["trials"]
    # The per-layer bits are the trial's searched values, within the candidates.
    for row in results["layer_bits"]:
        assert row["weight_bits"] in (2, 3, 4, 8) and row["activation_bits"] in (4, 8, 32)
    searched = sorted(v for k, v in trial["values"].items() if k.endswith("/weight_bits"))
    assert sorted(r["weight_bits"] for r in results["layer_bits"]) == searched
    assert summary["bits"]["compression"] > 1
    assert os.path.getsize(os.path.join(out, "best_model.tflite")) > 0
    # The report embeds the per-layer bits figure (self-contained HTML).
    assert "Per-layer weight and activation bits" in open(os.path.join(out, "report.html")).read()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"space": "darts"}, r"searches the bits of its own CNN .* drop --space\. Received: "
         r"quantization='int8' and space='darts'"),
        ({"quantize": "int8"}, r"drop --quantize\. Received: quantization='int8' and "
         r"quantize='int8'"),
        ({"latency_target_ms": 1.0}, r"latency_target_ms \(--latency_target_ms\) is not "
         r"available with quantization"),
    ],
)  # fmt: skip
def test_quantized_search_refuses_what_it_does_not_take(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipeline.run_search(quantization="int8", output_dir=str(tmp_path), **kwargs)


def test_mixed_precision_dnas_needs_a_mixed_search(tmp_path):
    with pytest.raises(ValueError, match=r"pass quantization='mixed' \(--quantization=mixed\)"):
        pipeline.run_search(oracle="mixed_precision_dnas", output_dir=str(tmp_path))


def test_unknown_quantization_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"quantization must be one of \['none', 'int8', "):
        pipeline.run_search(quantization="int4", output_dir=str(tmp_path))


def test_unreachable_latency_target_fails_before_training(tmp_path, nasbench201_table, monkeypatch):
    monkeypatch.setattr(
        pipeline.Tuner, "search", lambda *a, **k: pytest.fail("trained before the check")
    )
    with pytest.raises(
        ValueError,
        match=r"No architecture of the space can meet latency_target_ms=0\.05 "
        r"\(--latency_target_ms\): the fastest one .* takes 0\.1000 ms",
    ):
        pipeline.run_search(
            output_dir=str(tmp_path), latency_target_ms=0.05,
            latency_table=nasbench201_table, verbose=0,
        )  # fmt: skip


def test_bad_latency_arguments_are_named(tmp_path, nasbench201_table):
    with pytest.raises(ValueError, match=r"latency_target_ms must be > 0\. Received: "):
        pipeline.run_search(output_dir=str(tmp_path), latency_target_ms=-1.0)
    with pytest.raises(ValueError, match=r"latency_table \(--latency_table\) must be a latency "
                       r"table file .* Received: latency_table='none\.json', no such file"):  # fmt: skip
        pipeline.run_search(output_dir=str(tmp_path), latency_table="none.json")
    # A table measured on another machine (a local runner's fingerprint) is refused.
    data = json.load(open(nasbench201_table))
    data["fingerprint"] = {"runner": "local", "cpu": "another CPU", "quantize": None}
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"was measured on another device or runtime"):
        pipeline.run_search(output_dir=str(tmp_path / "o"), latency_table=str(other), verbose=0)
    data["fingerprint"] = {"runner": "adb", "quantize": "int8"}
    other.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"quantize='int8', this search exports with "
                       r"quantize=None \(--quantize\)"):  # fmt: skip
        pipeline.run_search(output_dir=str(tmp_path / "o"), latency_table=str(other), verbose=0)


def test_a_target_without_a_table_builds_one_on_this_machine(tmp_path, monkeypatch):
    built = {}

    class Built(Exception):
        pass

    def build_table(space, runner, output, **kwargs):
        built.update(output=output, runner=runner.fingerprint(), **kwargs)
        raise Built

    monkeypatch.setattr(pipeline.latency, "build_table", build_table)
    with pytest.raises(Built):
        pipeline.run_search(
            output_dir=str(tmp_path), latency_target_ms=1.0, num_threads=2, verbose=0
        )
    assert built["output"] == os.path.join(str(tmp_path), "latency_table_nasbench201.json")
    assert built["runner"]["runner"] == "local" and built["runner"]["num_threads"] == 2
    assert built["quantize"] is None


@pytest.mark.parametrize("oracle, space, message", [
    ("proxylessnas", "proxyless", r"needs latency_target_ms.*pass --latency_target_ms"),
    ("single_path_nas", "nasbench201", "MBConv views sharing one set of weights"),
    ("mnasnet", "nasbench201", r"needs the target latency T.*--latency_target_ms"),
])  # fmt: skip
def test_latency_oracles_that_cannot_search_fail_before_the_table_build(
    tmp_path, monkeypatch, oracle, space, message
):
    monkeypatch.setattr(pipeline.latency, "build_table",
                        lambda *a, **k: pytest.fail("built a table first"))  # fmt: skip
    with pytest.raises(ValueError, match=message):
        pipeline.run_search(output_dir=str(tmp_path), oracle=oracle, space=space, verbose=0)


def test_latency_aware_oracles_get_the_table_and_target(tmp_path, monkeypatch, nasbench201_table):
    received = {}

    class Recorded(Exception):
        pass

    class Oracle:
        execution = "supernet"

        def __init__(self, objective, max_trials, seed, constraints=None, latency_table=None,
                     latency_target_ms=None, latency_unit="ms"):  # fmt: skip
            received.update(constraints=constraints, table=latency_table,
                            target=latency_target_ms, unit=latency_unit)  # fmt: skip
            raise Recorded

    monkeypatch.setattr(pipeline.oracles, "get", lambda name: Oracle)
    with pytest.raises(Recorded):
        pipeline.run_search(
            output_dir=str(tmp_path), latency_target_ms=15.0,
            latency_table=nasbench201_table, verbose=0,
        )  # fmt: skip
    assert received["constraints"] == {"latency_ms": 15.0}
    assert received["target"] == 15.0
    assert received["table"].choices  # Bound to the space.
    # The fastest architecture takes 0.1 ms: log(ms) < 1, so FBNet's unit is microseconds.
    assert received["unit"] == "us"


def test_irlas_takes_the_spaces_expert_and_refuses_a_space_without_one(tmp_path, monkeypatch):
    seen = {}

    def search(tuner, *args, **kwargs):
        seen["expert"] = tuner.oracle.expert
        raise KeyboardInterrupt  # Stops before any training.

    monkeypatch.setattr(pipeline.Tuner, "search", search)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_search(oracle="irlas", output_dir=str(tmp_path / "a"), verbose=0)
    resnet = nasbench201.arch_str_to_values(nasbench201.RESNET_CELL)
    assert seen["expert"] == resnet
    with pytest.raises(ValueError, match=r"--space=mobile has none\. Received: space='mobile'"):
        pipeline.run_search(oracle="irlas", space="mobile", output_dir=str(tmp_path / "b"))
