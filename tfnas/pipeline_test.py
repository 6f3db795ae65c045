"""The end-to-end job of tfnas-search: outputs, resume, and argument errors."""

import json
import os

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
