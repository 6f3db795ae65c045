"""The end-to-end job of tfnas-search: outputs, resume, and argument errors."""

import dataclasses
import json
import os

import numpy as np
import pytest

from tfnas import pipeline


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
        ({"space": "nasnet"}, "Received: space='nasnet'"),
        ({"oracle": "genetic"}, "Unknown oracle: 'genetic'"),
        ({"max_trials": 0}, "max_trials must be >= 1. Received: max_trials=0"),
        ({"epochs": -1}, "epochs must be >= 1. Received: epochs=-1"),
        ({"quantize": "int4"}, "Received: quantize='int4'"),
        ({"output_dir": ""}, "output_dir must be a non-empty path"),
        ({"dataset": "imagenet"}, "Unknown dataset: 'imagenet'"),
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
    ],
)
def test_resume_with_other_arguments_fails_before_any_work(
    finished_search, monkeypatch, kwargs, message
):
    trials = _trial_dirs(finished_search)
    monkeypatch.setattr(pipeline, "Tuner", lambda *a, **k: pytest.fail("built the tuner"))
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
