"""A small kill drill: a tiny multi-trial search killed twice resumes exactly.

The full drill (`kill_drill.py`, 20 kills per family through `tfnas-search`) takes tens of
minutes; here a dense-network search (`kill_drill.py --child_search`) is killed once during
start-up and once mid-search, and its checks run on synthetic projects too.
"""

import json
import os
import random

import kill_drill


def _completed_trials(count):
    return lambda directory: len(kill_drill.completed(kill_drill.snapshot(directory))) >= count


def test_a_search_killed_twice_ends_as_the_uninterrupted_one(tmp_path):
    reference_dir = str(tmp_path / "reference")
    settings = {"max_trials": 3, "epochs": 1, "seed": 1}
    # The uninterrupted reference runs in this process (saves a TensorFlow start-up).
    kill_drill.run_child_search("regularized_evolution", reference_dir, **settings)

    result = kill_drill.drill(
        lambda directory: kill_drill.child_command("regularized_evolution", directory, **settings),
        str(tmp_path / "drill"),
        kills=2,
        rng=random.Random(0),
        kill_min_s=0.0,
        kill_max_s=0.3,
        # The first kill lands during start-up, the second once a trial has completed.
        gates=[None, _completed_trials(1)],
        reference_dir=reference_dir,
    )

    assert result["problems"] == []
    assert result["kills"] == 2
    assert result["restarts"] == 3
    assert result["phases"][0].endswith(": 0 trials")
    completed_at_second_kill = int(result["phases"][1].split(": ")[1].split()[0])
    assert 1 <= completed_at_second_kill < 3
    assert result["trials"] == 3


def _write_trial(project, trial_id, score, status="COMPLETED"):
    trial_dir = project / f"trial_{trial_id}"
    trial_dir.mkdir(parents=True, exist_ok=True)
    trial = {
        "trial_id": trial_id,
        "hyperparameters": {"space": [], "values": {"units": 8}},
        "metrics": {"metrics": {}},
        "score": score,
        "best_step": 0,
        "status": status,
        "message": None,
    }
    (trial_dir / "trial.json").write_text(json.dumps(trial))


def test_the_checks_name_a_changed_trial_a_repeated_id_and_a_repeated_architecture(tmp_path):
    reference_dir, output_dir = tmp_path / "reference", tmp_path / "killed"
    for directory in (reference_dir, output_dir):
        _write_trial(directory / "search", "0", 0.5)
    reference = kill_drill.snapshot(str(reference_dir))
    before = kill_drill.snapshot(str(output_dir))
    assert kill_drill.check_against_reference(before, reference, final=True) == []

    _write_trial(output_dir / "search", "0", 0.25)  # Rewritten with another score.
    _write_trial(output_dir / "search", "1", 0.5)  # The same architecture again.
    (output_dir / "search" / "oracle.json").write_text(json.dumps({"end_order": ["0", "1", "0"]}))
    after = kill_drill.snapshot(str(output_dir))

    assert kill_drill.check_kept(before, after) == [
        "completed trial 0 rewritten: trial.json changed"
    ]
    assert kill_drill.check_orders(after) == ["oracle end_order repeats trial ids ['0']"]
    assert kill_drill.check_against_reference(after, reference, final=True) == [
        "trial 0 differs from the reference: score: 0.25 != 0.5",
        "trial 1 completed but the reference has no such trial",
        "trial ids ['1'] extra, [] missing",
        "1 repeated architectures, the reference has 0",
    ]


def test_results_are_compared_without_timings_and_paths(tmp_path):
    reference_dir, output_dir = tmp_path / "reference", tmp_path / "killed"
    for directory, median in ((reference_dir, 0.5), (output_dir, 0.7)):
        os.makedirs(directory / "search")
        results = {
            "files": {"results.json": str(directory / "results.json")},
            "latency": {"median_ms": median, "size_bytes": 100},
            "trials": [{"trial_id": "0", "score": 0.5}],
        }
        (directory / "results.json").write_text(json.dumps(results))
    assert kill_drill.compare_outputs(str(output_dir), str(reference_dir)) == []

    results["latency"]["size_bytes"] = 101
    (output_dir / "results.json").write_text(json.dumps(results))
    assert kill_drill.compare_outputs(str(output_dir), str(reference_dir)) == [
        "results.json differs from the reference in ['latency']"
    ]
