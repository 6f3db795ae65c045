"""examples/latency_target.py: every candidate within the target, a working .tflite."""

import os

import latency_target
import pytest


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory):
    # One directory for both oracles: the second run reuses the latency table.
    return tmp_path_factory.mktemp("latency_target")


@pytest.mark.parametrize("oracle", ["fbnet", "single_path_nas"])
def test_search_meets_the_predicted_latency_target(output_dir, oracle):
    tmp_path = output_dir
    tuner, table, target, report = latency_target.main(
        [f"--oracle={oracle}", "--kernel_sizes=3", "--epochs=2", "--max_trials=2",
         "--timing_runs=3", "--fit_networks=0", f"--output_dir={tmp_path}"]
    )  # fmt: skip
    fastest, _ = table.fastest_architecture()
    assert fastest < target
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 2
    for trial in trials:
        # The Tuner records the table's prediction; nothing above the target was proposed.
        latency = trial.metrics.get_best_value("latency_ms")
        assert latency == pytest.approx(table.predict(trial.hyperparameters.values))
        assert latency <= target
    assert os.path.getsize(tmp_path / "best_model.tflite") > 0
    assert report.median_ms > 0
